"""The Verdict section under the study protocol v2 (:mod:`metarim_sb3.experiments.reporting.protocol`): each
env family on its own, then pooled with the declared weights. (The v1 rule's verdict is
:func:`~metarim_sb3.experiments.reporting.claims.verdict_markdown`.)
"""

from __future__ import annotations

import math

from metarim_sb3.experiments.reporting.claims import Claim, Claims
from metarim_sb3.experiments.reporting.protocol import (
    HIGHER_IS_BETTER,
    forgetting_on_return,
    judge_family,
    judge_pooled,
    score_run,
    verdict_markdown_v2,
)
from metarim_sb3.experiments.reporting.runs import RunData, agent_order
from metarim_sb3.experiments.reporting.sections.adaptation import run_visit_aucs

__all__ = ["run_scores_v2", "verdict_v2"]


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
    final = math.nan if run.final_eval is None else float(run.final_eval.get("success_rate", math.nan))
    at_mastery = run.zero_shot_mastery or {}
    mastery = float(at_mastery["success_rate"]) if at_mastery.get("reached") else math.nan
    return score_run(aucs, run.adaptation(), returns, final, mastery, tau)


def verdict_v2(runs: list[RunData], claims: Claims, missing: str) -> list[str]:
    """
    The Verdict section under the v2 rule: each env family on its own, then pooled with the declared weights.

    :param runs: loaded runs (the complete ones are scored).
    :param claims: the claims, with ``rule: v2``.
    :param missing: the sentence naming the planned runs that are missing (``""``: none or not known).
    :return: the section's lines.
    """
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
    pooled, note = judge_pooled(claims, by_family)
    secondary_items = [
        Claim(f"{claims.reference} vs {a}: {m}", m, a) for m in claims.secondary for a in agent_order(
            {c.against for c in claims.items})
    ]  # fmt: skip
    secondary = {
        e: judge_family(secondary_items, [diffs(e, c.metric, c.against) for c in secondary_items], claims.alpha,
                        claims.margin)
        for e in envs
    }  # fmt: skip
    return verdict_markdown_v2(claims, by_family, pooled, note, secondary, missing)
