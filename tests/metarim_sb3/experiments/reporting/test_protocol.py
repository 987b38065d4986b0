"""The study protocol v2's statistics and scores (metarim_sb3.experiments.reporting.protocol), the claims' v2 keys,
and the visit-AUC fix for a stage left just after the horizon (a committed study-v1 run)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from repo_paths import ROOT
from scipy import stats as sps

from metarim_sb3.experiments.reporting.claims import Claim, parse_claims
from metarim_sb3.experiments.reporting.metrics import AdaptationAUC, Visit, visits_from_shifts
from metarim_sb3.experiments.reporting.protocol import (
    forgetting_on_return,
    judge_family,
    judge_pooled,
    paired_test,
    pooled_seeds_needed,
    pooled_test,
    power,
    power_at,
    score_run,
    seeds_needed,
)
from metarim_sb3.experiments.reporting.runs import load_run
from metarim_sb3.experiments.reporting.sections.adaptation import run_visit_aucs

V1_RUNS = ROOT / "results" / "study-v1" / "runs"


def test_paired_test_matches_scipy_one_sided_t_tests() -> None:
    d = np.array([0.10, 0.02, 0.07, -0.01, 0.12, 0.05, 0.03])
    t = paired_test(d, margin=0.05)
    assert t.n == 7 and t.mean == pytest.approx(d.mean()) and t.sd == pytest.approx(d.std(ddof=1))
    assert t.p_above_zero == pytest.approx(sps.ttest_1samp(d, 0, alternative="greater").pvalue)
    assert t.p_below_margin == pytest.approx(sps.ttest_1samp(d, 0.05, alternative="less").pvalue)
    low, high = sps.t.interval(0.95, 6, loc=d.mean(), scale=sps.sem(d))
    assert (t.low, t.high) == pytest.approx((low, high))
    assert t.poi[0] == pytest.approx(6 / 7)  # paired: the share of positive differences
    assert t.iqm[1] <= t.iqm[0] <= t.iqm[2]


def test_paired_test_degenerate_cases() -> None:
    assert math.isnan(paired_test([0.1], 0.05).low)
    same = paired_test([0.2, 0.2, 0.2], 0.05)
    assert (same.p_above_zero, same.p_below_margin) == (0.0, 1.0)
    assert paired_test([np.nan, 0.1, 0.2], 0.05).n == 2  # NaNs dropped


def test_pooled_test_weights_families_and_uses_welch_df() -> None:
    a, b = paired_test([0.1, 0.2, 0.15, 0.12], 0.05), paired_test([0.0, -0.1, 0.05, 0.02, 0.01], 0.05)
    pooled = pooled_test([a, b], [1, 1], 0.05)
    assert pooled.mean == pytest.approx((a.mean + b.mean) / 2)
    se2 = 0.25 * (a.sd**2 / a.n + b.sd**2 / b.n)
    assert pooled.high - pooled.mean == pytest.approx(sps.t.ppf(0.975, pooled.df) * math.sqrt(se2))
    assert 3 < pooled.df < a.n + b.n - 2
    only_a = pooled_test([a, b], [1, 0], 0.05)
    assert only_a.mean == pytest.approx(a.mean)


def test_power_and_seeds_needed_agree() -> None:
    # the normal approximation: n ~ ((z_{1-a} + z_{0.8}) * sd / effect)^2, a little more for the t distribution
    n = seeds_needed(sd=0.1, effect=0.05, alpha=0.05)
    approx = ((sps.norm.ppf(0.95) + sps.norm.ppf(0.8)) * 2) ** 2
    assert n is not None and approx <= n <= approx + 3
    assert power(n, 0.1, 0.05, 0.05) >= 0.8 > power(n - 1, 0.1, 0.05, 0.05)
    assert seeds_needed(0.0, 0.05, 0.05) is None and math.isnan(power(1, 0.1, 0.05, 0.05))


def test_pooled_seeds_needed_is_the_paired_calculation_for_one_family_and_counts_every_family() -> None:
    # one family: the weighted mean is that family's mean, and Welch's df is n - 1: the paired t test itself
    assert pooled_seeds_needed([0.3], [2.0], 0.05, 0.01) == seeds_needed(0.3, 0.05, 0.01)
    # two families with the same SD, equal weights: the pooled mean has SD 0.3 / sqrt(2 n), so about as many pairs in
    # all as one family alone (Welch's df 2 n - 2 instead of 2 n - 1), split evenly
    one, both = seeds_needed(0.3, 0.05, 0.01), pooled_seeds_needed([0.3, 0.3], [1, 1], 0.05, 0.01)
    assert both is not None and one is not None and both % 2 == 0 and one <= both <= one + 3
    # a noisy family with half the weight of a quiet one: more pairs in all than the quiet one alone needs in each of
    # two families, fewer than the noisy one alone
    mixed, quiet, noisy = (
        pooled_seeds_needed([0.6, 0.1], [1, 2], 0.05, 0.01),
        seeds_needed(0.1, 0.05, 0.01),
        seeds_needed(0.6, 0.05, 0.01),
    )
    assert mixed is not None and quiet is not None and noisy is not None and 2 * quiet < mixed < noisy
    assert pooled_seeds_needed([0.0, 0.0], [1, 1], 0.05, 0.01) is None
    assert pooled_seeds_needed([0.3, math.nan], [1, 1], 0.05, 0.01) is None
    assert pooled_seeds_needed([0.3], [1], 0.05, 0.01, most=10) is None


CLAIMS = [Claim("a", "adaptation AUC", "lstm"), Claim("b", "adaptation AUC", "gru"), Claim("c", "x", "rim")]


def test_judge_family_is_symmetric_and_holm_corrected() -> None:
    rng = np.random.default_rng(0)
    better = 0.2 + 0.01 * rng.standard_normal(10)  # clearly positive
    worse = -0.2 + 0.01 * rng.standard_normal(10)  # clearly below the margin
    noisy = 0.02 + 0.5 * rng.standard_normal(10)  # undecided
    results = judge_family(CLAIMS, [better, worse, noisy], alpha=0.05, margin=0.05)
    assert [r.verdict for r in results] == ["supported", "not supported", "inconclusive"]
    raw = [paired_test(d, 0.05) for d in (better, worse, noisy)]
    assert results[0].p_supported >= raw[0].p_above_zero  # Holm never lowers a p-value
    assert results[1].p_not_supported >= raw[1].p_below_margin
    assert results[2].needed is not None and results[2].needed > 10 and 0 < results[2].power < 0.8
    few = judge_family(CLAIMS[:1], [[0.3, 0.3]], 0.05, 0.05)[0]
    assert few.verdict == "inconclusive" and "fewer than 3" in few.reason


def test_judge_family_small_real_advantage_is_supported_and_says_so() -> None:
    d = 0.02 + 0.001 * np.random.default_rng(1).standard_normal(12)
    r = judge_family(CLAIMS[:1], [d], 0.05, 0.05)[0]
    assert r.verdict == "supported" and "real but small" in r.reason


def visits() -> list[Visit]:
    return visits_from_shifts([100, 200, 300, 400], [1, 2, 0, 1], first_stage=0)


def test_forgetting_on_return_reads_the_evaluations_at_the_shifts() -> None:
    frames = np.array([0, 100, 100, 200, 200, 200, 300, 300, 300, 400, 400, 400])
    stages = np.array([0, 1, 0, 2, 0, 1, 0, 1, 2, 1, 0, 2])
    success = np.array([0.1, 0.2, 0.9, 0.1, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    rows = forgetting_on_return(visits(), frames, stages, success)
    # stage 0: left at 100 (0.9), back at 300 (0.6); stage 1: left at 200 (0.7), back at 400 (0.3); stage 2: no return
    assert rows == [(0, 0.9, 0.6), (1, 0.7, 0.3)]


def auc(value: float) -> AdaptationAUC:
    return AdaptationAUC(value, "" if not math.isnan(value) else "undefined", 3)


def test_score_run_splits_first_visits_and_revisits_and_never_averages_a_partial_set() -> None:
    v = visits()
    aucs = list(zip(v, [auc(0.0), auc(0.4), auc(0.6), auc(0.9), auc(0.7)], strict=True))
    mastery = [(50.0, True), (30.0, True), (100.0, False), (10.0, True), (20.0, True)]
    scores = score_run(aucs, mastery, [(0, 0.9, 0.6), (1, 0.7, 0.3)], 0.5, math.nan, tau=80)
    assert scores["adaptation AUC"] == pytest.approx(0.5)  # visits 1 and 2 (stage 0's first visit is not a shift)
    assert scores["re-adaptation AUC"] == pytest.approx(0.8)
    assert scores["time to threshold"] == pytest.approx((30 / 80 + 1.0) / 2)  # unmastered after >= tau: tau
    assert scores["forgetting"] == pytest.approx((0.3 + 0.4) / 2)
    assert scores["zero-shot success"] == 0.5 and math.isnan(scores["zero-shot at mastery"])
    aucs[2] = (v[2], auc(math.nan))
    short = [(50.0, True), (30.0, True), (60.0, False), (10.0, True), (20.0, True)]  # censored before tau
    scores = score_run(aucs, short, [], math.nan, 0.3, tau=80)
    assert math.isnan(scores["adaptation AUC"]) and math.isnan(scores["time to threshold"])
    assert math.isnan(scores["forgetting"]) and scores["zero-shot at mastery"] == 0.3
    with pytest.raises(ValueError, match="tau"):
        score_run(None, [], [], 0, 0, tau=0)


def base_claims(**extra: Any) -> dict[str, Any]:
    items = [{"claim": "x", "metric": "re-adaptation AUC", "against": "lstm"}]
    return {"reference": "meta-rim", "alpha": 0.05, "margin": 0.05, "items": items, **extra}


def test_v2_claims_parse_and_bad_ones_name_the_key() -> None:
    ok = base_claims(rule="v2", weights={"E": 1}, tau={"E": 100}, secondary=["forgetting"])
    claims = parse_claims(ok, ["meta-rim", "lstm"], "p")
    assert claims.rule == "v2" and claims.weights == (("E", 1.0),) and claims.tau == (("E", 100),)
    for bad, needle in [
        (base_claims(), "metric"),  # a v2 metric under the v1 rule
        (base_claims(rule="v3"), "rule"),
        (base_claims(rule="v2", weights={"E": 0}, tau={"E": 100}), "weights"),
        (base_claims(rule="v2", weights={"E": 1}, tau={"E": 1.5}), "tau"),
        (base_claims(rule="v2", weights={"E": 1}, tau={"E": 9}, secondary=["speed"]), "secondary"),
    ]:
        with pytest.raises(ValueError, match=needle):
            parse_claims(bad, ["meta-rim", "lstm"], "p")
    v1 = {**base_claims(), "items": [{"claim": "x", "metric": "adaptation AUC", "against": "lstm"}]}
    with pytest.raises(ValueError, match=r"need claims\.rule v2"):
        parse_claims({**v1, "tau": {"E": 9}}, ["meta-rim", "lstm"], "p")


def test_stage_left_just_after_the_horizon_gets_its_auc() -> None:
    # GoTo meta-rim seed 4 of study v1: stage 1 entered at 7,624, horizon 16,384 (ends at 24,008), left at 24,360;
    # the evaluation at the next rollout end (24,576) is the policy that left, flagged current=0. It used to make
    # the visit "training ended before the horizon"; it closes the visit's curve now.
    run = load_run(V1_RUNS / "MetaRIM-GoTo-v0" / "meta-rim" / "seed_4")
    aucs = run_visit_aucs(run)
    assert aucs is not None
    visit, result = aucs[1]
    assert (visit.stage, visit.entered_at, visit.left_at) == (1, 7624, 24360)
    assert result.reason == "" and result.n_evals == 4  # inside the horizon; the leaving one closes it
    # by hand: 0.5 held back to the shift, the evaluations at 8,192..20,480, and 0.8 -> 0.7 interpolated at 24,008
    xs = [7624, 8192, 12288, 16384, 20480, 24008]
    ys = [0.5, 0.5, 0.6, 0.8, 0.8, 0.8 - 0.1 * (24008 - 20480) / 4096]
    assert result.auc == pytest.approx(np.trapezoid(ys, xs) / 16384)
    # the open last visit still uses no evaluation of another visit, and stage 0 (left early) stays undefined
    assert aucs[0][1].reason.startswith("stage left") and aucs[2][1].reason == ""


def test_power_at_the_standard_error_equals_power_from_the_sd() -> None:
    t = paired_test([0.1, 0.02, 0.07, -0.01, 0.12, 0.05, 0.03], 0.05)
    assert power_at(t.se, t.df, 0.05, 0.01) == pytest.approx(power(t.n, t.sd, 0.05, 0.01))
    pooled = pooled_test([t, t], [1, 1], 0.05)
    assert pooled.se == pytest.approx(t.se / math.sqrt(2)) and power_at(pooled.se, pooled.df, 0.05, 0.01) > 0


def test_the_v2_verdict_says_what_each_score_is_and_its_tau() -> None:
    from metarim_sb3.experiments.grid.presets import compare_preset
    from metarim_sb3.experiments.reporting.protocol import verdict_markdown_v2

    claims = compare_preset("study")["claims"]
    text = "\n".join(verdict_markdown_v2(claims, {}, None, "not computed", {}))
    assert f"so the margin {claims.margin:g} is in their units" in text
    assert "capped at tau and divided by tau" in text and "MetaRIM-DoorKey-v0 40,960" in text
    assert all(name in text for name in ("*adaptation AUC*", "*time to threshold*", "*forgetting*", "*zero-shot"))


def test_the_v2_verdict_says_how_the_pooled_verdict_is_formed() -> None:
    """The pooled rows' mean, interval and 'pairs' differ from the families' (a weighted mean of family means, a
    Welch-Satterthwaite interval, the pairs summed), and a claim with too few pairs in one family has none: the
    verdict's text says so, beside the rows it explains."""
    from metarim_sb3.experiments.grid.presets import compare_preset
    from metarim_sb3.experiments.reporting.protocol import verdict_markdown_v2

    text = "\n".join(verdict_markdown_v2(compare_preset("study")["claims"], {}, None, "not computed", {}))
    assert "**Pooled**: the families' mean advantages weighted by the weights declared in the preset" in text
    assert "Welch-Satterthwaite" in text and "'pairs' is the sum over the families" in text
    assert "fewer than 3 pairs in any family of the pooling gets no pooled test" in text


def test_judge_pooled_pools_weighted_families_and_skips_claims_with_too_few_pairs() -> None:
    from types import SimpleNamespace

    items = [Claim("a", "adaptation AUC", "lstm"), Claim("b", "forgetting", "lstm")]
    claims = SimpleNamespace(items=items, alpha=0.05, margin=0.05, weights=(("E1", 1.0), ("E2", 1.0)))
    e1 = [[0.3, 0.2, 0.25, 0.35], [0.1, 0.2, 0.15]]
    e2 = [[0.1, 0.0, 0.05], [0.1, 0.2]]  # claim b: 2 pairs on E2
    by_family = {"E1": judge_family(items, e1, 0.05, 0.05), "E2": judge_family(items, e2, 0.05, 0.05)}
    pooled, note = judge_pooled(claims, by_family)
    assert pooled is not None and note == "weights fixed in the preset: E1 1, E2 1"
    assert pooled[0].paired.n == 7 and pooled[0].paired.mean == pytest.approx((np.mean(e1[0]) + np.mean(e2[0])) / 2)
    assert pooled[0].paired == pooled_test([by_family["E1"][0].paired, by_family["E2"][0].paired], [1, 1], 0.05)
    assert pooled[1].paired.n == 0 and pooled[1].verdict == "inconclusive" and pooled[1].needed is None
    # one pooled claim tested, so at the full level; sized by the families' SDs, not left blank
    sds = [by_family[e][0].paired.sd for e in ("E1", "E2")]
    assert pooled[0].needed == pooled_seeds_needed(sds, [1, 1], 0.05, 0.05) is not None
    missing, why = judge_pooled(claims, {"E1": by_family["E1"]})
    assert missing is None and why.endswith("; not computed: no complete runs of E2")
