"""The :class:`RunFolder` object in-process: its paths, its lock (held, released, refused to a second holder), the
checks before and under the lock, atomic JSON / YAML / model writes, the link of ``model.zip`` to
``checkpoint.zip``, the truncation of the logs for a resume and a fresh start."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import yaml

from metarim_sb3.experiments.training.folder import (
    CHECKPOINT,
    CHECKPOINT_META,
    CONFIG,
    CURVE,
    DONE,
    FINAL_EVAL,
    HELDOUT_EVAL,
    LOCK,
    MARKER,
    MASTERY_MODEL,
    MODEL,
    TENSORBOARD,
    VERSIONS,
    ZERO_SHOT_MASTERY,
    RunError,
)
from metarim_sb3.experiments.training.ownership import RunLock
from metarim_sb3.experiments.training.run_folder import RunFolder


class FakeModel:
    """Stands in for an SB3 model: ``save`` writes ``payload`` (or dies half-way with ``error``)."""

    def __init__(self, payload: bytes = b"weights", error: OSError | None = None) -> None:
        self.payload, self.error = payload, error

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.payload if self.error is None else b"half")
        if self.error is not None:
            raise self.error


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_paths_are_the_layout_and_nothing_is_touched(tmp_path: Path) -> None:
    path = tmp_path / "new" / "run"
    folder = RunFolder(str(path))
    assert folder.path == path
    assert not folder.exists and not tmp_path.joinpath("new").exists()  # creating the object writes nothing
    named = {
        folder.config: CONFIG,
        folder.versions: VERSIONS,
        folder.checkpoint: CHECKPOINT,
        folder.checkpoint_meta: CHECKPOINT_META,
        folder.model: MODEL,
        folder.done: DONE,
        folder.final_eval: FINAL_EVAL,
        folder.marker: MARKER,
        folder.lock_file: LOCK,
    }
    assert all(p == path / name for p, name in named.items())
    expected = ["config.yaml", "versions.json", "checkpoint.zip", "checkpoint.json", "model.zip", "done.json"]
    assert {p.name for p in named} == {*expected, "final_eval.json", ".metarim-run", ".metarim.lock"}
    assert folder.file(CURVE) == path / "curve.csv"
    assert folder.progress(0) == path / "progress.csv"
    assert folder.progress(128) == path / "progress_from_128.csv"
    assert not folder.held and "held=False" in repr(folder)


def test_the_lock_is_held_released_and_refused_to_a_second_holder(tmp_path: Path) -> None:
    path = tmp_path / "run"
    folder = RunFolder(path)
    assert folder.acquire() is folder
    assert folder.held and folder.exists  # the folder is made for the lock
    assert f"process {os.getpid()}" in (path / LOCK).read_text()
    assert folder.acquire() is folder and folder.held  # held already: nothing happens, no self-conflict
    other = RunFolder(path)
    with pytest.raises(RunError, match=rf"{path} is being written by process {os.getpid()}"):
        other.acquire()
    assert not other.held
    with pytest.raises(RunError, match="being written"):
        RunLock(path).acquire()
    with pytest.raises(RunError, match="being written"):  # before its lock, a check reports the other holder
        other.check(resume=False, force=False)
    folder.check(resume=False, force=False)  # under its own lock, the folder is checked as it is
    folder.release()
    assert not folder.held and (path / LOCK).read_text() == ""  # the file stays, empty: a free folder
    folder.release()  # releasing a lock not held does nothing
    with other:  # free again, for anyone; a context manager
        assert other.held
        with pytest.raises(RunError, match="being written"):
            folder.acquire()
    assert not other.held
    lock = RunLock(path).acquire()
    assert lock.held
    lock.release()
    assert not lock.held


def test_check_and_take(tmp_path: Path) -> None:
    path = tmp_path / "run"
    path.mkdir()
    (path / "notes.md").write_text("not a run")
    folder = RunFolder(path)
    with pytest.raises(RunError, match="holds no metarim run"):
        folder.check(resume=False, force=False)
    with pytest.raises(RunError, match=f"cannot resume {path}: it has no {CHECKPOINT}"):
        folder.check(resume=True, force=False)
    (path / MARKER).write_text("")
    (path / CHECKPOINT).write_bytes(b"x")
    with pytest.raises(RunError, match="holds an unfinished run; pass --resume"):
        folder.take(resume=False, force=False)
    (path / ".checkpoint.tmp-99999.zip").write_bytes(b"stale")
    folder.take(resume=True, force=False)
    assert folder.held
    assert temp_files(path) == []  # taken: the stale temporary file is gone
    folder.release()


def test_json_and_yaml_writes_are_atomic(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    assert folder.write_json(DONE, {"status": "done", "x": [1, 2]}) == tmp_path / DONE
    assert json.loads((tmp_path / DONE).read_text()) == {"status": "done", "x": [1, 2]}
    assert folder.read_json(DONE) == {"status": "done", "x": [1, 2]}
    folder.write_json(DONE, {"status": "again"})  # replaced
    assert folder.read_json(DONE) == {"status": "again"}
    assert folder.write_yaml(CONFIG, {"z": 1, "a": {"b": 2}}) == tmp_path / CONFIG
    text = (tmp_path / CONFIG).read_text()
    assert yaml.safe_load(text) == {"z": 1, "a": {"b": 2}} and text.index("z:") < text.index("a:")  # insertion order
    assert temp_files(tmp_path) == []
    (tmp_path / FINAL_EVAL).write_text('{"half": ')
    with pytest.raises(RunError, match=r"final_eval\.json is damaged"):
        folder.read_json(FINAL_EVAL)
    with pytest.raises(RunError, match="is not a run folder"):
        folder.read_config()


def test_model_writes_go_through_the_saver_and_a_failure_keeps_the_old_file(tmp_path: Path) -> None:
    saved: list[Path] = []

    def save(model: FakeModel, path: Path) -> None:
        saved.append(path)
        model.save(path)

    folder = RunFolder(tmp_path, save=save)
    assert folder.save_model(FakeModel(b"one"), MODEL) == tmp_path / MODEL
    assert saved == [tmp_path / MODEL] and (tmp_path / MODEL).read_bytes() == b"one"

    folder = RunFolder(tmp_path)  # the default saver: atomic
    with pytest.raises(OSError, match="disk full"):
        folder.save_model(FakeModel(error=OSError("disk full")), MODEL)
    assert (tmp_path / MODEL).read_bytes() == b"one" and temp_files(tmp_path) == []


def test_a_checkpoint_is_the_model_then_its_state(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.save_checkpoint(FakeModel(b"ckpt 64"), {"timesteps": 64})
    assert (tmp_path / CHECKPOINT).read_bytes() == b"ckpt 64"
    assert json.loads((tmp_path / CHECKPOINT_META).read_text()) == {"timesteps": 64}
    full = FakeModel(error=OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(RunError) as caught:
        folder.save_checkpoint(full, {"timesteps": 128})
    assert str(caught.value) == (
        f"cannot write a checkpoint in {tmp_path}: No space left on device; the previous {CHECKPOINT} is kept "
        "(free some space, then continue with --resume)"
    )
    assert (tmp_path / CHECKPOINT).read_bytes() == b"ckpt 64"  # the previous checkpoint and its state stay
    assert json.loads((tmp_path / CHECKPOINT_META).read_text()) == {"timesteps": 64}
    assert temp_files(tmp_path) == []


def test_the_model_is_a_link_to_the_checkpoint(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    (tmp_path / MODEL).write_bytes(b"an old model")
    folder.save_checkpoint(FakeModel(b"final"), {"timesteps": 256})
    assert folder.link_model(FakeModel(b"never saved")) == tmp_path / MODEL
    assert (tmp_path / MODEL).samefile(tmp_path / CHECKPOINT)  # one copy on disk
    assert (tmp_path / MODEL).stat().st_nlink == 2 and (tmp_path / MODEL).read_bytes() == b"final"
    assert temp_files(tmp_path) == []
    folder.save_checkpoint(FakeModel(b"resumed"), {"timesteps": 512})  # a later checkpoint: replaced by rename
    assert (tmp_path / MODEL).read_bytes() == b"final" and (tmp_path / CHECKPOINT).read_bytes() == b"resumed"


def test_without_links_the_model_is_saved_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "links not supported")

    folder = RunFolder(tmp_path)
    folder.save_checkpoint(FakeModel(b"final"), {"timesteps": 256})
    monkeypatch.setattr(os, "link", no_link)
    folder.link_model(FakeModel(b"saved in full"))
    assert (tmp_path / MODEL).read_bytes() == b"saved in full"
    assert not (tmp_path / MODEL).samefile(tmp_path / CHECKPOINT)
    assert temp_files(tmp_path) == []


def make_resumable(path: Path, zero_shot: str) -> Path:
    path.mkdir()
    (path / MARKER).write_text("")
    (path / CHECKPOINT).write_bytes(b"x")
    (path / CURVE).write_text("timesteps,success\n64,0.1\n128,0.2\n192,0.3\n256,0.")  # rows after 128 and a torn tail
    (path / HELDOUT_EVAL).write_text("timesteps,success\n128,0.5\n256,0.7\n")
    (path / ZERO_SHOT_MASTERY).write_text(zero_shot)
    (path / MASTERY_MODEL).write_bytes(b"mastered")
    (path / DONE).write_text("{}")
    (path / "notes.md").write_text("mine")
    return path


def test_truncation_for_a_resume(tmp_path: Path) -> None:
    path = make_resumable(tmp_path / "run", "timesteps,success\n192,0.9\n")  # mastered after the checkpoint
    folder = RunFolder(path)
    folder.take(resume=True, force=False)
    folder.truncate_for_resume(128)
    assert (path / CURVE).read_text().splitlines() == ["timesteps,success", "64,0.1", "128,0.2"]
    assert (path / HELDOUT_EVAL).read_text().splitlines() == ["timesteps,success", "128,0.5"]
    assert (path / ZERO_SHOT_MASTERY).read_text().splitlines() == ["timesteps,success"]
    assert not (path / MASTERY_MODEL).exists()  # its row was after the checkpoint: replayed, or never
    assert not (path / DONE).exists() and (path / MARKER).is_file()
    assert (path / "notes.md").read_text() == "mine" and (path / CHECKPOINT).exists()
    folder.release()

    kept = make_resumable(tmp_path / "kept", "timesteps,success\n64,0.9\n")  # mastered before the checkpoint
    RunFolder(kept).truncate_for_resume(128)
    assert (kept / MASTERY_MODEL).read_bytes() == b"mastered"


def test_a_damaged_log_stops_a_resume_before_anything_changes(tmp_path: Path) -> None:
    path = make_resumable(tmp_path / "run", "timesteps,success\n")
    (path / CURVE).write_text("timesteps,success\n64,0.1\n")  # ends before the checkpoint
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    with pytest.raises(RunError, match=rf"{CURVE} ends at 64 steps but {CHECKPOINT} is at 128 steps"):
        RunFolder(path).truncate_for_resume(128)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before


def test_a_fresh_start_and_removal(tmp_path: Path) -> None:
    path = make_resumable(tmp_path / "run", "timesteps,success\n")
    (path / TENSORBOARD).mkdir()
    (path / "progress.csv").write_text("a\n")
    folder = RunFolder(path)
    folder.start_fresh(force=True)  # the old run's files go, the others stay, the marker is written again
    assert sorted(p.name for p in path.iterdir()) == [MARKER, "notes.md"]
    folder.write_json("generalization.json", {})
    folder.remove("generalization.json", "missing.csv")
    assert not (path / "generalization.json").exists()
    new = RunFolder(tmp_path / "new" / "run")
    new.mark()
    assert new.marker.is_file() and "metarim train" in new.marker.read_text()
