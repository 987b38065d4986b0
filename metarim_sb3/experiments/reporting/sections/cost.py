"""The report's Cost section: the measured wall time of the complete runs (``done.json``) and the share the
evaluations took. (What a grid will cost before it runs is :mod:`metarim_sb3.experiments.grid.cost`.)
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from metarim_sb3.experiments.reporting.runs import RunData, agent_order

__all__ = ["cost_markdown"]


def cost_markdown(runs: list[RunData]) -> list[str]:
    """
    Wall time and frames of the complete runs, summed per env and agent, with the grid's total.

    :param runs: loaded runs.
    :return: the section's lines.
    """
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
        for agent in agent_order(a for e, a in groups if e == env):
            group = groups[(env, agent)]
            wall = [float(r.done["wall_time_s"]) for r in group if r.done]
            frames = sum(int(r.done.get("timesteps") or 0) for r in group if r.done)
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
