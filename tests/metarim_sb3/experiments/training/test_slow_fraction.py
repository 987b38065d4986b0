"""The slow rate is stored as the ratio rho (``fast_slow.slow_fraction``); old run folders with an absolute
``slow_lr`` still load, resume and build their callback with the same slow lr (issue 27)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from repo_paths import ROOT

from metarim_sb3.callbacks.fast_slow import FastSlowCallback
from metarim_sb3.experiments.training.config import apply_overrides, resolve_config
from metarim_sb3.experiments.training.config_sections import FastSlowSettings
from metarim_sb3.experiments.training.folder import read_run_config
from metarim_sb3.experiments.training.resume import resume_changes
from metarim_sb3.experiments.training.run_config import RunConfig
from metarim_sb3.experiments.training.yaml_io import ConfigError

ENV = "MetaRIM-GoTo-v0"
#: One committed run folder per study and agent with a fast/slow split (written with an absolute ``slow_lr``).
OLD_RUNS = [
    runs[0]
    for results in ("study-v1", "study")
    for agent in ("meta-rim", "reversed")
    if (runs := sorted(p.parent for p in (ROOT / "results" / results / "runs").glob(f"*/{agent}/seed_*/config.yaml")))
]


def _slow_lr(fast_slow: FastSlowSettings | None, learning_rate: float) -> float:
    """The slow lr the run's callback gives its slow groups at a constant model learning rate."""
    assert fast_slow is not None
    callback = FastSlowCallback(**fast_slow.callback_kwargs())  # type: ignore[arg-type]
    callback.model = SimpleNamespace(_current_progress_remaining=1.0, lr_schedule=lambda _: learning_rate)  # type: ignore[assignment]
    return callback.current_lrs()[1]


@pytest.mark.parametrize("agent", ["meta-rim", "reversed"])
def test_presets_store_rho_and_give_the_same_slow_lr(agent: str) -> None:
    config = resolve_config(agent, ENV)
    assert config.fast_slow is not None
    assert config.fast_slow.slow_fraction == 0.1 and config.fast_slow.slow_lr is None
    assert config.ppo.learning_rate == 7e-4
    assert _slow_lr(config.fast_slow, 7e-4) == pytest.approx(7e-5, rel=1e-12)  # the old absolute value
    # the ratio follows the fast lr: a new learning rate keeps rho
    faster = resolve_config(agent, ENV, overrides={"ppo": {"learning_rate": 1.4e-3}})
    assert _slow_lr(faster.fast_slow, 1.4e-3) == pytest.approx(1.4e-4, rel=1e-12)
    absolute = resolve_config(agent, ENV, overrides={"fast_slow": {"slow_lr": 1e-4, "slow_fraction": None}})
    assert _slow_lr(absolute.fast_slow, 7e-4) == 1e-4


def test_config_checks_are_the_callbacks() -> None:
    with pytest.raises(ConfigError, match=r"slow_lr.*slow_fraction"):
        resolve_config("meta-rim", ENV, overrides={"fast_slow": {"slow_lr": 1e-4}})
    with pytest.raises(ConfigError, match="config key fast_slow: slow_fraction"):
        resolve_config("meta-rim", ENV, overrides={"fast_slow": {"slow_fraction": -0.1}})
    with pytest.raises(ConfigError, match="config key fast_slow: mode must be one of meta, reversed, joint"):
        resolve_config("meta-rim", ENV, overrides={"fast_slow": {"mode": "fast"}})
    with pytest.raises(ConfigError, match="config key fast_slow: other must be one of fast, slow"):
        resolve_config("meta-rim", ENV, overrides={"fast_slow": {"other": "medium"}})


@pytest.mark.skipif(not OLD_RUNS, reason="no committed run folders under results/")
@pytest.mark.parametrize("run", OLD_RUNS, ids=lambda p: "/".join(p.parts[-5:]))
def test_old_run_config_with_absolute_slow_lr_still_loads_and_resumes(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    copy.mkdir()
    shutil.copy(run / "config.yaml", copy / "config.yaml")
    raw = yaml.safe_load((copy / "config.yaml").read_text())
    assert "slow_fraction" not in raw["fast_slow"] and raw["fast_slow"]["slow_lr"] == 7e-5
    saved = read_run_config(copy)
    assert saved.fast_slow is not None and saved.fast_slow.slow_fraction is None and saved.fast_slow.slow_lr == 7e-5
    # train --resume: the saved config is the base; the resume check accepts it as it is and against today's presets
    config = apply_overrides(saved.with_changes(seed=None), None, None, {"timesteps": saved.timesteps})
    resume_changes(saved, config)  # raises on a changed fixed key
    fresh = resolve_config(saved.agent, saved.env)
    # fixed keys aside, the renamed fast_slow key is no change
    resume_changes(saved, fresh.with_changes(policy_kwargs=saved.policy_kwargs, n_envs=saved.n_envs, ppo=saved.ppo))
    # the same slow lr as the presets give today
    learning_rate = saved.ppo.learning_rate
    assert _slow_lr(saved.fast_slow, learning_rate) == pytest.approx(_slow_lr(fresh.fast_slow, learning_rate))


def test_resume_reads_the_old_name_rim_dropout_as_dropout() -> None:
    """A run folder written before the rename holds policy_kwargs.rim_dropout: a resume compares it as dropout."""
    config = resolve_config("meta-rim", ENV)
    kwargs = dict(config.policy_kwargs)
    data = {
        **config.to_dict(),
        "policy_kwargs": {("rim_dropout" if k == "dropout" else k): v for k, v in kwargs.items()},
    }
    old = RunConfig.from_mapping(data)
    assert old.policy_kwargs == kwargs  # read under the new name
    resume_changes(old, config)  # the same settings under the new name: no change
    with pytest.raises(ConfigError, match="policy_kwargs"):
        resume_changes(old, config.with_changes(policy_kwargs={"dropout": 0.5}))
