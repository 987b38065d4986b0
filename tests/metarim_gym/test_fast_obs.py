"""metarim_gym.fast_obs: the same partial views as MiniGrid's own gen_obs, on every family and stage."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from minigrid.core.world_object import Key
from minigrid.minigrid_env import MiniGridEnv

import metarim_gym
from metarim_gym.fast_obs import _FastGenObs, install_fast_obs, view_image
from metarim_gym.multitask import MultiTaskEnv

STEPS = 120  # random actions per stage: turns, pickups, door toggles, walls and the grid's edge all come up


@pytest.mark.parametrize("env_id", sorted(metarim_gym.ENV_IDS))
def test_views_equal_minigrid_on_every_stage(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    assert isinstance(env, MultiTaskEnv) and env.fast_obs
    rng = np.random.default_rng(0)
    stages = [*range(env.n_stages), *(["heldout"] if env.heldout_stage is not None else [])]
    compared = 0
    for stage in stages:
        env.set_stage(stage)
        obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
        for _ in range(STEPS):
            task_env = env.task_env
            assert isinstance(task_env, MiniGridEnv) and isinstance(task_env.gen_obs, _FastGenObs)
            reference = MiniGridEnv.gen_obs(task_env)["image"]
            np.testing.assert_array_equal(view_image(task_env), reference)
            np.testing.assert_array_equal(obs["image"], reference)
            compared += 1
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(7)))
            if terminated or truncated:
                obs, _ = env.reset()
    assert compared == STEPS * len(stages)


def test_carried_object_and_every_direction() -> None:
    env = gym.make("MiniGrid-DoorKey-5x5-v0").unwrapped  # the key can be carried around
    assert install_fast_obs(env)
    env.reset(seed=1)
    carried = 0
    for step in range(400):
        env.carrying = Key("red") if step % 2 else None  # what gen_obs reads of a carried object
        for direction in range(4):
            env.agent_dir = direction
            np.testing.assert_array_equal(env.gen_obs()["image"], MiniGridEnv.gen_obs(env)["image"])
        carried += env.carrying is not None
        env.carrying = None
        _, _, terminated, truncated, _ = env.step(int(np.random.default_rng(step).integers(3)))  # turn, forward
        if terminated or truncated:
            env.reset(seed=step)
    assert carried > 0  # the carried object's cell was compared too


def test_opt_out_and_non_minigrid_envs() -> None:
    env = gym.make("MetaRIM-GoTo-v0", fast_obs=False).unwrapped
    env.reset(seed=0)
    assert not env.fast_obs and env.task_env.gen_obs.__func__ is MiniGridEnv.gen_obs
    copy = pickle.loads(pickle.dumps(gym.make("MetaRIM-DoorKey-v0").unwrapped))
    obs, _ = copy.reset(seed=3)
    task_env = copy.task_env
    assert isinstance(task_env.gen_obs, _FastGenObs) and task_env.gen_obs.env is task_env  # not the original's
    obs, *_ = copy.step(1)
    np.testing.assert_array_equal(obs["image"], MiniGridEnv.gen_obs(task_env)["image"])
    assert not install_fast_obs(gym.make("CartPole-v1").unwrapped)
    with pytest.raises(ValueError, match="fast_obs must be True or False"):
        gym.make("MetaRIM-GoTo-v0", fast_obs="yes")
