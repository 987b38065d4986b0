"""The ``generalization`` preset's decision rule
(:mod:`metarim_sb3.experiments.reporting.sections.generalization_verdict`) on hand-made paired comparisons whose
verdicts are known."""

from __future__ import annotations

import math

from metarim_sb3.experiments.reporting.sections.generalization import PairedRow
from metarim_sb3.experiments.reporting.sections.generalization_verdict import (
    BETTER,
    UNRESOLVED,
    WORSE,
    claim_rows,
    direction,
    verdict_markdown,
)

BASELINES = ("lstm", "gru")
#: Test envs of one training env "S": itself (in distribution), then the larger "M" and "L".
TESTS = (("S", True), ("M", False), ("L", False))


def _row(agent: str, test: str, baseline: str, mean: float, p_holm: float, n: int = 10) -> PairedRow:
    return PairedRow("S", test, test == "S", agent, baseline, n, mean, mean - 0.1, mean + 0.1, p_holm / 3, p_holm)


def _agent(agent: str, results: dict[tuple[str, str], tuple[float, float]], n: int = 10) -> list[PairedRow]:
    """Every comparison of ``agent`` (no difference unless ``results[(test, baseline)]`` gives mean and Holm p)."""
    return [_row(agent, test, b, *results.get((test, b), (0.02, 0.6)), n=n) for test, _ in TESTS for b in BASELINES]


def test_direction_needs_a_holm_p_below_alpha_and_three_pairs() -> None:
    assert direction(_row("rim", "M", "lstm", 0.2, 0.01)) == BETTER
    assert direction(_row("rim", "M", "lstm", -0.2, 0.049)) == WORSE
    assert direction(_row("rim", "M", "lstm", 0.2, 0.05)) == UNRESOLVED
    assert direction(_row("rim", "M", "lstm", 0.2, 0.01, n=2)) == UNRESOLVED
    assert direction(_row("rim", "M", "lstm", 0.2, math.nan)) == UNRESOLVED


def test_claims_are_supported_contradicted_or_inconclusive() -> None:
    better_everywhere = {(t, b): (0.2, 0.01) for t, _ in TESTS[1:] for b in BASELINES}
    paired = [
        # better than both on every larger env, worse than the LSTM on its training env: supported, deficit shown
        *_agent("rim", {**better_everywhere, ("S", "lstm"): (-0.1, 0.02)}),
        # better than both on M, unresolved against the LSTM on L: inconclusive
        *_agent("rim-k2", {**better_everywhere, ("L", "lstm"): (0.2, 0.2)}),
        # better than the LSTM everywhere, the GRU better on L: not supported
        *_agent("meta-rim", {**better_everywhere, ("L", "gru"): (-0.15, 0.01)}),
        # the same p-values with 2 pairs resolve nothing
        *_agent("few", better_everywhere, n=2),
    ]
    # compared with the LSTM only: cannot be supported
    paired += [p for p in _agent("lonely", better_everywhere) if p.baseline == "lstm"]
    rows = {r["agent"]: r for r in claim_rows(paired, BASELINES)}
    assert list(rows) == ["rim", "rim-k2", "meta-rim", "few", "lonely"]
    assert rows["rim"]["verdict"] == "supported" and rows["rim"]["larger"] == ["M", "L"]
    assert rows["rim"]["training_env"] == "worse than lstm" and rows["rim"]["baseline_better"] == []
    assert rows["rim-k2"]["verdict"] == "inconclusive" and rows["rim-k2"]["better_than_all"] == ["M"]
    assert rows["rim-k2"]["training_env"] == UNRESOLVED
    assert rows["meta-rim"]["verdict"] == "not supported" and rows["meta-rim"]["baseline_better"] == ["L (gru)"]
    assert rows["few"]["verdict"] == "inconclusive" and rows["few"]["better_than_all"] == []
    assert rows["lonely"]["verdict"] == "inconclusive" and rows["lonely"]["missing"] == ["gru"]


def test_the_verdict_table() -> None:
    assert verdict_markdown([], BASELINES) == []
    better_everywhere = {(t, b): (0.2, 0.01) for t, _ in TESTS[1:] for b in BASELINES}
    lines = verdict_markdown(
        [*_agent("rim", better_everywhere), *_agent("meta-rim", {("M", "gru"): (-0.3, 0.001)})], BASELINES
    )
    text = "\n".join(lines)
    assert "Holm p above is below 0.05" in text and "better than `lstm` and `gru`" in text
    assert "| S | rim | 2 of 2 (M, L) | none | no difference resolved | **supported** |" in lines
    assert "| S | meta-rim | 0 of 2 | M (gru) | no difference resolved | **not supported** |" in lines
    # the last line sums it up (the docs' results index quotes it)
    assert lines[-1] == (
        "**In short:** 1 supported, 1 not supported, 0 inconclusive (of 2 claims: one per training env and RIM agent); "
        "supported: rim on S; not supported: meta-rim on S."
    )
