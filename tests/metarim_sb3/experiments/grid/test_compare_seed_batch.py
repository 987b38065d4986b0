"""``metarim compare --seed-batch S``: the cells of a grid packed into seed batches, several seeds per worker process
(:mod:`metarim_sb3.experiments.grid.seed_packs`)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import ENV_ID, TINY, assert_one_line_error, main_in_process, metarim, popen_metarim

from metarim_sb3.experiments.grid.compare import Job, checkpoint_step, plan, run_grid
from metarim_sb3.experiments.grid.seed_packs import Pack, _run_pack, plan_packs
from metarim_sb3.experiments.training.monitoring import RunControl
from metarim_sb3.experiments.training.seed_runs import run_seeds

STEPS = 128  # two rollouts of 2 envs x 32 steps


def _preset(folder: Path, agents: list[str], seeds: int, timesteps: int = STEPS) -> Path:
    path = folder / "grid.yaml"
    grid = {"agents": agents, "envs": [ENV_ID], "seeds": seeds, "timesteps": timesteps, "overrides": TINY}
    path.write_text(yaml.safe_dump(grid))
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return [{k: v for k, v in row.items() if k not in ("time_s", "fps", "seconds")} for row in csv.DictReader(file)]


def test_packs_group_by_config_and_resume_step(tmp_path: Path) -> None:
    jobs = plan(str(_preset(tmp_path, ["rim", "lstm"], 5)), tmp_path / "out")
    assert [(j.agent, j.seed) for j in jobs[:4]] == [("rim", 0), ("lstm", 0), ("rim", 1), ("lstm", 1)]
    (jobs[2].out_dir).mkdir(parents=True)
    (jobs[2].out_dir / "done.json").write_text("{}")  # rim seed 1 is complete: skipped
    steps = {("rim", 3): 128}  # rim seed 3 resumes from step 128; the others start fresh

    def step(job: Job) -> int | None:
        return steps.get((job.agent, job.seed))

    packs, refused = plan_packs(jobs, 2, step)
    assert packs == [
        Pack((0, 4), True),  # rim seeds 0 and 2
        Pack((1,), False),  # lstm: ppo.chunk_len null, one seed per process
        Pack((3,), False),
        Pack((5,), False),
        Pack((6,), True),  # rim seed 3, resuming: not with the fresh ones
        Pack((7,), False),
        Pack((8,), True),  # rim seed 4: the first pack is full
        Pack((9,), False),
    ]
    assert list(refused) == [("lstm", ENV_ID)] and "ppo.chunk_len" in refused["lstm", ENV_ID]
    assert plan_packs(jobs, 3, step)[0][0] == Pack((0, 4, 8), True)
    assert plan_packs(jobs, 1, step) == ([Pack((i,), False) for i in range(10) if i != 2], {})
    steps[("rim", 4)] = -1  # an unreadable checkpoint: that cell runs alone
    assert Pack((8,), False) in plan_packs(jobs, 3, step)[0]
    # equal configs share a pack, different ones do not; order is kept within the given cells
    other = dataclasses.replace(jobs[4], config=jobs[4].config.with_changes(timesteps=2 * STEPS))
    packs, _ = plan_packs([jobs[0], other, jobs[8]], 4, lambda job: None, todo=[0, 1, 2])
    assert packs == [Pack((0, 2), True), Pack((1,), True)]


def test_compare_with_seed_batches(tmp_path: Path) -> None:
    """3 seeds of rim (chunked) and lstm (one per process) with --seed-batch 2 on one worker: rim seeds 0 and 1 train
    together, seed 2 alone; every cell is an ordinary run folder and the report is built. A batched seed equals that
    seed trained by ``run_seeds`` alone."""
    preset = _preset(tmp_path, ["rim", "lstm"], 3)
    out = tmp_path / "results"
    result = metarim("compare", "--preset", preset, "--seed-batch", "2", "--workers", "1", "--out", out, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    notices = [line for line in lines if "one seed per process" in line]
    assert len(notices) == 1 and "ppo.chunk_len" in notices[0]
    assert notices[0].startswith(f"lstm on {ENV_ID}: one seed per process (")
    assert "running 6 of 6 runs on 1 worker(s), 5 task(s) of up to 2 seeds" in lines
    progress = [line for line in lines if line.startswith("[") and "done, 128 steps" in line]
    assert len(progress) == 6 and progress[0].startswith("[1/6") and progress[-1].startswith("[6/6")
    runs = out / "runs" / ENV_ID
    for agent in ("rim", "lstm"):
        for seed in range(3):
            run = runs / agent / f"seed_{seed}"
            done = json.loads((run / "done.json").read_text())
            assert (done["seed"], done["timesteps"], done["status"]) == (seed, STEPS, "done")
            assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == seed
            assert (run / "train.log").is_file() and not (run / "error.log").exists()
    assert (out / "report.md").is_file()
    with open(out / "summary.csv", newline="") as file:
        assert len(list(csv.DictReader(file))) == 6

    [rim] = [job for job in plan(str(preset), out) if (job.agent, job.seed) == ("rim", 1)]
    (alone,) = run_seeds(rim.config, [1], tmp_path / "alone")
    assert _rows(runs / "rim" / "seed_1" / "curve.csv") == _rows(tmp_path / "alone" / "seed_1" / "curve.csv")
    batched = json.loads((runs / "rim" / "seed_1" / "done.json").read_text())
    for key in ("timesteps", "final_stage", "heldout_success", "heldout_return"):
        assert batched[key] == pytest.approx(alone[key]), key


def test_refusals_name_the_option(tmp_path: Path, capsys: Any) -> None:
    preset = _preset(tmp_path, ["rim"], 2)
    compare = ["compare", "--preset", preset, "--out", tmp_path / "out"]
    refused = main_in_process([*compare, "--seed-batch", "2", "--backend", "ray"], capsys)
    assert_one_line_error(refused, "--seed-batch is an option of --backend local")
    assert_one_line_error(main_in_process([*compare, "--seed-batch", "0"], capsys), "--seed-batch", "positive")
    assert not (tmp_path / "out").exists()
    dry = main_in_process([*compare, "--seed-batch", "4", "--dry-run"], capsys)
    assert dry.returncode == 0, dry.stderr
    assert "one seed per process" in dry.stdout and "bench_seed_batch.py" in dry.stdout
    assert "one seed per process" not in main_in_process([*compare, "--dry-run"], capsys).stdout


def test_interrupted_pack_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT during a pack (what ``run_grid``'s stop sends a worker) checkpoints every seed at one step; the next
    ``run_grid`` packs them again (same resume step) and finishes them."""
    jobs = plan(str(_preset(tmp_path, ["rim"], 2, timesteps=2 * STEPS)), tmp_path / "out")
    sent: list[int] = []
    on_rollout_end = RunControl._on_rollout_end

    def interrupt_once(self: RunControl) -> None:
        on_rollout_end(self)
        if self.num_timesteps >= STEPS and not sent:
            sent.append(self.num_timesteps)
            os.kill(os.getpid(), signal.SIGINT)  # run_seeds' handler: every seed of the pack stops

    with monkeypatch.context() as patch:
        patch.setattr(RunControl, "_on_rollout_end", interrupt_once)
        results = _run_pack(jobs)
    assert [(r["status"], r["timesteps"]) for r in results] == [("interrupted", STEPS)] * 2
    assert [checkpoint_step(job) for job in jobs] == [STEPS, STEPS]
    for job in jobs:  # the pack's console output (here the signal's message) is in each seed's train.log
        assert "SIGINT: stopping every seed" in (job.out_dir / "train.log").read_text()
    assert plan_packs(jobs, 2, checkpoint_step)[0] == [Pack((0, 1), True)]

    log = io.StringIO()
    results, interrupted = run_grid(jobs, 1, log=log, seed_batch=2)
    assert not interrupted, log.getvalue()
    assert [(r["status"], r["timesteps"]) for r in results] == [("done", 2 * STEPS)] * 2, log.getvalue()
    assert "running 2 of 2 runs on 1 worker(s), 1 task(s) of up to 2 seeds" in log.getvalue()
    for job in jobs:
        resumed = json.loads((job.out_dir / "versions.json").read_text())["resumed"]
        assert [v["at_timesteps"] for v in resumed] == [STEPS]
        assert [int(r["timesteps"]) for r in _rows(job.out_dir / "curve.csv")] == [64, 128, 192, 256]


@pytest.mark.slow
def test_ctrl_c_stops_a_pack_then_compare_resumes_it(tmp_path: Path) -> None:
    """The real path (``pytest -m slow``): SIGINT to ``metarim compare`` reaches the worker's pack, every seed saves a
    checkpoint, and the same command resumes the pack."""
    preset = _preset(tmp_path, ["rim"], 2, timesteps=4096)
    out = tmp_path / "results"
    command = ("compare", "--preset", preset, "--seed-batch", "2", "--workers", "1", "--out", out)
    proc = popen_metarim(*command)
    deadline = time.time() + 180
    while time.time() < deadline and len(list(out.rglob("checkpoint.json"))) < 2:
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130, stdout + stderr
    assert stdout.count("interrupted at") == 2 and not list(out.rglob("done.json")), stdout
    steps = {json.loads(path.read_text())["timesteps"] for path in out.rglob("checkpoint.json")}
    assert len(steps) == 1, steps  # the seeds of a pack stop at one step
    result = metarim(*command, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 task(s) of up to 2 seeds" in result.stdout
    for done in out.rglob("done.json"):
        assert json.loads(done.read_text())["timesteps"] == 4096
        resumed = json.loads((done.parent / "versions.json").read_text())["resumed"]
        assert [v["at_timesteps"] for v in resumed] == sorted(steps)
