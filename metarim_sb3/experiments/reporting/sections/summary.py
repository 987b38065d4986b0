"""The report's summary: ``summary.csv`` (one row per run), the aggregate per env and agent
(``aggregate.csv`` and the table at the top of ``report.md``) and the limits paragraph.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from metarim_sb3.callbacks._common import write_csv
from metarim_sb3.experiments.reporting.formatting import format_estimate, format_number
from metarim_sb3.experiments.reporting.metrics import KaplanMeier
from metarim_sb3.experiments.reporting.runs import RunData, agent_order
from metarim_sb3.experiments.reporting.sections.adaptation import shift_kms
from metarim_sb3.experiments.reporting.stats import bootstrap_ci
from metarim_sb3.experiments.training.result import RunResult

__all__ = ["AggregateRow", "aggregate", "limits", "run_table", "summary_table", "write_aggregate", "write_summary"]


class AggregateRow(TypedDict):
    """
    One row of the aggregate (:func:`aggregate`): one agent on one env, over its runs; a line of ``aggregate.csv``
    and of the table at the top of ``report.md``.
    """

    #: Environment id.
    env: str
    #: Agent name.
    agent: str
    #: Runs found (count of seeds).
    seeds: int
    #: Runs that finished (wrote ``done.json``; count).
    complete: int
    #: Kaplan–Meier estimate of the frames (environment steps) from a shift to the success threshold, pooled over
    #: the runs' shifts; ``None`` without a shift.
    km: KaplanMeier | None
    #: The curriculum stage (index) each run ended in, one per run with a training curve.
    final_stages: list[int]
    #: Median of ``final_stages`` (stage index; NaN without any).
    final_stage_median: float
    #: Curriculum shifts per run (mean over runs).
    shifts_mean: float
    #: Visits after a shift that reached the success threshold, of all such visits (``"reached/total"``).
    adapt_mastered: str
    #: Runs whose first stage reached the success threshold, of the runs with a stage visit (``"reached/runs"``).
    initial_mastered: str
    #: Held-out success rate after training (fraction; ``final_eval.json``): ``(mean, low, high)``, the mean over
    #: seeds and its percentile-bootstrap 95 % CI; all NaN without a final evaluation.
    heldout_success: tuple[float, float, float]
    #: Runs with a final held-out evaluation (count of seeds).
    heldout_seeds: int
    #: Training wall time per finished run (seconds; mean over runs, NaN without one).
    wall_time_s: float
    #: Training speed of the finished runs (environment steps per second; mean over runs, NaN without one).
    fps: float


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


def write_summary(runs: list[RunData], path: Path) -> None:
    """
    Write ``summary.csv``: one row per run (:func:`run_table`).

    :param runs: loaded runs.
    :param path: the CSV to write (with the one CSV writer, :func:`metarim_sb3.callbacks._common.write_csv`).
    """
    header, rows = run_table(runs)
    write_csv(path, [header, *rows])


def run_table(runs: Sequence[RunData]) -> tuple[list[str], list[list[Any]]]:
    """
    :param runs: loaded runs.
    :return: the header of ``summary.csv`` and one row per run, in ``runs`` order: status, budget, speed, final
        stage, held-out success, and the frames of each stage visit with whether it reached the success threshold.
    """
    n_visits = max((len(r.visits) for r in runs), default=0)
    header = ["env", "agent", "seed", "status", "timesteps", "wall_time_s", "fps", "final_stage", "shifts"]
    header += ["heldout_success", "heldout_success_low", "heldout_success_high", "heldout_return"]
    for k in range(n_visits):
        header += [f"adapt_frames_{k}", f"adapt_mastered_{k}"]
    rows: list[list[Any]] = [header]
    for r in runs:
        d: RunResult = r.done or {}
        f = r.final_eval
        ci: list[float] | list[str] = f.get("success_ci", ["", ""]) if f else ["", ""]
        row = [r.env, r.agent, r.seed, "done" if r.done else "incomplete", d.get("timesteps", "")]
        row += [d.get("wall_time_s", ""), d.get("fps", ""), d.get("final_stage", ""), len(r.shifts)]
        row += [f.get("success_rate", "") if f else "", ci[0], ci[1], f.get("mean_return", "") if f else ""]
        for frames, mastered in r.adaptation():
            row += [int(frames), int(mastered)]
        rows.append(row)
    return rows[0], rows[1:]


def aggregate(runs: list[RunData]) -> list[AggregateRow]:
    """
    :param runs: loaded runs.
    :return: one :class:`AggregateRow` per (env, agent): seeds, stage reached, frames to threshold after a shift,
        zero-shot mean with CI, time.
    """
    groups: dict[tuple[str, str], list[RunData]] = defaultdict(list)
    for r in runs:
        groups[(r.env, r.agent)].append(r)
    kms = shift_kms(runs)
    rows: list[AggregateRow] = []
    for env in sorted({r.env for r in runs}):
        for agent in agent_order(a for e, a in groups if e == env):
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


def write_aggregate(rows: Sequence[AggregateRow], path: Path) -> None:
    """
    Write ``aggregate.csv``: the rows of :func:`aggregate`, one per env and agent.

    :param rows: from :func:`aggregate`.
    :param path: the CSV to write (with the one CSV writer, :func:`metarim_sb3.callbacks._common.write_csv`).
    """
    header = [
        *("env", "agent", "seeds", "complete", "final_stage_median", "final_stages", "shifts_mean"),
        *("km_tau", "km_rmst", "km_median", "initial_mastered", "adapt_mastered"),
        *("heldout_success_mean", "heldout_success_low", "heldout_success_high", "wall_time_s", "fps"),
    ]
    table: list[list[Any]] = [header]
    for r in rows:
        table.append(
            [
                *(r["env"], r["agent"], r["seeds"], r["complete"], _integral(r["final_stage_median"])),
                *(" ".join(map(str, r["final_stages"])), r["shifts_mean"]),
                *((_integral(r["km"].tau), r["km"].rmst, _integral(r["km"].median)) if r["km"] else ("", "", "")),
                *(r["initial_mastered"], r["adapt_mastered"]),
                *(*r["heldout_success"], r["wall_time_s"], r["fps"]),
            ]
        )
    write_csv(path, table)


def limits(runs: list[RunData]) -> str:
    """
    The report's limits paragraph: seeds per env and agent (the fewest decide), and what the budgets are.

    :param runs: loaded runs.
    :return: the paragraph.
    """
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


def summary_table(rows: Sequence[AggregateRow]) -> list[str]:
    """
    :param rows: from :func:`aggregate`.
    :return: the lines of the table at the top of ``report.md``: its header, then one row per env and agent.
    """
    lines = [
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
    return lines
