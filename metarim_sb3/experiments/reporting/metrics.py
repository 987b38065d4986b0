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

Comparisons between agents are :mod:`~metarim_sb3.experiments.reporting.comparisons`; how estimates are printed is
:mod:`~metarim_sb3.experiments.reporting.formatting`.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats as sps

__all__ = [
    "AdaptationAUC",
    "ArrayLike",
    "ForgettingRow",
    "KaplanMeier",
    "Visit",
    "adaptation_auc",
    "forgetting",
    "frames_to_threshold_km",
    "stage_time_matrix",
    "visit_aucs",
    "visits_from_shifts",
]


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
