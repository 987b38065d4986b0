"""The adaptation sections of the report: the success AUC over ``adaptation.horizon`` frames after each shift
(primary; from ``stage_eval.csv``) and the Kaplan–Meier frames to the success threshold (from ``mastery.csv``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal, TypedDict

import numpy as np

from metarim_sb3.experiments.reporting.formatting import format_estimate
from metarim_sb3.experiments.reporting.metrics import (
    AdaptationAUC,
    KaplanMeier,
    Visit,
    frames_to_threshold_km,
    visit_aucs,
    visits_from_shifts,
)
from metarim_sb3.experiments.reporting.runs import RunData, agent_order
from metarim_sb3.experiments.reporting.stats import stratified_bootstrap_ci

__all__ = [
    "AdaptationRow",
    "VisitKind",
    "adaptation_auc_markdown",
    "adaptation_auc_rows",
    "run_visit_aucs",
    "shift_kms",
]

#: Which visits after a shift an adaptation row pools: a stage's first visit, or a return to a stage visited before.
VisitKind = Literal["first visit", "revisit"]
#: The kinds in table order, with whether a visit of that kind is a revisit.
_KINDS: tuple[tuple[VisitKind, bool], ...] = (("first visit", False), ("revisit", True))


class AdaptationRow(TypedDict):
    """
    One row of the adaptation AUC table (:func:`adaptation_auc_rows`): the success AUC over the horizon after a
    shift, of one agent on one env, for first visits of a stage or for revisits.
    """

    #: Environment id.
    env: str
    #: Agent name.
    agent: str
    #: Which visits after a shift: a stage's first visit or a revisit.
    kind: VisitKind
    #: Runs that recorded ``stage_eval.csv`` (count).
    recorded: int
    #: Runs with at least one defined AUC of this kind (count of seeds).
    seeds: int
    #: Visits of this kind with a defined (not NaN) AUC (count).
    defined: int
    #: Visits of this kind (count).
    total: int
    #: The AUC (success rate integrated over the horizon, divided by it: 0 to 1): ``(IQM, low, high)``, the IQM
    #: over seeds and its stratified-bootstrap 95 % CI (strata: visit index); all NaN without a defined AUC.
    estimate: tuple[float, float, float]
    #: Why the undefined AUCs are undefined: reason -> visits (count).
    reasons: dict[str, int]


def run_visit_aucs(run: RunData) -> list[tuple[Visit, AdaptationAUC]] | None:
    """
    :param run: a loaded run.
    :return: the adaptation AUC of each stage visit (success of the training stage over ``adaptation.horizon``
        frames after the shift into it); ``None`` when the run recorded no ``stage_eval.csv``, no horizon, or no
        ``to_stage`` of its shifts. A visit's curve is its stage's ``stage_eval.csv`` rows with ``current == 1``
        from the shift into it on, closed by the first evaluation of the stage at or after the shift out of it:
        evaluations run at the rollout end after a shift, before any update, so that row is the policy that left
        the stage (``current == 0`` there, as the training stage has changed). Later rows (another visit) are not
        used.
    """
    horizon = run.config.adaptation.horizon
    table = run.stage_eval
    if table is None or not horizon or len(run.shift_stages) != len(run.shifts):
        return None
    current = table["current"] == 1
    first = run.visits[0]["stage"] if run.visits else int(table["stage"][current][0]) if current.any() else 0
    visits = visits_from_shifts(run.shifts, run.shift_stages, first_stage=first)
    frames, stages, success = table["timesteps"], table["stage"].astype(int), table["success_rate"]
    out = []
    for v in visits:
        rows = (stages == v.stage) & current & (frames >= v.entered_at)
        if v.left_at is not None:
            leaving = np.flatnonzero((stages == v.stage) & (frames >= v.left_at))
            close = frames[leaving[0]] if leaving.size else v.left_at
            rows &= frames <= close
            if leaving.size:
                rows[leaving[0]] = True
        auc = visit_aucs(frames[rows], [v.stage] * int(rows.sum()), success[rows], [v], float(horizon))[0][1]
        if auc.reason.startswith("evaluations end") and v.left_at is not None:
            reason = f"no evaluation of the stage between the horizon's end and its leaving at {v.left_at:g}"
            auc = AdaptationAUC(auc.auc, reason, auc.n_evals)
        out.append((v, auc))
    return out


_REASONS = {"stage left": "left before the horizon", "no evaluation": "no evaluation at the shift"}
_REASONS["evaluations end"] = "training ended before the horizon"
_REASONS["no evaluation of the stage"] = "no evaluation before the stage was left"


def _reason(text: str) -> str:
    return next((short for prefix, short in _REASONS.items() if text.startswith(prefix)), text)


def adaptation_auc_rows(runs: list[RunData]) -> list[AdaptationRow]:
    """
    The primary adaptation metric per (env, agent, kind): the success AUC over the horizon after each shift.

    Visits after a shift are split into first visits of a stage and revisits; the IQM pools the seeds' AUCs with
    the visit index as stratum (stratified bootstrap 95 % CI). Undefined (NaN) AUCs are counted with their reasons,
    never imputed.

    :param runs: loaded runs.
    :return: one :class:`AdaptationRow` per (env, agent, kind), first visits before revisits.
    """
    groups: dict[tuple[str, str], list[RunData]] = defaultdict(list)
    for r in runs:
        groups[(r.env, r.agent)].append(r)
    rows: list[AdaptationRow] = []
    for env in sorted({r.env for r in runs}):
        for agent in agent_order(a for e, a in groups if e == env):
            per_run = [a for a in (run_visit_aucs(r) for r in groups[(env, agent)]) if a is not None]
            for kind, revisit in _KINDS:
                strata: dict[int, list[float]] = defaultdict(list)
                reasons: dict[str, int] = defaultdict(int)
                seeds = 0
                for aucs in per_run:
                    picked = [(k, a) for k, (v, a) in enumerate(aucs) if k >= 1 and v.revisit == revisit]
                    seeds += any(not math.isnan(a.auc) for _, a in picked)
                    for k, a in picked:
                        strata[k].append(a.auc)
                        if a.reason:
                            reasons[_reason(a.reason)] += 1
                values = [v for s in strata.values() for v in s]
                rows.append(
                    {
                        "env": env,
                        "agent": agent,
                        "kind": kind,
                        "recorded": len(per_run),
                        "seeds": seeds,
                        "defined": sum(not math.isnan(v) for v in values),
                        "total": len(values),
                        "estimate": stratified_bootstrap_ci([strata[k] for k in sorted(strata)]),
                        "reasons": dict(reasons),
                    }
                )
    return rows


def adaptation_auc_markdown(rows: Sequence[AdaptationRow], image: str, actions: str) -> list[str]:
    """
    :param rows: from :func:`adaptation_auc_rows`.
    :param image: the plot's file name, relative to ``report.md``.
    :param actions: how the evaluations chose their actions (``greedy actions``, ``sampled actions``...).
    :return: the section's lines.
    """
    lines = ["", "## Adaptation: success AUC after a shift", ""]
    if not any(r["recorded"] for r in rows):
        return [*lines, "Per-stage evaluations (`stage_eval.csv`) not recorded in these runs."]
    lines += [
        f"Success rate of the new training stage (evaluation with {actions}, `stage_eval.csv`) integrated over the "
        "fixed horizon (`adaptation.horizon` frames) after each shift, divided by the horizon: 1 = solved at once, "
        "0 = never solved within the horizon. Higher is better. IQM over seeds (strata: visit index) with a 95 % "
        "stratified-bootstrap CI from 3 seeds on. Undefined visits are counted with their reasons, never imputed.",
        "",
        "| env | agent | visits | runs recorded | AUC defined / visits | AUC: IQM [95% CI] "
        "| undefined (reason: count) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        reasons = "; ".join(f"{k}: {v}" for k, v in sorted(r["reasons"].items())) or "-"
        point, low, high = r["estimate"]
        lines.append(
            f"| {r['env']} | {r['agent']} | {r['kind']} | {r['recorded']} | {r['defined']}/{r['total']} "
            f"| {format_estimate(point, low, high, r['seeds'])} | {reasons} |"
        )
    return [*lines, "", f"![Adaptation AUC]({image})"]


def shift_kms(runs: list[RunData]) -> dict[tuple[str, str], KaplanMeier]:
    """
    Kaplan–Meier estimate of the frames to reach the success threshold after a shift (``mastery.csv`` visits
    ``k >= 1``; a visit that never reached it is right-censored at the frames it lasted, never averaged as is).

    :param runs: loaded runs.
    :return: per (env, agent) with at least one shift visit; all agents of an env share one ``tau`` (the smallest
        of their longest durations) so that their restricted means compare.
    """
    visits: dict[tuple[str, str], list[tuple[float, bool]]] = defaultdict(list)
    for r in runs:
        visits[(r.env, r.agent)] += r.adaptation()[1:]
    visits = {k: v for k, v in visits.items() if v}
    out = {}
    for env in {e for e, _ in visits}:
        keys = [k for k in visits if k[0] == env]
        tau = min(max(d for d, _ in visits[k]) for k in keys)
        for k in keys:
            d, m = zip(*visits[k], strict=True)
            out[k] = frames_to_threshold_km(d, m, tau=tau if tau > 0 else None)
    return out
