"""The decision rule of the ``generalization`` preset, applied to the report's paired comparisons.

The rule, as the preset's description declares it before any run: a RIM agent **generalizes better** (**worse**)
than a baseline on a test env when the Holm-corrected p of the paired t test is below :data:`ALPHA` and the mean
difference (RIM agent minus baseline) is positive (negative); otherwise **no difference is resolved** at this power
(also with fewer than :data:`~metarim_sb3.experiments.reporting.formatting.MIN_SEEDS_FOR_INTERVAL` pairs, which get
no interval). The RIMs paper's claim (a RIM agent generalizes zero-shot to larger envs better than an LSTM and a
GRU) is then judged per training env and RIM agent: **supported** when the agent generalizes better than every
baseline of :data:`~metarim_sb3.experiments.reporting.sections.generalization.BASELINES` on every larger test env
(every test env but the training env), **not supported** when a baseline generalizes better on one of them (the
claim is contradicted there), **inconclusive** otherwise. The training env's own row is reported beside the verdict
(an advantage on larger envs with a deficit on the training env is stated as such), never folded into it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, TypedDict

from metarim_sb3.experiments.reporting.formatting import MIN_SEEDS_FOR_INTERVAL
from metarim_sb3.experiments.reporting.protocol import VERDICTS

__all__ = [
    "ALPHA",
    "BETTER",
    "UNRESOLVED",
    "WORSE",
    "ClaimRow",
    "Comparison",
    "claim_rows",
    "direction",
    "verdict_markdown",
]


class Comparison(Protocol):
    """What the rule reads of one paired comparison (the report's
    :class:`~metarim_sb3.experiments.reporting.sections.generalization.PairedRow`)."""

    @property
    def train_env(self) -> str:
        """The env the runs trained on."""

    @property
    def test_env(self) -> str:
        """The env they were tested on."""

    @property
    def in_distribution(self) -> bool:
        """Whether the test env is the training env."""

    @property
    def agent(self) -> str:
        """The RIM agent (or variant)."""

    @property
    def baseline(self) -> str:
        """The baseline it is compared with."""

    @property
    def n(self) -> int:
        """Pairs (common seeds)."""

    @property
    def mean(self) -> float:
        """Mean difference of success, agent minus baseline."""

    @property
    def p_holm(self) -> float:
        """Holm-corrected p of the two-sided paired t test (NaN when there is none)."""


#: Holm-corrected significance level of one comparison.
ALPHA = 0.05
#: The results of one comparison (:func:`direction`).
BETTER, WORSE, UNRESOLVED = "better", "worse", "no difference resolved"


def direction(row: Comparison) -> str:
    """
    :param row: one RIM agent against one baseline on one test env.
    :return: :data:`BETTER` or :data:`WORSE` when its Holm p is below :data:`ALPHA` with at least
        :data:`~metarim_sb3.experiments.reporting.formatting.MIN_SEEDS_FOR_INTERVAL` pairs (by the sign of the mean
        difference), else :data:`UNRESOLVED`.
    """
    if row.n < MIN_SEEDS_FOR_INTERVAL or math.isnan(row.p_holm) or row.p_holm >= ALPHA or row.mean == 0:
        return UNRESOLVED
    return BETTER if row.mean > 0 else WORSE


class ClaimRow(TypedDict):
    """The paper's claim for one RIM agent trained on one env (:func:`claim_rows`)."""

    #: The env the runs trained on.
    train_env: str
    #: The RIM agent (or variant) judged.
    agent: str
    #: The larger test envs (every test env but the training env), in size order.
    larger: list[str]
    #: The larger test envs on which the agent generalizes better than every baseline.
    better_than_all: list[str]
    #: ``"TEST_ENV (BASELINE)"`` for each larger test env and baseline that generalizes better than the agent.
    baseline_better: list[str]
    #: The baselines with no comparison with this agent (no common seed): the claim cannot be supported.
    missing: list[str]
    #: On the training env: ``"better than B"`` / ``"worse than B"`` per baseline with a resolved difference, or
    #: :data:`UNRESOLVED`.
    training_env: str
    #: ``"supported"``, ``"not supported"`` or ``"inconclusive"``.
    verdict: str


def claim_rows(paired: Sequence[Comparison], baselines: Sequence[str]) -> list[ClaimRow]:
    """
    :param paired: the report's paired comparisons, in size order within each training env
        (:func:`~metarim_sb3.experiments.reporting.sections.generalization.paired_rows`).
    :param baselines: the baselines the claim names (``lstm`` and ``gru``).
    :return: one :class:`ClaimRow` per training env and RIM agent with a comparison, in the order of ``paired``.
    """
    out: list[ClaimRow] = []
    keys = list(dict.fromkeys((p.train_env, p.agent) for p in paired))
    for train_env, agent in keys:
        own = [p for p in paired if (p.train_env, p.agent) == (train_env, agent)]
        larger = list(dict.fromkeys(p.test_env for p in own if not p.in_distribution))
        result = {(p.test_env, p.baseline): direction(p) for p in own}
        missing = [b for b in baselines if not any(p.baseline == b for p in own)]
        better_all = [e for e in larger if all(result.get((e, b)) == BETTER for b in baselines)]
        worse = [f"{e} ({b})" for e in larger for b in baselines if result.get((e, b)) == WORSE]
        home = [f"{r} than {p.baseline}" for p in own if p.in_distribution and (r := direction(p)) != UNRESOLVED]
        if worse:
            verdict = "not supported"
        elif larger and better_all == larger and not missing:
            verdict = "supported"
        else:
            verdict = "inconclusive"
        out.append(
            {
                "train_env": train_env,
                "agent": agent,
                "larger": larger,
                "better_than_all": better_all,
                "baseline_better": worse,
                "missing": missing,
                "training_env": ", ".join(home) or UNRESOLVED,
                "verdict": verdict,
            }
        )
    return out


def verdict_markdown(paired: Sequence[Comparison], baselines: Sequence[str]) -> list[str]:
    """
    :param paired: as for :func:`claim_rows`.
    :param baselines: as for :func:`claim_rows`.
    :return: the report's lines of the verdict (a heading, the rule, one table row per training env and RIM agent);
        empty when there is no comparison.
    """
    rows = claim_rows(paired, baselines)
    if not rows:
        return []
    both = " and ".join(f"`{b}`" for b in baselines)
    lines = [
        "",
        "### Verdict: does a RIM agent generalize better to larger envs?",
        "",
        f"The decision rule declared in the `generalization` preset before the runs: a RIM agent generalizes better "
        f"(worse) than a baseline on a test env when the Holm p above is below {ALPHA} and the mean difference is "
        f"positive (negative), with at least {MIN_SEEDS_FOR_INTERVAL} pairs; otherwise no difference is resolved at "
        f"this power (the `result` column above). The claim (the RIMs paper's: a RIM agent generalizes zero-shot "
        f"to larger envs better than {both}) is **supported** for a RIM agent that generalizes better than both on "
        "every larger test env of its training env, **not supported** where a baseline generalizes better on one of "
        "them, and **inconclusive** otherwise. The training env's own row is shown beside it, not part of it.",
        "",
        "| train env | agent | better than both on | a baseline better on | on the training env | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        better = f"{len(r['better_than_all'])} of {len(r['larger'])}"
        if r["better_than_all"]:
            better += f" ({', '.join(r['better_than_all'])})"
        if r["missing"]:
            better += f"; no comparison with {', '.join(r['missing'])}"
        worse = ", ".join(r["baseline_better"]) or "none"
        lines.append(
            f"| {r['train_env']} | {r['agent']} | {better} | {worse} | {r['training_env']} | **{r['verdict']}** |"
        )
    return [*lines, "", in_short(rows)]


def in_short(rows: Sequence[ClaimRow]) -> str:
    """
    The verdict in one line (the docs' results index shows it): the count of each verdict, then which training env
    and agent got it.

    :param rows: from :func:`claim_rows` (not empty).
    :return: ``"**In short:** N supported, N not supported, N inconclusive (of N claims: one per training env and
        RIM agent); supported: AGENT on ENV, ...; not supported: ..."``.
    """
    counts = ", ".join(f"{sum(r['verdict'] == v for r in rows)} {v}" for v in VERDICTS)
    parts = [f"**In short:** {counts} (of {len(rows)} claims: one per training env and RIM agent)"]
    for v in VERDICTS:
        named = [f"{r['agent']} on {r['train_env']}" for r in rows if r["verdict"] == v]
        if named and v != VERDICTS[-1]:
            parts.append(f"{v}: {', '.join(named)}")
    return "; ".join(parts) + "."
