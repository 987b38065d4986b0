"""Train a RIM agent with sb3-contrib's RecurrentPPO, then test it zero-shot on the held-out stage.

    python examples/02_train_rim.py [--timesteps 30000] [--env MetaRIM-GoTo-v0] [--stage 0]

The policy is ``MultiInputRIMPolicy``: MetaRIM's Dict observation (7x7 cell indices, direction, mission tokens)
goes through ``MiniGridExtractor``, then a layer of 4 recurrent independent mechanisms (3 active per step), then
the actor and critic heads. Training stays on one stage (no curriculum, no fast/slow split: see
``03_meta_rim_training.py`` and ``metarim train`` for those); the held-out stage is a harder task never trained on.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import metarim_gym  # noqa: F401  (registers the MetaRIM ids)
from metarim_sb3 import MultiInputRIMPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="MetaRIM-GoTo-v0", help="a MetaRIM id (default: %(default)s)")
    parser.add_argument("--stage", type=int, default=0, help="training stage (default: %(default)s)")
    parser.add_argument("--timesteps", type=int, default=30_000, help="training steps (default: %(default)s)")
    parser.add_argument("--eval-episodes", type=int, default=50, help="held-out episodes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    args = parser.parse_args()
    th.set_num_threads(1)  # small nets: one thread is as fast, and leaves the other cores to the environments

    # 1. Environments: 8 copies of the training stage, and 4 of the held-out stage for evaluation.
    env = make_vec_env(args.env, n_envs=8, seed=args.seed, env_kwargs={"stage": args.stage})
    heldout = make_vec_env(args.env, n_envs=4, seed=args.seed + 1000, env_kwargs={"stage": "heldout"})

    # 2. The agent: RecurrentPPO with a RIM core (sizes as the `rim` preset of `metarim train`).
    n_steps = min(128, max(args.timesteps // 8, 16))  # a rollout fits into tiny budgets too
    model = RecurrentPPO(
        MultiInputRIMPolicy,
        env,
        learning_rate=7e-4,
        n_steps=n_steps,
        batch_size=min(256, 8 * n_steps),
        n_epochs=4,
        ent_coef=0.01,
        policy_kwargs=dict(n_units=4, unit_size=32, k=3, enable_critic_lstm=False, shared_lstm=True, net_arch=[64]),
        seed=args.seed,
        device="cpu",
    )

    # 3. Train.
    start = time.perf_counter()
    model.learn(args.timesteps)
    elapsed = time.perf_counter() - start
    print(f"trained {model.num_timesteps} steps in {elapsed:.0f} s ({model.num_timesteps / elapsed:.0f} steps/s)")

    # 4. Zero-shot evaluation: count successes (info["is_success"] on the last step of each episode).
    successes: list[bool] = []

    def on_step(locals_: dict, _globals: dict) -> None:
        if locals_["done"]:
            successes.append(bool(locals_["info"].get("is_success", False)))

    for name, eval_env in (("training stage", make_vec_env(args.env, n_envs=4, seed=args.seed + 2000,
                                                           env_kwargs={"stage": args.stage})),
                           ("held-out stage", heldout)):  # fmt: skip
        successes.clear()
        returns, _ = evaluate_policy(
            model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=False, callback=on_step,
            return_episode_rewards=True,
        )  # fmt: skip
        print(f"{name}: success {np.mean(successes):.2f}, mean return {np.mean(returns):.3f} ({len(returns)} episodes)")


if __name__ == "__main__":
    main()
