"""Metrics of metarim_sb3.experiments.reporting (metrics, comparisons, formatting) on hand-made curves with answers
worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metarim_sb3.experiments.reporting.comparisons import holm, paired_differences, probability_of_improvement
from metarim_sb3.experiments.reporting.formatting import format_column, format_estimate, format_number, interval_allowed
from metarim_sb3.experiments.reporting.metrics import (
    Visit,
    adaptation_auc,
    forgetting,
    frames_to_threshold_km,
    stage_time_matrix,
    visit_aucs,
    visits_from_shifts,
)

# ------------------------------------------------------------------------------------------- adaptation AUC


def test_auc_of_a_linear_ramp_is_one_half() -> None:
    result = adaptation_auc([0, 10, 20], [0.0, 0.5, 1.0], shift_at=0, horizon=20)
    assert result.auc == pytest.approx(0.5) and result.reason == "" and result.n_evals == 3


def test_auc_start_is_carried_back_and_end_interpolated() -> None:
    # start: 0.2 (first evaluation, 2 frames after the shift) on [100, 102]; trapezoids to 112 and to the
    # horizon end 120, where the curve is interpolated between 112 (0.6) and 122 (1.0): 0.92
    result = adaptation_auc([122, 102, 112, 90], [1.0, 0.2, 0.6, 0.9], shift_at=100, horizon=20)
    area = 2 * 0.2 + 10 * (0.2 + 0.6) / 2 + 8 * (0.6 + 0.92) / 2
    assert result.auc == pytest.approx(area / 20)
    assert result.n_evals == 2  # 102 and 112; the evaluation at 90 (before the shift) is not used


def test_auc_is_nan_with_a_reason_when_the_horizon_is_not_covered() -> None:
    censored = adaptation_auc([0, 10, 20], [0.0, 0.5, 1.0], shift_at=0, horizon=30)
    assert math.isnan(censored.auc) and "end at 20" in censored.reason
    left = adaptation_auc([0, 10, 20, 30], [0.0, 0.5, 1.0, 1.0], shift_at=0, horizon=30, left_at=25)
    assert math.isnan(left.auc) and "left at 25" in left.reason
    late = adaptation_auc([5, 10, 20], [0.0, 0.5, 1.0], shift_at=0, horizon=20, max_start_gap=4)
    assert math.isnan(late.auc) and "within 4" in late.reason
    assert adaptation_auc([5, 10, 20], [0.0, 0.5, 1.0], shift_at=0, horizon=20, max_start_gap=5).reason == ""


def test_auc_ignores_nan_evaluations_and_rejects_bad_input() -> None:
    assert adaptation_auc([0, 5, 10], [1.0, math.nan, 1.0], 0, 10).auc == pytest.approx(1.0)
    with pytest.raises(ValueError, match="horizon"):
        adaptation_auc([0, 10], [0.0, 1.0], 0, 0)
    with pytest.raises(ValueError, match="same length"):
        adaptation_auc([0, 10], [0.0], 0, 10)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adaptation_auc([0, 10], [0.0, 2.0], 0, 10)


def test_a_run_that_never_shifts_has_one_visit() -> None:
    visits = visits_from_shifts([], [])
    assert visits == [Visit(stage=0, entered_at=0.0, left_at=None, revisit=False)]
    frames = np.arange(0, 101, 10)
    (visit, auc), = visit_aucs(frames, [0] * frames.size, np.full(frames.size, 0.5), visits, horizon=50)  # fmt: skip
    assert visit.stage == 0 and auc.auc == pytest.approx(0.5)


def test_visits_of_a_cycle_and_a_censored_last_visit() -> None:
    visits = visits_from_shifts([40, 80, 90], [1, 2, 0])
    assert [(v.stage, v.entered_at, v.left_at, v.revisit) for v in visits] == [
        (0, 0, 40, False), (1, 40, 80, False), (2, 80, 90, False), (0, 90, None, True),
    ]  # fmt: skip
    # stage_eval rows every 10 frames: each seen stage at every time; success 1 on stage 1, 0 elsewhere
    frames, stages, success = [], [], []
    for t in range(0, 101, 10):
        for s in sorted({v.stage for v in visits if v.entered_at <= t}):
            frames.append(t)
            stages.append(s)
            success.append(1.0 if s == 1 else 0.0)
    aucs = [a for _, a in visit_aucs(frames, stages, success, visits, horizon=30)]
    assert aucs[0].auc == 0.0 and aucs[1].auc == 1.0
    assert math.isnan(aucs[2].auc) and "left at 90" in aucs[2].reason  # left after 10 frames
    assert math.isnan(aucs[3].auc) and "end at 100" in aucs[3].reason  # the budget ran out
    with pytest.raises(ValueError, match="increasing"):
        visits_from_shifts([20, 10], [1, 2])


# ------------------------------------------------------------------------------------------- Kaplan–Meier


def test_km_by_hand_with_censoring_and_ties() -> None:
    # 6 visits: reached at 10, 20, 20, 40; censored at 30 and 50.
    # S: 5/6 after 10; 5/6 * 3/5 = 1/2 after 20 (two events among 5 at risk); 1/2 * 1/2 = 1/4 after 40
    km = frames_to_threshold_km([10, 20, 20, 40, 30, 50], [True, True, True, True, False, False], tau=45)
    np.testing.assert_allclose(km.times, [10, 20, 30, 40, 50])
    np.testing.assert_allclose(km.survival, [5 / 6, 1 / 2, 1 / 2, 1 / 4, 1 / 4])
    assert km.n == 6 and km.n_events == 4 and km.median == 20
    assert km.rmst == pytest.approx(10 * 1 + 10 * 5 / 6 + 20 * 1 / 2 + 5 * 1 / 4) and km.reason == ""
    np.testing.assert_allclose(km.survival_at([0, 10, 25, 60]), [1, 5 / 6, 1 / 2, 1 / 4])
    assert np.all((km.low <= km.survival) & (km.survival <= km.high))


def test_km_without_censoring_gives_the_plain_capped_mean() -> None:
    km = frames_to_threshold_km([10, 20, 30, 40], [True] * 4)
    assert km.rmst == pytest.approx(25.0) and km.median == 20
    assert frames_to_threshold_km([10, 20, 30, 40], [True] * 4, tau=25).rmst == pytest.approx(20.0)
    assert frames_to_threshold_km([5], [True], tau=10).rmst == pytest.approx(5.0)  # one visit; S = 0 after 5


def test_censored_values_never_enter_the_mean() -> None:
    short = frames_to_threshold_km([10, 20], [True, False], tau=15)
    long = frames_to_threshold_km([10, 1000], [True, False], tau=15)
    assert short.rmst == long.rmst == pytest.approx(10 + 5 * 0.5)


def test_km_all_censored_and_tau_past_the_data() -> None:
    km = frames_to_threshold_km([30, 50], [False, False])
    assert km.n_events == 0 and np.all(km.survival == 1) and math.isnan(km.median)  # median not reached
    assert km.rmst == 50  # nobody reached the threshold within 50 frames
    beyond = frames_to_threshold_km([30, 50], [False, False], tau=60)
    assert math.isnan(beyond.rmst) and "past the longest" in beyond.reason
    with pytest.raises(ValueError, match="durations"):
        frames_to_threshold_km([], [])
    with pytest.raises(ValueError, match="observed"):
        frames_to_threshold_km([1, 2], [True])
    with pytest.raises(ValueError, match="tau"):
        frames_to_threshold_km([1, 2], [True, True], tau=0)


# ---------------------------------------------------------------------------------------------- forgetting
FRAMES = [0, 10, 20, 30, 40]
MATRIX = [
    [0.2, 0.8, 0.6, 0.4, 0.5],  # stage 0: left at 10
    [math.nan, math.nan, 0.9, 0.7, 0.8],  # stage 1: left at 30, better later
    [math.nan, math.nan, math.nan, math.nan, 0.3],  # stage 2: never left
]


def test_forgetting_final_and_max_drop() -> None:
    rows = forgetting(MATRIX, FRAMES, [10, 30, None])
    assert (rows[0].reference_frame, rows[0].reference_success, rows[0].final_success) == (10, 0.8, 0.5)
    assert rows[0].final_drop == pytest.approx(0.3) and rows[0].max_drop == pytest.approx(0.4)
    assert rows[0].n_later == 3 and rows[0].reason == ""
    assert rows[1].final_drop == pytest.approx(-0.1) and rows[1].max_drop == pytest.approx(-0.1)
    assert math.isnan(rows[2].final_drop) and rows[2].reason == "never mastered or left"


def test_forgetting_reference_between_evaluations_until_and_no_later_evaluation() -> None:
    rows = forgetting(MATRIX, FRAMES, [15, 40, None], until_frames=[30, None, None], stage_ids=[3, 4, 5])
    assert rows[0].stage == 3 and rows[0].reference_frame == 20  # first evaluation at or after 15
    assert rows[0].final_success == 0.4 and rows[0].n_later == 1  # only 30: 40 is after `until`
    assert rows[1].reason == "no later evaluation" and rows[1].reference_success == 0.8
    with pytest.raises(ValueError, match="reference_frames"):
        forgetting(MATRIX, FRAMES, [10])
    with pytest.raises(ValueError, match="increasing"):
        forgetting(MATRIX, [0, 10, 10, 30, 40], [10, 30, None])


def test_stage_time_matrix_from_long_rows() -> None:
    stage_ids, times, matrix = stage_time_matrix([0, 10, 10, 20, 20], [0, 1, 0, 0, 1], [0.1, 0.5, 0.2, 0.3, 0.6])
    assert stage_ids.tolist() == [0, 1] and times.tolist() == [0, 10, 20]
    np.testing.assert_allclose(matrix, [[0.1, 0.2, 0.3], [math.nan, 0.5, 0.6]])


# -------------------------------------------------------------------------------------- paired comparisons


def test_holm_on_known_p_values() -> None:
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(holm([0.02, math.nan, 0.04]), [0.04, math.nan, 0.04])  # NaN not counted in m
    assert holm([0.2]).tolist() == [0.2]
    with pytest.raises(ValueError, match="p_values"):
        holm([1.5])


def test_probability_of_improvement_on_known_pairs() -> None:
    # x > y in 5 of the 9 pairs, ties in 2: (5 + 0.5 * 2) / 9
    point, low, high = probability_of_improvement([[1, 2, 3]], [[0, 1, 3]])
    assert point == pytest.approx(6 / 9) and low <= point <= high
    back = probability_of_improvement([[0, 1, 3]], [[1, 2, 3]])[0]
    assert point + back == pytest.approx(1.0)
    # averaged over tasks: always better in one, always worse in the other
    assert probability_of_improvement([[5, 6], [0, 1]], [[1, 2], [5, 6]])[0] == pytest.approx(0.5)
    assert probability_of_improvement([[5, 6]], [[1, 2]]) == (1.0, 1.0, 1.0)
    assert probability_of_improvement([[1.0, 1.0]], [[1.0, 1.0]])[0] == 0.5  # all ties
    assert all(math.isnan(v) for v in probability_of_improvement([[math.nan]], [[1.0]]))


def test_paired_differences_against_a_reference() -> None:
    scores = {
        "meta-rim": {"A": {0: 0.9, 1: 0.8, 2: 0.7, 3: 0.6}, "B": {0: 0.5}},
        "lstm": {"A": {0: 0.8, 1: 0.6, 2: 0.4, 3: 0.2}, "B": {1: 0.4}},  # B: no common seed
        "rim": {"A": {0: 0.9, 1: 0.8, 2: 0.7, 3: 0.6, 4: 0.1}},  # seed 4: no reference run
    }
    lstm, rim = paired_differences(scores, "meta-rim", n_boot=500)
    assert (lstm.agent, lstm.reference, lstm.n_pairs, lstm.n_tasks) == ("lstm", "meta-rim", 4, 1)
    # differences -0.1, -0.2, -0.3, -0.4: IQM of the middle two; exact sign-flip p-value 2 / 16
    assert lstm.iqm_diff[0] == pytest.approx(-0.25) and lstm.iqm_diff[1] <= -0.25 <= lstm.iqm_diff[2]
    assert lstm.p_value == pytest.approx(0.125)
    # P(lstm > meta-rim) over all 16 pairs: 0.8 > 0.7 and 0.8 > 0.6; ties 0.8 = 0.8 and 0.6 = 0.6 -> (2 + 1) / 16
    assert lstm.poi[0] == pytest.approx(3 / 16)
    assert rim.iqm_diff[0] == 0 and rim.p_value == 1.0 and rim.poi[0] == pytest.approx(0.5)  # identical scores
    np.testing.assert_allclose([lstm.p_holm, rim.p_holm], holm([lstm.p_value, rim.p_value]))


def test_paired_differences_one_seed_and_costs() -> None:
    scores = {"ref": {"A": {0: 100.0}}, "x": {"A": {0: 80.0}}}
    (x,) = paired_differences(scores, "ref", higher_is_better=False, n_boot=200)
    assert x.n_pairs == 1 and x.iqm_diff == (20.0, 20.0, 20.0)  # 20 frames fewer: better, so positive
    assert x.poi[0] == 1.0 and x.p_value == 1.0  # one pair: a sign flip cannot tell anything
    assert not interval_allowed(x.n_pairs)
    with pytest.raises(ValueError, match="reference"):
        paired_differences(scores, "nobody")


# ---------------------------------------------------------------------------------------------- formatting


def test_interval_rule_and_formats() -> None:
    assert not interval_allowed(2) and interval_allowed(3)
    with pytest.raises(ValueError, match="n_seeds"):
        interval_allowed(-1)
    assert format_estimate(0.74, 0.74, 0.74, 2) == "0.74 (n=2: no interval)"
    assert format_estimate(0.74, 0.6, 0.9, 5) == "0.74 [0.60, 0.90]"
    assert format_estimate(20400, 18000, 26300, 5, digits=1, scale=1e3, suffix="k") == "20.4k [18.0k, 26.3k]"
    assert format_estimate(math.nan, 0, 1, 5) == "n/a"
    assert format_number(3.0) == "3" and format_number(2.5) == "2.50" and format_number(None) == "n/a"
    assert format_number(20000, scale=1e3, suffix="k") == "20k"
    assert format_column([1.0, 2.0, math.nan]) == ["1", "2", "n/a"]
    assert format_column([1.0, 2.5], digits=1) == ["1.0", "2.5"]
