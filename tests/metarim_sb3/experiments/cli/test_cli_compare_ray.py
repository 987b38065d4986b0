"""``metarim compare --backend ray``: its options and their one-line errors (these run with or without Ray), then,
against a real local Ray, a 2-agent x 2-seed grid through the command whose run folders match the local backend's
and that a second compare skips, a run killed mid-training (or at its start) that is retried with one line saying
from which step it resumes, its output and errors in its ``train.log``, and a grid interrupted by Ctrl-C (exit 130)
that resumes when the command is run again."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from cli_helpers import ENV_ID, TINY, assert_one_line_error, main_in_process, metarim, popen_metarim

from metarim_sb3.experiments.grid.compare import Job, _run_job, checkpoint_step, plan, prepare_run_dirs, ray_log_file
from metarim_sb3.experiments.training.folder import CHECKPOINT, DONE, JOB, TRAIN_LOG

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs Ray: pip install metarim[ray]")


@pytest.fixture
def preset(tmp_path: Path) -> Path:
    """A compare preset: meta-rim and lstm, 2 seeds, 256 steps, :data:`TINY` settings."""
    path = tmp_path / "tiny_grid.yaml"
    grid = {"agents": ["meta-rim", "lstm"], "envs": [ENV_ID], "seeds": 2, "timesteps": 256, "overrides": TINY}
    path.write_text(yaml.safe_dump(grid))
    return path


def test_ray_missing_exits_2_naming_the_extra(
    preset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for name in ("ray", "ray.tune"):
        monkeypatch.setitem(sys.modules, name, None)  # importing them now raises ImportError, as without Ray
    out = tmp_path / "out"
    result = main_in_process(["compare", "--preset", preset, "--out", out, "--backend", "ray"], capsys)
    assert_one_line_error(result, "--backend ray", "pip install metarim[ray]")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--address", "auto"], ["--address", "--backend ray"]),
        (["--cpus-per-run", "2"], ["--cpus-per-run", "--backend ray"]),
        (["--verbose"], ["--verbose", "--backend ray"]),
        (["--backend", "local", "--address", "auto"], ["--address", "--backend ray"]),
        (["--backend", "ray", "--cpus-per-run", "0"], ["--cpus-per-run", "positive integer"]),
        (["--backend", "ray", "--address", "headnode"], ["--address", "'auto' or HOST:PORT"]),
        (["--backend", "ray", "--address", "10.0.0.1:99999"], ["--address", "'auto' or HOST:PORT"]),
        (["--backend", "ray", "--workers", "2"], ["--workers", "--backend local"]),
        (["--backend", "spark"], ["--backend", "'local', 'ray'"]),
    ],
)
def test_backend_options_bad_input(
    args: list[str], needles: list[str], preset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert_one_line_error(main_in_process(["compare", "--preset", preset, "--out", out, *args], capsys), *needles)
    assert not out.exists()


def _ray_cluster_known() -> bool:
    """Whether ``--address auto`` would try to join a cluster: ``RAY_ADDRESS``, the address ``ray start`` recorded
    (possibly of a cluster stopped without ``ray stop``: Ray then retries it for minutes), or a running instance."""
    from ray._private.services import find_gcs_addresses
    from ray._private.utils import read_ray_address

    return bool(os.environ.get("RAY_ADDRESS") or read_ray_address() or find_gcs_addresses())


@needs_ray
def test_no_cluster_at_address_exits_2_writing_nothing(
    preset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import ray

    if ray.is_initialized() or _ray_cluster_known():
        pytest.skip("a Ray cluster is running or recorded here; --address auto would try to join it")
    out = tmp_path / "out"
    result = main_in_process(
        ["compare", "--preset", preset, "--out", out, "--backend", "ray", "--address", "auto"], capsys
    )
    assert_one_line_error(result, "no Ray cluster at address 'auto'", "ray start --head")
    assert not (out / "runs").exists()


def _run_folders(out: Path) -> dict[str, list[str]]:
    """Each run folder under ``out/runs`` (relative) -> the names it holds."""
    return {
        p.parent.relative_to(out).as_posix(): sorted(c.name for c in p.parent.iterdir())
        for p in sorted((out / "runs").rglob(DONE))
    }


@needs_ray
@pytest.mark.slow
def test_ray_grid_through_the_command(preset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    remote, local = tmp_path / "ray", tmp_path / "local"
    result = main_in_process(["compare", "--preset", preset, "--out", remote, "--backend", "ray"], capsys)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "running 4 of 4 runs on a local Ray" in result.stdout
    assert result.stdout.count(f" on {ENV_ID}: done, 256 steps") == 4
    assert "Configuration for experiment" not in result.stdout  # Tune's own console output stays off

    result = main_in_process(["compare", "--preset", preset, "--out", local, "--workers", "2"], capsys)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = _run_folders(remote)
    assert list(runs) == [f"runs/{ENV_ID}/{agent}/seed_{seed}" for agent in ("lstm", "meta-rim") for seed in (0, 1)]
    assert runs == _run_folders(local)  # same folders, same files in each
    for run in runs:
        assert yaml.safe_load((remote / run / JOB).read_text()) == yaml.safe_load((local / run / JOB).read_text())
    assert sorted(p.name for p in remote.iterdir()) == sorted([".ray", *(p.name for p in local.iterdir())])
    with open(remote / "summary.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert sorted((r["agent"], r["status"]) for r in rows) == [("lstm", "done")] * 2 + [("meta-rim", "done")] * 2

    experiments = sorted((remote / ".ray").iterdir())
    done = [(remote / run / DONE).stat().st_mtime_ns for run in runs]
    result = main_in_process(["compare", "--preset", preset, "--out", remote, "--backend", "ray"], capsys)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("[skip]") == 4 and "running" not in result.stdout
    assert sorted((remote / ".ray").iterdir()) == experiments  # nothing was submitted
    assert [(remote / run / DONE).stat().st_mtime_ns for run in runs] == done


def _kill_marker(job: Job) -> Path:
    """A file beside the run folder (a run folder must hold nothing but the run)."""
    return job.out_dir.with_name(f"{job.out_dir.name}.kill_once")


def run_killed_once(job: Job) -> dict[str, object]:
    """The compare entry point, except that with a :func:`_kill_marker` file the process kills itself (SIGKILL, no
    clean-up) as soon as the run's first checkpoint exists, or at once if the file says ``now`` (it is consumed)."""
    marker = _kill_marker(job)
    now = marker.exists() and marker.read_text() == "now"

    def kill_after_checkpoint() -> None:
        while not now and not (job.out_dir / CHECKPOINT).exists():
            time.sleep(0.005)
        marker.unlink()
        os.kill(os.getpid(), signal.SIGKILL)

    if marker.exists():
        threading.Thread(target=kill_after_checkpoint, daemon=True).start()
    return _run_job(job)


@needs_ray
@pytest.mark.slow
@pytest.mark.parametrize("when", ["after its first checkpoint", "at its start"])
def test_killed_run_is_retried_in_one_line(when: str, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    import ray

    from metarim_sb3.experiments.grid.ray_backend import run_grid_on_ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    one = tmp_path / "one.yaml"
    grid = {"agents": ["lstm"], "envs": [ENV_ID], "seeds": 1, "timesteps": 512, "overrides": TINY}
    one.write_text(yaml.safe_dump(grid))
    jobs = plan(str(one), tmp_path / "out", seeds=1)
    jobs[0].out_dir.parent.mkdir(parents=True)
    _kill_marker(jobs[0]).write_text("now" if when == "at its start" else "")
    log = io.StringIO()
    [result] = run_grid_on_ray(
        jobs,
        run_killed_once,
        tmp_path / "out",
        num_cpus=2,
        log=log,
        prepare=prepare_run_dirs,
        resume_step=checkpoint_step,
        log_file=ray_log_file,
    )

    assert result["status"] == "done" and result["timesteps"] == 512, log.getvalue()
    assert json.loads((jobs[0].out_dir / DONE).read_text())["timesteps"] == 512
    assert not _kill_marker(jobs[0]).exists()  # the first attempt was killed
    [retry] = [line for line in log.getvalue().splitlines() if "attempt 1 of 3 failed" in line]
    assert "failed (its process died: " in retry
    if when == "at its start":
        assert result["this_segment_steps"] == 512
        assert retry.endswith("; attempt 2 restarts from step 0 (no checkpoint yet)")
    else:
        resumed = 512 - result["this_segment_steps"]
        assert 0 < resumed < 512  # the retry went on from the checkpoint, and the line says from which step
        assert retry.endswith(f"; attempt 2 resumes from step {resumed} (its checkpoint)")
    console = capfd.readouterr()
    assert "Traceback" not in console.out + console.err and "(raylet)" not in console.out  # no raw Ray output
    text = (jobs[0].out_dir / TRAIN_LOG).read_text()
    assert text.count(f"{jobs[0].label}: started on Ray node {result['ray']['node_id']}") == 2
    assert f"{jobs[0].label}: attempt 1 failed (its process died: " in text
    assert "The actor died unexpectedly" in text  # Ray's whole message is in the run's train.log


@needs_ray
@pytest.mark.slow
def test_interrupted_grid_resumes_when_run_again(tmp_path: Path) -> None:
    preset = tmp_path / "long.yaml"
    grid = {"agents": ["lstm"], "envs": [ENV_ID], "seeds": 2, "timesteps": 8192, "overrides": TINY}
    preset.write_text(yaml.safe_dump(grid))
    out = tmp_path / "out"
    args = ("compare", "--preset", preset, "--out", out, "--backend", "ray", "--no-report")
    process = popen_metarim(*args)
    runs = [out / "runs" / ENV_ID / "lstm" / f"seed_{seed}" for seed in (0, 1)]
    deadline = time.monotonic() + 180
    while not all((run / CHECKPOINT).exists() for run in runs) and time.monotonic() < deadline:
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    assert "interrupted: run the same command again to resume" in stderr
    assert "Tuner.restore" not in stderr  # Tune's own resume hint would mislead
    assert not any((run / DONE).exists() for run in runs)

    result = metarim(*args, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for run in runs:
        done = json.loads((run / DONE).read_text())
        assert done["timesteps"] == 8192 and 0 < done["this_segment_steps"] < 8192  # went on from the checkpoint
