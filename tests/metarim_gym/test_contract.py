"""The contract every registered MetaRIM id must meet (one parametrised test module over the registry)."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import metarim_gym

ENV_IDS = sorted(i for i in gym.registry if i.startswith("MetaRIM-"))

# warnings that are expected and harmless: gymnasium on wrapped envs, SB3 about index images, pygame fonts
_EXPECTED = ("is different from the unwrapped version", "upper and lower bounds", "minimal resolution", "font")


def test_registry_matches_table() -> None:
    assert set(ENV_IDS) == set(metarim_gym.ENV_IDS)
    assert len(ENV_IDS) == 6


def _rollout(env: gym.Env, seed: int, steps: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    out = [(obs["image"].tobytes(), obs["direction"], obs["mission"].tobytes(), info["task"], info["stage"])]
    for t in range(1, steps + 1):
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(7)))
        out.append((obs["image"].tobytes(), obs["direction"], obs["mission"].tobytes(), reward, terminated, truncated,
                    info["task"], info["stage"], info.get("is_success")))  # fmt: skip
        if terminated or truncated or t % 60 == 0:  # resets every 60 steps too, so that shifts take effect
            obs, info = env.reset()
            out.append(("reset", info["task"], info["stage"]))
    return out


@pytest.mark.parametrize("env_id", ENV_IDS)
class TestContract:
    def test_checkers(self, env_id: str) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gym_check_env(gym.make(env_id))
            sb3_check_env(gym.make(env_id), warn=True)
        unexpected = [str(w.message) for w in caught if not any(e in str(w.message) for e in _EXPECTED)]
        assert unexpected == []

    def test_same_seed_same_trajectory_across_a_shift(self, env_id: str) -> None:
        a = gym.make(env_id, schedule="steps", shift_every=100)
        b = gym.make(env_id, schedule="steps", shift_every=100)
        ta, tb = _rollout(a, seed=7, steps=300), _rollout(b, seed=7, steps=300)
        assert ta == tb
        stages = {row[-1] for row in ta if row[0] == "reset"}
        assert len(stages) >= 2, "the rollout must cross a stage change"
        tc = _rollout(gym.make(env_id, schedule="steps", shift_every=100), seed=8, steps=300)
        assert tc != ta

    def test_pickle_round_trip(self, env_id: str) -> None:
        env = gym.make(env_id).unwrapped
        env.reset(seed=3)
        for a in (2, 1, 2):
            if any(env.step(a)[2:4]):  # terminated or truncated
                env.reset()
        clone = pickle.loads(pickle.dumps(env))
        for a in (2, 0, 2, 2, 3, 5):
            o1, r1, te1, tr1, i1 = env.step(a)
            o2, r2, te2, tr2, i2 = clone.step(a)
            assert all(np.array_equal(o1[k], o2[k]) for k in o1)
            assert (r1, te1, tr1, i1) == (r2, te2, tr2, i2)
            if te1 or tr1:
                break

    def test_render(self, env_id: str) -> None:
        env = gym.make(env_id, render_mode="rgb_array")
        env.reset(seed=0)
        frame = env.render()
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.shape[0] >= 32
        human = gym.make(env_id, render_mode="human")
        human.reset(seed=0)
        human.step(2)
        human.close()

    def test_spec_round_trip(self, env_id: str) -> None:
        env = gym.make(env_id, stage="heldout")
        spec = EnvSpec.from_json(env.spec.to_json())
        again = gym.make(spec)
        assert again.unwrapped.get_stage() == env.unwrapped.heldout_stage
        assert gym.make(f"metarim_gym:{env_id}").spec.id == env_id

    def test_stock_agents_train_without_wrappers(self, env_id: str) -> None:
        from sb3_contrib import RecurrentPPO
        from stable_baselines3 import PPO

        PPO("MultiInputPolicy", gym.make(env_id), n_steps=32, batch_size=32, n_epochs=1, seed=0).learn(32)
        RecurrentPPO(
            "MultiInputLstmPolicy", gym.make(env_id), n_steps=16, batch_size=16, n_epochs=1, seed=0,
            policy_kwargs={"lstm_hidden_size": 16},
        ).learn(16)  # fmt: skip
