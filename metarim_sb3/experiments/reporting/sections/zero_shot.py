"""The report's zero-shot sections: held-out success during training at fixed frame counts
(``heldout_eval.csv``) and at the first mastery of the last training stage (``zero_shot_mastery.csv``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

from metarim_sb3.experiments.reporting.formatting import format_estimate
from metarim_sb3.experiments.reporting.runs import RunData, agent_order
from metarim_sb3.experiments.reporting.stats import stratified_bootstrap_ci, wilson_interval

__all__ = [
    "ZeroShotMasteryRow",
    "ZeroShotRow",
    "zero_shot_markdown",
    "zero_shot_mastery_markdown",
    "zero_shot_mastery_rows",
    "zero_shot_rows",
]


class ZeroShotRow(TypedDict):
    """
    One row of the table of held-out success during training (:func:`zero_shot_rows`): one agent on one env at one
    evaluation frame count.
    """

    #: Environment id.
    env: str
    #: Agent name.
    agent: str
    #: Training frames (environment steps) at the evaluation.
    frames: float
    #: Per seed with a success rate at these frames, sorted: ``(seed, rate, low, high)``, the held-out success
    #: rate (fraction) and its Wilson 95 % interval (successes = rate x episodes, rounded).
    per_seed: list[tuple[int, float, float, float]]
    #: Seeds with a success rate at these frames (count).
    seeds: int
    #: Held-out success rate (fraction): ``(IQM, low, high)``, the IQM over seeds and its bootstrap 95 % CI.
    estimate: tuple[float, float, float]


class ZeroShotMasteryRow(TypedDict):
    """
    One row of the table of held-out success at the first mastery of the last training stage
    (:func:`zero_shot_mastery_rows`): one agent on one env.
    """

    #: Environment id.
    env: str
    #: Agent name.
    agent: str
    #: Runs that recorded ``zero_shot_mastery.csv`` (count).
    recorded: int
    #: Of them, runs that never mastered the last training stage (count of seeds; censored, never averaged).
    not_reached: int
    #: Per reached seed with a success rate, sorted by seed: ``(seed, rate, low, high, frames)``, the held-out
    #: success rate (fraction), its Wilson 95 % interval and the training frames at mastery.
    per_seed: list[tuple[int, float, float, float, int]]
    #: Reached seeds with a success rate (count).
    seeds: int
    #: Held-out success rate (fraction): ``(IQM, low, high)``, the IQM over the reached seeds and its bootstrap
    #: 95 % CI.
    estimate: tuple[float, float, float]


def zero_shot_rows(runs: list[RunData], n_points: int = 4) -> list[ZeroShotRow]:
    """
    Held-out success during training at fixed frame counts (``heldout_eval.csv``): the evaluation frames every
    run of an env shares, thinned to ``n_points`` evenly spread ones (the last always kept).

    :param runs: loaded runs.
    :param n_points: frame counts per env.
    :return: one :class:`ZeroShotRow` per (env, agent, frame count).
    """
    rows: list[ZeroShotRow] = []
    for env in sorted({r.env for r in runs}):
        env_runs = [r for r in runs if r.env == env and r.heldout is not None and r.heldout["timesteps"].size]
        if not env_runs:
            continue
        common = set.intersection(*(set(r.heldout["timesteps"].tolist()) for r in env_runs if r.heldout))
        frames = sorted(common)
        if len(frames) > n_points:
            frames = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, n_points).round()]
        for agent in agent_order(r.agent for r in env_runs):
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


def zero_shot_markdown(rows: Sequence[ZeroShotRow]) -> list[str]:
    """
    :param rows: from :func:`zero_shot_rows`.
    :return: the section's lines.
    """
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


def zero_shot_mastery_rows(runs: list[RunData]) -> list[ZeroShotMasteryRow]:
    """
    Held-out success when the last training stage was first mastered (``zero_shot_mastery.csv``). Runs that never
    mastered it are counted (``not_reached``), never averaged; runs that did not record it are left out.

    :param runs: loaded runs.
    :return: one :class:`ZeroShotMasteryRow` per (env, agent) with a recorded run.
    """
    rows: list[ZeroShotMasteryRow] = []
    for env in sorted({r.env for r in runs}):
        recorded = [r for r in runs if r.env == env and r.zero_shot_mastery is not None]
        for agent in agent_order(r.agent for r in recorded):
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


def zero_shot_mastery_markdown(rows: Sequence[ZeroShotMasteryRow]) -> list[str]:
    """
    :param rows: from :func:`zero_shot_mastery_rows`.
    :return: the subsection's lines.
    """
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
