"""Seeding: one seed fixes the sequence of tasks and layouts; copy i gets seed + i."""

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env

import metarim_gym  # noqa: F401  (registers the MetaRIM-* ids)


def episode_starts(seed: int, n: int = 5) -> list[tuple[str, bytes]]:
    env = gym.make("MetaRIM-MultiTask-v0", stage=1)
    starts = []
    obs, info = env.reset(
        seed=seed
    )  # seeds the task choice and, from it, every task environment
    for _ in range(n):
        starts.append((info["task"], obs["image"].tobytes()))
        obs, info = env.reset()  # later resets continue the same random streams
    return starts


assert episode_starts(0) == episode_starts(0)  # reproducible
assert episode_starts(0) != episode_starts(1)  # and seed-dependent
print([task for task, _ in episode_starts(0)])

vec_env = make_vec_env(
    "MetaRIM-MultiTask-v0", n_envs=4, seed=0, env_kwargs={"stage": 1}
)  # copy i: seed 0 + i
vec_env.reset()
print([info["task"] for info in vec_env.reset_infos])  # each copy draws its own tasks
