"""The study protocol v2 end to end on a tiny grid: a fixed schedule that cycles, stage evaluations of the current
stage with the others at shifts, seeds from ``first_seed`` in seed order, and the v2 verdict in the report; and the
committed v2 preset's declarations."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from cli_helpers import ENV_ID, TINY, metarim
from repo_paths import ROOT

from metarim_sb3.experiments.grid.compare import plan
from metarim_sb3.experiments.grid.presets import compare_preset
from metarim_sb3.experiments.reporting.runs import load_run
from metarim_sb3.experiments.reporting.sections.adaptation import run_visit_aucs
from metarim_sb3.experiments.reporting.sections.verdict import run_scores_v2

ROLLOUT = 64  # TINY: 2 envs x 32 steps


def tiny_preset(path: Path) -> Path:
    overrides = {
        **TINY,
        "curriculum": {"enabled": True, "cycle": True, "every": 4 * ROLLOUT, "first": 6 * ROLLOUT},
        "adaptation": {"horizon": 4 * ROLLOUT},
        "stage_eval": {"every": ROLLOUT, "episodes": 3, "n_envs": 1, "others": "shifts"},
        "heldout_eval": {"every": 100_000, "episodes": 2, "n_envs": 1},
    }
    preset = {
        "agents": ["meta-rim", "lstm"],
        "envs": [ENV_ID],
        "seeds": 3,
        "first_seed": 7,
        "order": "seed",
        "timesteps": 6 * ROLLOUT + 5 * 4 * ROLLOUT,
        "overrides": overrides,
        "claims": {
            "rule": "v2",
            "reference": "meta-rim",
            "alpha": 0.05,
            "margin": 0.05,
            "weights": {ENV_ID: 1},
            "tau": {ENV_ID: 3 * ROLLOUT},
            "secondary": ["time to threshold", "forgetting"],
            "items": [
                {"claim": "adapts faster", "metric": "adaptation AUC", "against": "lstm"},
                {"claim": "re-adapts faster", "metric": "re-adaptation AUC", "against": "lstm"},
                {"claim": "transfers better", "metric": "zero-shot success", "against": "lstm"},
            ],
        },
    }
    path.write_text(yaml.safe_dump(preset))
    return path


def test_plan_orders_seed_after_seed_from_first_seed(tmp_path: Path) -> None:
    preset = tiny_preset(tmp_path / "grid.yaml")
    jobs = plan(str(preset), tmp_path / "out")
    assert [(j.seed, j.agent) for j in jobs] == [(s, a) for s in (7, 8, 9) for a in ("meta-rim", "lstm")]
    assert jobs[0].config.curriculum.every == 4 * ROLLOUT
    assert jobs[0].out_dir.name == "seed_7"


@pytest.mark.slow
def test_tiny_v2_grid_end_to_end(tmp_path: Path) -> None:
    preset = tiny_preset(tmp_path / "grid.yaml")
    out = tmp_path / "results"
    result = metarim("compare", "--preset", preset, "--out", out, "--workers", "2", "--allow-dirty", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run = load_run(out / "runs" / ENV_ID / "meta-rim" / "seed_7")
    # the fixed schedule: 0 1 2 0 1 2, the first visit 6 rollouts, then 4 each, whatever the success
    with open(run.path / "curriculum.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(r["timestep"]) for r in rows] == [6 * ROLLOUT + k * 4 * ROLLOUT for k in range(5)]
    assert [int(r["to_stage"]) for r in rows] == [1, 2, 0, 1, 2]
    aucs = run_visit_aucs(run)
    assert aucs is not None and [v.revisit for v, _ in aucs] == [False, False, False, True, True, True]
    assert all(a.reason == "" for _, a in aucs[1:]), aucs  # no visit ends before the horizon
    # others only at shifts: the periodic evaluations inside a visit cover the current stage alone
    table = run.stage_eval
    assert table is not None
    inside = (table["timesteps"] > 7 * ROLLOUT) & (table["timesteps"] < 10 * ROLLOUT)
    assert set(table["current"][inside]) == {1}
    scores = run_scores_v2(run, 3 * ROLLOUT)
    assert 0 <= scores["adaptation AUC"] <= 1 and 0 <= scores["re-adaptation AUC"] <= 1
    assert 0 < scores["time to threshold"] <= 1 and -1 <= scores["forgetting"] <= 1
    report = (out / "report.md").read_text()
    assert "(rule v2)" in report and "### Pooled (weights fixed in the preset" in report
    assert "| adapts faster | MetaRIM-GoTo-v0 | 3 |" in report
    assert "Secondary metrics (no verdict)" in report
    assert "**Scores** (one per run" in report and "capped at tau and divided by tau" in report


def test_committed_v2_preset_declares_the_protocol() -> None:
    grid = compare_preset("study")
    claims = grid["claims"]
    assert claims.rule == "v2" and len(claims.items) == 16
    assert grid["first_seed"] >= 3  # disjoint from the calibration seeds 0-2
    assert set(grid["envs"]) == {"MetaRIM-GoTo-v0", "MetaRIM-DoorKey-v0", "MetaRIM-MultiRoom-v0"}
    for env in grid["envs"]:
        cur = grid["env_overrides"][env]["curriculum"]
        horizon = grid["env_overrides"][env]["adaptation"]["horizon"]
        assert horizon == cur["every"]  # the horizon is the visit: no visit ends before it
        assert grid["timesteps"][env] == cur["first"] + 5 * cur["every"]  # 0 1 2 0 1 2
        assert cur["every"] % 1024 == 0 and cur["first"] % 1024 == 0  # shifts on rollout ends
        assert dict(claims.tau)[env] < cur["every"]
    assert grid["overrides"]["stage_eval"]["episodes"] >= 50
    assert grid["overrides"]["final_eval"]["episodes"] >= 50 and grid["overrides"]["heldout_eval"]["episodes"] >= 50


def test_evaluations_record_their_wall_time_and_the_report_its_share(tmp_path: Path) -> None:
    # tiny real run: every stage and held-out evaluation row has its seconds; the report gives their share of time
    from metarim_sb3.experiments.reporting.report import build_report
    from metarim_sb3.experiments.training.config import resolve_config
    from metarim_sb3.experiments.training.runner import run

    overrides = {
        **TINY,
        "stage_eval": {"every": ROLLOUT, "episodes": 2, "n_envs": 1},
        "heldout_eval": {"every": ROLLOUT, "episodes": 2, "n_envs": 1},
    }
    config = resolve_config("lstm", ENV_ID, overrides=overrides, timesteps=2 * ROLLOUT)
    assert run(config, 0, tmp_path / "runs" / "lstm" / "seed_0")["status"] == "done"
    for name in ("stage_eval.csv", "heldout_eval.csv"):
        with open(tmp_path / "runs" / "lstm" / "seed_0" / name, newline="") as file:
            rows = list(csv.DictReader(file))
        assert rows and all(float(r["seconds"]) > 0 for r in rows)
    build_report([tmp_path / "runs"], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "share of wall time, median: MetaRIM-GoTo-v0 " in text
    assert "evaluation with sampled actions" in text  # deterministic_eval false, said as it is


def test_runs_without_timed_evaluations_get_no_share_line(tmp_path: Path) -> None:
    from metarim_sb3.experiments.reporting.report import build_report

    # a committed study v1 run predates the seconds column: the report must not claim 0 %
    src = ROOT / "results" / "study-v1" / "runs" / "MetaRIM-GoTo-v0" / "lstm" / "seed_0"
    build_report([src], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "share of wall time" not in text and "evaluation with sampled actions" in text
