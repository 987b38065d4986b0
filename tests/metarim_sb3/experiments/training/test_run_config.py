"""The typed run configuration (issue 27): :class:`RunConfig` loads every committed ``config.yaml``, refuses unknown
keys naming the allowed ones, reads its defaults from the signatures of the constructors it feeds, checks
``policy_kwargs`` against the policy, and is frozen."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import yaml
from repo_paths import ROOT
from sb3_contrib import RecurrentPPO

from metarim_sb3.callbacks import CurriculumCallback, FastSlowCallback, StageEvalCallback
from metarim_sb3.experiments.training.config import AGENTS, resolve_config
from metarim_sb3.experiments.training.config_sections import (
    CurriculumSettings,
    FastSlowSettings,
    PPOSettings,
    StageEvalSettings,
)
from metarim_sb3.experiments.training.run_config import RunConfig, policy_classes, policy_parameters
from metarim_sb3.experiments.training.yaml_io import ConfigError

COMMITTED = sorted(ROOT.glob("results/**/config.yaml"))
ENV = "MetaRIM-GoTo-v0"


def _same(saved: object, loaded: object, path: str = "") -> list[str]:
    """The keys of ``saved`` whose value ``loaded`` does not keep (the renamed ``rim_dropout`` read as ``dropout``)."""
    if isinstance(saved, dict) and isinstance(loaded, dict):
        out = []
        for key, value in saved.items():
            new_key = "dropout" if key == "rim_dropout" and path == "policy_kwargs." else key
            out += _same(value, loaded.get(new_key), f"{path}{key}.")
        return out
    return [] if saved == loaded and type(saved) is type(loaded) else [f"{path[:-1]}: {saved!r} -> {loaded!r}"]


@pytest.mark.skipif(not COMMITTED, reason="no committed run folders under results/")
def test_every_committed_config_loads_and_keeps_its_values() -> None:
    problems = []
    for path in COMMITTED:
        saved = yaml.safe_load(path.read_text())
        config = RunConfig.from_mapping(saved)
        problems += [f"{path.relative_to(ROOT)} {p}" for p in _same(saved, config.to_dict())]
        assert RunConfig.from_mapping(config.to_dict()) == config  # the written form reads back the same
    assert problems == []


@pytest.mark.parametrize("agent", AGENTS)
def test_resolved_configs_round_trip(agent: str) -> None:
    config = resolve_config(agent, ENV)
    assert RunConfig.from_mapping(config.to_dict()) == config
    assert list(config.to_dict())[:2] == ["agent", "env"] and "seed" not in config.to_dict()


def test_unknown_keys_are_refused_with_the_allowed_ones() -> None:
    data = resolve_config("lstm", ENV).to_dict()
    with pytest.raises(ConfigError, match=r"unknown config key 'learning_rate'; allowed keys: activity, adaptation"):
        RunConfig.from_mapping({**data, "learning_rate": 1e-3})
    with pytest.raises(ConfigError, match=r"unknown config key ppo\.lr; allowed keys under ppo: batch_size, chunk_len"):
        RunConfig.from_mapping({**data, "ppo": {"lr": 1e-3}})
    with pytest.raises(ConfigError, match=r"unknown config key policy_kwargs\.n_unit for MultiInputFastLstmPolicy; "):
        RunConfig.from_mapping({**data, "policy_kwargs": {"n_unit": 4}})


def test_defaults_are_the_constructors() -> None:
    def default(target: object, name: str) -> object:
        return inspect.signature(target).parameters[name].default  # type: ignore[arg-type]

    ppo = PPOSettings()
    for name in ("learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "ent_coef", "max_grad_norm"):
        assert getattr(ppo, name) == default(RecurrentPPO, name), name
    fast_slow = FastSlowSettings()
    for name in ("mode", "other", "slow_every", "slow_lr_scale", "slow_fraction", "fast_lr", "slow_lr"):
        assert getattr(fast_slow, name) == default(FastSlowCallback, name), name
    curriculum = CurriculumSettings()
    for name in ("threshold", "window", "min_steps", "cycle", "every", "first"):
        assert getattr(curriculum, name) == default(CurriculumCallback, name), name
    for name in ("every", "episodes", "n_envs", "others"):
        assert getattr(StageEvalSettings(), name) == default(StageEvalCallback, name), name


def test_policy_kwargs_are_the_policies_parameters() -> None:
    rim = policy_parameters(policy_classes()["MultiInputRIMPolicy"])
    assert {"n_units", "unit_size", "k", "dropout", "net_arch", "features_extractor_kwargs", "shared_lstm"} <= set(rim)
    assert not {"observation_space", "action_space", "lr_schedule", "kwargs"} & set(rim)
    lstm = policy_parameters(policy_classes()["MultiInputFastLstmPolicy"])
    assert "lstm_hidden_size" in lstm and "n_units" not in lstm


def test_values_are_converted_or_refused() -> None:
    config = resolve_config("lstm", ENV)
    changed = config.with_changes(ppo={"learning_rate": 1, "n_steps": 64.0}, timesteps="2048")
    assert changed.ppo.learning_rate == 1.0 and isinstance(changed.ppo.learning_rate, float)
    assert changed.ppo.n_steps == 64 and isinstance(changed.ppo.n_steps, int) and changed.timesteps == 2048
    with pytest.raises(ConfigError, match=r"config key ppo\.n_steps: expected an integer, got 64\.5"):
        config.with_changes(ppo={"n_steps": 64.5})
    with pytest.raises(ConfigError, match=r"config key ppo\.gamma must be a number >= 0 and <= 1, got 1\.5"):
        config.with_changes(ppo={"gamma": 1.5})
    with pytest.raises(ConfigError, match=r"config key deterministic_eval: expected true or false, got 'yes please'"):
        config.with_changes(deterministic_eval="yes please")
    with pytest.raises(ConfigError, match=r"config key stage_eval\.others must be one of every, shifts"):
        config.with_changes(stage_eval={"others": "never"})


def test_frozen() -> None:
    config = resolve_config("lstm", ENV)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.timesteps = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.ppo.learning_rate = 1.0  # type: ignore[misc]
