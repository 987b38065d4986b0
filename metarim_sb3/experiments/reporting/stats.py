"""Interval estimates used by ``metarim evaluate`` and ``metarim report`` (numpy only).

- Success rates of one run: the **Wilson score interval** (closed form; unlike the normal approximation it stays
  inside [0, 1] and is sensible at 0 or 100 % success).
- Means of one run (returns): the **percentile bootstrap** over episodes.
- Aggregates over seeds: the **interquartile mean** (IQM, the mean of the middle 50 % of the scores, as
  ``scipy.stats.trim_mean(x, 0.25)``) with a **stratified bootstrap** CI: runs are resampled with replacement
  within each stratum (task, or shift), pooled, and the IQM recomputed — the method of Agarwal et al.,
  "Deep RL at the Edge of the Statistical Precipice" (NeurIPS 2021), re-implemented here rather than depending
  on ``rliable``: rliable's stratified bootstrap takes a rectangular runs x tasks matrix, while our strata are
  ragged (runs pass different numbers of shifts), and it would add arch, scipy, seaborn and pandas to the
  dependencies. ``tests/metarim_sb3/experiments/reporting/test_stats.py`` checks these functions against known values.
  With few seeds these intervals are wide and optimistic; reports say how many seeds they use.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["bootstrap_ci", "curve_band", "iqm", "stratified_bootstrap_ci", "wilson_interval"]

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """
    Wilson score interval of a binomial proportion.

    :param successes: number of successes.
    :param n: number of trials (``0`` gives ``(nan, nan)``).
    :param z: normal quantile (1.96 for 95 %).
    :return: ``(low, high)``.
    """
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact at the ends (no rounding residue)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,  # type: ignore[assignment]
    n_boot: int = 5000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """
    Percentile bootstrap interval of a statistic of i.i.d. values.

    :param values: the sample (NaNs dropped).
    :param statistic: maps a 1-D array to a number.
    :param n_boot: bootstrap resamples.
    :param confidence: interval coverage.
    :param seed: seed of the resampling.
    :return: ``(low, high)``; ``(nan, nan)`` for an empty sample.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.size, size=(n_boot, x.size))]
    stats = np.array([statistic(s) for s in samples]) if statistic is not np.mean else samples.mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """
    Interquartile mean: drop ``floor(n / 4)`` values at each end of the sorted sample, average the rest.

    :param values: the scores (NaNs dropped).
    :return: the IQM (``nan`` for an empty sample).
    """
    x = np.sort(np.asarray(values, dtype=float).ravel())
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan
    cut = x.size // 4
    return float(x[cut : x.size - cut].mean())


def stratified_bootstrap_ci(
    strata: Sequence[Sequence[float]],
    statistic: Callable[[np.ndarray], float] = iqm,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """
    A statistic of the pooled scores of several strata, with a stratified percentile-bootstrap interval.

    :param strata: one sequence of scores (one per run) per stratum; NaNs and empty strata are dropped.
    :param statistic: maps the pooled 1-D array to a number (default :func:`iqm`).
    :param n_boot: bootstrap resamples.
    :param confidence: interval coverage.
    :param seed: seed of the resampling.
    :return: ``(point, low, high)``; all ``nan`` when there is no score.
    """
    cleaned = [x[~np.isnan(x)] for x in (np.asarray(s, dtype=float).ravel() for s in strata)]
    cleaned = [x for x in cleaned if x.size]
    if not cleaned:
        return math.nan, math.nan, math.nan
    point = statistic(np.concatenate(cleaned))
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        stats[b] = statistic(np.concatenate([x[rng.integers(0, x.size, x.size)] for x in cleaned]))
    alpha = (1 - confidence) / 2
    return float(point), float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def curve_band(
    curves: np.ndarray, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Mean curve over seeds with a percentile-bootstrap band (seeds resampled), point by point.

    :param curves: ``(n_seeds, n_points)``; NaN where a seed has no value (ignored at that point).
    :param n_boot: bootstrap resamples.
    :param confidence: band coverage.
    :param seed: seed of the resampling.
    :return: ``(mean, low, high)``, each ``(n_points,)``.
    """
    curves = np.atleast_2d(np.asarray(curves, dtype=float))
    with warnings.catch_warnings():  # all-NaN columns give NaN, which is what a plot should show there
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, axis=0)
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, curves.shape[0], size=(n_boot, curves.shape[0]))
        boot = np.nanmean(curves[idx], axis=1)
        alpha = (1 - confidence) / 2
        low = np.nanquantile(boot, alpha, axis=0)
        high = np.nanquantile(boot, 1 - alpha, axis=0)
    return mean, low, high
