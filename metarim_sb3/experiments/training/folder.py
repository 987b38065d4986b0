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

Who may write the folder (the marker, the lock, what ``--force`` may clear) is
:mod:`~metarim_sb3.experiments.training.ownership`. No run file is written or read through a symbolic link.
Files are replaced atomically: written to a temporary name of the writing process, flushed to disk (``fsync``),
renamed over the old one, and the folder entry flushed too. Model zips hold pickles (SB3's ``data``): a full load
(:func:`load_model_file`: ``--trust-model``, ``--resume``) is only for run folders you trust; ``evaluate`` and
``render`` read only the weights by default (:func:`~metarim_sb3.experiments.training.evaluate.load_policy_weights`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from metarim_sb3.callbacks._common import TMP_TAG, append_csv_row, repair_csv_tail, write_csv

if TYPE_CHECKING:
    from metarim_sb3.experiments.training.run_config import RunConfig
    from metarim_sb3.experiments.training.yaml_io import YamlTree

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
    "append_csv_row",
    "check_csv",
    "clean_stale_temp_files",
    "eval_files",
    "fallback_hint",
    "find_model",
    "link_file",
    "load_model_file",
    "progress_csv",
    "read_config_data",
    "read_json",
    "read_run_config",
    "repair_csv_tail",
    "save_model",
    "saved_chunk_len",
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
_TMP_TAG = TMP_TAG  # temporary files: .<name>.tmp-<pid>[.zip] (CSV files: the one CSV writer, write_csv)


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


def save_model(model: Any, path: str | Path) -> None:
    """
    Save an SB3 model atomically (``model.save`` to a temporary file, fsync, rename, fsync the folder).

    :param model: the model.
    :param path: the ``.zip`` file.
    """
    _replace_with(Path(path), model.save)


def link_file(source: str | Path, path: str | Path) -> None:
    """
    Make ``path`` a hard link to ``source``, atomically: the link is made at a temporary name of this process,
    renamed over ``path``, and the folder entry flushed. Both names then share one copy on disk.

    :param source: an existing file (in the same file system as ``path``).
    :param path: the name to create or replace.
    :raises OSError: if the link cannot be made (e.g. links not supported); the temporary name is removed and
        ``path`` is unchanged.
    """
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def clean_stale_temp_files(run_dir: str | Path) -> list[Path]:
    """
    Remove the temporary files an interrupted writer left (call while holding the folder's
    :class:`~metarim_sb3.experiments.training.ownership.RunLock`).

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


def read_config_data(run_dir: str | Path, known_env: bool = True) -> YamlTree:
    """
    :param run_dir: a run folder.
    :param known_env: require a registered env id.
    :return: its ``config.yaml`` as read (not checked beyond naming an agent and an env: enough to recognise a run
        folder of any version).
    :raises RunError: if the folder has no readable config (a regular file, within the bounds of
        :func:`~metarim_sb3.experiments.training.yaml_io.safe_yaml`) naming an agent and (with ``known_env``) a known
        env.
    """
    from metarim_sb3.experiments.training.config import env_ids
    from metarim_sb3.experiments.training.yaml_io import ConfigError, read_text_file, safe_yaml

    path = Path(run_dir) / CONFIG
    if path.is_symlink():
        raise RunError(f"{run_dir}: {CONFIG} is a symbolic link; a run's files are regular files inside its folder")
    try:
        data = safe_yaml(read_text_file(path, str(path)), str(path))
    except ConfigError as err:
        raise RunError(f"{run_dir} is not a run folder: {err}") from None
    if not isinstance(data, dict) or "env" not in data or "agent" not in data:
        raise RunError(f"{run_dir} is not a run folder: {CONFIG} has no agent/env")
    if known_env and data["env"] not in env_ids():
        raise RunError(
            f"{path} names an unknown env {str(data['env'])[:80]!r}; allowed: {', '.join(env_ids())} (a run of "
            "another metarim version?)"
        )
    return data


def read_run_config(run_dir: str | Path, known_env: bool = True) -> RunConfig:
    """
    :param run_dir: a run folder.
    :param known_env: require a registered env id and a policy that takes the saved ``policy_kwargs`` (``False``:
        any, for readers of the run's files alone, such as the report, which builds no env).
    :return: its ``config.yaml`` (:func:`read_config_data`), checked as a
        :class:`~metarim_sb3.experiments.training.run_config.RunConfig` (a key added since it was written takes its
        default).
    :raises RunError: if the folder has no readable config, or the config is refused.
    """
    from metarim_sb3.experiments.training.run_config import RunConfig
    from metarim_sb3.experiments.training.yaml_io import ConfigError

    data = read_config_data(run_dir, known_env)
    try:
        return RunConfig.from_mapping(data, buildable=known_env)
    except ConfigError as err:
        raise RunError(f"{Path(run_dir) / CONFIG} is refused: {err}") from None


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
    :return: the ``chunk_len`` it was saved with (a :class:`~metarim_sb3.ppo.chunked.ChunkedRecurrentPPO`), or
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
    :class:`~metarim_sb3.ppo.chunked.ChunkedRecurrentPPO` if it has a ``chunk_len`` (:func:`saved_chunk_len`),
    else sb3-contrib's ``RecurrentPPO``.

    :param path: ``model.zip`` or ``checkpoint.zip``.
    :param kwargs: passed to ``load`` (``env``, ``device``...).
    :return: the model.
    :raises RunError: naming the file if it is damaged, and the checkpoint to fall back to if there is one.
    """
    from sb3_contrib import RecurrentPPO

    from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO

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
