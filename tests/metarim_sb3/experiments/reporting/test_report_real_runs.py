"""``metarim report`` on tiny real runs (2 agents x 3 seeds, stage and held-out evaluations on): every section
and plot of the report exists, and its integer columns print as integers."""

from __future__ import annotations

import copy
import csv
import re
from pathlib import Path

import pytest
from cli_helpers import ENV_ID, TINY

from metarim_sb3.experiments.reporting.report import build_report
from metarim_sb3.experiments.training.config import resolve_config
from metarim_sb3.experiments.training.runner import run

pytestmark = pytest.mark.slow  # six short trainings: about a minute on two cores

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Quick shifts (window 1, any success) so that every run passes its stages; frequent, small evaluations.
OVERRIDES = {
    **copy.deepcopy(TINY),
    "curriculum": {"window": 1, "threshold": 0.01},
    "heldout_eval": {"every": 128, "episodes": 2, "n_envs": 1},
    "stage_eval": {"every": 128, "episodes": 2, "n_envs": 1},
    "adaptation": {"horizon": 128},
    "final_eval": {"episodes": 2, "n_envs": 1},
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The report folder and text of 2 agents x 3 seeds of 512 steps."""
    root = tmp_path_factory.mktemp("real")
    for agent in ("meta-rim", "lstm"):
        config = resolve_config(agent, ENV_ID, overrides=copy.deepcopy(OVERRIDES), timesteps=512)
        for seed in range(3):
            assert run(config, seed, root / "runs" / agent / f"seed_{seed}")["status"] == "done"
    out = root / "report"
    build_report([root / "runs"], out)
    return out, (out / "report.md").read_text(encoding="utf-8")


def _section(text: str, title: str) -> str:
    assert f"\n{title}\n" in text, f"missing section {title!r}"
    return text.split(f"\n{title}\n")[1].split("\n## ")[0]


def _table(section: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines() if line.startswith(f"| {ENV_ID}")
    ]


def test_every_plot_exists(report: tuple[Path, str]) -> None:
    out, text = report
    for name in ("adaptation_auc", "adaptation", "forgetting", "zero_shot", "learning_curves", "drift"):
        path = out / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        assert f"]({name}.png)" in text, name


def test_every_section_exists(report: tuple[Path, str]) -> None:
    _, text = report
    auc = _table(_section(text, "## Adaptation: success AUC after a shift"))
    assert {(r[1], r[2]) for r in auc} == {(a, k) for a in ("meta-rim", "lstm") for k in ("first visit", "revisit")}
    assert "![Frames to threshold after a shift (Kaplan–Meier)](adaptation.png)" in text
    forgetting = _table(_section(text, "## Forgetting"))
    assert {r[2] for r in forgetting} >= {"0", "1"}  # every run passed stage 0 and 1
    fixed = _table(_section(text, "## Zero-shot success during training").split("### At mastery")[0])
    assert {int(r[2].replace(",", "")) for r in fixed} >= {128, 256, 512}
    at_mastery = _table(_section(text, "### At mastery of the last training stage"))
    assert [r[1] for r in at_mastery] == ["meta-rim", "lstm"]
    for row in at_mastery:
        reached, total = map(int, row[2].split("/"))
        assert total == 3 and int(row[3]) == 3 - reached
        assert len(re.findall(r"\bs\d+: ", row[4])) == reached  # one entry per seed that reached mastery
    paired = _section(text, "## Paired comparisons with meta-rim")
    assert "| IQM difference [95% CI] | P(improvement) [95% CI] |" in paired
    row = next(line for line in paired.splitlines() if line.startswith("| zero-shot success | lstm |"))
    assert row.split("|")[3].strip() == "3"  # pairs


def test_integer_columns_print_as_integers(report: tuple[Path, str]) -> None:
    out, text = report
    with open(out / "summary.csv", newline="") as file:
        summary = list(csv.DictReader(file))
    integer = ["seed", "timesteps", "final_stage", "shifts"] + [k for k in summary[0] if k.startswith("adapt_")]
    for row in summary:
        for key in integer:
            assert row[key] == "" or row[key].lstrip("-").isdigit(), (key, row[key])
    with open(out / "aggregate.csv", newline="") as file:
        for row in csv.DictReader(file):
            for key in ("seeds", "complete", "km_tau", "km_median"):
                assert row[key] in ("", "nan") or row[key].isdigit(), (key, row[key])
    for title, columns in (("## Forgetting", (3,)), ("### At mastery of the last training stage", (3,))):
        for row in _table(_section(text, title)):
            assert all(row[c].isdigit() for c in columns), (title, row)
