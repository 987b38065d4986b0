"""The report's forgetting section: success on each stage when it was first left minus its success later
(``stage_eval.csv``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from metarim_sb3.experiments.reporting.formatting import format_estimate
from metarim_sb3.experiments.reporting.metrics import ForgettingRow, forgetting, stage_time_matrix, visits_from_shifts
from metarim_sb3.experiments.reporting.runs import RunData, agent_order
from metarim_sb3.experiments.reporting.stats import stratified_bootstrap_ci

__all__ = ["forgetting_markdown", "forgetting_rows", "run_forgetting"]


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


def forgetting_markdown(rows: list[dict[str, Any]], image: str) -> list[str]:
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
