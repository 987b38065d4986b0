"""The run folders a report reads: finding them (:func:`find_runs`) and loading each into a :class:`RunData`
(:func:`load_run`), from the files the runs wrote (see :mod:`metarim_sb3.experiments.training.folder`).
"""

from __future__ import annotations

import csv
import math
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from metarim_sb3.experiments.training.config import AGENTS
from metarim_sb3.experiments.training.folder import (
    ACTIVITY,
    CONFIG,
    CURRICULUM,
    CURVE,
    DONE,
    DRIFT,
    FINAL_EVAL,
    HELDOUT_EVAL,
    MASTERY,
    STAGE_EVAL,
    VERSIONS,
    ZERO_SHOT_MASTERY,
    RunError,
    read_json,
    read_run_config,
)
from metarim_sb3.experiments.training.result import EvalResult, RunResult
from metarim_sb3.experiments.training.run_config import RunConfig

__all__ = ["MasteryEval", "RunData", "StageVisit", "agent_order", "dirty_runs", "find_runs", "load_run"]


class StageVisit(TypedDict):
    """A row of a run's ``mastery.csv``: one visit to a stage (steps are environment steps, all envs together)."""

    stage: int
    #: The step the visit began.
    entered_at: float
    #: The step its success window first reached the threshold (``None``: never in the visit: censored).
    mastered_at: float | None
    #: The step it ended (the next shift, or the end of training).
    left_at: float


class MasteryEval(TypedDict, total=False):
    """The held-out evaluation at the first mastery of the last training stage (``zero_shot_mastery.csv``)."""

    #: Whether the run mastered the last training stage (the other keys only when it did).
    reached: bool
    #: The step of the evaluation, its episodes and successes, and the success rate.
    timesteps: int
    episodes: int
    successes: int
    success_rate: float


@dataclass
class RunData:
    """Everything the report uses from one run folder."""

    path: Path
    config: RunConfig
    done: RunResult | None
    curve: dict[str, np.ndarray]
    visits: list[StageVisit]
    final_eval: EvalResult | None
    activity: dict[str, np.ndarray] | None
    shifts: list[int] = field(default_factory=list)
    #: Stage each shift moved to (``curriculum.csv`` ``to_stage``; empty when not recorded).
    shift_stages: list[int] = field(default_factory=list)
    #: Columns of ``stage_eval.csv`` (``None``: not recorded).
    stage_eval: dict[str, np.ndarray] | None = None
    #: Columns of ``heldout_eval.csv`` (``None``: not recorded).
    heldout: dict[str, np.ndarray] | None = None
    #: Columns of ``drift.csv`` (``None``: not recorded).
    drift: dict[str, np.ndarray] | None = None
    #: The held-out evaluation at the first mastery of the last training stage (``zero_shot_mastery.csv``):
    #: ``{"reached": False}`` when the run recorded it but never got there; ``None``: not recorded.
    zero_shot_mastery: MasteryEval | None = None

    @property
    def agent(self) -> str:
        """Agent name."""
        return self.config.agent

    @property
    def env(self) -> str:
        """Environment id."""
        return self.config.env

    @property
    def seed(self) -> int:
        """Seed."""
        return 0 if self.config.seed is None else self.config.seed

    def adaptation(self) -> list[tuple[float, bool]]:
        """:return: per stage visit, ``(frames, mastered)``; unmastered visits give the frames they lasted."""
        out = []
        for v in self.visits:
            end = v["mastered_at"] if v["mastered_at"] is not None else v["left_at"]
            out.append((float(end - v["entered_at"]), v["mastered_at"] is not None))
        return out


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def _num(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan  # type: ignore[arg-type]
    except ValueError:
        return math.nan


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """
    :param paths: run folders, or folders to search (recursively) for folders holding a ``config.yaml``.
    :return: the run folders, sorted, without duplicates.
    :raises RunError: if a path does not exist or no run folder is found.
    """
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise RunError(f"{p} does not exist; give run folders or folders that contain them")
        found.update(c.parent for c in ([p / CONFIG] if (p / CONFIG).exists() else p.rglob(CONFIG)))
    if not found:
        raise RunError(f"no run folders (with {CONFIG}) under {', '.join(map(str, paths))}")
    return sorted(found)


def load_run(path: Path) -> RunData:
    """
    :param path: a run folder.
    :return: its data (missing files give empty fields: an unfinished run still shows its curve).
    """
    try:
        return _load_run(path)
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as err:
        if isinstance(err, RunError):
            raise
        raise RunError(
            f"{path} holds a damaged run file ({type(err).__name__}: {err}); remove the folder from the report"
        ) from err


def _load_run(path: Path) -> RunData:
    from metarim_sb3.experiments.training.folder import STEP_COLUMNS, check_csv

    finished = (path / DONE).exists()  # a finished run's logs are final: a torn last row is damage
    for name, column in STEP_COLUMNS.items():
        columns = ("success_rate",) if name in (HELDOUT_EVAL, CURVE) else ()
        check_csv(path / name, column, columns=columns, whole=finished)
    rows = _read_csv(path / CURVE)
    curve = {k: np.array([_num(r.get(k)) for r in rows]) for k in ("timesteps", "time_s", "stage", "success_rate")}
    curve["episodes"] = np.array([_num(r.get("episodes")) for r in rows])
    visits: list[StageVisit] = [
        {
            "stage": int(_num(r["stage"])),
            "entered_at": _num(r["entered_at"]),
            "mastered_at": None if r["mastered_at"] in ("", None) else _num(r["mastered_at"]),
            "left_at": _num(r["left_at"]),
        }
        for r in _read_csv(path / MASTERY)
    ]
    activity = None
    if (path / f"{ACTIVITY}.npz").exists():
        try:
            with np.load(path / f"{ACTIVITY}.npz", allow_pickle=False) as data:
                activity = {k: data[k] for k in data.files}
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
            npz = path / f"{ACTIVITY}.npz"
            raise RunError(f"{npz} is damaged ({type(err).__name__}); delete or restore it") from None
    shift_rows = _read_csv(path / CURRICULUM)
    shifts = [int(_num(r["timestep"])) for r in shift_rows]
    to_stage = [_num(r.get("to_stage")) for r in shift_rows]
    shift_stages = [int(v) for v in to_stage] if not any(math.isnan(v) for v in to_stage) else []
    eval_rows = _read_csv(path / STAGE_EVAL)
    stage_eval = (
        {
            k: np.array([_num(r.get(k)) for r in eval_rows])
            for k in ("timesteps", "stage", "current", "success_rate", "seconds")
        }
        if eval_rows
        else None
    )
    done = read_json(path / DONE) if (path / DONE).exists() else None
    final = read_json(path / FINAL_EVAL) if (path / FINAL_EVAL).exists() else None
    drift_rows = _read_csv(path / DRIFT)
    drift = {k: np.array([_num(r.get(k)) for r in drift_rows]) for k in drift_rows[0]} if drift_rows else None
    held_rows = _read_csv(path / HELDOUT_EVAL)
    heldout = {k: np.array([_num(r.get(k)) for r in held_rows]) for k in held_rows[0]} if held_rows else None
    config = read_run_config(path, known_env=False)  # the report reads files; it builds no env
    run = RunData(path, config, done, curve, visits, final, activity, shifts, shift_stages, stage_eval, heldout, drift)
    if (path / ZERO_SHOT_MASTERY).exists():
        at_mastery = [r for r in _read_csv(path / ZERO_SHOT_MASTERY) if r.get("timesteps")]
        run.zero_shot_mastery = {"reached": False}
        if at_mastery:
            row = at_mastery[0]
            run.zero_shot_mastery = {
                "reached": True,
                "timesteps": int(_num(row["timesteps"])),
                "episodes": int(_num(row["episodes"])),
                "successes": int(_num(row["successes"])),
                "success_rate": _num(row["success_rate"]),
            }
    return run


def agent_order(agents: Iterable[str]) -> list[str]:
    """
    :param agents: agent names (repeats allowed).
    :return: each once, the preset agents in :data:`~metarim_sb3.experiments.training.config.AGENTS` order first,
        then the others (variants) by name.
    """
    return sorted(set(agents), key=lambda a: (AGENTS.index(a) if a in AGENTS else len(AGENTS), a))


def dirty_runs(runs: list[RunData]) -> list[RunData]:
    """
    :param runs: loaded runs.
    :return: the runs whose ``versions.json`` records a git sha ending in ``-dirty`` (code with uncommitted
        changes: the numbers cannot be tied to a commit).
    """

    def shas(data: Any) -> Iterable[str]:
        if isinstance(data, dict):
            for key, value in data.items():
                if key == "git_sha" and isinstance(value, str):
                    yield value
                else:
                    yield from shas(value)
        elif isinstance(data, list):
            for value in data:
                yield from shas(value)

    out = []
    for r in runs:
        path = r.path / VERSIONS
        if path.exists() and any(s.endswith("-dirty") for s in shas(read_json(path))):
            out.append(r)
    return out
