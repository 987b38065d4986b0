"""``metarim report``: run folders in; ``summary.csv``, ``aggregate.csv``, plots and ``report.md`` out.

Numbers (all from files the runs wrote, see :mod:`metarim_sb3.experiments.training.folder`):

- **adaptation** (primary): success AUC over ``adaptation.horizon`` frames after each shift, from the per-stage
  evaluations (``stage_eval.csv``), first visits and revisits apart; IQM over seeds with a stratified bootstrap
  95 % CI (strata: visit index), no interval under three seeds; undefined visits are counted with their reasons.
- **frames to threshold** (secondary): Kaplan–Meier curve of the frames from a shift to the success threshold
  (``mastery.csv``); unmastered visits are right-censored, never averaged; restricted mean up to one ``tau`` per
  env, and the median.
- **zero-shot**: success on the held-out stage after training (``final_eval.json``); mean over seeds with a
  percentile-bootstrap 95 % CI over seeds. During training (``heldout_eval.csv``) at fixed frame counts, and when
  the last training stage was first mastered (``zero_shot_mastery.csv``): per seed a Wilson interval, across
  seeds the IQM with a bootstrap CI; a run that never mastered that stage is counted as not reached, never averaged.
"""

from __future__ import annotations

import csv
import math
import time
import zipfile
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metarim_sb3.experiments.reporting.claims import Claim, Claims, judge, missing_runs, verdict_markdown
from metarim_sb3.experiments.reporting.metrics import (
    PAIRED_METRICS,
    AdaptationAUC,
    ForgettingRow,
    KaplanMeier,
    PairedComparison,
    Visit,
    forgetting,
    format_estimate,
    format_number,
    frames_to_threshold_km,
    interval_allowed,
    paired_differences,
    stage_time_matrix,
    visit_aucs,
    visits_from_shifts,
)
from metarim_sb3.experiments.reporting.protocol import (
    HIGHER_IS_BETTER,
    forgetting_on_return,
    judge_family,
    paired_test,
    pooled_test,
    score_run,
    verdict_markdown_v2,
)
from metarim_sb3.experiments.reporting.stats import bootstrap_ci, stratified_bootstrap_ci, wilson_interval
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
    check_out_folder,
    read_json,
    read_run_config,
)

__all__ = [
    "RunData",
    "adaptation_auc_rows",
    "build_report",
    "dirty_runs",
    "find_runs",
    "load_run",
    "run_visit_aucs",
    "zero_shot_mastery_rows",
]


@dataclass
class RunData:
    """Everything the report uses from one run folder."""

    path: Path
    config: dict[str, Any]
    done: dict[str, Any] | None
    curve: dict[str, np.ndarray]
    visits: list[dict[str, Any]]
    final_eval: dict[str, Any] | None
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
    zero_shot_mastery: dict[str, Any] | None = None

    @property
    def agent(self) -> str:
        """Agent name."""
        return str(self.config["agent"])

    @property
    def env(self) -> str:
        """Environment id."""
        return str(self.config["env"])

    @property
    def seed(self) -> int:
        """Seed."""
        return int(self.config.get("seed", 0))

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
    visits = [
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


def run_visit_aucs(run: RunData) -> list[tuple[Visit, AdaptationAUC]] | None:
    """
    :param run: a loaded run.
    :return: the adaptation AUC of each stage visit (success of the training stage over ``adaptation.horizon``
        frames after the shift into it); ``None`` when the run recorded no ``stage_eval.csv``, no horizon, or no
        ``to_stage`` of its shifts. A visit's curve is its stage's ``stage_eval.csv`` rows with ``current == 1``
        from the shift into it on, closed by the first evaluation of the stage at or after the shift out of it:
        evaluations run at the rollout end after a shift, before any update, so that row is the policy that left
        the stage (``current == 0`` there, as the training stage has changed). Later rows (another visit) are not
        used.
    """
    horizon = (run.config.get("adaptation") or {}).get("horizon")
    table = run.stage_eval
    if table is None or not horizon or len(run.shift_stages) != len(run.shifts):
        return None
    current = table["current"] == 1
    first = run.visits[0]["stage"] if run.visits else int(table["stage"][current][0]) if current.any() else 0
    visits = visits_from_shifts(run.shifts, run.shift_stages, first_stage=first)
    frames, stages, success = table["timesteps"], table["stage"].astype(int), table["success_rate"]
    out = []
    for v in visits:
        rows = (stages == v.stage) & current & (frames >= v.entered_at)
        if v.left_at is not None:
            leaving = np.flatnonzero((stages == v.stage) & (frames >= v.left_at))
            close = frames[leaving[0]] if leaving.size else v.left_at
            rows &= frames <= close
            if leaving.size:
                rows[leaving[0]] = True
        auc = visit_aucs(frames[rows], [v.stage] * int(rows.sum()), success[rows], [v], float(horizon))[0][1]
        if auc.reason.startswith("evaluations end") and v.left_at is not None:
            reason = f"no evaluation of the stage between the horizon's end and its leaving at {v.left_at:g}"
            auc = AdaptationAUC(auc.auc, reason, auc.n_evals)
        out.append((v, auc))
    return out


_REASONS = {"stage left": "left before the horizon", "no evaluation": "no evaluation at the shift"}
_REASONS["evaluations end"] = "training ended before the horizon"
_REASONS["no evaluation of the stage"] = "no evaluation before the stage was left"


def _reason(text: str) -> str:
    return next((short for prefix, short in _REASONS.items() if text.startswith(prefix)), text)


def adaptation_auc_rows(runs: list[RunData]) -> list[dict[str, Any]]:
    """
    The primary adaptation metric per (env, agent, kind): the success AUC over the horizon after each shift.

    Visits after a shift are split into first visits of a stage and revisits; the IQM pools the seeds' AUCs with
    the visit index as stratum (stratified bootstrap 95 % CI). Undefined (NaN) AUCs are counted with their reasons,
    never imputed.

    :param runs: loaded runs.
    :return: rows with ``env``, ``agent``, ``kind``, ``recorded`` (runs with a ``stage_eval.csv``), ``seeds``
        (runs with at least one defined AUC of this kind), ``defined``, ``total``, ``estimate`` (IQM, low, high),
        ``reasons`` (reason -> count).
    """
    groups: dict[tuple[str, str], list[RunData]] = defaultdict(list)
    for r in runs:
        groups[(r.env, r.agent)].append(r)
    rows = []
    for env in sorted({r.env for r in runs}):
        for agent in _agent_order(a for e, a in groups if e == env):
            per_run = [a for a in (run_visit_aucs(r) for r in groups[(env, agent)]) if a is not None]
            for kind, revisit in (("first visit", False), ("revisit", True)):
                strata: dict[int, list[float]] = defaultdict(list)
                reasons: dict[str, int] = defaultdict(int)
                seeds = 0
                for aucs in per_run:
                    picked = [(k, a) for k, (v, a) in enumerate(aucs) if k >= 1 and v.revisit == revisit]
                    seeds += any(not math.isnan(a.auc) for _, a in picked)
                    for k, a in picked:
                        strata[k].append(a.auc)
                        if a.reason:
                            reasons[_reason(a.reason)] += 1
                values = [v for s in strata.values() for v in s]
                rows.append(
                    {
                        "env": env,
                        "agent": agent,
                        "kind": kind,
                        "recorded": len(per_run),
                        "seeds": seeds,
                        "defined": sum(not math.isnan(v) for v in values),
                        "total": len(values),
                        "estimate": stratified_bootstrap_ci([strata[k] for k in sorted(strata)]),
                        "reasons": dict(reasons),
                    }
                )
    return rows


def _auc_markdown(rows: list[dict[str, Any]], image: str, actions: str) -> list[str]:
    lines = ["", "## Adaptation: success AUC after a shift", ""]
    if not any(r["recorded"] for r in rows):
        return [*lines, "Per-stage evaluations (`stage_eval.csv`) not recorded in these runs."]
    lines += [
        f"Success rate of the new training stage (evaluation with {actions}, `stage_eval.csv`) integrated over the "
        "fixed horizon (`adaptation.horizon` frames) after each shift, divided by the horizon: 1 = solved at once, "
        "0 = never solved within the horizon. Higher is better. IQM over seeds (strata: visit index) with a 95 % "
        "stratified-bootstrap CI from 3 seeds on. Undefined visits are counted with their reasons, never imputed.",
        "",
        "| env | agent | visits | runs recorded | AUC defined / visits | AUC: IQM [95% CI] "
        "| undefined (reason: count) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        reasons = "; ".join(f"{k}: {v}" for k, v in sorted(r["reasons"].items())) or "-"
        point, low, high = r["estimate"]
        lines.append(
            f"| {r['env']} | {r['agent']} | {r['kind']} | {r['recorded']} | {r['defined']}/{r['total']} "
            f"| {format_estimate(point, low, high, r['seeds'])} | {reasons} |"
        )
    return [*lines, "", f"![Adaptation AUC]({image})"]


def shift_kms(runs: list[RunData]) -> dict[tuple[str, str], KaplanMeier]:
    """
    Kaplan–Meier estimate of the frames to reach the success threshold after a shift (``mastery.csv`` visits
    ``k >= 1``; a visit that never reached it is right-censored at the frames it lasted, never averaged as is).

    :param runs: loaded runs.
    :return: per (env, agent) with at least one shift visit; all agents of an env share one ``tau`` (the smallest
        of their longest durations) so that their restricted means compare.
    """
    visits: dict[tuple[str, str], list[tuple[float, bool]]] = defaultdict(list)
    for r in runs:
        visits[(r.env, r.agent)] += r.adaptation()[1:]
    visits = {k: v for k, v in visits.items() if v}
    out = {}
    for env in {e for e, _ in visits}:
        keys = [k for k in visits if k[0] == env]
        tau = min(max(d for d, _ in visits[k]) for k in keys)
        for k in keys:
            d, m = zip(*visits[k], strict=True)
            out[k] = frames_to_threshold_km(d, m, tau=tau if tau > 0 else None)
    return out


def zero_shot_rows(runs: list[RunData], n_points: int = 4) -> list[dict[str, Any]]:
    """
    Held-out success during training at fixed frame counts (``heldout_eval.csv``): the evaluation frames every
    run of an env shares, thinned to ``n_points`` evenly spread ones (the last always kept).

    :param runs: loaded runs.
    :param n_points: frame counts per env.
    :return: rows with ``env``, ``agent``, ``frames``, ``per_seed`` (seed, rate, Wilson low, high; successes =
        rate x episodes rounded) and ``estimate`` (IQM over seeds with a bootstrap 95 % CI) and ``seeds``.
    """
    rows = []
    for env in sorted({r.env for r in runs}):
        env_runs = [r for r in runs if r.env == env and r.heldout is not None and r.heldout["timesteps"].size]
        if not env_runs:
            continue
        common = set.intersection(*(set(r.heldout["timesteps"].tolist()) for r in env_runs if r.heldout))
        frames = sorted(common)
        if len(frames) > n_points:
            frames = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, n_points).round()]
        for agent in _agent_order(r.agent for r in env_runs):
            for at in frames:
                per_seed = []
                for r in (r for r in env_runs if r.agent == agent):
                    held = r.heldout or {}
                    i = int(np.flatnonzero(held["timesteps"] == at)[-1])
                    rate, n = float(held["success_rate"][i]), int(held["n_episodes"][i])
                    if math.isnan(rate) or n <= 0:
                        continue
                    per_seed.append((r.seed, rate, *wilson_interval(round(rate * n), n)))
                values = [p[1] for p in per_seed]
                rows.append(
                    {
                        "env": env,
                        "agent": agent,
                        "frames": at,
                        "per_seed": sorted(per_seed),
                        "seeds": len(values),
                        "estimate": stratified_bootstrap_ci([values]),
                    }
                )
    return rows


def _zero_shot_markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["", "## Zero-shot success during training", ""]
    if not rows:
        return [*lines, "Held-out evaluations during training (`heldout_eval.csv`) not recorded in these runs."]
    lines += [
        "Success on the held-out stage at fixed frame counts (the evaluation frames all runs of an env share). "
        "Per seed: rate with a Wilson 95 % interval (successes = rate x episodes); across seeds: IQM with a "
        "bootstrap 95 % CI from 3 seeds on.",
        "",
        "| env | agent | frames | per seed: rate [Wilson 95%] | IQM over seeds [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        seeds = "; ".join(f"s{s}: {p:.2f} [{lo:.2f}, {hi:.2f}]" for s, p, lo, hi in r["per_seed"]) or "n/a"
        point, low, high = r["estimate"]
        lines.append(
            f"| {r['env']} | {r['agent']} | {int(r['frames']):,} | {seeds} "
            f"| {format_estimate(point, low, high, r['seeds'])} |"
        )
    return lines


def zero_shot_mastery_rows(runs: list[RunData]) -> list[dict[str, Any]]:
    """
    Held-out success when the last training stage was first mastered (``zero_shot_mastery.csv``). Runs that never
    mastered it are counted (``not_reached``), never averaged; runs that did not record it are left out.

    :param runs: loaded runs.
    :return: per (env, agent) with a recorded run: ``recorded`` (runs), ``not_reached`` (seeds), ``per_seed``
        (seed, rate, Wilson low, high, frames at mastery; reached seeds only, sorted by seed), ``seeds`` (reached
        seeds with a success rate) and ``estimate`` (IQM over them with a bootstrap 95 % CI).
    """
    rows = []
    for env in sorted({r.env for r in runs}):
        recorded = [r for r in runs if r.env == env and r.zero_shot_mastery is not None]
        for agent in _agent_order(r.agent for r in recorded):
            group = [r for r in recorded if r.agent == agent]
            per_seed = []
            for r in group:
                m = r.zero_shot_mastery or {}
                if m.get("reached") and m["episodes"] > 0 and not math.isnan(m["success_rate"]):
                    low, high = wilson_interval(m["successes"], m["episodes"])
                    per_seed.append((r.seed, m["success_rate"], low, high, m["timesteps"]))
            values = [p[1] for p in per_seed]
            rows.append(
                {
                    "env": env,
                    "agent": agent,
                    "recorded": len(group),
                    "not_reached": sum(not (r.zero_shot_mastery or {}).get("reached") for r in group),
                    "per_seed": sorted(per_seed),
                    "seeds": len(values),
                    "estimate": stratified_bootstrap_ci([values]),
                }
            )
    return rows


def _zero_shot_mastery_markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["", "### At mastery of the last training stage", ""]
    if not rows:
        return [*lines, "The evaluation at mastery (`zero_shot_mastery.csv`) was not recorded in these runs."]
    lines += [
        "Success on the held-out stage at the step each run first mastered its last training stage (the "
        "curriculum's threshold over its window), with the model of that moment (`mastery.zip`). Per seed: rate "
        "with a Wilson 95 % interval and the frames at mastery; across seeds: IQM over the seeds that reached "
        "mastery, with a bootstrap 95 % CI from 3 such seeds on. A seed that never mastered the stage is counted "
        "as not reached (censored at its budget) and enters no average.",
        "",
        "| env | agent | reached | never reached | per seed: rate [Wilson 95%] at frames | IQM over reached seeds "
        "[95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        seeds = (
            "; ".join(f"s{s}: {p:.2f} [{lo:.2f}, {hi:.2f}] at {int(at):,}" for s, p, lo, hi, at in r["per_seed"])
            or "n/a"
        )
        point, low, high = r["estimate"]
        estimate = format_estimate(point, low, high, r["seeds"])
        if r["seeds"] == 0:
            estimate = "n/a (no seed reached mastery)"
        lines.append(
            f"| {r['env']} | {r['agent']} | {r['recorded'] - r['not_reached']}/{r['recorded']} | {r['not_reached']} "
            f"| {seeds} | {estimate} |"
        )
    return lines


def run_forgetting(run: RunData) -> list[ForgettingRow] | None:
    """
    :param run: a loaded run.
    :return: :func:`~metarim_sb3.experiments.reporting.metrics.forgetting` per stage of its ``stage_eval.csv``:
        success when the stage was first left minus success later, up to its return as the training stage; ``None``
        when not recorded (or shifts without ``to_stage``).
    """
    table = run.stage_eval
    if table is None or len(run.shift_stages) != len(run.shifts):
        return None
    stages = [int(v) for v in table["stage"]]
    ids, times, matrix = stage_time_matrix(table["timesteps"], stages, table["success_rate"])
    first = run.visits[0]["stage"] if run.visits else 0
    visits = visits_from_shifts(run.shifts, run.shift_stages, first_stage=first)
    refs: list[float | None] = []
    until: list[float | None] = []
    for stage in ids:
        mine = [v for v in visits if v.stage == stage]
        refs.append(mine[0].left_at if mine else None)
        until.append(mine[1].entered_at if len(mine) > 1 else None)
    return forgetting(matrix, times, refs, until, [int(i) for i in ids])


def forgetting_rows(runs: list[RunData]) -> list[dict[str, Any]]:
    """
    :param runs: loaded runs.
    :return: per (env, agent, stage): ``seeds`` with a defined drop, ``final_drop`` and ``max_drop`` (IQM over
        seeds with a bootstrap CI), ``reasons`` (why other seeds have none: count).
    """
    out = []
    for env in sorted({r.env for r in runs}):
        for agent in _agent_order(r.agent for r in runs if r.env == env):
            per_run = [f for f in (run_forgetting(r) for r in runs if r.env == env and r.agent == agent) if f]
            for stage in sorted({row.stage for f in per_run for row in f}):
                rows = [row for f in per_run for row in f if row.stage == stage]
                defined = [row for row in rows if not math.isnan(row.final_drop)]
                reasons: dict[str, int] = defaultdict(int)
                for row in rows:
                    if row.reason:
                        reasons[row.reason] += 1
                out.append(
                    {
                        "env": env,
                        "agent": agent,
                        "stage": stage,
                        "seeds": len(defined),
                        "final_drop": stratified_bootstrap_ci([[row.final_drop for row in defined]]),
                        "max_drop": stratified_bootstrap_ci([[row.max_drop for row in defined]]),
                        "reasons": dict(reasons),
                    }
                )
    return out


def _forgetting_markdown(rows: list[dict[str, Any]], image: str) -> list[str]:
    lines = ["", "## Forgetting", ""]
    if not rows:
        return [*lines, "Per-stage evaluations (`stage_eval.csv`) not recorded in these runs."]
    lines += [
        "Heatmap: success on every stage (rows) at every evaluation (columns), mean over seeds. Table: success "
        "when a stage was first left minus its success later (last evaluation before it became the training stage "
        "again, or the end): `final` drop, and the largest drop (`max`). Positive = forgetting. IQM over seeds, "
        "95 % bootstrap CI from 3 seeds on.",
        "",
        "| env | agent | stage | seeds | final drop: IQM [95% CI] | max drop: IQM [95% CI] "
        "| undefined (reason: count) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        reasons = "; ".join(f"{k}: {v}" for k, v in sorted(r["reasons"].items())) or "-"
        final, worst = r["final_drop"], r["max_drop"]
        lines.append(
            f"| {r['env']} | {r['agent']} | {r['stage']} | {r['seeds']} "
            f"| {format_estimate(final[0], final[1], final[2], r['seeds'])} "
            f"| {format_estimate(worst[0], worst[1], worst[2], r['seeds'])} | {reasons} |"
        )
    return [*lines, "", f"![Forgetting]({image})"]


def drift_groups(runs: list[RunData]) -> list[str]:
    """
    :param runs: loaded runs.
    :return: the parameter groups with a ``drift_<group>`` column in some run's ``drift.csv``.
    """
    names = {k.removeprefix("drift_") for r in runs if r.drift for k in r.drift if k.startswith("drift_")}
    return sorted(names)


def _drift_markdown(runs: list[RunData], image: str) -> list[str]:
    lines = ["", "## Parameter drift", ""]
    groups = drift_groups(runs)
    if not groups:
        return [*lines, "Parameter drift (`drift.csv`) not recorded in these runs."]
    lines += [
        "Distance of each parameter group from its initial values (`drift_<group>` in `drift.csv`) against "
        "frames; line: mean over seeds. Table: the last recorded value, mean over the seeds that recorded it.",
        "",
        "| env | agent | seeds | " + " | ".join(f"final drift: {g}" for g in groups) + " |",
        "|---|---|---|" + "---|" * len(groups),
    ]
    for env in sorted({r.env for r in runs}):
        for agent in _agent_order(r.agent for r in runs if r.env == env):
            group = [r for r in runs if r.env == env and r.agent == agent and r.drift]
            if not group:
                continue
            finals = []
            for g in groups:
                last = [float(r.drift[f"drift_{g}"][-1]) for r in group if r.drift and f"drift_{g}" in r.drift]
                finals.append(format_number(float(np.mean(last)) if last else None, 4))
            lines.append(f"| {env} | {agent} | {len(group)} | " + " | ".join(finals) + " |")
    return [*lines, "", f"![Parameter drift]({image})"]


def _cost_markdown(runs: list[RunData]) -> list[str]:
    """Wall time and frames of the complete runs, summed per env and agent, with the grid's total."""
    lines = [
        "",
        "## Cost",
        "",
        "Wall time of the complete runs (`done.json`, evaluations included), summed per env and agent. Each run is "
        "one process with one torch thread, so its core-hours equal its wall-hours when it had a core to itself; "
        "runs that shared a busy machine count the time they waited. `metarim compare --dry-run` estimates a grid "
        "from `presets/costs.yaml`.",
        "",
        "| env | agent | complete runs | frames | wall-hours | wall ms per frame | median wall time / run |",
        "|---|---|---|---|---|---|---|",
    ]
    done = [r for r in runs if r.done]
    groups: dict[tuple[str, str], list[RunData]] = defaultdict(list)
    for r in done:
        groups[(r.env, r.agent)].append(r)
    for env in sorted({e for e, _ in groups}):
        for agent in _agent_order(a for e, a in groups if e == env):
            group = groups[(env, agent)]
            wall = [float(r.done["wall_time_s"]) for r in group if r.done]
            frames = sum(int(r.done["timesteps"]) for r in group if r.done)
            lines.append(
                f"| {env} | {agent} | {len(group)} | {frames:,} | {sum(wall) / 3600:.2f} "
                f"| {1e3 * sum(wall) / max(frames, 1):.2f} | {float(np.median(wall)):.0f} s |"
            )
    total = sum(float(r.done["wall_time_s"]) for r in done if r.done)
    lines += ["", f"Total: {len(done)} complete runs, {total / 3600:.2f} wall-hours."]
    return lines + _evaluation_share(done)


def _evaluation_share(runs: list[RunData]) -> list[str]:
    """The share of wall time the evaluations during training took (runs that timed them: a ``seconds`` column)."""
    shares: dict[str, list[float]] = defaultdict(list)
    for r in runs:
        parts = [t["seconds"] for t in (r.stage_eval, r.heldout) if t is not None and "seconds" in t]
        parts = [p for p in parts if np.isfinite(p).any()]  # runs from before the column: not timed
        if parts and r.done and float(r.done["wall_time_s"]) > 0:
            seconds = sum(float(np.nansum(p)) for p in parts)
            shares[r.env].append(seconds / float(r.done["wall_time_s"]))
    if not shares:
        return []
    text = "; ".join(
        f"{env} {100 * float(np.median(v)):.0f} % (range {100 * min(v):.0f}-{100 * max(v):.0f} %, {len(v)} runs)"
        for env, v in sorted(shares.items())
    )
    what = "Evaluations during training (stage and held-out, their `seconds` columns), share of wall time, median"
    return ["", f"{what}: {text}."]


def paired_rows(runs: list[RunData], reference: str) -> dict[str, list[PairedComparison]]:
    """
    Every agent against ``reference`` on the seeds both ran (tasks: envs), for each metric with a score per seed:
    the adaptation AUC (mean over a run's defined first-visit AUCs after a shift) and the final zero-shot success.

    :param runs: loaded runs.
    :param reference: the reference agent.
    :return: metric name -> comparisons (empty when the reference is absent or no metric has scores).
    """
    metrics: dict[str, dict[str, dict[Hashable, dict[Hashable, float]]]] = {name: {} for name in PAIRED_METRICS}
    for r in runs:
        aucs = run_visit_aucs(r)
        defined = [a.auc for k, (v, a) in enumerate(aucs or []) if k >= 1 and not v.revisit and not math.isnan(a.auc)]
        if defined:
            metrics["adaptation AUC"].setdefault(r.agent, {}).setdefault(r.env, {})[r.seed] = float(np.mean(defined))
        if r.final_eval:
            score = float(r.final_eval["success_rate"])
            metrics["zero-shot success"].setdefault(r.agent, {}).setdefault(r.env, {})[r.seed] = score
    out = {}
    for name, scores in metrics.items():
        if reference in scores and len(scores) > 1:
            out[name] = paired_differences(scores, reference)
    return out


def _paired_markdown(comparisons: dict[str, list[PairedComparison]], reference: str) -> list[str]:
    lines = ["", f"## Paired comparisons with {reference}", ""]
    shown = [(m, c) for m, cs in comparisons.items() for c in cs if interval_allowed(c.n_pairs)]
    if not shown:
        return [
            *lines,
            f"Not shown: fewer than 3 seeds run by both {reference} and another agent (or {reference} absent).",
        ]
    lines += [
        f"Per metric, each agent minus {reference} on the seeds both ran: IQM of the per-seed differences with a "
        "stratified-bootstrap 95 % CI (strata: envs), probability of improvement P(agent > reference) with its "
        "CI, and a two-sided sign-flip permutation p-value, Holm-adjusted across the agents of a metric. "
        "Comparisons with fewer than 3 common seeds are left out.",
        "",
        "| metric | agent | pairs | IQM difference [95% CI] | P(improvement) [95% CI] | p | p (Holm) |",
        "|---|---|---|---|---|---|---|",
    ]
    for metric, c in shown:
        lines.append(
            f"| {metric} | {c.agent} | {c.n_pairs} | {format_estimate(*c.iqm_diff, c.n_pairs)} "
            f"| {format_estimate(*c.poi, c.n_pairs)} | {c.p_value:.3f} | {c.p_holm:.3f} |"
        )
    return lines


def _agent_order(agents: Iterable[str]) -> list[str]:
    return sorted(set(agents), key=lambda a: (AGENTS.index(a) if a in AGENTS else len(AGENTS), a))


def _fmt_ci(estimate: tuple[float, float, float], n_seeds: int) -> str:
    return format_estimate(*estimate, n_seeds)


def _fmt_km(km: KaplanMeier | None) -> str:
    if km is None:
        return "n/a | n/a"
    rmst = format_number(km.rmst, 1, 1e3, "k") + f" ({format_number(km.tau, 1, 1e3, 'k')})"
    median = "not reached" if math.isnan(km.median) else format_number(km.median, 1, 1e3, "k")
    return f"{rmst} | {median}"


def _final_stages(runs: list[RunData]) -> list[int]:
    return [int(r.curve["stage"][-1]) for r in runs if r.curve["stage"].size and not math.isnan(r.curve["stage"][-1])]


def _fmt_stages(stages: list[int]) -> str:
    """Integer stages: each seed's value (sorted) up to five seeds, else the median of the integers."""
    if not stages:
        return "n/a"
    if len(stages) <= 5:
        return ", ".join(map(str, sorted(stages)))
    median = float(np.median(stages))
    return f"median {int(median) if median.is_integer() else median:g}"


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


def run_scores_v2(run: RunData, tau: float) -> dict[str, float]:
    """
    :param run: a loaded run.
    :param tau: frames the time to threshold is capped at.
    :return: the run's scores under the study protocol v2
        (:func:`~metarim_sb3.experiments.reporting.protocol.score_run`).
    """
    aucs = run_visit_aucs(run)
    returns: list[tuple[int, float, float]] = []
    table = run.stage_eval
    if aucs is not None and table is not None:
        visits = [v for v, _ in aucs]
        returns = forgetting_on_return(visits, table["timesteps"], table["stage"].astype(int), table["success_rate"])
    final_rate = (run.final_eval or {}).get("success_rate")
    final = math.nan if final_rate is None else float(final_rate)
    at_mastery = run.zero_shot_mastery or {}
    mastery = float(at_mastery["success_rate"]) if at_mastery.get("reached") else math.nan
    return score_run(aucs, run.adaptation(), returns, final, mastery, tau)


def _verdict_v2(runs: list[RunData], claims: Claims, missing: str) -> list[str]:
    """The Verdict section under the v2 rule: each env family on its own, then pooled with the declared weights."""
    taus = dict(claims.tau)
    scores: dict[tuple[str, str, int], dict[str, float]] = {}
    for r in runs:
        if r.done is not None and r.env in taus:
            scores[(r.env, r.agent, r.seed)] = run_scores_v2(r, taus[r.env])
    envs = sorted({e for e, _, _ in scores})

    def diffs(env: str, metric: str, against: str) -> list[float]:
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        seeds = sorted({s for e, a, s in scores if e == env and a == claims.reference})
        out = []
        for seed in seeds:
            other = scores.get((env, against, seed))
            if other is not None:
                out.append(sign * (scores[(env, claims.reference, seed)][metric] - other[metric]))
        return out

    by_family = {e: judge_family(claims.items, [diffs(e, c.metric, c.against) for c in claims.items],
                                 claims.alpha, claims.margin) for e in envs}  # fmt: skip
    weights = dict(claims.weights)
    absent = [e for e in weights if e not in by_family]
    note = "weights fixed in the preset: " + ", ".join(f"{e} {w:g}" for e, w in weights.items())
    pooled = None
    if absent:
        note += f"; not computed: no complete runs of {', '.join(absent)}"
    else:  # a claim with fewer than 3 pairs in some family gets no pooled test (inconclusive)
        pooled_tests = []
        for i in range(len(claims.items)):
            families = [by_family[e][i].paired for e in weights]
            fewest = min(families, key=lambda f: f.n)
            pooled_tests.append(
                pooled_test(families, list(weights.values()), claims.margin) if fewest.n >= 3 else paired_test([], 0)
            )
        pooled = judge_family(claims.items, pooled_tests, claims.alpha, claims.margin)
    secondary_items = [
        Claim(f"{claims.reference} vs {a}: {m}", m, a) for m in claims.secondary for a in _agent_order(
            {c.against for c in claims.items})
    ]  # fmt: skip
    secondary = {
        e: judge_family(secondary_items, [diffs(e, c.metric, c.against) for c in secondary_items], claims.alpha,
                        claims.margin)
        for e in envs
    }  # fmt: skip
    return verdict_markdown_v2(claims, by_family, pooled, note, secondary, missing)


def _write_summary(runs: list[RunData], path: Path) -> None:
    n_visits = max((len(r.visits) for r in runs), default=0)
    header = ["env", "agent", "seed", "status", "timesteps", "wall_time_s", "fps", "final_stage", "shifts"]
    header += ["heldout_success", "heldout_success_low", "heldout_success_high", "heldout_return"]
    for k in range(n_visits):
        header += [f"adapt_frames_{k}", f"adapt_mastered_{k}"]
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for r in runs:
            d, f = r.done or {}, r.final_eval or {}
            ci = f.get("success_ci", ["", ""])
            row = [r.env, r.agent, r.seed, "done" if r.done else "incomplete", d.get("timesteps", "")]
            row += [d.get("wall_time_s", ""), d.get("fps", ""), d.get("final_stage", ""), len(r.shifts)]
            row += [f.get("success_rate", ""), ci[0], ci[1], f.get("mean_return", "")]
            for frames, mastered in r.adaptation():
                row += [int(frames), int(mastered)]
            writer.writerow(row)


def aggregate(runs: list[RunData]) -> list[dict[str, Any]]:
    """
    :param runs: loaded runs.
    :return: one row per (env, agent): seeds, stage reached, adaptation IQM with CI, zero-shot mean with CI, time.
    """
    groups: dict[tuple[str, str], list[RunData]] = defaultdict(list)
    for r in runs:
        groups[(r.env, r.agent)].append(r)
    kms = shift_kms(runs)
    rows = []
    for env in sorted({r.env for r in runs}):
        for agent in _agent_order(a for e, a in groups if e == env):
            group = groups[(env, agent)]
            adapt = [r.adaptation() for r in group]
            mastered = sum(m for a in adapt for _, m in a[1:])
            total = sum(len(a) - 1 for a in adapt if a)
            initial = [a[0][0] for a in adapt if a]
            success = [r.final_eval["success_rate"] for r in group if r.final_eval]
            wall = [r.done["wall_time_s"] for r in group if r.done]
            fps = [r.done["fps"] for r in group if r.done]
            rows.append(
                {
                    "env": env,
                    "agent": agent,
                    "seeds": len(group),
                    "complete": sum(r.done is not None for r in group),
                    "km": kms.get((env, agent)),
                    "final_stages": _final_stages(group),
                    "final_stage_median": float(np.median(_final_stages(group))) if _final_stages(group) else math.nan,
                    "shifts_mean": float(np.mean([len(r.shifts) for r in group])),
                    "adapt_mastered": f"{mastered}/{total}",
                    "initial_mastered": f"{sum(a[0][1] for a in adapt if a)}/{len(initial)}",
                    "heldout_success": (float(np.mean(success)), *bootstrap_ci(success))
                    if success
                    else (math.nan,) * 3,
                    "heldout_seeds": len(success),
                    "wall_time_s": float(np.mean(wall)) if wall else math.nan,
                    "fps": float(np.mean(fps)) if fps else math.nan,
                }
            )
    return rows


def _integral(value: float) -> float | int:
    """An integral float (frames, a median of stages) as an ``int``, so that the CSV shows no ``.0``."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _write_aggregate(rows: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            [
                *("env", "agent", "seeds", "complete", "final_stage_median", "final_stages", "shifts_mean"),
                *("km_tau", "km_rmst", "km_median", "initial_mastered", "adapt_mastered"),
                *("heldout_success_mean", "heldout_success_low", "heldout_success_high", "wall_time_s", "fps"),
            ]
        )
        for r in rows:
            writer.writerow(
                [
                    *(r["env"], r["agent"], r["seeds"], r["complete"], _integral(r["final_stage_median"])),
                    *(" ".join(map(str, r["final_stages"])), r["shifts_mean"]),
                    *((_integral(r["km"].tau), r["km"].rmst, _integral(r["km"].median)) if r["km"] else ("", "", "")),
                    *(r["initial_mastered"], r["adapt_mastered"]),
                    *(*r["heldout_success"], r["wall_time_s"], r["fps"]),
                ]
            )


def _limits(runs: list[RunData]) -> str:
    """The report's limits paragraph: seeds per env and agent (the fewest decide), and what the budgets are."""
    cells: dict[tuple[str, str], int] = defaultdict(int)
    for r in runs:
        cells[(r.env, r.agent)] += 1
    fewest = min(cells.values())
    spans = []
    for env in sorted({e for e, _ in cells}):
        counts = [n for (e, _), n in cells.items() if e == env]
        spans.append(f"{env} {min(counts)}" + (f"-{max(counts)}" if max(counts) > min(counts) else ""))
    text = f"**Limits.** Seeds per agent by env: {'; '.join(spans)}. "
    if fewest < 5:
        text += (
            f"With as few as {fewest} seed(s), a bootstrap over seeds understates the uncertainty: treat differences "
            "as anecdotes unless they hold with 5+ seeds (`metarim compare --preset study`). "
        )
    else:
        text += (
            "Intervals are 95 % bootstraps over seeds; with this many seeds they are still wide, so a difference "
            "whose interval spans 0 is unresolved, not absent. "
        )
    return text + "Budgets are far below the papers'; nothing here reproduces a published number."


def _markdown(
    runs: list[RunData],
    rows: list[dict[str, Any]],
    images: dict[str, str],
    command: str,
    extra: list[str],
    verdict: list[str],
) -> str:
    seeds = sorted({r.seed for r in runs})
    budgets = sorted({int(r.config["timesteps"]) for r in runs})
    threshold = sorted({float(r.config["curriculum"]["threshold"]) for r in runs})
    versions: dict[str, Any] = {}
    if (runs[0].path / VERSIONS).exists():
        versions = read_json(runs[0].path / VERSIONS).get("started", {})
    dirty = dirty_runs(runs)
    lines = [
        f"**Uncommitted code**: {len(dirty)} of {len(runs)} runs were made from a working tree with uncommitted "
        "changes (git sha ending in `-dirty` in versions.json): their numbers cannot be tied to a commit."
        if dirty
        else "",
        "",
        "# metarim report",
        "",
        f"Produced by `{command}` on {time.strftime('%Y-%m-%d %H:%M')}." if command else "",
        "",
        f"{len(runs)} runs ({sum(r.done is not None for r in runs)} complete): agents "
        f"{', '.join(_agent_order(r.agent for r in runs))}; envs {', '.join(sorted({r.env for r in runs}))}; "
        f"seeds {seeds}; budget {', '.join(f'{b:,}' for b in budgets)} steps per run; success threshold "
        f"{', '.join(map(str, threshold))}.",
        "",
        _limits(runs),
        "",
        "| env | agent | runs | final stage (per seed) | shifts "
        "| stage 0 mastered | shifts mastered | frames to threshold after a shift: KM restricted mean (tau) "
        "| KM median | held-out success: mean [95% CI] "
        "| wall time / run | steps/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env']} | {r['agent']} | {r['complete']}/{r['seeds']} | {_fmt_stages(r['final_stages'])} "
            f"| {r['shifts_mean']:g} | {r['initial_mastered']} | {r['adapt_mastered']} | {_fmt_km(r['km'])} "
            f"| {_fmt_ci(r['heldout_success'], r['heldout_seeds'])} "
            f"| {r['wall_time_s']:.0f} s "
            f"| {r['fps']:.0f} |"
        )
    lines += verdict
    sections = {
        "learning_curves": (
            "Learning curves",
            "Training success rate (episodes of whatever stage the agent is in; drops mark shifts, ticks at the "
            "bottom mark each run's shifts) against environment frames and against training wall time. Line: "
            "mean over seeds; band: 95 % percentile-bootstrap CI over seeds. Wall time includes evaluations and "
            "depends on how busy the machine was while each run ran: compare it only between runs made side by "
            "side on an otherwise idle machine.",
        ),
        "adaptation": (
            "Frames to threshold after a shift (Kaplan–Meier)",
            "Fraction of stage visits after a shift that have not yet reached the success threshold, against "
            "frames since the shift (`mastery.csv`), pooled over seeds and shifts. A visit that never reached it "
            "(stage left or budget spent) is censored at the frames it lasted: it leaves the risk set there and "
            "never enters a mean. The table's restricted mean is the area under this curve up to one tau shared by "
            "the agents of an env (the smallest of their longest visits); the median is the first frame where the "
            "curve drops to 0.5 ('not reached' if it never does). Lower is better. Band: pointwise 95 % (log-log).",
        ),
        "zero_shot": (
            "Zero-shot transfer",
            "Success rate on the held-out stage (never trained on) after training. Bars: mean over seeds with "
            "95 % bootstrap CI; dots: seeds (each from the run's final evaluation, with a Wilson CI in "
            "final_eval.json).",
        ),
        "unit_activity": (
            "Unit activity",
            "Fraction of rollout steps on which each RIM unit was active, per task (rows sum to k). Units are "
            "numbered independently in each seed: compare patterns within a panel, not unit numbers across panels.",
        ),
    }
    for key, (title, text) in sections.items():
        lines += ["", f"## {title}", "", text, "", f"![{title}]({images[key]})"]
    lines += extra
    lines += ["", "## Files", "", "`summary.csv`: one row per run; `aggregate.csv`: the table above.", ""]
    if versions:
        lines += ["## Versions", "", ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    if not lines[0]:
        lines = lines[2:]
    return "\n".join(lines)


def build_report(
    paths: Iterable[str | Path],
    out: str | Path,
    command: str = "",
    reference: str | None = None,
    claims: Claims | None = None,
    planned: Iterable[tuple[str, str, int]] | None = None,
) -> dict[str, Path]:
    """
    Write the report of the runs found under ``paths`` into ``out``.

    :param paths: run folders or folders containing them.
    :param out: the report folder (created).
    :param command: the command that produced the report (quoted in ``report.md``).
    :param reference: the agent the paired comparisons compare the others with (default: the claims' reference,
        else meta-rim).
    :param claims: claims to give a verdict on (a ``Verdict`` section near the top of ``report.md``), e.g. a
        comparison preset's ``claims``.
    :param planned: the (env, agent, seed) runs of the grid behind the claims: the verdict says which are missing.
    :return: the written files by name (``summary``, ``aggregate``, the plots, ``report``).
    :raises ValueError: if ``reference`` differs from the claims' reference.
    """
    from metarim_sb3.experiments.reporting import plots

    if claims is not None and reference not in (None, claims.reference):
        raise ValueError(f"reference must be the claims' reference {claims.reference!r}, got {reference!r}")
    reference = reference or (claims.reference if claims else "meta-rim")
    out = Path(out)
    check_out_folder(out)
    runs = [load_run(p) for p in find_runs(paths)]
    out.mkdir(parents=True, exist_ok=True)
    written = {"summary": out / "summary.csv", "aggregate": out / "aggregate.csv"}
    _write_summary(runs, written["summary"])
    rows = aggregate(runs)
    _write_aggregate(rows, written["aggregate"])
    images = {}
    for name, draw in (
        ("learning_curves", plots.learning_curves),
        ("adaptation", plots.adaptation),
        ("zero_shot", plots.zero_shot),
        ("unit_activity", plots.unit_activity),
    ):
        written[name] = draw(runs, out / f"{name}.png")
        images[name] = f"{name}.png"
    auc_rows = adaptation_auc_rows(runs)
    written["adaptation_auc"] = plots.adaptation_auc(auc_rows, out / "adaptation_auc.png")
    written["drift"] = plots.drift(runs, drift_groups(runs), out / "drift.png")
    greedy = {bool(r.config.get("deterministic_eval")) for r in runs}
    actions = (
        "greedy actions"
        if greedy == {True}
        else "sampled actions"
        if greedy == {False}
        else "greedy or sampled actions (runs differ)"
    )
    extra = _auc_markdown(auc_rows, "adaptation_auc.png", actions)
    written["forgetting"] = plots.stage_heatmaps(runs, out / "forgetting.png")
    extra += _forgetting_markdown(forgetting_rows(runs), "forgetting.png")
    extra += _zero_shot_markdown(zero_shot_rows(runs))
    extra += _zero_shot_mastery_markdown(zero_shot_mastery_rows(runs))
    comparisons = paired_rows(runs, reference)
    verdict = []
    if claims:
        envs = sorted({r.env for r in runs})
        by_env = {e: judge(claims, paired_rows([r for r in runs if r.env == e], reference)) for e in envs}
        complete = [(r.env, r.agent, r.seed) for r in runs if r.done is not None]
        missing = missing_runs(planned, complete) if planned is not None else ""
        if claims.rule == "v2":
            verdict = _verdict_v2(runs, claims, missing)
        else:
            verdict = verdict_markdown(claims, judge(claims, comparisons), envs, by_env, missing)
    from metarim_sb3.experiments.training.generalization import report_section  # zero-shot tests of one-stage runs

    tests, files = report_section(runs, out, command)
    written.update(files)
    verdict += tests  # after the summary table: the result of a grid that tests each run on several envs
    extra += _paired_markdown(comparisons, reference)
    extra += _drift_markdown(runs, "drift.png")
    extra += _cost_markdown(runs)
    written["report"] = out / "report.md"
    written["report"].write_text(_markdown(runs, rows, images, command, extra, verdict), encoding="utf-8")
    return written
