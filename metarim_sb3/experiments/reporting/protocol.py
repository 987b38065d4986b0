"""
The study protocol v2: per-run scores, the paired tests, and the verdict of each claim per env family and pooled.

A comparison preset opts in with ``claims: {rule: v2, ...}`` (see :mod:`~metarim_sb3.experiments.reporting.claims`). The
rule, fixed before the runs are read:

- **Scores per run** (:func:`score_run`): the adaptation AUC of the first visits after a shift and of the
  revisits (each visit's AUC over the full horizon, the mean over the run's visits of that kind; a run with an
  undefined visit of that kind gets no score, never a partial mean); the restricted time to threshold of the first
  visits after a shift (frames to the threshold, capped at ``tau``, divided by ``tau``: a visit that did not reach it
  counts ``tau``, which is exact when it lasted at least ``tau``); forgetting on return (success on a stage when it
  was left minus its success when training returns to it, before any training on it; mean over stages, as
  Continual World defines forgetting, with the return in place of the end of the sequence); zero-shot success on
  the held-out stage at the end of training and at the first mastery of the last training stage.
- **Per family** (one env): the paired differences ``d`` (reference minus the other agent on the seeds both ran,
  signed so that ``d > 0`` favours the reference). Test and interval on the same statistic, the mean of ``d``:
  a one-sided t test of ``mean <= 0`` (supported if rejected) and one of ``mean >= margin`` (not supported if
  rejected), each Holm-corrected over the family's claims; the 95 % t interval of the mean. Inconclusive
  otherwise, and with fewer than 3 pairs. Robustness: the IQM of ``d`` with a bootstrap CI; the paired probability
  of improvement ``P(d > 0) + P(d = 0) / 2`` with a bootstrap CI.
- **Pooled**: the mean differences of the families weighted by the weights declared in the preset, with the
  Welch-Satterthwaite t test; the same two one-sided tests, Holm over the claims. Only when every weighted family
  has at least 3 pairs.
- **Power**: for each claim, the power of its one-sided test at the Bonferroni level ``alpha / m`` (``m``: claims
  in the family; Holm's first step, so conservative) to detect an advantage of ``margin`` given the observed SD of
  ``d``, and the seeds that would give 80 %.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as sps

from metarim_sb3.experiments.reporting.claim_set import Claim, Claims
from metarim_sb3.experiments.reporting.comparisons import holm
from metarim_sb3.experiments.reporting.formatting import format_estimate
from metarim_sb3.experiments.reporting.metrics import AdaptationAUC, Visit
from metarim_sb3.experiments.reporting.stats import bootstrap_ci, iqm

__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "ClaimResult",
    "Paired",
    "forgetting_on_return",
    "judge_family",
    "judge_pooled",
    "paired_test",
    "pooled_seeds_needed",
    "pooled_test",
    "power",
    "power_at",
    "score_run",
    "seeds_needed",
    "verdict_markdown_v2",
]

#: The per-run scores of the v2 protocol and whether a higher score is better.
HIGHER_IS_BETTER = {
    "adaptation AUC": True,
    "re-adaptation AUC": True,
    "time to threshold": False,
    "forgetting": False,
    "zero-shot success": True,
    "zero-shot at mastery": True,
}
METRICS = tuple(HIGHER_IS_BETTER)
VERDICTS = ("supported", "not supported", "inconclusive")


# ------------------------------------------------------------------------------------------------ run scores
def forgetting_on_return(
    visits: Sequence[Visit], frames: np.ndarray, stages: np.ndarray, success: np.ndarray
) -> list[tuple[int, float, float]]:
    """
    Forgetting of each stage between the end of its first visit and the return to it.

    :param visits: the run's visits (:func:`~metarim_sb3.experiments.reporting.metrics.visits_from_shifts`).
    :param frames: ``stage_eval.csv`` ``timesteps``.
    :param stages: ``stage_eval.csv`` ``stage``.
    :param success: ``stage_eval.csv`` ``success_rate``.
    :return: ``(stage, success when left, success on return)`` per stage that was left and visited again: the first
        evaluation of the stage at or after the shift out of its first visit (evaluations at a shift see the policy
        of that moment), and the first at or after the shift back into it (before any training on it).
    """
    out = []
    for k, v in enumerate(visits):
        if v.revisit or v.left_at is None:
            continue
        back = next((w for w in visits[k + 1 :] if w.stage == v.stage), None)
        if back is None:
            continue
        rows = (stages == v.stage) & ~np.isnan(success)
        at_leave = np.flatnonzero(rows & (frames >= v.left_at))
        at_return = np.flatnonzero(rows & (frames >= back.entered_at))
        if at_leave.size and at_return.size and frames[at_leave[0]] <= back.entered_at:
            out.append((v.stage, float(success[at_leave[0]]), float(success[at_return[0]])))
    return out


def _mean_of(values: Sequence[float]) -> float:
    """The mean, ``nan`` if there is none or one is ``nan`` (never a mean of the defined part)."""
    if not values or any(math.isnan(v) for v in values):
        return math.nan
    return float(np.mean(values))


def score_run(
    aucs: Sequence[tuple[Visit, AdaptationAUC]] | None,
    mastery: Sequence[tuple[float, bool]],
    forgetting: Sequence[tuple[int, float, float]],
    final_success: float,
    mastery_success: float,
    tau: float,
) -> dict[str, float]:
    """
    The v2 scores of one run (rules in the module docstring).

    :param aucs: ``(visit, AUC)`` of each visit (``None``: not recorded).
    :param mastery: per visit of ``mastery.csv``, ``(frames, mastered)``: the frames to the threshold, or the frames
        the visit lasted if it did not reach it.
    :param forgetting: from :func:`forgetting_on_return`.
    :param final_success: held-out success at the end of training (``nan``: not recorded).
    :param mastery_success: held-out success at the first mastery of the last training stage (``nan``: not
        reached or not recorded).
    :param tau: the frames the time to threshold is capped at, > 0.
    :return: metric name -> score (``nan`` when undefined).
    """
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    scores = dict.fromkeys(METRICS, math.nan)
    if aucs is not None:
        shifted = [(v, a) for k, (v, a) in enumerate(aucs) if k >= 1]
        scores["adaptation AUC"] = _mean_of([a.auc for v, a in shifted if not v.revisit])
        scores["re-adaptation AUC"] = _mean_of([a.auc for v, a in shifted if v.revisit])
        kinds = [k >= 1 and not v.revisit for k, (v, _) in enumerate(aucs)]  # first visits after a shift
    else:
        kinds = [k >= 1 for k in range(len(mastery))]  # without the visits' kinds: every visit after a shift
    times = []
    for (frames, reached), counted in zip(mastery, kinds, strict=False):
        if counted:
            times.append(min(frames, tau) / tau if reached or frames >= tau else math.nan)
    scores["time to threshold"] = _mean_of(times)
    scores["forgetting"] = _mean_of([left - back for _, left, back in forgetting])
    scores["zero-shot success"] = float(final_success)
    scores["zero-shot at mastery"] = float(mastery_success)
    return scores


# ------------------------------------------------------------------------------------------------ statistics
@dataclass(frozen=True)
class Paired:
    """The paired comparison behind one claim (all numbers are the reference's advantage)."""

    n: int
    mean: float
    sd: float
    #: 95 % t interval of the mean.
    low: float
    high: float
    #: One-sided p-values: of ``mean <= 0`` and of ``mean >= margin`` (uncorrected).
    p_above_zero: float
    p_below_margin: float
    #: IQM of the differences with its bootstrap 95 % CI.
    iqm: tuple[float, float, float]
    #: Paired probability of improvement with its bootstrap 95 % CI.
    poi: tuple[float, float, float]
    df: float
    #: Standard error of ``mean``.
    se: float = math.nan


def _one_sided(mean: float, se: float, df: float, margin: float) -> tuple[float, float]:
    if se == 0:
        return (0.0 if mean > 0 else 1.0), (0.0 if mean < margin else 1.0)
    return float(sps.t.sf(mean / se, df)), float(sps.t.cdf((mean - margin) / se, df))


def _poi(d: np.ndarray) -> float:
    return float(np.mean(d > 0) + 0.5 * np.mean(d == 0))


def paired_test(d: Sequence[float], margin: float, n_boot: int = 2000, seed: int = 0) -> Paired:
    """
    :param d: paired differences, signed so that a positive one favours the reference (NaNs dropped).
    :param margin: the smallest advantage that would matter.
    :param n_boot: bootstrap resamples of the robustness intervals.
    :param seed: seed of the resampling.
    :return: the comparison; every number ``nan`` with fewer than 2 pairs.
    """
    x = np.asarray(d, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    nan3 = (math.nan, math.nan, math.nan)
    if n < 2:
        mean = float(x.mean()) if n else math.nan
        return Paired(n, mean, math.nan, math.nan, math.nan, math.nan, math.nan, nan3, nan3, math.nan, math.nan)
    mean, sd, df = float(x.mean()), float(x.std(ddof=1)), float(n - 1)
    if sd <= 1e-12 * max(1.0, abs(mean)):  # identical differences (up to rounding): no spread
        sd = 0.0
    se = sd / math.sqrt(n)
    half = float(sps.t.ppf(0.975, df)) * se
    p0, pm = _one_sided(mean, se, df, margin)
    robust = (iqm(x), *bootstrap_ci(x, iqm, n_boot=n_boot, seed=seed))
    rng = np.random.default_rng(seed)
    boot = np.array([_poi(x[rng.integers(0, n, n)]) for _ in range(n_boot)])
    poi = (_poi(x), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975)))
    return Paired(n, mean, sd, mean - half, mean + half, p0, pm, robust, poi, df, se)


def pooled_test(families: Sequence[Paired], weights: Sequence[float], margin: float) -> Paired:
    """
    The weighted mean of the families' mean differences, with a Welch-Satterthwaite t test and interval.

    :param families: one comparison per family, each with at least 2 pairs.
    :param weights: the declared weight of each family (normalised here).
    :param margin: the smallest advantage that would matter.
    :return: the pooled comparison (``iqm`` and ``poi`` are ``nan``: they are per family).
    """
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    means = np.array([f.mean for f in families])
    var = np.array([f.sd**2 / f.n for f in families])
    mean = float(np.sum(w * means))
    se2 = float(np.sum(w**2 * var))
    denom = float(np.sum((w**2 * var) ** 2 / np.array([f.n - 1 for f in families])))
    df = se2**2 / denom if denom > 0 else float(sum(f.n - 1 for f in families))
    se = math.sqrt(se2)
    half = float(sps.t.ppf(0.975, df)) * se
    p0, pm = _one_sided(mean, se, df, margin)
    nan3 = (math.nan, math.nan, math.nan)
    n = sum(f.n for f in families)
    return Paired(n, mean, math.nan, mean - half, mean + half, p0, pm, nan3, nan3, df, se)


def power(n: int, sd: float, effect: float, alpha: float) -> float:
    """
    :param n: pairs.
    :param sd: SD of the paired differences.
    :param effect: the true mean advantage to detect.
    :param alpha: one-sided level.
    :return: the power of the one-sided paired t test (noncentral t); ``nan`` for ``n < 2`` or ``sd`` not > 0.
    """
    if n < 2:
        return math.nan
    return power_at(sd / math.sqrt(n), n - 1, effect, alpha)


def power_at(se: float, df: float, effect: float, alpha: float) -> float:
    """
    :param se: standard error of the mean difference.
    :param df: its degrees of freedom.
    :param effect: the true mean advantage to detect.
    :param alpha: one-sided level.
    :return: the power of the one-sided t test (noncentral t); ``nan`` if ``se`` is not > 0.
    """
    if not se > 0 or not df > 0:
        return math.nan
    return float(sps.nct.sf(sps.t.ppf(1 - alpha, df), df, effect / se))


def seeds_needed(sd: float, effect: float, alpha: float, target: float = 0.8, most: int = 100_000) -> int | None:
    """
    :param sd: SD of the paired differences.
    :param effect: the true mean advantage to detect.
    :param alpha: one-sided level.
    :param target: the power wanted.
    :param most: give up above this many pairs.
    :return: the fewest pairs with at least ``target`` power, ``None`` if ``sd`` is not > 0 or it is over ``most``.
    """
    if not sd > 0:
        return None
    return _fewest(lambda n: power(n, sd, effect, alpha), target, most)


def pooled_seeds_needed(
    sds: Sequence[float],
    weights: Sequence[float],
    effect: float,
    alpha: float,
    target: float = 0.8,
    most: int = 100_000,
) -> int | None:
    """
    The pairs a pooled claim (:func:`pooled_test`) would need: the same number in every family, each family keeping
    its observed SD; the Welch-Satterthwaite t test of the weighted mean.

    :param sds: SD of the paired differences, per family.
    :param weights: the declared weight of each family (normalised here).
    :param effect: the true mean advantage to detect.
    :param alpha: one-sided level.
    :param target: the power wanted.
    :param most: give up above this many pairs per family.
    :return: the pairs summed over the families (as the pooled 'pairs' column counts them), ``None`` if no SD is
        > 0, one is not a number, or it is over ``most`` per family.
    """
    w = np.asarray(weights, dtype=float)
    terms = (w / w.sum()) ** 2 * np.asarray(sds, dtype=float) ** 2  # each family's share of n * se^2
    if np.isnan(terms).any() or not terms.sum() > 0:
        return None

    def pooled_power(n: int) -> float:
        se2 = float(terms.sum()) / n
        df = se2**2 / float(np.sum((terms / n) ** 2) / (n - 1))
        return power_at(math.sqrt(se2), df, effect, alpha)

    per_family = _fewest(pooled_power, target, most)
    return None if per_family is None else per_family * len(terms)


def _fewest(power_of: Callable[[int], float], target: float, most: int) -> int | None:
    """The smallest ``n >= 2`` with ``power_of(n) >= target`` (power rises with ``n``), ``None`` above ``most``."""
    low, high = 2, 2
    while power_of(high) < target:
        if high >= most:
            return None
        low, high = high, min(high * 2, most)
    while low < high:
        mid = (low + high) // 2
        if power_of(mid) >= target:
            high = mid
        else:
            low = mid + 1
    return high


# --------------------------------------------------------------------------------------------------- verdict
@dataclass(frozen=True)
class ClaimResult:
    """One claim judged on one family, or pooled."""

    text: str
    metric: str
    against: str
    paired: Paired
    p_supported: float
    p_not_supported: float
    verdict: str
    reason: str
    power: float
    needed: int | None


def judge_family(
    items: Sequence[Claim], diffs: Sequence[Sequence[float] | Paired], alpha: float, margin: float
) -> list[ClaimResult]:
    """
    The verdict of each claim on one family (or pooled), Holm over the claims for each of the two tests.

    :param items: the claims (``text``, ``metric``, ``against``).
    :param diffs: per claim its paired differences (or a pooled :class:`Paired`).
    :param alpha: the family-wise level of each test.
    :param margin: the smallest advantage that would matter.
    :return: one result per claim.
    """
    tests = [d if isinstance(d, Paired) else paired_test(d, margin) for d in diffs]
    ok = [t.n >= 3 and not math.isnan(t.p_above_zero) for t in tests]
    p_sup = holm([t.p_above_zero if good else math.nan for t, good in zip(tests, ok, strict=True)])
    p_not = holm([t.p_below_margin if good else math.nan for t, good in zip(tests, ok, strict=True)])
    m = max(sum(ok), 1)
    out = []
    for item, t, good, ps, pn in zip(items, tests, ok, p_sup, p_not, strict=True):
        pw = power_at(t.se, t.df, margin, alpha / m) if good else math.nan
        need = seeds_needed(t.sd, margin, alpha / m) if good else None
        if not good:
            verdict, reason = "inconclusive", f"{t.n} pair(s): fewer than 3 get no test"
        elif ps < alpha and pn < alpha:
            verdict, reason = "supported", f"p(mean <= 0) {ps:.3f} and p(mean >= margin) {pn:.3f}: real but small"
        elif ps < alpha:
            verdict, reason = "supported", f"p(mean <= 0) {ps:.3f} < {alpha:g}"
        elif pn < alpha:
            verdict, reason = "not supported", f"p(mean >= {margin:g}) {pn:.3f} < {alpha:g}"
        else:
            verdict, reason = "inconclusive", f"p(mean <= 0) {ps:.3f}, p(mean >= {margin:g}) {pn:.3f}"
        out.append(ClaimResult(item.text, item.metric, item.against, t, ps, pn, verdict, reason, pw, need))
    return out


def judge_pooled(claims: Claims, by_family: Mapping[str, list[ClaimResult]]) -> tuple[list[ClaimResult] | None, str]:
    """
    The pooled verdict: per claim the families' mean advantages weighted by the declared weights
    (:func:`pooled_test`), Holm over the claims (:func:`judge_family`). A claim with fewer than 3 pairs in any family
    of the pooling gets no pooled test (0 pairs, inconclusive).

    :param claims: the preset's claims (``items``, ``alpha``, ``margin``, ``weights``: env -> weight).
    :param by_family: env -> the results of every claim on that env, in the order of ``claims.items``.
    :return: the pooled results (``None`` when a weighted family has no complete runs) and one sentence on the
        pooling (its weights, and why it was not computed).
    """
    weights = dict(claims.weights)
    absent = [e for e in weights if e not in by_family]
    note = "weights fixed in the preset: " + ", ".join(f"{e} {w:g}" for e, w in weights.items())
    if absent:
        return None, note + f"; not computed: no complete runs of {', '.join(absent)}"
    tests, sds = [], []
    for i in range(len(claims.items)):
        families = [by_family[e][i].paired for e in weights]
        enough = min(f.n for f in families) >= 3
        tests.append(pooled_test(families, list(weights.values()), claims.margin) if enough else paired_test([], 0))
        sds.append([f.sd for f in families])
    results = judge_family(claims.items, tests, claims.alpha, claims.margin)
    # judge_family has no single SD to size a pooled claim by: size it by the families' SDs, at the same level
    tested = [t.n >= 3 and not math.isnan(t.p_above_zero) for t in tests]
    level = claims.alpha / max(sum(tested), 1)
    needed = [
        pooled_seeds_needed(s, list(weights.values()), claims.margin, level) if ok else None
        for s, ok in zip(sds, tested, strict=True)
    ]
    return [replace(r, needed=n) for r, n in zip(results, needed, strict=True)], note


def _row(r: ClaimResult, label: str, verdict: bool = True) -> str:
    t = r.paired
    est = format_estimate(t.mean, t.low, t.high, t.n, digits=3)
    robust = format_estimate(*t.iqm, t.n, digits=3) if not math.isnan(t.iqm[0]) else "-"
    poi = format_estimate(*t.poi, t.n) if not math.isnan(t.poi[0]) else "-"
    fmt = lambda p: "n/a" if math.isnan(p) else f"{p:.3f}"  # noqa: E731
    pw = "n/a" if math.isnan(r.power) else f"{r.power:.2f}"
    need = "n/a" if r.needed is None else str(r.needed)
    return (
        f"| {r.text} | {label} | {t.n} | {est} | {robust} | {poi} | {fmt(r.p_supported)} | {fmt(r.p_not_supported)} "
        f"| {pw} | {need} | {f'**{r.verdict}**' if verdict else '-'} |"
    )


_HEADER = [
    "| claim | family | pairs | advantage: mean [95% t CI] | IQM [95% CI] | P(better), paired | p(<= 0), Holm "
    "| p(>= margin), Holm | power at margin | pairs for 80 % | verdict |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]


def _scores_sentence(claims: Claims) -> str:
    """
    :param claims: the preset's claims (``margin``, ``tau``).
    :return: what each run's scores are and their scale, the scale the margin is in.
    """
    taus = ", ".join(f"{env} {frames:,}" for env, frames in claims.tau) or "not declared"
    return (
        "**Scores** (one per run, each between 0 and 1 or -1 and 1, so the margin "
        f"{claims.margin:g} is in their units): *adaptation AUC* and *re-adaptation AUC*, the evaluation success "
        "rate on the stage trained on, averaged over the adaptation horizon after a shift (first visits after a "
        "shift and returns apart, each the mean over the run's visits of that kind); *time to threshold*, the "
        "frames from a shift to the success threshold on a first visit (mean over them), capped at tau and divided "
        f"by tau (a visit that did not reach it within tau counts 1; tau: {taus} frames); *forgetting*, success on "
        "a stage when training left it minus its success when training returned to it (mean over stages); "
        "*zero-shot success*, the success rate on the held-out stage at the end of training and, for *zero-shot at "
        "mastery*, when the last training stage was first mastered (a run that never mastered it has no score)."
    )


def verdict_markdown_v2(
    claims: Claims,
    by_family: Mapping[str, list[ClaimResult]],
    pooled: list[ClaimResult] | None,
    pooled_note: str,
    secondary: Mapping[str, list[ClaimResult]],
    missing: str = "",
) -> list[str]:
    """
    The report's ``Verdict`` section under the v2 rule.

    :param claims: the preset's claims (``reference``, ``alpha``, ``margin``, ``weights``).
    :param by_family: env -> results of every claim on that env.
    :param pooled: the pooled results (``None``: not computed, ``pooled_note`` says why).
    :param pooled_note: one sentence on the pooling.
    :param secondary: env -> results of the secondary metrics (no verdict is drawn from them).
    :param missing: from :func:`~metarim_sb3.experiments.reporting.claims.missing_runs`.
    :return: Markdown lines.
    """
    ref = claims.reference
    lines = ["", "## Verdict", "", *([missing, ""] if missing else [])]
    lines += [
        f"Each claim as declared with its decision rule in the comparison preset (rule v2) before the runs were "
        f"read. Advantage: {ref} minus the other agent on the same seeds, signed so that a positive value favours "
        f"{ref} (for time to threshold and forgetting, lower is better). **Supported**: the one-sided t test of a "
        f"mean advantage <= 0 rejected at Holm-adjusted p < {claims.alpha:g}. **Not supported**: the one-sided t "
        f"test of a mean advantage >= the margin {claims.margin:g} rejected at Holm-adjusted p < {claims.alpha:g} "
        "(the same correction). **Inconclusive**: neither, or fewer than 3 pairs. Holm runs over the claims of each "
        "family (env) and of the pooled verdict. **Pooled**: the families' mean advantages weighted by the weights "
        "declared in the preset, with a Welch-Satterthwaite t test and interval ('pairs' is the sum over the "
        "families); a claim with fewer than 3 pairs in any family of the pooling gets no pooled test (0 pairs, "
        "inconclusive). The interval is the 95 % t interval of the mean, the statistic the "
        "tests are on; the IQM and the paired probability of improvement (bootstrap CIs) are robustness lines. "
        "Power: of each claim's test at the Bonferroni level to detect an advantage of the margin, given the "
        "observed SD of the differences; 'pairs for 80 %' is the number of paired seeds that would give 80 % (pooled: "
        "the sum over the families, with as many pairs in each and each family's observed SD).",
        "",
        _scores_sentence(claims),
        "",
    ]
    every = [r for rs in by_family.values() for r in rs] + (pooled or [])
    lines.append(
        "**In short:** "
        + "; ".join(
            f"{label}: " + ", ".join(f"{sum(r.verdict == v for r in rs)} {v}" for v in VERDICTS)
            for label, rs in [*by_family.items(), *([("pooled", pooled)] if pooled else [])]
        )
        + f" (of {len(claims.items)} claims each)."
        if every
        else "**In short:** no claim could be judged."
    )
    lines += ["", f"### Pooled ({pooled_note})", ""]
    if pooled:
        lines += [*_HEADER, *(_row(r, "pooled") for r in pooled)]
    for env, results in by_family.items():
        lines += ["", f"### {env}", "", *_HEADER, *(_row(r, env) for r in results)]
    if secondary:
        lines += [
            "",
            "### Secondary metrics (no verdict)",
            "",
            "The same paired statistics for the metrics the preset does not make claims of; their p-values are "
            "Holm-corrected among themselves, per family, and decide nothing.",
            "",
            *_HEADER,
        ]
        for env, results in secondary.items():
            lines += [_row(r, env, verdict=False) for r in results]
    return lines
