"""The interval estimates behind ``metarim evaluate`` and ``metarim report``
(metarim_sb3.experiments.reporting.stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metarim_sb3.experiments.reporting.stats import (
    bootstrap_ci,
    curve_band,
    iqm,
    stratified_bootstrap_ci,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.27753),  # the Wilson interval at 0 %: not the degenerate (0, 0) of the normal approximation
        (5, 10, 0.23659, 0.76341),
        (10, 10, 0.72247, 1.0),
        (80, 100, 0.71117, 0.86663),
    ],
)
def test_wilson_interval_known_values(successes: int, n: int, low: float, high: float) -> None:
    assert wilson_interval(successes, n) == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_is_symmetric_and_empty_is_nan() -> None:
    low, high = wilson_interval(3, 17)
    mirrored = wilson_interval(14, 17)
    assert low == pytest.approx(1 - mirrored[1]) and high == pytest.approx(1 - mirrored[0])
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (list(range(1, 9)), 4.5),  # drops 1, 2 and 7, 8
        ([1.0, 2.0, 3.0, 100.0], 2.5),  # the outlier is trimmed
        ([4.0, 2.0, float("nan"), 9.0, 1.0], 3.0),  # NaN dropped, then 1 2 4 9 -> mean of 2 and 4
        ([3.0, 5.0], 4.0),  # fewer than 4 values: nothing to trim
    ],
)
def test_iqm(values: list[float], expected: float) -> None:
    assert iqm(values) == pytest.approx(expected)


def test_iqm_of_nothing_is_nan() -> None:
    assert math.isnan(iqm([])) and math.isnan(iqm([float("nan")]))


def test_bootstrap_ci_brackets_the_mean_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    small, large = rng.normal(2.0, 1.0, 20), rng.normal(2.0, 1.0, 2000)
    low, high = bootstrap_ci(small, seed=3)
    assert low < small.mean() < high
    assert bootstrap_ci(small, seed=3) == (low, high)
    large_low, large_high = bootstrap_ci(large)
    assert large_high - large_low < (high - low) / 4  # width shrinks like 1 / sqrt(n)
    assert bootstrap_ci([7.0, 7.0, 7.0]) == (7.0, 7.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_bootstrap_ci_with_another_statistic() -> None:
    values = np.arange(10.0)
    low, high = bootstrap_ci(values, statistic=np.median, n_boot=500)
    assert low <= np.median(values) <= high


def test_stratified_bootstrap_resamples_within_strata() -> None:
    """Strata that are constant inside leave nothing to resample: the interval collapses onto the point, which a
    bootstrap of the pooled scores (mixing strata) would not do."""
    strata = [[1.0, 1.0, 1.0], [5.0, 5.0]]
    point, low, high = stratified_bootstrap_ci(strata)
    assert point == pytest.approx(iqm([1, 1, 1, 5, 5]))
    assert low == pytest.approx(point) and high == pytest.approx(point)
    pooled_low, pooled_high = bootstrap_ci(np.concatenate(strata), statistic=iqm, n_boot=2000)
    assert pooled_high - pooled_low > 1.0


def test_stratified_bootstrap_drops_nan_and_empty_strata() -> None:
    point, low, high = stratified_bootstrap_ci([[2.0, float("nan"), 4.0], [], [3.0]])
    assert point == pytest.approx(3.0)
    assert 2.0 <= low <= point <= high <= 4.0
    assert all(math.isnan(v) for v in stratified_bootstrap_ci([[], [float("nan")]]))


def test_curve_band() -> None:
    curves = np.array([[0.0, 1.0, np.nan], [0.0, 3.0, np.nan], [0.0, 2.0, np.nan]])
    mean, low, high = curve_band(curves, n_boot=500)
    assert mean.shape == low.shape == high.shape == (3,)
    assert mean[0] == low[0] == high[0] == 0.0  # seeds agree: no band
    assert mean[1] == pytest.approx(2.0) and 1.0 <= low[1] < 2.0 < high[1] <= 3.0
    assert np.isnan(mean[2]) and np.isnan(low[2]) and np.isnan(high[2])  # no seed has a value there
