"""The run-folder helpers in-process: what counts as a run, what --force clears, the lock, atomic writes that
survive a failing writer, damaged files named, CSV truncation on resume with a torn tail."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from metarim_sb3.experiments.training.folder import (
    CHECKPOINT,
    CONFIG,
    CURVE,
    LOCK,
    MARKER,
    MODEL,
    TENSORBOARD,
    VERSIONS,
    RunError,
    clean_stale_temp_files,
    load_model_file,
    read_json,
    save_model,
    truncate_csv,
    write_json,
)
from metarim_sb3.experiments.training.ownership import RunLock, check_out_dir, clear_run, is_run_dir


def make_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("")
    (folder / CONFIG).write_text("agent: rim\nenv: MetaRIM-GoTo-v0\n")
    (folder / CURVE).write_text("timesteps,x\n64,1\n")
    (folder / "progress_from_64.csv").write_text("a\n")
    (folder / "eval_heldout.json").write_text("{}")
    (folder / TENSORBOARD).mkdir()
    (folder / TENSORBOARD / "events").write_text("")
    return folder


def test_what_is_a_run_folder(tmp_path: Path) -> None:
    assert is_run_dir(make_run(tmp_path / "run"))
    legacy = tmp_path / "legacy"  # made before the marker existed: config.yaml next to versions.json
    legacy.mkdir()
    (legacy / CONFIG).write_text("agent: rim\nenv: MetaRIM-GoTo-v0\n")
    (legacy / VERSIONS).write_text("{}")
    assert is_run_dir(legacy)
    other = tmp_path / "other"
    other.mkdir()
    (other / CONFIG).write_text("somebody: else\n")
    (other / VERSIONS).write_text("{}")
    assert not is_run_dir(other)


def test_clear_run_deletes_only_run_files(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    (run / "notes.md").write_text("mine")
    (run / "data").mkdir()
    clear_run(run)
    assert sorted(p.name for p in run.iterdir()) == ["data", "notes.md"]
    with pytest.raises(RunError, match="holds no metarim run"):
        clear_run(tmp_path)


def test_check_out_dir(tmp_path: Path) -> None:
    check_out_dir(tmp_path / "new" / "deeper", resume=False, force=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="is a file"):
        check_out_dir(tmp_path / "file", resume=False, force=True)
    with pytest.raises(RunError, match="is a file"):
        check_out_dir(tmp_path / "file" / "run", resume=False, force=False)
    with pytest.raises(RunError, match="holds no metarim run"):
        check_out_dir(tmp_path, resume=False, force=True)
    run = make_run(tmp_path / "run")
    check_out_dir(run, resume=False, force=True)
    with pytest.raises(RunError, match=f"no {CHECKPOINT}"):
        check_out_dir(run, resume=True, force=False)
    (run / CHECKPOINT).write_bytes(b"")
    with pytest.raises(RunError, match="unfinished run"):
        check_out_dir(run, resume=False, force=False)


def test_lock_names_its_holder_and_is_free_after_release(tmp_path: Path) -> None:
    with RunLock(tmp_path) as lock:
        assert "process" in (tmp_path / LOCK).read_text()
        with pytest.raises(RunError, match="being written by process"):
            RunLock(tmp_path).acquire()
        with pytest.raises(RunError, match="being written"):
            check_out_dir(tmp_path, resume=False, force=True)
        assert lock.path.exists()
    RunLock(tmp_path).acquire().release()


class FailingModel:
    """A model whose save dies half-way, like a process killed during a checkpoint write."""

    def save(self, path: Path) -> None:
        Path(path).write_bytes(b"half")
        raise OSError("disk full")


def test_a_failing_write_keeps_the_old_file(tmp_path: Path) -> None:
    (tmp_path / MODEL).write_bytes(b"old model")
    with pytest.raises(OSError, match="disk full"):
        save_model(FailingModel(), tmp_path / MODEL)
    assert (tmp_path / MODEL).read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == [MODEL]


def test_stale_temp_files_are_cleaned(tmp_path: Path) -> None:
    (tmp_path / ".checkpoint.tmp-12345.zip").write_bytes(b"x")
    (tmp_path / ".done.tmp-12345.json").write_bytes(b"x")
    (tmp_path / "keep.zip").write_bytes(b"x")
    assert len(clean_stale_temp_files(tmp_path)) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["keep.zip"]


def test_damaged_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "done.json").write_text('{"status": ')
    with pytest.raises(RunError, match=r"done\.json is damaged"):
        read_json(tmp_path / "done.json")
    write_json(tmp_path / "ok.json", {"a": 1})
    assert read_json(tmp_path / "ok.json") == {"a": 1}
    with zipfile.ZipFile(tmp_path / MODEL, "w") as archive:  # a zip whose data JSON and policy are garbage
        archive.writestr("data", "{not json")
        archive.writestr("policy.pth", b"\x00garbage")
    (tmp_path / CHECKPOINT).write_bytes(b"")
    with pytest.raises(RunError, match=rf"{MODEL} is damaged.*{CHECKPOINT} may still load"):
        load_model_file(tmp_path / MODEL)
    with pytest.raises(RunError, match=rf"{CHECKPOINT} is damaged"):
        load_model_file(tmp_path / CHECKPOINT)


def test_truncate_csv_drops_later_rows_and_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / CURVE
    path.write_text("timesteps,x\r\n64,1\r\n128,2\r\n192,3\r\n256,")
    truncate_csv(path, "timesteps", 128)
    assert path.read_text().splitlines() == ["timesteps,x", "64,1", "128,2"]
