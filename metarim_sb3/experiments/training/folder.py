"""The layout of a run folder, and atomic writes into it.

::

    RUN/
      config.yaml          the full resolved config (+ seed): enough to re-run it
      versions.json        python, torch, SB3, sb3-contrib, gymnasium, minigrid, numpy, metarim, git sha
      checkpoint.zip       the latest checkpoint (RecurrentPPO.save: parameters, optimizer state, run state)
      checkpoint.json      a readable copy of the run state stored inside checkpoint.zip
      model.zip            the final model (complete runs)
      done.json            written last: the run's summary; its presence means "complete"
      curve.csv            one row per rollout (success, return, stage, wall time)
      mastery.csv          one row per stage visit (frames to reach the success threshold)
      curriculum.csv       one row per curriculum shift
      heldout_eval.csv     periodic zero-shot evaluations on the held-out stage
      stage_eval.csv       periodic evaluations of the current stage and every stage seen (if stage_eval.enabled)
      zero_shot_mastery.csv  the held-out evaluation when the last training stage was first mastered (header only:
                           not reached); written with heldout_eval.enabled
      mastery.zip          the model at that moment (``RecurrentPPO.load`` it, then ``evaluate.evaluate_model``)
      drift.csv            per parameter group: distance from the start and size of the last update, per rollout
      drift_reference.pt   the parameters at the run's start (kept on resume: drift is measured from the true start)
      final_eval.json      the held-out evaluation after training (with CIs)
      rim_activity.csv/.npz  unit x task activity (RIM agents; after a resume: the last segment only)
      progress*.csv, tensorboard/   SB3's logger (one progress file per resumed segment)
      eval_<stage>.json/_episodes.csv  written by ``metarim evaluate``
      train.log, error.log, job.yaml   written by ``metarim compare`` (a worker's output, a failed run's traceback)
      .metarim-run         the marker: this folder was made by ``metarim train`` (``--force`` clears only such folders)
      .metarim.lock        held by the one process writing the folder (released by the kernel if it dies)

Only run files are ever deleted or replaced (:func:`clear_run`), and only in a folder holding the marker: a folder
that is not empty and holds no marker (another's files, or a run of an earlier version) is never taken over. No run
file is written or read through a symbolic link, and none may be a FIFO or device (:func:`check_run_entries`).
Files are replaced atomically: written to a temporary name of the writing process, flushed to disk (``fsync``),
renamed over the old one, and the folder entry flushed too. Model zips hold pickles (SB3's ``data``): a full load
(:func:`load_model_file`: ``--trust-model``, ``--resume``) is only for run folders you trust; ``evaluate`` and
``render`` read only the weights by default (:func:`~metarim_sb3.experiments.training.evaluate.load_policy_weights`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import socket
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from metarim_sb3.callbacks._common import append_csv_row, repair_csv_tail

__all__ = [
    "ACTIVITY",
    "CHECKPOINT",
    "CHECKPOINT_META",
    "CONFIG",
    "CURRICULUM",
    "CURVE",
    "DONE",
    "DRIFT",
    "DRIFT_BASE",
    "DRIFT_REFERENCE",
    "ERROR_LOG",
    "FINAL_EVAL",
    "HELDOUT_EVAL",
    "JOB",
    "LOCK",
    "MARKER",
    "MASTERY",
    "MASTERY_MODEL",
    "MODEL",
    "STAGE_EVAL",
    "STEP_COLUMNS",
    "TENSORBOARD",
    "TRAIN_LOG",
    "VERSIONS",
    "ZERO_SHOT_MASTERY",
    "RunError",
    "RunLock",
    "append_csv_row",
    "check_csv",
    "check_out_dir",
    "check_out_folder",
    "check_run_entries",
    "check_writable_file",
    "clean_stale_temp_files",
    "clear_run",
    "eval_files",
    "find_model",
    "is_run_dir",
    "load_model_file",
    "mark_run_dir",
    "progress_csv",
    "read_json",
    "read_run_config",
    "repair_csv_tail",
    "save_model",
    "saved_chunk_len",
    "start_fresh",
    "truncate_csv",
    "write_csv",
    "write_json",
    "write_yaml",
]

CONFIG = "config.yaml"
VERSIONS = "versions.json"
CHECKPOINT = "checkpoint.zip"
CHECKPOINT_META = "checkpoint.json"
MODEL = "model.zip"
DONE = "done.json"
FINAL_EVAL = "final_eval.json"
CURVE = "curve.csv"
MASTERY = "mastery.csv"
CURRICULUM = "curriculum.csv"
HELDOUT_EVAL = "heldout_eval.csv"
STAGE_EVAL = "stage_eval.csv"
ZERO_SHOT_MASTERY = "zero_shot_mastery.csv"
MASTERY_MODEL = "mastery.zip"
#: Base name of the drift files (``drift.csv`` and ``drift_reference.pt``, see ParameterDriftCallback).
DRIFT_BASE = "drift"
DRIFT = f"{DRIFT_BASE}.csv"
DRIFT_REFERENCE = f"{DRIFT_BASE}_reference.pt"
#: Base name of the unit-activity files (``.csv`` and ``.npz``).
ACTIVITY = "rim_activity"
TENSORBOARD = "tensorboard"
TRAIN_LOG = "train.log"
ERROR_LOG = "error.log"
JOB = "job.yaml"
MARKER = ".metarim-run"
LOCK = ".metarim.lock"
_TMP_TAG = ".tmp-"  # temporary files: .<name>.tmp-<pid>[.zip]


class RunError(ValueError):
    """A run folder that cannot be used as asked (no checkpoint to resume, would overwrite a finished run...)."""


def progress_csv(start: int) -> str:
    """
    :param start: the step count a training segment starts at.
    :return: the name of SB3's progress file of that segment.
    """
    return "progress.csv" if start == 0 else f"progress_from_{start}.csv"


def eval_files(stage: int | str) -> tuple[str, str]:
    """
    :param stage: ``"heldout"`` or a stage index.
    :return: the names of the summary and per-episode files ``metarim evaluate`` writes for that stage.
    """
    return f"eval_{stage}.json", f"eval_{stage}_episodes.csv"


def _run_file_names() -> set[str]:
    return {CONFIG, VERSIONS, CHECKPOINT, CHECKPOINT_META, MODEL, DONE, FINAL_EVAL, CURVE, MASTERY, CURRICULUM,
            HELDOUT_EVAL, STAGE_EVAL, ZERO_SHOT_MASTERY, MASTERY_MODEL, DRIFT, DRIFT_REFERENCE, f"{ACTIVITY}.csv",
            f"{ACTIVITY}.npz", TRAIN_LOG, ERROR_LOG, JOB, MARKER}  # fmt: skip


def _is_run_file(name: str) -> bool:
    if name in _run_file_names() or _TMP_TAG in name:
        return True
    if name.startswith("progress") and name.endswith(".csv"):
        return True
    return name.startswith("eval_") and name.endswith((".json", "_episodes.csv"))


# ---------------------------------------------------------------------------------------------- atomic writes
def _tmp_name(path: Path) -> Path:
    """A temporary name next to ``path``, unique to this process (keeps ``path``'s suffix: SB3 adds ``.zip``)."""
    return path.with_name(f".{path.stem}{_TMP_TAG}{os.getpid()}{path.suffix}")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported everywhere (e.g. Windows)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace_with(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary file: ``write(tmp)``, fsync it, rename it over ``path``, fsync the folder."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        tmp.unlink(missing_ok=True)  # never write through a link planted at the temporary name
        write(tmp)
        with open(tmp, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    _replace_with(path, write)


def write_json(path: str | Path, data: Any) -> None:
    """
    Write JSON atomically.

    :param path: the file.
    :param data: JSON-serialisable data (NaN is written as ``NaN``).
    """
    _write_text(Path(path), json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_yaml(path: str | Path, data: Any) -> None:
    """
    Write YAML atomically, keys in insertion order.

    :param path: the file.
    :param data: YAML-serialisable data.
    """
    _write_text(Path(path), yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def write_csv(path: str | Path, rows: list[list[Any]]) -> None:
    """
    Write a whole CSV file atomically.

    :param path: the file.
    :param rows: the rows, header first.
    """
    import csv

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as file:
            csv.writer(file).writerows(rows)

    _replace_with(Path(path), write)


def save_model(model: Any, path: str | Path) -> None:
    """
    Save an SB3 model atomically (``model.save`` to a temporary file, fsync, rename, fsync the folder).

    :param model: the model.
    :param path: the ``.zip`` file.
    """
    _replace_with(Path(path), model.save)


def clean_stale_temp_files(run_dir: str | Path) -> list[Path]:
    """
    Remove the temporary files an interrupted writer left (call while holding the folder's :class:`RunLock`).

    :param run_dir: the run folder.
    :return: the removed files.
    """
    removed = []
    for path in Path(run_dir).glob(f".*{_TMP_TAG}*"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def check_csv(path: str | Path, column: str, *, columns: tuple[str, ...] = (), whole: bool = False) -> None:
    """
    Check a run's log before a resume appends to it or a report reads it: UTF-8 CSV text whose header names
    ``column`` (and ``columns``) and whose rows, but a torn last one, are whole (as many fields as the header, a
    number in ``column``).

    :param path: the CSV file (nothing to check if it does not exist or is empty).
    :param column: the timestep column.
    :param columns: other columns the header must name.
    :param whole: the last row must be whole too (the file of a finished run).
    :raises RunError: naming the file and the damage.
    """
    import csv
    import io

    path = Path(path)
    if not path.exists():
        return
    hint = "restore it from a copy, or start the run over with --force"
    try:
        text = path.read_bytes().decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except UnicodeDecodeError as err:
        raise RunError(f"{path} is damaged: not UTF-8 text (byte {err.start}); {hint}") from None
    except (OSError, csv.Error) as err:
        raise RunError(f"{path} is damaged or unreadable ({err}); {hint}") from None
    if not rows:
        return
    if whole and not text.endswith("\n"):
        raise RunError(f"{path} is damaged: truncated (its last line is cut); {hint}")
    missing = [name for name in (column, *columns) if name not in rows[0]]
    if missing:
        raise RunError(f"{path} is damaged (truncated?): its header has no {', '.join(missing)} column; {hint}")
    index = rows[0].index(column)
    for number, row in enumerate(rows[1:] if whole else rows[1:-1], start=2):
        try:
            ok = len(row) == len(rows[0]) and math.isfinite(float(row[index]))
        except ValueError:
            ok = False
        if not ok:
            raise RunError(f"{path} is damaged at line {number}; {hint}")


def truncate_csv(path: str | Path, column: str, max_value: float) -> None:
    """
    Drop the rows of a CSV whose ``column`` exceeds ``max_value`` (rows written after the checkpoint a run
    resumes from), and a torn or unreadable last row, rewriting the file atomically.

    :param path: the CSV file (nothing happens if it does not exist).
    :param column: the timestep column.
    :param max_value: the largest value to keep.
    :raises RunError: if the file is damaged beyond its last row (:func:`check_csv`).
    """
    import csv

    path = Path(path)
    if not path.exists():
        return
    check_csv(path, column)
    repair_csv_tail(path)
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    if not rows or column not in rows[0]:
        return
    index = rows[0].index(column)

    def keep(row: list[str]) -> bool:
        try:
            return len(row) == len(rows[0]) and float(row[index]) <= max_value
        except ValueError:
            return False

    kept = [rows[0], *(r for r in rows[1:] if keep(r))]
    if len(kept) != len(rows):
        write_csv(path, kept)


# ---------------------------------------------------------------------------------------------- reading
def read_json(path: str | Path) -> Any:
    """
    :param path: a JSON file.
    :return: its content.
    :raises RunError: naming the file if it cannot be read or is damaged.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunError(f"{path} is damaged or unreadable ({type(err).__name__}); delete it or restore it") from err


def read_run_config(run_dir: str | Path, known_env: bool = True) -> dict[str, Any]:
    """
    :param run_dir: a run folder.
    :param known_env: require a registered env id (``False``: any, for readers of the run's files alone, such as
        the report, which builds no env).
    :return: its ``config.yaml``.
    :raises RunError: if the folder has no readable config (a regular file, within the bounds of
        :func:`~metarim_sb3.experiments.training.config.safe_yaml`) naming an agent and (with ``known_env``) a known
        env.
    """
    from metarim_sb3.experiments.training.config import ConfigError, env_ids, read_text_file, safe_yaml

    path = Path(run_dir) / CONFIG
    if path.is_symlink():
        raise RunError(f"{run_dir}: {CONFIG} is a symbolic link; a run's files are regular files inside its folder")
    try:
        config = safe_yaml(read_text_file(path, str(path)), str(path))
    except ConfigError as err:
        raise RunError(f"{run_dir} is not a run folder: {err}") from None
    if not isinstance(config, dict) or "env" not in config or "agent" not in config:
        raise RunError(f"{run_dir} is not a run folder: {CONFIG} has no agent/env")
    if known_env and config["env"] not in env_ids():
        raise RunError(
            f"{path} names an unknown env {str(config['env'])[:80]!r}; allowed: {', '.join(env_ids())} (a run of "
            "another metarim version?)"
        )
    return config


def find_model(run_dir: str | Path) -> Path:
    """
    :param run_dir: a run folder.
    :return: its final model, or else its latest checkpoint.
    :raises RunError: if it has neither.
    """
    for name in (MODEL, CHECKPOINT):
        path = Path(run_dir) / name
        if path.is_file():
            return path
    raise RunError(f"{run_dir} has no {MODEL} or {CHECKPOINT}: train it first (metarim train --out {run_dir})")


def saved_chunk_len(path: str | Path) -> int | None:
    """
    :param path: a model zip written by SB3's ``save``.
    :return: the ``chunk_len`` it was saved with (a :class:`~metarim_sb3.chunked_ppo.ChunkedRecurrentPPO`), or
        ``None`` (sb3-contrib's ``RecurrentPPO``). Reads only the archive's ``data`` entry (JSON, no pickle).
    :raises OSError, KeyError, ValueError, zipfile.BadZipFile: if the archive is damaged.
    """
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("data"))
    value = data.get("chunk_len") if isinstance(data, dict) else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def load_model_file(path: str | Path, **kwargs: Any) -> Any:
    """
    Load a model zip (a pickle inside: open only run folders you trust) with the class it was saved with:
    :class:`~metarim_sb3.chunked_ppo.ChunkedRecurrentPPO` if it has a ``chunk_len`` (:func:`saved_chunk_len`),
    else sb3-contrib's ``RecurrentPPO``.

    :param path: ``model.zip`` or ``checkpoint.zip``.
    :param kwargs: passed to ``load`` (``env``, ``device``...).
    :return: the model.
    :raises RunError: naming the file if it is damaged, and the checkpoint to fall back to if there is one.
    """
    from sb3_contrib import RecurrentPPO

    from metarim_sb3.chunked_ppo import ChunkedRecurrentPPO

    path = Path(path)
    try:
        algorithm = RecurrentPPO if saved_chunk_len(path) is None else ChunkedRecurrentPPO
        return algorithm.load(path, **kwargs)
    except Exception as err:  # anything a damaged archive raises (zip, JSON, torch or pickle errors)
        raise RunError(f"{path} is damaged and cannot be loaded ({type(err).__name__}){fallback_hint(path)}") from err


def fallback_hint(path: str | Path) -> str:
    """
    :param path: a run's damaged ``model.zip`` (or ``checkpoint.zip``).
    :return: ``"; <folder>/checkpoint.zip may still load"`` when it is the final model and the run has a
        checkpoint beside it, else ``""``.
    """
    path = Path(path)
    other = path.with_name(CHECKPOINT) if path.name != CHECKPOINT else None
    return f"; {other} may still load" if other is not None and other.is_file() else ""


# ---------------------------------------------------------------------------------------------- ownership
def is_run_dir(path: str | Path) -> bool:
    """
    :param path: a folder.
    :return: whether ``metarim train`` made it: it holds the marker, or (folders of earlier versions) a
        ``config.yaml`` with agent and env next to a ``versions.json``.
    """
    path = Path(path)
    if (path / MARKER).is_file():
        return True
    if not (path / VERSIONS).is_file():
        return False
    try:
        read_run_config(path)
    except RunError:
        return False
    return True


def _entry_problem(entry: os.DirEntry[str], want_dir: bool = False) -> str | None:
    """:return: why a run folder's entry cannot be written (a link, not a regular file / folder), or ``None``."""
    if entry.is_symlink():
        return "is a symbolic link"
    if want_dir:
        return None if entry.is_dir(follow_symlinks=False) else "is not a folder"
    return None if entry.is_file(follow_symlinks=False) else "is not a regular file"


def check_run_entries(run_dir: str | Path) -> None:
    """
    Refuse a run folder in which a file the run may write or read (the lock, ``curve.csv``, any run file, a
    temporary file, ``tensorboard/`` and what it holds) is a symbolic link or not a regular file: writing through
    it would change files outside the folder.

    :param run_dir: the run folder (nothing happens if it does not exist).
    :raises RunError: naming the first such entry.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for entry in os.scandir(run_dir):
        name = entry.name
        if name == TENSORBOARD:
            problem = _entry_problem(entry, want_dir=True)
            if problem is None:
                problem, name = _tree_problem(Path(entry.path), TENSORBOARD)
        elif name == LOCK or _is_run_file(name):
            problem = _entry_problem(entry)
        else:
            continue
        if problem is not None:
            raise RunError(
                f"{run_dir}: {name} {problem}; metarim writes run files only as regular files inside the run "
                "folder: remove it or choose another folder"
            )


def _tree_problem(folder: Path, shown: str, depth: int = 0) -> tuple[str | None, str]:
    """The first entry under ``folder`` that is a link or neither a file nor a folder (``shown``: its name)."""
    if depth > 8:
        return "is nested too deep", shown
    for entry in os.scandir(folder):
        name = f"{shown}/{entry.name}"
        if entry.is_symlink():
            return "is a symbolic link", name
        if entry.is_dir(follow_symlinks=False):
            problem, where = _tree_problem(Path(entry.path), name, depth + 1)
            if problem is not None:
                return problem, where
        elif not entry.is_file(follow_symlinks=False):
            return "is not a regular file", name
    return None, shown


def check_out_dir(out_dir: str | Path, *, resume: bool, force: bool, locked: bool = False) -> None:
    """
    Check that a run may write to ``out_dir`` (before anything is written; again under the lock).

    :param out_dir: the run folder.
    :param resume: the run continues the one in the folder.
    :param force: the run replaces the one in the folder.
    :param locked: this process holds the folder's :class:`RunLock` (else a lock held by another is reported).
    :raises RunError: if ``out_dir`` is a file; is being written by another process; is a non-empty folder
        without a run; holds a run that is neither resumed nor replaced; or, with ``resume``, has no checkpoint.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunError(f"--out {out_dir} is a file, not a folder; choose a folder for the run")
    check_run_entries(out_dir)
    if not locked and (out_dir / LOCK).is_file():
        RunLock(out_dir).acquire().release()  # raises, naming the holder, if another process writes the folder
    exists = out_dir.is_dir() and any(p.name != LOCK for p in out_dir.iterdir())
    if resume:
        if not (out_dir / CHECKPOINT).is_file():
            raise RunError(f"cannot resume {out_dir}: it has no {CHECKPOINT} (start it without --resume)")
        return
    if not exists:
        _check_creatable(out_dir)
        return
    if not is_run_dir(out_dir):
        raise RunError(
            f"--out {out_dir} is a non-empty folder that holds no metarim run; metarim never takes over other "
            "files: choose a new or empty folder"
        )
    if not (out_dir / MARKER).is_file():
        raise RunError(
            f"--out {out_dir} holds a run without the {MARKER} marker (an earlier metarim's, or copied): metarim "
            "takes over only folders it marked, so nothing was deleted; continue it with --resume if it has a "
            f"{CHECKPOINT}, or choose another --out"
        )
    if force:
        return
    if (out_dir / DONE).exists():
        raise RunError(f"--out {out_dir} holds a finished run; pass --force to overwrite it or choose another --out")
    if (out_dir / CHECKPOINT).exists():
        raise RunError(f"--out {out_dir} holds an unfinished run; pass --resume to continue it or --force to restart")


def _check_creatable(folder: Path) -> None:
    """The nearest existing parent of ``folder`` must be a writable folder."""
    parent = folder
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise RunError(f"--out {folder}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunError(f"--out {folder}: {parent} is not writable")


def check_writable_file(path: str | Path, option: str = "--out") -> None:
    """
    :param path: a file to be written (e.g. a GIF).
    :param option: the option named in the message.
    :raises RunError: if ``path`` is a folder or its folder cannot be created or written.
    """
    path = Path(path)
    if path.is_dir():
        raise RunError(f"{option} {path} is a folder; give a file name")
    _check_creatable(path.parent if str(path.parent) else Path("."))


def check_out_folder(path: str | Path, option: str = "--out") -> None:
    """
    :param path: a folder to be written (e.g. a report).
    :param option: the option named in the message.
    :raises RunError: if ``path`` is a file or cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"{option} {path} is a file, not a folder")
    _check_creatable(path)


def clear_run(run_dir: str | Path) -> None:
    """
    Delete the files of the run in ``run_dir`` (for ``--force``; call while holding its :class:`RunLock`). Other
    files stay.

    :param run_dir: a folder that holds the run marker (:data:`MARKER`).
    :raises RunError: if it holds no marker (a folder of an earlier version is never cleared), or an entry that is
        a link or not a regular file (:func:`check_run_entries`).
    """
    run_dir = Path(run_dir)
    if not (run_dir / MARKER).is_file():
        raise RunError(f"{run_dir} holds no metarim run (no {MARKER} marker); refusing to clear it")
    check_run_entries(run_dir)
    for path in run_dir.iterdir():
        if path.name == LOCK:
            continue
        if path.is_dir() and path.name == TENSORBOARD:
            shutil.rmtree(path)
        elif path.is_file() and _is_run_file(path.name):
            path.unlink()


#: The CSV files of a run with a timestep column, and that column (a resumed run drops the rows after its checkpoint).
STEP_COLUMNS = {
    CURVE: "timesteps",
    MASTERY: "left_at",
    CURRICULUM: "timestep",
    HELDOUT_EVAL: "timesteps",
    STAGE_EVAL: "timesteps",
    ZERO_SHOT_MASTERY: "timesteps",
    DRIFT: "timesteps",
}


def mark_run_dir(run_dir: str | Path) -> None:
    """
    Create the folder if needed and write the run marker (call while holding its :class:`RunLock`).

    :param run_dir: the run folder.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / MARKER).is_file():
        _write_text(run_dir / MARKER, "made by metarim train: --force may clear the run files in this folder\n")


def start_fresh(run_dir: str | Path, *, force: bool) -> None:
    """
    Prepare a run folder for a run from step 0 (call while holding its :class:`RunLock`): with ``force`` clear
    the old run (:func:`clear_run`); else drop the outputs a run that never checkpointed may have left. Then mark
    the folder.

    :param run_dir: the run folder.
    :param force: replace a run.
    """
    run_dir = Path(run_dir)
    if force and run_dir.is_dir() and (run_dir / MARKER).is_file():
        clear_run(run_dir)
    elif run_dir.is_dir():
        for name in (*STEP_COLUMNS, DRIFT_REFERENCE, f"{ACTIVITY}.csv", f"{ACTIVITY}.npz", FINAL_EVAL, MODEL, DONE,
                     CHECKPOINT_META, MASTERY_MODEL):  # fmt: skip
            (run_dir / name).unlink(missing_ok=True)
        for path in run_dir.glob("progress*.csv"):
            path.unlink()
        shutil.rmtree(run_dir / TENSORBOARD, ignore_errors=True)
    mark_run_dir(run_dir)


class RunLock:
    """
    The exclusive right to write a run folder, held from :meth:`acquire` to :meth:`release` (or as a context
    manager). Backed by an advisory ``flock`` on ``.metarim.lock`` where available, so a lock of a process that died
    is free again; the file records the holder's pid and host for the message of the next one.

    :param run_dir: the run folder (created if missing).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """
        :return: ``self``.
        :raises RunError: naming the holder, if another process holds the lock.
        """
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o644)  # never through a link; a FIFO does not block the open
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise RunError(f"{self.path} is a symbolic link; remove it or choose another folder") from None
            raise RunError(f"cannot write to {self.path.parent}: {err.strerror or err}") from err
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RunError(f"{self.path} is not a regular file; remove it or choose another folder")
        try:
            _lock_fd(fd)
        except OSError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunError(
                f"{self.path.parent} is being written by {holder}; wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (the file stays; an unlocked file means a free folder)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_fd(fd: int) -> None:
    """Take an exclusive, non-blocking lock on ``fd``; ``OSError`` if another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
