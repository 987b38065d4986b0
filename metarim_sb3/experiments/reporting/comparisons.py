"""Comparisons between agents on the seeds both ran (numpy and scipy).

- **Paired comparisons** (:func:`paired_differences`, :func:`holm`): per-seed differences against a reference
  agent on the same seeds: IQM of the differences with a stratified bootstrap CI
  (:mod:`~metarim_sb3.experiments.reporting.stats`), the probability of improvement (Agarwal et al. 2021) with a
  bootstrap CI, a sign-flip permutation p-value (scipy) and Holm's correction across agents.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from metarim_sb3.experiments.reporting.metrics import ArrayLike, _vector
from metarim_sb3.experiments.reporting.stats import iqm, stratified_bootstrap_ci

__all__ = ["PAIRED_METRICS", "PairedComparison", "holm", "paired_differences", "probability_of_improvement"]


#: The per-seed metrics a report compares between agents (and a preset's claims may name).
PAIRED_METRICS = ("adaptation AUC", "zero-shot success")


# ---------------------------------------------------------------------------------- paired comparisons
def holm(p_values: ArrayLike) -> np.ndarray:
    """
    Holm's step-down adjustment of p-values (family-wise error control across several comparisons).

    The ``k``-th smallest of ``m`` p-values is multiplied by ``m - k + 1`` (k from 1), made non-decreasing in
    that order, and capped at 1. NaNs are left out of ``m`` and stay NaN.

    :param p_values: the raw p-values.
    :return: the adjusted p-values, in the input order.
    """
    p = _vector("p_values", p_values)
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(~np.isnan(p))
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("p_values must lie in [0, 1]")
    m = finite.size
    order = finite[np.argsort(p[finite], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out


def _poi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + 0.5 P(X = Y) over all pairs, along the last axis (leading axes broadcast)."""
    gt = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    eq = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return gt + 0.5 * eq


def probability_of_improvement(
    x_by_task: Sequence[ArrayLike], y_by_task: Sequence[ArrayLike], n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """
    Probability of improvement of X over Y (Agarwal et al. 2021, as in rliable): per task the mean over every
    pair ``(x_i, y_j)`` of ``1[x_i > y_j] + 0.5 * 1[x_i = y_j]`` (the Mann–Whitney U statistic over ``n * m``),
    averaged over tasks; the CI resamples X and Y independently within each task (stratified bootstrap).

    :param x_by_task: scores of X, one sequence per task (NaNs dropped; a task empty on either side is skipped).
    :param y_by_task: scores of Y, same tasks in the same order.
    :param n_boot: bootstrap resamples.
    :param seed: seed of the resampling.
    :return: ``(point, low, high)``; all ``nan`` if no task has scores on both sides.
    """
    if len(x_by_task) != len(y_by_task):
        raise ValueError(f"x_by_task and y_by_task must list the same tasks, got {len(x_by_task)} and {len(y_by_task)}")
    pairs = []
    for xs, ys in zip(x_by_task, y_by_task, strict=True):
        a, b = np.asarray(xs, dtype=float).ravel(), np.asarray(ys, dtype=float).ravel()
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        if a.size and b.size:
            pairs.append((a, b))
    if not pairs:
        return math.nan, math.nan, math.nan
    point = float(np.mean([_poi(a, b) for a, b in pairs]))
    rng = np.random.default_rng(seed)
    boot = np.zeros(n_boot)
    for a, b in pairs:
        boot += _poi(a[rng.integers(0, a.size, (n_boot, a.size))], b[rng.integers(0, b.size, (n_boot, b.size))])
    boot /= len(pairs)
    return point, float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


@dataclass(frozen=True)
class PairedComparison:
    """One agent against the reference agent on the seeds both ran."""

    agent: str
    reference: str
    #: (task, seed) pairs compared, and tasks they span.
    n_pairs: int
    n_tasks: int
    #: IQM of the per-seed differences (agent minus reference) with its stratified bootstrap 95 % CI.
    iqm_diff: tuple[float, float, float]
    #: Probability that the agent scores higher than the reference, with its bootstrap 95 % CI.
    poi: tuple[float, float, float]
    #: Two-sided sign-flip permutation p-value of the mean difference (scipy), and Holm-adjusted across agents.
    p_value: float
    p_holm: float


def _sign_flip_p(d: np.ndarray, n_resamples: int, seed: int) -> float:
    if d.size == 0:
        return math.nan
    if d.size == 1 or np.all(d == 0):  # both sign patterns of one difference are as extreme: p = 1
        return 1.0
    res = sps.permutation_test(
        (d,),
        np.mean,
        permutation_type="samples",  # one sample: flips the sign of each difference (exact when 2**n is small)
        alternative="two-sided",
        n_resamples=n_resamples,
        rng=np.random.default_rng(seed),
    )
    return float(res.pvalue)


def paired_differences(
    scores_by_agent: Mapping[str, Mapping[Hashable, Mapping[Hashable, float]]],
    reference: str,
    higher_is_better: bool = True,
    n_boot: int = 2000,
    n_resamples: int = 9999,
    seed: int = 0,
) -> list[PairedComparison]:
    """
    Compare every agent with ``reference`` on the seeds both ran, task by task.

    For each agent: the differences ``agent - reference`` per (task, seed) present for both (NaN scores
    dropped); their IQM with a stratified bootstrap CI (strata: tasks; :func:`~.stats.stratified_bootstrap_ci`);
    the probability of improvement (:func:`probability_of_improvement`) on the same seeds; a two-sided sign-flip
    permutation test of the mean difference (``scipy.stats.permutation_test``; exact for up to 13 pairs with the
    default ``n_resamples``); and Holm's adjustment (:func:`holm`) of those p-values across the agents.

    :param scores_by_agent: ``agent -> task -> seed -> score`` (e.g. an adaptation AUC per env and seed).
    :param reference: the agent the others are compared with (a key of ``scores_by_agent``).
    :param higher_is_better: ``False`` for costs (e.g. frames): the differences and the probability of
        improvement are then taken on the negated scores, so a positive difference still means "better".
    :param n_boot: bootstrap resamples of the intervals.
    :param n_resamples: permutation resamples of the test (all sign patterns when there are fewer).
    :param seed: seed of the resampling.
    :return: one comparison per other agent, in the order of ``scores_by_agent``.
    """
    if reference not in scores_by_agent:
        raise ValueError(f"reference must be one of the agents {sorted(scores_by_agent)}, got {reference!r}")
    sign = 1.0 if higher_is_better else -1.0
    ref = scores_by_agent[reference]
    results = []
    for agent, tasks in scores_by_agent.items():
        if agent == reference:
            continue
        diffs: list[np.ndarray] = []
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        for task in tasks:
            if task not in ref:
                continue
            seeds = [s for s in tasks[task] if s in ref[task]]
            x = sign * np.array([tasks[task][s] for s in seeds], dtype=float)
            y = sign * np.array([ref[task][s] for s in seeds], dtype=float)
            ok = ~(np.isnan(x) | np.isnan(y))
            if ok.any():
                diffs.append(x[ok] - y[ok])
                xs.append(x[ok])
                ys.append(y[ok])
        pooled = np.concatenate(diffs) if diffs else np.zeros(0)
        strata = [d.tolist() for d in diffs]
        diff_ci = stratified_bootstrap_ci(strata, iqm, n_boot=n_boot, seed=seed) if diffs else (math.nan,) * 3
        poi = probability_of_improvement(xs, ys, n_boot=n_boot, seed=seed)
        p = _sign_flip_p(pooled, n_resamples, seed)
        results.append(PairedComparison(agent, reference, int(pooled.size), len(diffs), diff_ci, poi, p, math.nan))
    adjusted = holm([r.p_value for r in results]) if results else np.zeros(0)
    return [
        PairedComparison(r.agent, r.reference, r.n_pairs, r.n_tasks, r.iqm_diff, r.poi, r.p_value, float(a))
        for r, a in zip(results, adjusted, strict=True)
    ]
