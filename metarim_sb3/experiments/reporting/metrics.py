"""Metrics of shifting-task runs that stay honest about censoring and few seeds (numpy and scipy).

- **Adaptation AUC** (:func:`adaptation_auc`, :func:`visit_aucs`): the area under the success-rate curve of the
  current stage over a fixed frame horizon after each shift, normalised to [0, 1]. Every visit whose
  evaluations cover the horizon gets a number; one that does not gets ``nan`` and a reason, never a biased value.
- **Frames to threshold** (:func:`frames_to_threshold_km`): the Kaplan–Meier survival curve of the frames a visit
  needed to reach the success threshold, with visits that never reached it right-censored. The survival estimate
  is scipy's (``scipy.stats.ecdf`` on ``scipy.stats.CensoredData``); this module only reads it (restricted mean
  survival time = area under that curve up to ``tau``; median = first frame where it falls to 0.5 or below).
  A censored value never enters a mean.
- **Forgetting** (:func:`forgetting`, :func:`stage_time_matrix`): success on a stage when it was mastered or left
  minus its success later on.
- **Paired comparisons** (:func:`paired_differences`, :func:`holm`): per-seed differences against a reference
  agent on the same seeds: IQM of the differences with a stratified bootstrap CI (:mod:`.stats`), the probability
  of improvement (Agarwal et al. 2021) with a bootstrap CI, a sign-flip permutation p-value (scipy) and Holm's
  correction across agents.
- **Reporting rules** (:func:`interval_allowed`, :func:`format_estimate`, :func:`format_number`,
  :func:`format_column`): no interval with fewer than :data:`MIN_SEEDS_FOR_INTERVAL` seeds; integer-valued
  columns print as integers.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats as sps

from metarim_sb3.experiments.reporting.stats import iqm, stratified_bootstrap_ci

__all__ = [
    "MIN_SEEDS_FOR_INTERVAL",
    "AdaptationAUC",
    "ForgettingRow",
    "KaplanMeier",
    "PairedComparison",
    "Visit",
    "adaptation_auc",
    "forgetting",
    "format_column",
    "format_estimate",
    "format_number",
    "frames_to_threshold_km",
    "holm",
    "interval_allowed",
    "paired_differences",
    "probability_of_improvement",
    "stage_time_matrix",
    "visit_aucs",
    "visits_from_shifts",
]

#: Fewest seeds for which a report prints an interval.
MIN_SEEDS_FOR_INTERVAL = 3
#: The per-seed metrics a report compares between agents (and a preset's claims may name).
PAIRED_METRICS = ("adaptation AUC", "zero-shot success")

ArrayLike = Sequence[float] | np.ndarray


def _vector(name: str, values: ArrayLike) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    return x


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------- adaptation AUC
class AdaptationAUC(NamedTuple):
    """The adaptation AUC of one stage visit."""

    #: Normalised area in [0, 1]; ``nan`` when the evaluations do not cover the horizon.
    auc: float
    #: Why ``auc`` is ``nan`` (empty when it is a number).
    reason: str
    #: Evaluations inside ``[shift_at, shift_at + horizon]`` that the area used.
    n_evals: int


def adaptation_auc(
    frames: ArrayLike,
    success: ArrayLike,
    shift_at: float,
    horizon: float,
    *,
    left_at: float | None = None,
    max_start_gap: float | None = None,
) -> AdaptationAUC:
    """
    Area under the success-rate curve of one stage over ``[shift_at, shift_at + horizon]``, divided by
    ``horizon``.

    The curve joins the evaluations of the stage by straight lines (trapezoid rule). Rules, so that a visit
    either gets an unbiased number or ``nan`` with a reason:

    - **start**: the first evaluation at or after ``shift_at`` stands for the success at ``shift_at`` (held
      constant back to it), provided it is at most ``max_start_gap`` frames later. :class:`StageEvalCallback
      <metarim_sb3.callbacks.stage_eval.StageEvalCallback>` evaluates at the first rollout end after a shift, before any
      training on the new stage, so that evaluation *is* the policy at the shift. No evaluation there: ``nan``.
    - **end**: the curve must reach ``shift_at + horizon``: it is interpolated between the evaluations on either
      side of that frame, or taken from an evaluation exactly there. Evaluations that end earlier (the budget ran
      out): ``nan``. Evaluations after the end are ignored.
    - **leaving**: a stage left before the horizon ends (``left_at < shift_at + horizon``) was not trained on for
      the whole horizon: ``nan``. With a success-threshold curriculum, keep ``horizon <= min_steps``.

    :param frames: environment frames of the evaluations of this stage (any order; NaN successes are dropped).
    :param success: success rate of each evaluation, in [0, 1].
    :param shift_at: frame at which the stage became the training stage (0 for the first stage).
    :param horizon: frames after the shift the area covers, > 0.
    :param left_at: frame at which training left the stage (``None``: not before the last evaluation).
    :param max_start_gap: largest gap in frames between ``shift_at`` and the first evaluation used as the start
        value; ``None``: 10 % of ``horizon``.
    :return: the AUC, the reason it is undefined (``""`` if defined) and the number of evaluations used.
    """
    x, y = _vector("frames", frames), _vector("success", success)
    if x.shape != y.shape:
        raise ValueError(f"frames and success must have the same length, got {x.size} and {y.size}")
    horizon = _positive("horizon", horizon)
    gap = 0.1 * horizon if max_start_gap is None else float(max_start_gap)
    if gap < 0:
        raise ValueError(f"max_start_gap must be >= 0, got {max_start_gap!r}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if np.any((y < 0) | (y > 1)):
        raise ValueError("success rates must lie in [0, 1]")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    end = float(shift_at) + horizon
    if left_at is not None and left_at < end:
        return AdaptationAUC(math.nan, f"stage left at {left_at:g}, before the horizon ends at {end:g}", 0)
    after = x >= shift_at
    if not after.any() or x[after][0] > shift_at + gap:
        return AdaptationAUC(math.nan, f"no evaluation within {gap:g} frames after the shift at {shift_at:g}", 0)
    x, y = x[after], y[after]
    if x[-1] < end:
        return AdaptationAUC(math.nan, f"evaluations end at {x[-1]:g}, before the horizon ends at {end:g}", 0)
    inside = x <= end
    y_end = float(np.interp(end, x, y))  # x sorted; duplicates at one frame: np.interp takes the last
    xs = np.concatenate([[float(shift_at)], x[inside], [end]])
    ys = np.concatenate([[y[0]], y[inside], [y_end]])
    area = float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2))
    return AdaptationAUC(area / horizon, "", int(inside.sum()))


@dataclass(frozen=True)
class Visit:
    """One stay in a stage: from the shift into it to the shift out of it (or the end of training)."""

    stage: int
    entered_at: float
    #: ``None`` for the visit still open at the end of training.
    left_at: float | None
    #: The stage had been visited before (a return after ``cycle``): report it apart from first visits.
    revisit: bool


def visits_from_shifts(
    shift_frames: Sequence[float], to_stages: Sequence[int], first_stage: int = 0, start: float = 0.0
) -> list[Visit]:
    """
    The stage visits of one run from its shifts (``curriculum.csv``: ``timestep``, ``to_stage``; or the shift
    frames of a fixed schedule).

    :param shift_frames: frame of each shift, increasing.
    :param to_stages: the stage each shift moved to.
    :param first_stage: the stage training started in.
    :param start: the frame training started at.
    :return: visit 0 is ``first_stage`` from ``start``; visit ``k`` follows the ``k``-th shift; the last visit is
        open (``left_at=None``). A run that never shifts has exactly one visit.
    """
    if len(shift_frames) != len(to_stages):
        n, m = len(shift_frames), len(to_stages)
        raise ValueError(f"shift_frames and to_stages must have the same length, got {n} and {m}")
    if any(b < a for a, b in itertools.pairwise(shift_frames)):
        raise ValueError("shift_frames must be increasing")
    entered = [float(start), *map(float, shift_frames)]
    stages = [int(first_stage), *map(int, to_stages)]
    seen: set[int] = set()
    visits = []
    for k, (stage, at) in enumerate(zip(stages, entered, strict=True)):
        left = entered[k + 1] if k + 1 < len(entered) else None
        visits.append(Visit(stage, at, left, stage in seen))
        seen.add(stage)
    return visits


def visit_aucs(
    frames: ArrayLike,
    stages: Sequence[int],
    success: ArrayLike,
    visits: Sequence[Visit],
    horizon: float,
    max_start_gap: float | None = None,
) -> list[tuple[Visit, AdaptationAUC]]:
    """
    :func:`adaptation_auc` of every visit of one run, from the long table of ``stage_eval.csv``.

    :param frames: ``timesteps`` column.
    :param stages: ``stage`` column.
    :param success: ``success_rate`` column.
    :param visits: the run's visits (:func:`visits_from_shifts`).
    :param horizon: frames after each shift.
    :param max_start_gap: see :func:`adaptation_auc`.
    :return: ``(visit, auc)`` per visit, in order.
    """
    x, y = _vector("frames", frames), _vector("success", success)
    s = np.asarray(stages, dtype=int)
    if not x.size == y.size == s.size:
        raise ValueError(f"frames, stages and success must have the same length, got {x.size}, {s.size}, {y.size}")
    out = []
    for v in visits:
        rows = s == v.stage
        auc = adaptation_auc(x[rows], y[rows], v.entered_at, horizon, left_at=v.left_at, max_start_gap=max_start_gap)
        out.append((v, auc))
    return out


# ----------------------------------------------------------------------------------------- Kaplan–Meier
@dataclass(frozen=True)
class KaplanMeier:
    """Kaplan–Meier estimate of the frames-to-threshold distribution (computed by ``scipy.stats.ecdf``)."""

    #: Distinct observed durations (events and censorings), increasing.
    times: np.ndarray
    #: Survival S(t) = P(threshold not yet reached after t frames), right-continuous, at each of ``times``.
    survival: np.ndarray
    #: Pointwise 95 % confidence band of ``survival`` (scipy's log-log method; ``nan`` where undefined).
    low: np.ndarray
    high: np.ndarray
    n: int
    #: Visits that reached the threshold (the others are censored).
    n_events: int
    #: Restricted mean survival time: mean frames to threshold with every visit capped at ``tau``.
    rmst: float
    tau: float
    #: First frame at which S(t) <= 0.5; ``nan`` if the curve never gets there ("not reached").
    median: float
    #: Why ``rmst`` is ``nan`` (``""`` if it is a number).
    reason: str

    def survival_at(self, t: float | ArrayLike) -> np.ndarray:
        """
        :param t: frames.
        :return: S(t) (1 before the first time).
        """
        idx = np.searchsorted(self.times, np.asarray(t, dtype=float), side="right")
        return np.concatenate([[1.0], self.survival])[idx]


def frames_to_threshold_km(durations: ArrayLike, observed: Sequence[bool], tau: float | None = None) -> KaplanMeier:
    """
    Kaplan–Meier curve of the frames each visit needed to reach the success threshold.

    A visit that reached it has ``observed=True`` and ``duration = mastered_at - entered_at``; one that did not
    (the stage was left, or the budget ran out) has ``observed=False`` and ``duration = left_at - entered_at``
    (right-censored: all that is known is that it needed more). The estimate is ``scipy.stats.ecdf`` on
    ``scipy.stats.CensoredData``.

    :param durations: frames per visit, >= 0.
    :param observed: whether each visit reached the threshold.
    :param tau: horizon of the restricted mean survival time; ``None``: the longest duration. The RMST is
        ``nan`` (with a reason) if ``tau`` lies past the longest duration while the curve is still above 0
        there: the curve is not known that far. Compare agents with one common ``tau``.
    :return: the curve, its band, the RMST up to ``tau`` and the median.
    """
    d = _vector("durations", durations)
    obs = np.asarray(observed, dtype=bool)
    if d.size == 0:
        raise ValueError("durations must hold at least one visit")
    if obs.shape != d.shape:
        raise ValueError(f"observed must have one flag per duration, got {obs.size} for {d.size}")
    if np.any(np.isnan(d)) or np.any(d < 0):
        raise ValueError("durations must be finite numbers >= 0")
    if tau is not None:
        _positive("tau", tau)
    data = sps.CensoredData(uncensored=d[obs], right=d[~obs])
    sf = sps.ecdf(data).sf
    times, survival = np.asarray(sf.quantiles, dtype=float), np.asarray(sf.probabilities, dtype=float)
    with warnings.catch_warnings():  # undefined band at S = 0 or 1: nan, which is what a plot should show
        warnings.simplefilter("ignore", RuntimeWarning)
        band = sf.confidence_interval(0.95, method="log-log")
        low, high = np.asarray(band.low.probabilities, dtype=float), np.asarray(band.high.probabilities, dtype=float)
    tau_ = float(tau) if tau is not None else float(d.max())
    reason = ""
    if tau_ > d.max() and survival[-1] > 0:
        rmst = math.nan
        reason = f"tau {tau_:g} is past the longest duration {d.max():g}, where the curve is still above 0"
    else:
        edges = np.concatenate([[0.0], times[times < tau_], [tau_]])
        levels = np.concatenate([[1.0], survival[times < tau_]])
        rmst = float(np.sum(np.diff(edges) * levels))
    below = np.flatnonzero(survival <= 0.5)
    median = float(times[below[0]]) if below.size else math.nan
    return KaplanMeier(times, survival, low, high, int(d.size), int(obs.sum()), rmst, tau_, median, reason)


# ------------------------------------------------------------------------------------------- forgetting
def stage_time_matrix(
    frames: ArrayLike, stages: Sequence[int], success: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    The stage x evaluation-time success matrix of one run, from the long table of ``stage_eval.csv``.

    :param frames: ``timesteps`` column.
    :param stages: ``stage`` column.
    :param success: ``success_rate`` column.
    :return: ``(stage_ids, times, matrix)``: sorted stage ids, sorted distinct frames, and ``matrix[i, j]`` the
        success on ``stage_ids[i]`` at ``times[j]`` (``nan`` where it was not evaluated, e.g. not seen yet).
    """
    x, y = _vector("frames", frames), _vector("success", success)
    s = np.asarray(stages, dtype=int)
    if not x.size == y.size == s.size:
        raise ValueError(f"frames, stages and success must have the same length, got {x.size}, {s.size}, {y.size}")
    stage_ids, times = np.unique(s), np.unique(x)
    matrix = np.full((stage_ids.size, times.size), math.nan)
    matrix[np.searchsorted(stage_ids, s), np.searchsorted(times, x)] = y
    return stage_ids, times, matrix


@dataclass(frozen=True)
class ForgettingRow:
    """Forgetting of one stage."""

    stage: int
    #: Frame of the evaluation taken as the reference (``nan`` if none).
    reference_frame: float
    #: Success at mastery / at leaving.
    reference_success: float
    #: Success at the last later evaluation.
    final_success: float
    #: ``reference_success - final_success``.
    final_drop: float
    #: ``reference_success - min(later successes)``.
    max_drop: float
    #: Later evaluations used.
    n_later: int
    #: Why the drops are ``nan`` (``""`` if they are numbers).
    reason: str


def forgetting(
    matrix: np.ndarray | Sequence[Sequence[float]],
    frames: ArrayLike,
    reference_frames: Sequence[float | None],
    until_frames: Sequence[float | None] | None = None,
    stage_ids: Sequence[int] | None = None,
) -> list[ForgettingRow]:
    """
    Forgetting per stage: success when the stage was mastered (or left) minus its success later on.

    The reference is the first evaluation at or after the stage's reference frame: with
    :class:`~metarim_sb3.callbacks.stage_eval.StageEvalCallback` an evaluation runs at the first rollout end after each
    shift, with the parameters of the moment the stage was left. "Later" means the evaluations after the
    reference one, up to ``until_frames`` (e.g. the frame the stage became the training stage again after a
    cycle) if given. A positive drop is forgetting; a negative one is improvement while away.

    :param matrix: ``(n_stages, n_times)`` success rates, ``nan`` where not evaluated (:func:`stage_time_matrix`).
    :param frames: ``(n_times,)`` frame of each column, increasing.
    :param reference_frames: per stage, the frame it was mastered or left; ``None`` / ``nan``: never (the row
        then says so).
    :param until_frames: per stage, the last frame that counts as later (``None``: the end).
    :param stage_ids: the stage id of each row (default ``0..n_stages - 1``).
    :return: one row per stage.
    """
    m = np.atleast_2d(np.asarray(matrix, dtype=float))
    t = _vector("frames", frames)
    if m.shape[1] != t.size:
        raise ValueError(f"matrix has {m.shape[1]} columns but frames has {t.size} values")
    if np.any(np.diff(t) <= 0):
        raise ValueError("frames must be strictly increasing")
    n = m.shape[0]
    if len(reference_frames) != n:
        raise ValueError(f"reference_frames must have one value per stage ({n}), got {len(reference_frames)}")
    until = list(until_frames) if until_frames is not None else [None] * n
    if len(until) != n:
        raise ValueError(f"until_frames must have one value per stage ({n}), got {len(until)}")
    ids = list(stage_ids) if stage_ids is not None else list(range(n))
    if len(ids) != n:
        raise ValueError(f"stage_ids must have one id per stage ({n}), got {len(ids)}")
    rows = []
    nan = math.nan
    for i in range(n):
        ref_at, stage = reference_frames[i], int(ids[i])
        if ref_at is None or math.isnan(ref_at):
            rows.append(ForgettingRow(stage, nan, nan, nan, nan, nan, 0, "never mastered or left"))
            continue
        valid = ~np.isnan(m[i])
        cand = np.flatnonzero(valid & (t >= ref_at))
        if cand.size == 0:
            rows.append(ForgettingRow(stage, nan, nan, nan, nan, nan, 0, f"no evaluation at or after {ref_at:g}"))
            continue
        ref_j = int(cand[0])
        ref = float(m[i, ref_j])
        later = valid & (t > t[ref_j])
        if until[i] is not None:
            later &= t <= float(until[i])  # type: ignore[arg-type]
        values = m[i, later]
        if values.size == 0:
            rows.append(ForgettingRow(stage, float(t[ref_j]), ref, nan, nan, nan, 0, "no later evaluation"))
            continue
        final = float(values[-1])
        rows.append(
            ForgettingRow(stage, float(t[ref_j]), ref, final, ref - final, ref - float(values.min()), values.size, "")
        )
    return rows


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


# ------------------------------------------------------------------------------------------- formatting
def interval_allowed(n_seeds: int) -> bool:
    """
    :param n_seeds: seeds behind an estimate.
    :return: whether a report may print an interval for it (at least :data:`MIN_SEEDS_FOR_INTERVAL`): a
        bootstrap over one or two seeds gives degenerate intervals such as ``0.74 [0.74, 0.74]``.
    """
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 0:
        raise ValueError(f"n_seeds must be an integer >= 0, got {n_seeds!r}")
    return n_seeds >= MIN_SEEDS_FOR_INTERVAL


def format_number(value: float | None, digits: int = 2, scale: float = 1.0, suffix: str = "") -> str:
    """
    :param value: the number (``None`` or NaN print as ``n/a``).
    :param digits: decimals of a non-integer value.
    :param scale: divide by this first (e.g. ``1e3`` with ``suffix="k"``).
    :param suffix: appended to the number.
    :return: the number; an integer value (after scaling) prints without decimals.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    v = float(value) / scale
    if math.isinf(v):
        return f"{v}{suffix}"
    return f"{int(v)}{suffix}" if v.is_integer() else f"{v:.{digits}f}{suffix}"


def format_column(values: Sequence[float | None], digits: int = 2) -> list[str]:
    """
    :param values: one column of a table.
    :param digits: decimals when some value is not an integer.
    :return: the values as text: all as integers when every finite value is integral, else all with ``digits``.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    integral = all(v.is_integer() for v in finite)
    out = []
    for v in values:
        if v is None or math.isnan(float(v)):
            out.append("n/a")
        elif integral or math.isinf(float(v)):
            out.append(format_number(v))
        else:
            out.append(f"{float(v):.{digits}f}")
    return out


def format_estimate(
    point: float, low: float, high: float, n_seeds: int, digits: int = 2, scale: float = 1.0, suffix: str = ""
) -> str:
    """
    ``"x [lo, hi]"`` when :func:`interval_allowed`, else ``"x (n=2: no interval)"``.

    :param point: the estimate (NaN prints ``n/a``).
    :param low: lower end of its interval.
    :param high: upper end.
    :param n_seeds: seeds behind it.
    :param digits: decimals.
    :param scale: divide every number by this first.
    :param suffix: appended to every number (e.g. ``"k"``).
    :return: the text.
    """
    if math.isnan(point):
        return "n/a"

    def fmt(v: float) -> str:
        return f"{v / scale:.{digits}f}{suffix}"

    if not interval_allowed(n_seeds):
        return f"{fmt(point)} (n={n_seeds}: no interval)"
    return f"{fmt(point)} [{fmt(low)}, {fmt(high)}]"
