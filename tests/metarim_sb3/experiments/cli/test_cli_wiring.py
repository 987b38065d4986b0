"""What ``metarim train`` / ``compare`` wire into a run: the gru agent, drift and stage evaluations, ``critic``,
and the clean-tree rule for committed results."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from cli_helpers import ENV_ID, TINY, metarim

from metarim_sb3.experiments.training.config import resolve_config
from metarim_sb3.experiments.training.provenance import check_results_tree, git_sha
from metarim_sb3.experiments.training.yaml_io import ConfigError

#: TINY, with stage evaluations frequent enough to write rows within a few hundred steps.
WIRED = {**TINY, "stage_eval": {"every": 128, "episodes": 1, "n_envs": 1}}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def _git(repo: Path, *args: str) -> None:
    cmd = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", "-c", "commit.gpgsign=false", *args]
    subprocess.run(cmd, cwd=repo, check=True, capture_output=True)


@pytest.fixture()
def dirty_repo(tmp_path: Path) -> Path:
    """A git repository with one commit and one uncommitted change."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    _git(repo, "add", "code.py")
    _git(repo, "commit", "-q", "-m", "start")
    (repo / "code.py").write_text("x = 2\n")
    return repo


def test_train_gru_writes_drift_and_stage_eval(tmp_path: Path) -> None:
    config = tmp_path / "wired.yaml"
    config.write_text(yaml.safe_dump(WIRED))
    out = tmp_path / "gru"
    result = metarim(
        "train", "--agent", "gru", "--env", ENV_ID, "--timesteps", "256", "--out", out, "--config", config
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    drift = _rows(out / "drift.csv")
    assert drift and int(drift[-1]["timesteps"]) == 256 and any(k.startswith("drift_") for k in drift[0])
    assert (out / "drift_reference.pt").is_file()
    stage_eval = _rows(out / "stage_eval.csv")
    assert {int(r["timesteps"]) for r in stage_eval} >= {128, 256}
    assert all(0.0 <= float(r["success_rate"]) <= 1.0 for r in stage_eval)


def test_compare_gru_and_meta_rim(tmp_path: Path, dirty_repo: Path) -> None:
    preset = tmp_path / "grid.yaml"
    grid = {"agents": ["gru", "meta-rim"], "envs": [ENV_ID], "seeds": 1, "timesteps": 128, "overrides": WIRED}
    preset.write_text(yaml.safe_dump(grid))
    out = dirty_repo / "results" / "grid"
    refused = metarim("compare", "--preset", preset, "--workers", "2", "--out", out, "--no-report", cwd=dirty_repo)
    assert refused.returncode == 2, refused.stderr
    assert "--allow-dirty" in refused.stderr and "clean tree" in refused.stderr
    assert not out.exists()
    result = metarim(
        "compare", "--preset", preset, "--workers", "2", "--out", out, "--no-report", "--allow-dirty", cwd=dirty_repo
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    for agent in ("gru", "meta-rim"):
        run = out / "runs" / ENV_ID / agent / "seed_0"
        assert (run / "done.json").is_file(), agent
        assert _rows(run / "drift.csv") and _rows(run / "stage_eval.csv"), agent


def test_results_tree_rule(dirty_repo: Path, tmp_path: Path) -> None:
    check_results_tree(dirty_repo / "elsewhere", allow_dirty=False)  # not under results/: allowed
    check_results_tree(tmp_path / "results" / "x", allow_dirty=False)  # not in a repository: allowed
    with pytest.raises(ConfigError, match="clean tree"):
        check_results_tree(dirty_repo / "results" / "x", allow_dirty=False)
    _git(dirty_repo, "commit", "-q", "-am", "clean")
    (dirty_repo / "results" / "old").mkdir(parents=True)
    (dirty_repo / "results" / "old" / "summary.csv").write_text("a\n")  # results themselves do not count
    check_results_tree(dirty_repo / "results" / "x", allow_dirty=False)


def test_git_sha_ignores_results(dirty_repo: Path, tmp_path: Path) -> None:
    """Runs record ``<sha>-dirty`` for code changes, not for result files (e.g. a study's finished runs)."""
    assert str(git_sha(dirty_repo)).endswith("-dirty")
    _git(dirty_repo, "commit", "-q", "-am", "clean")
    (dirty_repo / "results" / "study" / "runs").mkdir(parents=True)
    (dirty_repo / "results" / "study" / "runs" / "curve.csv").write_text("a\n")
    sha = git_sha(dirty_repo / "results" / "study")
    assert sha is not None and len(sha) == 40 and not sha.endswith("-dirty")
    (dirty_repo / "new.py").write_text("y = 1\n")  # a scratch file outside the packages does not count
    assert git_sha(dirty_repo) == sha
    (dirty_repo / "metarim_sb3").mkdir()
    (dirty_repo / "metarim_sb3" / "new.py").write_text("y = 1\n")  # a new module inside one does
    assert git_sha(dirty_repo) == f"{sha}-dirty"
    outside = tmp_path / "no-repo"
    outside.mkdir()
    assert git_sha(outside) is None


@pytest.mark.parametrize(
    ("critic", "shared", "critic_core", "gradient"),
    [("shared-detached", True, False, False), ("shared", True, False, True), ("separate", False, True, False)],
)
def test_critic_builds_the_policy(critic: str, shared: bool, critic_core: bool, gradient: bool) -> None:
    from metarim_sb3.experiments.training.envs import make_env
    from metarim_sb3.experiments.training.model import build_model

    config = resolve_config("gru", ENV_ID, overrides={**TINY, "critic": critic})
    env = make_env(config.env, config.n_envs, 0, config.env_kwargs)
    try:
        model = build_model(config, env, 0)
        model.learn(64)
    finally:
        env.close()
    policy = model.policy
    assert policy.shared_lstm is shared and policy.shared_critic_gradient is gradient
    assert (policy.lstm_critic is not None) is critic_core


def test_critic_rejects_unknown_values() -> None:
    with pytest.raises(ConfigError, match="critic must be one of shared-detached, shared, separate"):
        resolve_config("gru", ENV_ID, overrides={"critic": "both"})


def test_fixed_schedule_needs_the_curriculum_off() -> None:
    steps = {"env_kwargs": {"schedule": "steps", "shift_every": 512}}
    with pytest.raises(ConfigError, match=r"curriculum\.enabled false"):
        resolve_config("gru", ENV_ID, overrides=steps)
    config = resolve_config("gru", ENV_ID, overrides={**steps, "curriculum": {"enabled": False}})
    assert config.env_kwargs["schedule"] == "steps"


def test_train_on_a_fixed_schedule(tmp_path: Path) -> None:
    config = tmp_path / "fixed.yaml"
    fixed = {"curriculum": {"enabled": False}, "env_kwargs": {"schedule": "steps", "shift_every": 64}}
    config.write_text(yaml.safe_dump({**WIRED, **fixed}))
    out = tmp_path / "fixed"
    result = metarim(
        "train", "--agent", "gru", "--env", ENV_ID, "--timesteps", "384", "--out", out, "--config", config
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "done.json").read_text())["schedule"] == "steps"
    stages = [int(r["stage"]) for r in _rows(out / "curve.csv")]
    assert stages == sorted(stages) and stages[-1] > 0  # shifted by the env's own counter, never back
