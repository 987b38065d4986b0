"""Crafted run folders (e.g. downloaded from someone else): no file outside the folder is ever written through a
symbolic link, no FIFO or device is opened as a run file, and ``--force`` takes over only folders carrying the run
marker. Each refusal exits 2 with one line and changes nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cli_helpers import ENV_ID, assert_one_line_error, main_in_process

from metarim_sb3.callbacks._common import append_csv_row, write_csv
from metarim_sb3.experiments.training.folder import CONFIG, LOCK, MARKER, TRAIN_LOG, VERSIONS, RunError
from metarim_sb3.experiments.training.ownership import RunLock


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under a folder and its content (links and the lock left out)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink() and p.name != LOCK
    }


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the run folder that a crafted link points at."""
    path = tmp_path / "precious.txt"
    path.write_text("line one\nline two\nlast line without newline")
    return path


def _copy(finished_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    return run


@pytest.mark.parametrize("name", [LOCK, "curve.csv", "drift.csv", "progress.csv", "rim_activity.npz", TRAIN_LOG])
@pytest.mark.parametrize("mode", ["resume", "force"])
def test_a_symlinked_run_file_is_refused_and_its_target_untouched(
    name: str, mode: str, finished_run: Path, tmp_path: Path, outside: Path, capsys: pytest.CaptureFixture
) -> None:
    run = _copy(finished_run, tmp_path)
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(outside)
    before, target = _tree(run), outside.read_bytes()
    extra = ["--resume", "--timesteps", "1024"] if mode == "resume" else ["--agent", "rim", "--env", ENV_ID, "--force"]
    result = main_in_process(["train", "--out", run, *extra], capsys)
    assert_one_line_error(result, name, "symbolic link")
    assert outside.read_bytes() == target
    assert _tree(run) == before
    assert (run / name).is_symlink()


def test_a_fresh_folder_with_a_symlinked_lock_is_refused(
    tmp_path: Path, outside: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).symlink_to(outside)
    target = outside.read_bytes()
    result = main_in_process(["train", "--agent", "rim", "--env", ENV_ID, "--out", run, "--timesteps", "64"], capsys)
    assert_one_line_error(result, LOCK, "symbolic link")
    assert outside.read_bytes() == target
    with pytest.raises(RunError, match="symbolic link"):
        RunLock(run).acquire()
    assert outside.read_bytes() == target


def test_a_fifo_or_a_folder_in_place_of_a_run_file_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = _copy(finished_run, tmp_path)
    (run / "curve.csv").unlink()
    os.mkfifo(run / "curve.csv")  # reading or appending would block forever
    result = main_in_process(["train", "--out", run, "--resume", "--timesteps", "1024"], capsys)
    assert_one_line_error(result, "curve.csv", "not a regular file")
    (run / "curve.csv").unlink()
    (run / "curve.csv").mkdir()
    result = main_in_process(["evaluate", run, "--episodes", "1"], capsys)
    assert_one_line_error(result, "curve.csv", "not a regular file")
    (run / "curve.csv").rmdir()
    (run / LOCK).unlink(missing_ok=True)
    os.mkfifo(run / LOCK)
    with pytest.raises(RunError, match="not a regular file"):
        RunLock(run).acquire()


def test_a_symlinked_tensorboard_folder_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = _copy(finished_run, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    shutil.rmtree(run / "tensorboard")
    (run / "tensorboard").symlink_to(elsewhere, target_is_directory=True)
    result = main_in_process(["train", "--agent", "rim", "--env", ENV_ID, "--out", run, "--force"], capsys)
    assert_one_line_error(result, "tensorboard", "symbolic link")
    assert (elsewhere / "keep.txt").read_text() == "keep"


def test_csv_writers_never_follow_links(tmp_path: Path, outside: Path) -> None:
    target = outside.read_bytes()
    link = tmp_path / "curve.csv"
    link.symlink_to(outside)
    with pytest.raises(ValueError, match="symbolic link"):
        append_csv_row(link, ["a"], [1])
    with pytest.raises(ValueError, match="symbolic link"):
        write_csv(link, [["a"], [1]])
    assert outside.read_bytes() == target


def test_force_refuses_a_folder_without_the_marker(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    legacy = tmp_path / "legacy"  # looks like a run of an earlier version: config, versions, a user's train.log
    legacy.mkdir()
    (legacy / CONFIG).write_text(f"agent: rim\nenv: {ENV_ID}\n")
    (legacy / VERSIONS).write_text("{}")
    (legacy / TRAIN_LOG).write_text("the user's log")
    (legacy / "curve.csv").write_text("timesteps\n64\n")
    before = _tree(legacy)
    for extra in (["--force"], []):
        args = ["train", "--agent", "rim", "--env", ENV_ID, "--out", legacy, "--timesteps", "64", *extra]
        assert_one_line_error(main_in_process(args, capsys), MARKER, "nothing was deleted")
        assert _tree(legacy) == before


class _Payload:
    """Unpickling it creates a file: stands for any code a crafted zip would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def _crafted_model(run: Path, marker: Path) -> None:
    """Put a pickled payload into model.zip's ``data`` (SB3 unpickles ``:serialized:`` values when it loads)."""
    import base64
    import json
    import pickle
    import zipfile

    path = run / "model.zip"
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(entries["data"])
    data["payload"] = {":type:": "object", ":serialized:": base64.b64encode(pickle.dumps(_Payload(marker))).decode()}
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    (run / "checkpoint.zip").unlink()


@pytest.mark.parametrize("command", ["evaluate", "render"])
def test_a_crafted_model_runs_no_code_unless_trusted(
    command: str, finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = _copy(finished_run, tmp_path)
    marker = tmp_path / "code-ran"
    _crafted_model(run, marker)
    if command == "evaluate":
        args: list[str | Path] = ["evaluate", run, "--episodes", "2", "--n-envs", "1", "--stage", "0"]
    else:
        args = ["render", "--model", run, "--steps", "3", "--out", tmp_path / "x.gif"]
    result = main_in_process(args, capsys)
    assert result.returncode == 0, result.stderr
    assert not marker.exists()  # the safe default read only policy.pth
    result = main_in_process([*args, "--trust-model"], capsys)
    assert marker.exists()  # the opt-in is SB3's full load: what the flag's help warns about
    assert result.returncode in (0, 2), result.stderr


def test_the_safe_load_acts_as_the_full_load(finished_run: Path) -> None:
    import numpy as np
    import torch

    from metarim_sb3.experiments.training.evaluate import load_model

    safe, _ = load_model(finished_run)
    full, _ = load_model(finished_run, trust=True)
    for (name, a), (_, b) in zip(safe.policy.state_dict().items(), full.policy.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    obs = {k: np.zeros((1, *space.shape), dtype=space.dtype) for k, space in full.observation_space.spaces.items()}
    start = np.ones(1, dtype=bool)
    assert np.array_equal(
        safe.predict(obs, episode_start=start, deterministic=True)[0],
        full.predict(obs, episode_start=start, deterministic=True)[0],
    )
