"""The Ray backend of a grid, against a real local Ray instance: run folders as the local backend writes them,
retries that resume from the cell's checkpoint (one line each, saying from which step), failures reported,
completed cells skipped, each attempt's output and error in the cell's log file."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from metarim_sb3.experiments.grid.ray_backend import RayMissingError, require_ray, run_grid_on_ray

ray = pytest.importorskip("ray")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module


@dataclass(frozen=True)
class Cell:
    """A grid cell as the backend sees it (``compare.Job`` has the same two attributes)."""

    agent: str
    seed: int
    out_dir: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.agent} seed {self.seed}"


def fake_run(cell: Cell) -> dict[str, Any]:
    """A cheap stand-in for the single-run entry point: 4 "steps", checkpointed, resumable, a done marker last.

    A ``fail_once`` file in the run folder makes it save a checkpoint at step 2 and raise (the file is consumed);
    ``fail_always`` makes it raise every time.
    """
    import torch

    out = Path(cell.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(f"agent: {cell.agent}\nenv: fake\nseed: {cell.seed}\n")
    checkpoint = out / "checkpoint.json"
    start = json.loads(checkpoint.read_text())["step"] if checkpoint.exists() else 0
    if (out / "fail_always").exists():
        raise RuntimeError("this cell always fails")
    for step in range(start, 4):
        time.sleep(0.05)
        with open(out / "curve.csv", "a") as file:
            file.write(f"{step},{cell.seed}\n")
        checkpoint.write_text(json.dumps({"step": step + 1}))
        if step == 1 and (out / "fail_once").exists():
            (out / "fail_once").unlink()
            raise RuntimeError("simulated crash after step 2")
    summary = {
        "status": "done",
        "agent": cell.agent,
        "seed": cell.seed,
        "timesteps": 4,
        "resumed_from": start,
        "torch_threads": torch.get_num_threads(),
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    (out / "done.json").write_text(json.dumps(summary))
    return summary


def checkpoint_step(cell: Cell) -> int | None:
    """The step :func:`fake_run` resumes a cell from (``None``: no checkpoint)."""
    checkpoint = Path(cell.out_dir) / "checkpoint.json"
    return json.loads(checkpoint.read_text())["step"] if checkpoint.exists() else None


def grid(out: Path, agents: tuple[str, ...] = ("a", "b"), seeds: int = 2) -> list[Cell]:
    return [Cell(agent, seed, out / "runs" / agent / f"seed_{seed}") for agent in agents for seed in range(seeds)]


def layout(root: Path) -> list[str]:
    """The files under ``root/runs``, relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in (root / "runs").rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One real Ray instance for the module (starting one takes seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_require_ray_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require_ray() is ray
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(RayMissingError, match=r"pip install metarim\[ray\]"):
        require_ray()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cpus_per_run": 0}, "cpus_per_run"),
        ({"max_failures": -1}, "max_failures"),
        ({"verbose": 3}, "verbose"),
        ({"address": ""}, "address"),
        ({"num_cpus": 0}, "num_cpus"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run_grid_on_ray(grid(tmp_path), fake_run, tmp_path, **kwargs)


@pytest.mark.slow
def test_grid_matches_local_layout_retries_then_skips(local_ray: None, tmp_path: Path) -> None:
    local, remote = tmp_path / "local", tmp_path / "ray"
    for cell in grid(local):
        fake_run(cell)
    cells = grid(remote)
    cells[1].out_dir.mkdir(parents=True)
    (cells[1].out_dir / "fail_once").touch()  # its first attempt crashes after saving a checkpoint at step 2
    log = io.StringIO()
    results = run_grid_on_ray(cells, fake_run, remote, verbose=1, log=log, resume_step=checkpoint_step)

    assert [(r["status"], r["agent"], r["seed"]) for r in results] == [
        ("done", a, s) for a in ("a", "b") for s in (0, 1)
    ]
    assert [r["resumed_from"] for r in results] == [0, 2, 0, 0]  # the retry went on from the checkpoint
    rows = (cells[1].out_dir / "curve.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["0", "1", "2", "3"]  # no step done twice
    assert all(r["torch_threads"] == 1 and r["omp_threads"] == "1" for r in results)
    assert layout(remote) == layout(local)
    assert sorted(p.name for p in remote.iterdir()) == [".ray", "runs"]  # Ray's files apart from the runs
    text = log.getvalue()
    assert text.count(": done, 4 steps") == 4
    retry = (
        "a seed 1: attempt 1 of 3 failed (RuntimeError: simulated crash after step 2); "
        "attempt 2 resumes from step 2 (its checkpoint)"
    )
    assert retry in text
    assert results[1]["ray"]["attempts"] == 2 and results[0]["ray"]["attempts"] == 1

    from metarim_sb3.experiments.reporting.runs import find_runs

    assert find_runs([remote]) == sorted(c.out_dir for c in cells)  # a report sees the run folders only

    experiments = list((remote / ".ray").iterdir())
    log = io.StringIO()
    again = run_grid_on_ray(grid(remote), fake_run, remote, log=log)
    assert all(r["skipped"] and r["status"] == "done" for r in again)
    assert log.getvalue().count("[skip]") == 4
    assert list((remote / ".ray").iterdir()) == experiments  # nothing was submitted


def printing_run(cell: Cell) -> dict[str, Any]:
    """:func:`fake_run` that first prints to stdout, to stderr and on file descriptor 2 (as native code does), and
    with a ``crash_first`` file raises before any checkpoint (the file is consumed)."""
    print(f"stdout of {cell.label}")
    print(f"stderr of {cell.label}", file=sys.stderr)
    os.write(2, f"fd 2 of {cell.label}\n".encode())
    crash = Path(cell.out_dir) / "crash_first"
    if crash.exists():
        crash.unlink()
        raise ValueError("crashed before any checkpoint")
    return fake_run(cell)


def log_file(cell: Cell) -> Path:
    """The file a cell's attempts write their output to (beside the run folder: the layout stays the same)."""
    return Path(cell.out_dir).with_suffix(".log")


@pytest.mark.slow
def test_retry_from_scratch_is_one_line_and_output_goes_to_the_log_file(
    local_ray: None, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    cells = grid(tmp_path, agents=("a",), seeds=2)
    cells[0].out_dir.mkdir(parents=True)
    (cells[0].out_dir / "crash_first").touch()
    log = io.StringIO()
    results = run_grid_on_ray(cells, printing_run, tmp_path, log=log, resume_step=checkpoint_step, log_file=log_file)

    assert [(r["status"], r["resumed_from"], r["ray"]["attempts"]) for r in results] == [("done", 0, 2), ("done", 0, 1)]
    lines = log.getvalue().splitlines()
    retries = [line for line in lines if "attempt 1 of 3 failed" in line]
    assert len(retries) == 1, lines
    assert retries[0].endswith(
        "a seed 0: attempt 1 of 3 failed (ValueError: crashed before any checkpoint); "
        "attempt 2 restarts from step 0 (no checkpoint yet)"
    )
    console = capfd.readouterr()
    assert "Traceback" not in console.out + console.err and "Trial task failed" not in console.err

    for cell, result in zip(cells, results, strict=True):
        text = log_file(cell).read_text()
        node = result["ray"]["node_id"]
        assert node == ray.get_runtime_context().get_node_id()
        starts = [line for line in text.splitlines() if f"{cell.label}: started on Ray node {node}" in line]
        assert len(starts) == result["ray"]["attempts"]
        for needle in (f"stdout of {cell.label}", f"stderr of {cell.label}", f"fd 2 of {cell.label}"):
            assert text.count(needle) == result["ray"]["attempts"], (needle, text)
    first = log_file(cells[0]).read_text()
    assert "a seed 0: attempt 1 failed (ValueError: crashed before any checkpoint); attempt 2 restarts" in first
    assert 'in printing_run\n    raise ValueError("crashed before any checkpoint")' in first  # the traceback


@pytest.mark.slow
def test_failures_are_reported(local_ray: None, tmp_path: Path) -> None:
    cells = grid(tmp_path, agents=("a",), seeds=2)
    cells[1].out_dir.mkdir(parents=True)
    (cells[1].out_dir / "fail_always").touch()
    log = io.StringIO()
    results = run_grid_on_ray(cells, fake_run, tmp_path, max_failures=1, log=log)

    assert results[0]["status"] == "done"  # a failing cell does not stop the others
    assert results[1]["status"] == "failed" and results[1]["attempts"] == 2
    assert "this cell always fails" in results[1]["error"]
    assert not (cells[1].out_dir / "done.json").exists()
    assert "a seed 1: FAILED after 2 attempt(s): RuntimeError: this cell always fails" in log.getvalue()


def real_run(cell: Cell) -> dict[str, Any]:
    """The local backend's single-run entry point: train, or resume from the checkpoint if there is one."""
    from metarim_sb3.experiments.training.folder import CHECKPOINT
    from metarim_sb3.experiments.training.runner import run

    return run(cell.config, cell.seed, cell.out_dir, resume=(cell.out_dir / CHECKPOINT).exists())


@pytest.mark.slow
def test_real_runs_match_the_local_layout(local_ray: None, tmp_path: Path) -> None:
    from cli_helpers import ENV_ID, TINY

    from metarim_sb3.experiments.reporting.report import build_report
    from metarim_sb3.experiments.training.config import resolve_config

    def cells(root: Path, seeds: int) -> list[Cell]:
        return [
            Cell(agent, seed, root / "runs" / ENV_ID / agent / f"seed_{seed}", resolve_config(
                agent, ENV_ID, overrides=TINY, timesteps=256))
            for agent in ("lstm", "meta-rim")
            for seed in range(seeds)
        ]  # fmt: skip

    remote = tmp_path / "ray"
    results = run_grid_on_ray(cells(remote, 2), real_run, remote, log=io.StringIO())
    assert [r["status"] for r in results] == ["done"] * 4
    local = tmp_path / "local"
    for cell in cells(local, 1):
        real_run(cell)
    for agent in ("lstm", "meta-rim"):
        run_dir = f"runs/{ENV_ID}/{agent}/seed_0"
        names = {p.name for p in (remote / run_dir).iterdir()}
        assert names == {p.name for p in (local / run_dir).iterdir()}
    build_report([remote], remote / "report")
    assert (remote / "report" / "summary.csv").exists()
