"""Quickstart: train a Meta-RIM on shifting DoorKey stages, test it on the held-out."""

from sb3_contrib import RecurrentPPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import metarim_gym  # noqa: F401  (registers the MetaRIM-* ids)
from metarim_sb3 import MultiInputRIMPolicy
from metarim_sb3.callbacks import FastSlowCallback

TOTAL_STEPS = 100_000  # a smoke run, not a result
EVAL_EPISODES = 10

# 1. A shifting task distribution: DoorKey 5x5 -> 6x6 -> 8x8. Each of the 8 copies
#    moves to its next stage every 4_000 of its own steps (32_000 steps of the run).
env = make_vec_env(
    "MetaRIM-DoorKey-v0",
    n_envs=8,
    seed=0,
    env_kwargs=dict(schedule="steps", shift_every=4_000),
)

# 2. A RIM policy: 6 units of 32, 4 active per step. The callback steps the units'
#    cells (fast) at every PPO gradient step and the attention (slow) once per
#    meta-sequence of 4 rollouts.
model = RecurrentPPO(
    MultiInputRIMPolicy,
    env,
    n_steps=128,
    batch_size=256,
    policy_kwargs=dict(n_units=6, unit_size=32, k=4),
    seed=0,
    verbose=1,
)
fast_slow = FastSlowCallback(fast_lr=7e-4, slow_lr=3e-4, slow_every=4, mode="meta")
model.learn(TOTAL_STEPS, callback=fast_slow)

# 3. Zero-shot: the held-out stage (DoorKey 16x16) was never trained on.
heldout = make_vec_env(
    "MetaRIM-DoorKey-v0", n_envs=1, seed=1_000, env_kwargs=dict(stage="heldout")
)
mean_return, std_return = evaluate_policy(model, heldout, n_eval_episodes=EVAL_EPISODES)
print(
    f"held-out return {mean_return:.3f} +/- {std_return:.3f} ({EVAL_EPISODES} episodes)"
)
