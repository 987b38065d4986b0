"""The one evaluation loop (:func:`metarim_sb3.evaluation.run_episodes`): its rule for an episode end without
``info["is_success"]`` (refused, naming the env), the same episodes as SB3's ``evaluate_policy``, every evaluation
going through it; and the one CSV writer (:func:`metarim_sb3.callbacks._common.write_csv`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import metarim_gym  # noqa: F401  (registers the MetaRIM ids)
import metarim_sb3.evaluation as evaluation
from metarim_sb3 import MultiInputRIMPolicy
from metarim_sb3.callbacks import heldout_eval, stage_eval, zero_shot_mastery
from metarim_sb3.callbacks._common import write_csv
from metarim_sb3.callbacks.heldout_eval import HeldOutEvalCallback
from metarim_sb3.callbacks.stage_eval import StageEvalCallback
from metarim_sb3.callbacks.zero_shot_mastery import ZeroShotAtMasteryCallback
from metarim_sb3.evaluation import run_episodes
from metarim_sb3.experiments.training import evaluate, generalization
from metarim_sb3.experiments.training.config import resolve_config

ENV_ID = "MetaRIM-GoTo-v0"  # short episodes: a random policy succeeds now and then
TINY_RIM = dict(n_units=3, unit_size=4, k=2, input_key_size=8, comm_key_size=4, comm_value_size=4, comm_heads=2)
TINY_EXTRACTOR = dict(features_dim=16, cnn_channels=(4, 4), mission_embedding_dim=4)


class NoSuccessEnv(gym.Env[int, int]):
    """Episodes of 2 steps whose last ``info`` says nothing of success."""

    observation_space = gym.spaces.Discrete(2)
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return 0, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        self.t += 1
        return 0, 1.0, self.t >= 2, False, {}


class RandomModel:
    """A stateless model of seeded random actions (the same draws for the same calls)."""

    def __init__(self, action_space: gym.spaces.Discrete, seed: int = 0) -> None:
        self.n, self.rng = int(action_space.n), np.random.default_rng(seed)

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False) -> Any:
        n_envs = len(episode_start)
        return self.rng.integers(self.n, size=n_envs), state


def test_an_episode_without_is_success_is_refused_naming_the_env() -> None:
    env = DummyVecEnv([lambda: Monitor(NoSuccessEnv())])
    with pytest.raises(ValueError, match=r"NoSuccessEnv ended without info\['is_success'\]"):
        run_episodes(RandomModel(env.action_space), env, 2, deterministic=False)  # type: ignore[arg-type]


def test_every_metarim_episode_end_carries_is_success() -> None:
    # the evidence for the rule: terminated and truncated episodes alike (a random policy mostly times out)
    env = make_vec_env(ENV_ID, n_envs=2, seed=3)
    result = run_episodes(RandomModel(env.action_space), env, 8, deterministic=False)  # type: ignore[arg-type]
    assert len(result.successes) == len(result.returns) == len(result.lengths) == 8
    env.close()


def test_same_episodes_as_evaluate_policy() -> None:
    env = make_vec_env(ENV_ID, n_envs=3, seed=7)
    successes: list[bool] = []

    def collect(locals_: dict[str, Any], _globals: dict[str, Any]) -> None:
        if locals_["done"]:
            successes.append(bool(locals_["info"]["is_success"]))

    model: Any = RandomModel(env.action_space)  # type: ignore[arg-type]
    returns, lengths = evaluate_policy(model, env, n_eval_episodes=7, return_episode_rewards=True, callback=collect)
    env.seed(7)
    result = run_episodes(RandomModel(env.action_space), env, 7, deterministic=False)  # type: ignore[arg-type]
    assert result.returns == [float(r) for r in returns]  # type: ignore[union-attr]
    assert result.lengths == [int(n) for n in lengths]
    assert result.successes == successes
    env.close()


@pytest.mark.parametrize("n_episodes", [0, True, 1.5])
def test_bad_episode_count(n_episodes: Any) -> None:
    env = DummyVecEnv([lambda: Monitor(NoSuccessEnv())])
    with pytest.raises(ValueError, match="n_episodes"):
        run_episodes(RandomModel(env.action_space), env, n_episodes, deterministic=False)  # type: ignore[arg-type]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every caller's binding of the loop replaced by a spy that records the caller and runs the loop."""
    seen: list[str] = []
    for module in (stage_eval, heldout_eval, zero_shot_mastery, evaluate):
        assert module.run_episodes is evaluation.run_episodes

        def spy(*args: Any, _name: str = module.__name__, **kwargs: Any) -> Any:
            seen.append(_name)
            return evaluation.run_episodes(*args, **kwargs)

        monkeypatch.setattr(module, "run_episodes", spy)
    return seen


def _model() -> RecurrentPPO:
    env = make_vec_env(ENV_ID, n_envs=2, seed=0)
    policy_kwargs = dict(**TINY_RIM, features_extractor_kwargs=TINY_EXTRACTOR, net_arch=dict(pi=[8], vf=[8]))
    return RecurrentPPO(MultiInputRIMPolicy, env, n_steps=16, batch_size=32, n_epochs=1, seed=0,
                        policy_kwargs=policy_kwargs)  # fmt: skip


def test_every_evaluation_runs_through_the_one_loop(calls: list[str]) -> None:
    model = _model()
    model.set_logger(Logger(None, []))
    held_out = make_vec_env(ENV_ID, n_envs=2, seed=5, env_kwargs=dict(stage="heldout"))
    heldout_cb = HeldOutEvalCallback(held_out, n_eval_episodes=2)
    heldout_cb.init_callback(model)
    assert heldout_cb.evaluate()["n_episodes"] == 2
    stage_cb = StageEvalCallback(ENV_ID, episodes=2, n_envs=2)
    stage_cb.init_callback(model)
    stage_cb.current = 0
    assert stage_cb.evaluate()[0]["episodes"] == 2
    mastery_cb = ZeroShotAtMasteryCallback(held_out, n_eval_episodes=2, model_name=None)
    mastery_cb.init_callback(model)
    assert mastery_cb.evaluate()["episodes"] == 2
    assert evaluate.evaluate_model(model, ENV_ID, stage=0, episodes=2, n_envs=2)["episodes"] == 2
    config = resolve_config("lstm", ENV_ID, overrides={"generalization": {"stages": [1], "episodes": 2, "n_envs": 1}})
    assert generalization.evaluate_test_stages(model, config, seed=0)[0]["episodes"] == 2
    assert calls == [
        "metarim_sb3.callbacks.heldout_eval",
        "metarim_sb3.callbacks.stage_eval",
        "metarim_sb3.callbacks.zero_shot_mastery",
        "metarim_sb3.experiments.training.evaluate",  # metarim evaluate
        "metarim_sb3.experiments.training.evaluate",  # the tests after training (generalization)
    ]
    stage_cb.close()
    held_out.close()


def test_the_one_csv_writer(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("old")
    write_csv(path, [["x", "y"], [1, "a,b"], [None, 2.5]])
    assert path.read_bytes() == b'x,y\r\n1,"a,b"\r\n,2.5\r\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]  # no temporary file left
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        write_csv(folder, [["x"]])
