"""The report's parameter-drift section: the distance of each parameter group from its initial values
(``drift.csv``).
"""

from __future__ import annotations

import numpy as np

from metarim_sb3.experiments.reporting.formatting import format_number
from metarim_sb3.experiments.reporting.runs import RunData, agent_order

__all__ = ["drift_groups", "drift_markdown"]


def drift_groups(runs: list[RunData]) -> list[str]:
    """
    :param runs: loaded runs.
    :return: the parameter groups with a ``drift_<group>`` column in some run's ``drift.csv``.
    """
    names = {k.removeprefix("drift_") for r in runs if r.drift for k in r.drift if k.startswith("drift_")}
    return sorted(names)


def drift_markdown(runs: list[RunData], image: str) -> list[str]:
    """
    :param runs: loaded runs.
    :param image: the plot's file name, relative to ``report.md``.
    :return: the section's lines.
    """
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
        for agent in agent_order(r.agent for r in runs if r.env == env):
            group = [r for r in runs if r.env == env and r.agent == agent and r.drift]
            if not group:
                continue
            finals = []
            for g in groups:
                last = [float(r.drift[f"drift_{g}"][-1]) for r in group if r.drift and f"drift_{g}" in r.drift]
                finals.append(format_number(float(np.mean(last)) if last else None, 4))
            lines.append(f"| {env} | {agent} | {len(group)} | " + " | ".join(finals) + " |")
    return [*lines, "", f"![Parameter drift]({image})"]
