"""The claims of a preset: checked on load, judged by the documented rule, shown as the report's verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import assert_one_line_error, main_in_process
from report_runs import ENV, make_run

from metarim_sb3.experiments.grid.presets import compare_preset
from metarim_sb3.experiments.reporting.claims import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    Claim,
    Claims,
    judge,
    missing_runs,
    pairs_to_resolve,
    parse_claims,
)
from metarim_sb3.experiments.reporting.comparisons import PairedComparison
from metarim_sb3.experiments.reporting.report import build_report
from metarim_sb3.experiments.training.yaml_io import ConfigError

AGENTS = ["meta-rim", "rim", "lstm"]
GOOD: dict[str, Any] = {
    "reference": "meta-rim",
    "alpha": 0.05,
    "margin": 0.05,
    "items": [{"claim": "faster than joint", "metric": "adaptation AUC", "against": "rim"}],
}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"colour": 1}, "unknown claims keys ['colour']"),
        ({"reference": "gru"}, "claims.reference must be one of the agents"),
        ({"alpha": 1.5}, "claims.alpha must be a number in (0, 1)"),
        ({"margin": True}, "claims.margin must be a number in (0, 1)"),
        ({"items": []}, "claims.items must be a non-empty list"),
        ({"items": [{"claim": "x", "metric": "adaptation AUC"}]}, "exactly the keys claim, metric, against"),
        ({"items": [{"claim": " ", "metric": "adaptation AUC", "against": "rim"}]}, "claim must be a non-empty"),
        ({"items": [{"claim": "x", "metric": "return", "against": "rim"}]}, "metric must be one of"),
        ({"items": [{"claim": "x", "metric": "adaptation AUC", "against": "meta-rim"}]}, "against must be one of"),
    ],
)
def test_bad_claims_name_the_key(change: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match="preset p: ") as info:
        parse_claims({**GOOD, **change}, AGENTS, "preset p")
    assert needle in str(info.value)


def test_preset_claims_load_and_bad_ones_are_config_errors(tmp_path: Path) -> None:
    study = compare_preset("study-v1")["claims"]
    assert study.reference == "meta-rim" and {c.against for c in study.items} == {"rim", "lstm", "gru", "reversed"}
    assert compare_preset("quick")["claims"] is None
    path = tmp_path / "p.yaml"
    path.write_text(
        "agents: [meta-rim, rim]\nenvs: [MetaRIM-GoTo-v0]\nseeds: 3\ntimesteps: 100\n"
        "claims: {reference: meta-rim, alpha: 0.05, margin: 0.05, items: [{claim: x, metric: m, against: rim}]}\n"
    )
    with pytest.raises(ConfigError, match="metric must be one of"):
        compare_preset(str(path))


def _comparison(diff: tuple[float, float, float], p_holm: float, n: int = 10) -> PairedComparison:
    """``diff``: the other agent minus meta-rim (as the report's paired table)."""
    return PairedComparison("rim", "meta-rim", n, 1, diff, (0.5, 0.2, 0.8), p_holm, p_holm)


CLAIMS = Claims("meta-rim", 0.05, 0.05, (Claim("faster than joint", "adaptation AUC", "rim"),))


@pytest.mark.parametrize(
    ("diff", "p_holm", "n", "verdict", "reason"),
    [
        ((-0.2, -0.3, -0.1), 0.01, 10, SUPPORTED, "CI is above 0"),  # meta-rim clearly better
        ((-0.02, -0.04, -0.01), 0.01, 10, SUPPORTED, "real but small"),  # better, by less than the margin
        ((-0.2, -0.3, -0.1), 0.2, 10, INCONCLUSIVE, "p (Holm) 0.200 >= 0.05"),  # CI above 0, not significant
        ((0.2, 0.1, 0.3), 0.01, 10, NOT_SUPPORTED, "excludes an advantage of 0.05"),  # the other agent better
        ((0.0, -0.03, 0.02), 0.9, 10, NOT_SUPPORTED, "excludes"),  # equivalent within the margin
        ((-0.05, -0.3, 0.2), 0.5, 10, INCONCLUSIVE, "holds both no advantage and one of the margin"),
        ((-0.2, -0.3, -0.1), 0.01, 2, INCONCLUSIVE, "fewer than 3"),
    ],
)
def test_judge_follows_the_rule(
    diff: tuple[float, float, float], p_holm: float, n: int, verdict: str, reason: str
) -> None:
    (v,) = judge(CLAIMS, {"adaptation AUC": [_comparison(diff, p_holm, n)]})
    assert v.verdict == verdict and reason in v.reason, v
    assert v.advantage == pytest.approx((-diff[0], -diff[2], -diff[1]))


def test_judge_without_a_comparison_is_inconclusive() -> None:
    (v,) = judge(CLAIMS, {"zero-shot success": [_comparison((0.2, 0.1, 0.3), 0.01)]})
    assert v.verdict == INCONCLUSIVE and v.comparison is None and "no seeds run by both" in v.reason


def test_report_gives_each_claim_a_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    for seed in range(7):  # 7 pairs: the smallest exact sign-flip p is 2/128, and Holm doubles it: < 0.05
        make_run(runs, "meta-rim", seed, 2, 0.8 + 0.01 * seed)
        make_run(runs, "lstm", seed, 2, 0.2 + 0.02 * seed)
        make_run(runs, "rim", seed, 2, 0.82 + 0.01 * seed)
    result = main_in_process(["report", runs, "--out", tmp_path / "rep", "--claims", "study-v1"], capsys)
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "rep" / "report.md").read_text()
    section = report.split("## Verdict")[1].split("\n## ")[0]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| Meta-RIMs")}
    assert "**supported**" in rows["Meta-RIMs transfer better zero-shot than an LSTM"]
    assert "**not supported**" in rows["Meta-RIMs transfer better zero-shot than RIMs trained jointly"]
    assert "**inconclusive**" in rows["Meta-RIMs transfer better zero-shot than a GRU"]  # no gru runs
    assert "**inconclusive**" in rows["Meta-RIMs adapt faster after a shift than an LSTM"]  # no AUC in these runs
    assert f"envs {ENV}" in section
    assert "**In short:** 1 of 8 claims supported, 1 of 8 claims not supported, 6 of 8 claims inconclusive." in section
    assert report.index("## Verdict") < report.index("## Paired comparisons with meta-rim")
    build_report([runs], tmp_path / "plain")
    assert "## Verdict" not in (tmp_path / "plain" / "report.md").read_text()


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--claims", "quick"], ("--claims", "declares no claims")),
        (["--claims", "study-v1", "--reference", "rim"], ("--reference must be meta-rim",)),
        (["--claims", "nonesuch"], ("unknown preset 'nonesuch'",)),
    ],
)
def test_report_claims_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needles: tuple[str, ...]
) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "meta-rim", 0, 1, 0.5)
    result = main_in_process(["report", runs, "--out", tmp_path / "rep", *extra], capsys)
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "rep").exists()


def test_verdict_by_env_with_several_envs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed in range(3):
        for agent, success in (("meta-rim", 0.8), ("lstm", 0.2)):
            make_run(runs / "a", agent, seed, 2, success + 0.01 * seed)
            other = make_run(runs / "b", agent, seed, 2, success)
            config = yaml.safe_load((other / "config.yaml").read_text())
            (other / "config.yaml").write_text(yaml.safe_dump({**config, "env": "MiniGrid-Other-v0"}))
    build_report([runs], tmp_path / "rep", claims=compare_preset("study-v1")["claims"])
    section = (tmp_path / "rep" / "report.md").read_text().split("## Verdict")[1].split("\n## ")[0]
    assert "envs MiniGrid-Other-v0, MiniGrid-Synthetic-v0 as strata" in section
    pooled = [
        line
        for line in section.splitlines()
        if line.startswith("| Meta-RIMs transfer better zero-shot than an LSTM | zero")
    ]
    assert len(pooled) == 1 and "| 6 |" in pooled[0]  # 3 seeds in each of 2 envs
    per_env = [
        line
        for line in section.splitlines()
        if line.startswith("| Meta-RIMs transfer better zero-shot than an LSTM | MiniGrid")
    ]
    assert len(per_env) == 2 and all("| 3 |" in line for line in per_env)


def test_missing_runs_names_what_the_grid_lacks() -> None:
    planned = [(e, a, s) for e in ("B", "A") for a in ("meta-rim", "rim") for s in range(3)]
    assert missing_runs(planned, planned) == ""
    done = [run for run in planned if not (run[0] == "A" or (run[1] == "rim" and run[2] == 2))]
    text = missing_runs(planned, [*done, ("C", "gru", 0)])  # a run outside the plan counts for nothing
    assert text == (
        "**Interim:** 5 of the 12 runs the preset plans are complete; "
        "missing: B: rim seeds 2. A: meta-rim, rim seeds 0, 1, 2."
    )


def test_report_with_claims_says_the_verdict_is_interim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "meta-rim", 0, 1, 0.5)
    result = main_in_process(["report", runs, "--out", tmp_path / "rep", "--claims", "study-v1"], capsys)
    assert result.returncode == 0, result.stderr
    section = (tmp_path / "rep" / "report.md").read_text().split("## Verdict")[1]
    assert "**Interim:** 0 of the 75 runs the preset plans are complete" in section  # ENV is not a study env


def test_pairs_to_resolve_scales_the_ci_width() -> None:
    (wide,) = judge(CLAIMS, {"adaptation AUC": [_comparison((-0.05, -0.2, 0.1), 0.5, n=10)]})
    assert wide.verdict == INCONCLUSIVE and pairs_to_resolve(wide, 0.05) == 360  # 10 x (0.3 / 0.05)^2
    (done,) = judge(CLAIMS, {"adaptation AUC": [_comparison((0.2, 0.1, 0.3), 0.01, n=10)]})
    assert pairs_to_resolve(done, 0.05) is None  # decided: nothing to resolve
    (few,) = judge(CLAIMS, {"adaptation AUC": [_comparison((-0.05, -0.2, 0.1), 0.5, n=2)]})
    assert pairs_to_resolve(few, 0.05) is None  # no interval to scale
