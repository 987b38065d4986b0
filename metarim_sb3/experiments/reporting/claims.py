"""
The paper's claims as testable statements, and the verdict a report gives each one.

A comparison preset may declare ``claims``: which agent the claims are about (``reference``), the decision rule's
``alpha`` and ``margin``, and ``items``, each a claim in words with the metric and the agent it is judged
against::

    claims:
      reference: meta-rim
      alpha: 0.05     # Holm-adjusted p-value below which a difference counts
      margin: 0.05    # the smallest advantage (on the metric's 0-1 scale) that would matter
      items:
        - claim: Meta-RIMs adapt faster after a shift than RIMs trained jointly
          metric: adaptation AUC
          against: rim

Declaring them in the preset fixes them, and the rule, before the runs are read. The verdict of one claim comes
from the paired comparison of the report (the agent minus the reference on the seeds both ran; see
:func:`~metarim_sb3.experiments.reporting.comparisons.paired_differences`), read as the reference's advantage:

- **supported**: the Holm-adjusted p-value is below ``alpha`` and the whole 95 % CI of the advantage is above 0;
- **not supported**: the whole CI is below ``margin``, i.e. the data exclude an advantage that would matter
  (this includes the other agent being clearly better);
- **inconclusive**: anything else, and every comparison with fewer than 3 paired seeds.

``rule: v2`` (the study protocol v2, :mod:`~metarim_sb3.experiments.reporting.protocol`) judges each env family on
its own and pooled with declared ``weights`` (env -> weight), on the metrics of
:data:`~metarim_sb3.experiments.reporting.protocol.METRICS`; ``secondary`` lists metrics reported with the same
statistics but no verdict, and ``tau`` (env -> frames) caps the time to threshold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metarim_sb3.experiments.reporting.claim_set import Claim, Claims
from metarim_sb3.experiments.reporting.comparisons import PAIRED_METRICS, PairedComparison
from metarim_sb3.experiments.reporting.formatting import format_estimate, interval_allowed
from metarim_sb3.experiments.reporting.protocol import METRICS as V2_METRICS

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Verdict:
    """A claim judged on a report's paired comparison (``None`` when the comparison could not be made)."""

    claim: Claim
    comparison: PairedComparison | None
    verdict: str
    reason: str

    @property
    def advantage(self) -> tuple[float, float, float]:
        """The reference's advantage (reference minus the other agent: IQM and 95 % CI), NaN without data."""
        if self.comparison is None:
            return math.nan, math.nan, math.nan
        point, low, high = self.comparison.iqm_diff
        return -point, -high, -low

    @property
    def p_better(self) -> tuple[float, float, float]:
        """P(reference > other agent) with its 95 % CI, NaN without data."""
        if self.comparison is None:
            return math.nan, math.nan, math.nan
        point, low, high = self.comparison.poi
        return 1.0 - point, 1.0 - high, 1.0 - low


def _fraction(raw: Mapping[str, Any], key: str, where: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{where}: claims.{key} must be a number in (0, 1), got {value!r}")
    return float(value)


def parse_claims(raw: Any, agents: list[str], where: str) -> Claims:
    """
    Check a preset's ``claims`` block.

    :param raw: the block as read from YAML.
    :param agents: the preset's agents (the reference and every ``against`` must be among them).
    :param where: the preset's name, for messages.
    :return: the claims.
    :raises ValueError: naming the bad key and what is allowed.
    """
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: claims must be a mapping with keys reference, alpha, margin, items")
    allowed = {"reference", "alpha", "margin", "items", "rule", "weights", "secondary", "tau"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown claims keys {unknown}; allowed: {', '.join(sorted(allowed))}")
    rule = raw.get("rule", "v1")
    if rule not in ("v1", "v2"):
        raise ValueError(f"{where}: claims.rule must be v1 or v2, got {rule!r}")
    metrics = PAIRED_METRICS if rule == "v1" else V2_METRICS
    if rule == "v1" and set(raw) & {"weights", "secondary", "tau"}:
        raise ValueError(f"{where}: claims.weights, secondary and tau need claims.rule v2")
    reference = raw.get("reference")
    if reference not in agents:
        raise ValueError(f"{where}: claims.reference must be one of the agents {agents}, got {reference!r}")
    items = raw.get("items")
    if not isinstance(items, list) or not items:
        raise ValueError(f"{where}: claims.items must be a non-empty list")
    claims = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or set(item) != {"claim", "metric", "against"}:
            raise ValueError(f"{where}: claims.items[{i}] must have exactly the keys claim, metric, against")
        if not isinstance(item["claim"], str) or not item["claim"].strip():
            raise ValueError(f"{where}: claims.items[{i}].claim must be a non-empty text")
        if item["metric"] not in metrics:
            raise ValueError(
                f"{where}: claims.items[{i}].metric must be one of {list(metrics)}, got {item['metric']!r}"
            )
        if item["against"] not in agents or item["against"] == reference:
            others = [a for a in agents if a != reference]
            raise ValueError(f"{where}: claims.items[{i}].against must be one of {others}, got {item['against']!r}")
        claims.append(Claim(item["claim"].strip(), item["metric"], item["against"]))
    alpha, margin = _fraction(raw, "alpha", where), _fraction(raw, "margin", where)
    if rule == "v1":
        return Claims(str(reference), alpha, margin, tuple(claims))
    weights = _env_numbers(raw.get("weights"), "weights", where, positive_int=False)
    tau = _env_numbers(raw.get("tau"), "tau", where, positive_int=True)
    secondary = raw.get("secondary") or []
    if not isinstance(secondary, list) or any(m not in V2_METRICS for m in secondary):
        raise ValueError(f"{where}: claims.secondary must be a list of metrics from {list(V2_METRICS)}")
    return Claims(
        str(reference), alpha, margin, tuple(claims), rule, tuple(weights.items()), tuple(secondary),
        tuple((k, int(v)) for k, v in tau.items()),
    )  # fmt: skip


def _env_numbers(raw: Any, key: str, where: str, positive_int: bool) -> dict[str, float]:
    """A mapping env -> positive number (an integer if ``positive_int``)."""
    kind = "integer" if positive_int else "number"
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f"{where}: claims.{key} must be a mapping env -> positive {kind} (rule v2)")
    out = {}
    for env, value in raw.items():
        bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
        if bad or (positive_int and not float(value).is_integer()):
            raise ValueError(f"{where}: claims.{key}.{env} must be a positive {kind}, got {value!r}")
        out[str(env)] = float(value)
    return out


def judge(claims: Claims, comparisons: Mapping[str, list[PairedComparison]]) -> list[Verdict]:
    """
    Give each claim its verdict (rule in the module docstring).

    :param claims: from :func:`parse_claims`.
    :param comparisons: a report's paired comparisons with ``claims.reference`` (metric -> comparisons).
    :return: one verdict per claim, in order.
    """
    out = []
    for claim in claims.items:
        found = [c for c in comparisons.get(claim.metric, []) if c.agent == claim.against]
        comparison = found[0] if found else None
        if comparison is None or comparison.reference != claims.reference:
            reason = f"no seeds run by both {claims.reference} and {claim.against}"
            out.append(Verdict(claim, None, INCONCLUSIVE, reason))
            continue
        if not interval_allowed(comparison.n_pairs):
            reason = f"{comparison.n_pairs} paired seed(s): fewer than 3 get no interval"
            out.append(Verdict(claim, comparison, INCONCLUSIVE, reason))
            continue
        verdict = Verdict(claim, comparison, INCONCLUSIVE, "")
        _, low, high = verdict.advantage
        if comparison.p_holm < claims.alpha and low > 0:
            reason = f"p (Holm) {comparison.p_holm:.3f} < {claims.alpha:g} and the CI is above 0"
            if high < claims.margin:
                reason += f", but the whole CI is below the margin {claims.margin:g}: a real but small advantage"
            out.append(Verdict(claim, comparison, SUPPORTED, reason))
        elif high < claims.margin:
            reason = f"the CI excludes an advantage of {claims.margin:g} or more"
            out.append(Verdict(claim, comparison, NOT_SUPPORTED, reason))
        else:
            if low > 0:
                reason = f"the CI is above 0 but p (Holm) {comparison.p_holm:.3f} >= {claims.alpha:g}"
            else:
                reason = f"the CI holds both no advantage and one of the margin {claims.margin:g} or more"
            out.append(Verdict(claim, comparison, INCONCLUSIVE, reason))
    return out


def missing_runs(planned: Iterable[tuple[str, str, int]], complete: Iterable[tuple[str, str, int]]) -> str:
    """
    What a grid still lacks, in words.

    :param planned: the (env, agent, seed) runs a preset plans.
    :param complete: the (env, agent, seed) runs that finished.
    :return: ``""`` if every planned run is complete, else a sentence counting them and naming the missing
        seeds, agents with the same missing seeds together.
    """
    order = list(dict.fromkeys(planned))  # the plan's order of envs and agents
    done = set(complete)
    missing = [run for run in order if run not in done]
    if not missing:
        return ""
    parts = []
    for env in dict.fromkeys(e for e, _, _ in missing):
        by_seeds: dict[tuple[int, ...], list[str]] = {}
        for agent in dict.fromkeys(a for e, a, _ in missing if e == env):
            seeds = tuple(sorted(s for e, a, s in missing if e == env and a == agent))
            by_seeds.setdefault(seeds, []).append(agent)
        cells = [f"{', '.join(agents)} seeds {', '.join(map(str, seeds))}" for seeds, agents in by_seeds.items()]
        parts.append(f"{env}: {'; '.join(cells)}")
    return (
        f"**Interim:** {len(order) - len(missing)} of the {len(order)} runs the preset plans are complete; "
        f"missing: {'. '.join(parts)}."
    )


def pairs_to_resolve(verdict: Verdict, margin: float) -> int | None:
    """
    About how many paired seeds would let an inconclusive claim be decided: a CI narrower than the margin cannot
    hold both 0 and the margin. Assumes the CI narrows as 1 / sqrt(pairs) around the same spread of differences.

    :param verdict: a verdict from :func:`judge`.
    :param margin: the claims' margin.
    :return: the number of pairs (>= the current number), or ``None`` when the verdict is not inconclusive or has
        no interval to scale.
    """
    c = verdict.comparison
    if verdict.verdict != INCONCLUSIVE or c is None or not interval_allowed(c.n_pairs):
        return None
    width = c.iqm_diff[2] - c.iqm_diff[1]
    if not math.isfinite(width) or width <= 0:
        return None
    return max(c.n_pairs, math.ceil(c.n_pairs * (width / margin) ** 2 - 1e-9))  # no extra pair for rounding


def verdict_markdown(
    claims: Claims,
    verdicts: list[Verdict],
    envs: list[str],
    by_env: Mapping[str, list[Verdict]] | None = None,
    missing: str = "",
) -> list[str]:
    """
    The report's ``Verdict`` section.

    :param claims: the claims and their rule.
    :param verdicts: from :func:`judge` on the comparisons that pool the envs.
    :param envs: the envs the comparisons pool (as strata).
    :param by_env: env -> verdicts judged on that env's runs alone (a secondary table when there are several envs).
    :param missing: from :func:`missing_runs`, shown first when the grid is not complete.
    :return: Markdown lines.
    """
    ref = claims.reference
    lines = [
        "",
        "## Verdict",
        "",
        *([missing, ""] if missing else []),
        f"Each claim of the paper, as declared with its decision rule in the comparison preset before the runs "
        f"were read, judged on the paired comparison below ({ref} minus the other agent on the seeds both ran, "
        f"envs {', '.join(envs)} as strata). **Supported**: Holm-adjusted p < {claims.alpha:g} and the 95 % CI of "
        f"{ref}'s advantage above 0. **Not supported**: the whole CI below the margin {claims.margin:g}, so an "
        "advantage that would matter is excluded. **Inconclusive**: anything else, and fewer than 3 paired seeds. "
        "Inconclusive means this study lacks the power to tell, not that there is no effect; its row says about "
        "how many paired seeds would (if the CI narrows as 1/sqrt(pairs)).",
        "",
        "**In short:** "
        + ", ".join(
            f"{sum(v.verdict == name for v in verdicts)} of {len(verdicts)} claims {name}"
            for name in (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)
        )
        + ".",
        "",
        f"| claim | metric | against | pairs | {ref} advantage: IQM [95% CI] | P({ref} better) [95% CI] "
        "| p (Holm) | verdict | why |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        c = v.comparison
        n = c.n_pairs if c else 0
        p = f"{c.p_holm:.3f}" if c else "n/a"
        needed = pairs_to_resolve(v, claims.margin)
        why = v.reason + (f"; about {needed} paired seeds would narrow it below the margin" if needed else "")
        lines.append(
            f"| {v.claim.text} | {v.claim.metric} | {v.claim.against} | {n} | {format_estimate(*v.advantage, n)} "
            f"| {format_estimate(*v.p_better, n)} | {p} | **{v.verdict}** | {why} |"
        )
    if by_env and len(by_env) > 1:
        lines += [
            "",
            "Secondary, the same rule on each env alone (its own Holm correction; fewer pairs, so less power):",
            "",
            f"| claim | env | pairs | {ref} advantage: IQM [95% CI] | p (Holm) | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for i, claim in enumerate(claims.items):
            for env, env_verdicts in by_env.items():
                v = env_verdicts[i]
                n = v.comparison.n_pairs if v.comparison else 0
                p = f"{v.comparison.p_holm:.3f}" if v.comparison else "n/a"
                lines.append(f"| {claim.text} | {env} | {n} | {format_estimate(*v.advantage, n)} | {p} | {v.verdict} |")
    return lines
