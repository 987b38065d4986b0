"""The report's paired comparisons: every agent against the reference agent on the seeds both ran
(:func:`~metarim_sb3.experiments.reporting.comparisons.paired_differences`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import numpy as np

from metarim_sb3.experiments.reporting.comparisons import PAIRED_METRICS, PairedComparison, paired_differences
from metarim_sb3.experiments.reporting.formatting import format_estimate, interval_allowed
from metarim_sb3.experiments.reporting.runs import RunData
from metarim_sb3.experiments.reporting.sections.adaptation import run_visit_aucs

__all__ = ["paired_markdown", "paired_rows"]


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


def paired_markdown(comparisons: dict[str, list[PairedComparison]], reference: str) -> list[str]:
    """
    :param comparisons: from :func:`paired_rows`.
    :param reference: the reference agent.
    :return: the section's lines (comparisons with fewer than 3 common seeds left out).
    """
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
