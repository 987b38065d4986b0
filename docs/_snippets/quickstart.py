"""Quickstart: a Meta-RIM on shifting GoTo stages, then zero-shot on the held-out."""

import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import metarim_gym  # noqa: F401  (registers the MetaRIM-* ids)
from metarim_sb3 import FastSlowCallback, MultiInputRIMPolicy

torch.set_num_threads(1)  # small nets: more threads slow a small or shared CPU down
TOTAL_STEPS = 16_384  # about a minute on 2 CPU cores: a smoke run, not a result
EVAL_EPISODES = 20

# 1. A shifting task distribution: BabyAI "go to the <colour> <object>" in rooms that
#    grow and gain distractors. Each of the 8 copies moves to its next stage every
#    512 of its own steps (4_096 steps of the run).
env = make_vec_env(
    "MetaRIM-GoTo-v0",
    n_envs=8,
    seed=0,
    env_kwargs=dict(schedule="steps", shift_every=512),
)

# 2. A RIM policy: 4 units of 32, 3 active per step. The callback steps the units'
#    cells (fast) at every PPO gradient step and the attention (slow) once per
#    meta-sequence of 4 rollouts, one step that stands for the fast steps it
#    averages at a quarter of their rate. verbose=1 prints a table per rollout.
model = RecurrentPPO(
    MultiInputRIMPolicy,
    env,
    n_steps=128,
    batch_size=256,
    ent_coef=0.01,
    policy_kwargs=dict(n_units=4, unit_size=32, k=3),
    seed=0,
    verbose=1,
)
fast_slow = FastSlowCallback(fast_lr=7e-4, slow_lr=7e-5, slow_every=4, mode="meta")
model.learn(TOTAL_STEPS, callback=fast_slow)

# 3. Zero-shot: the held-out stage (8x8 room, 7 distractors) was never trained on.
heldout = make_vec_env("MetaRIM-GoTo-v0", seed=1_000, env_kwargs=dict(stage="heldout"))
mean, std = evaluate_policy(model, heldout, n_eval_episodes=EVAL_EPISODES)
print(f"held-out return {mean:.3f} +/- {std:.3f} ({EVAL_EPISODES} episodes)")
