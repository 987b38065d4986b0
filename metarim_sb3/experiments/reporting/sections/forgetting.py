"""The report's forgetting section: success on each stage when it was first left minus its success later
(``stage_eval.csv``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import TypedDict

from metarim_sb3.experiments.reporting.formatting import format_estimate
from metarim_sb3.experiments.reporting.metrics import ForgettingRow, forgetting, stage_time_matrix, visits_from_shifts
from metarim_sb3.experiments.reporting.runs import RunData, agent_order
from metarim_sb3.experiments.reporting.stats import stratified_bootstrap_ci

__all__ = ["ForgettingTableRow", "forgetting_markdown", "forgetting_rows", "run_forgetting"]


class ForgettingTableRow(TypedDict):
    """
    One row of the forgetting table (:func:`forgetting_rows`): how much one agent forgot one stage of one env, over
    seeds (a row per run and stage is a :class:`~metarim_sb3.experiments.reporting.metrics.ForgettingRow`).
    """

    #: Environment id.
    env: str
    #: Agent name.
    agent: str
    #: The stage (index in the curriculum).
    stage: int
    #: Runs with a defined drop on this stage (count of seeds).
    seeds: int
    #: Success rate when the stage was first left minus its success at the last later evaluation, before it became
    #: the training stage again or the run ended (fraction, -1 to 1; positive = forgetting): ``(IQM, low, high)``,
    #: the IQM over seeds and its bootstrap 95 % CI.
    final_drop: tuple[float, float, float]
    #: Success rate when the stage was first left minus its lowest later success (fraction, -1 to 1):
    #: ``(IQM, low, high)`` as ``final_drop``.
    max_drop: tuple[float, float, float]
    #: Why the other runs have no drop on this stage: reason -> runs (count).
    reasons: dict[str, int]


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


def forgetting_rows(runs: list[RunData]) -> list[ForgettingTableRow]:
    """
    :param runs: loaded runs.
    :return: one :class:`ForgettingTableRow` per (env, agent, stage) with a per-stage evaluation.
    """
    out: list[ForgettingTableRow] = []
    for env in sorted({r.env for r in runs}):
        for agent in agent_order(r.agent for r in runs if r.env == env):
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


def forgetting_markdown(rows: Sequence[ForgettingTableRow], image: str) -> list[str]:
    """
    :param rows: from :func:`forgetting_rows`.
    :param image: the heatmap's file name, relative to ``report.md``.
    :return: the section's lines.
    """
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
