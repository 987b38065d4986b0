"""Train Meta-RIMs on a shifting MiniGrid family: RecurrentPPO + MultiInputRIMPolicy with fast/slow learning,
a success-threshold curriculum, zero-shot evaluation on the held-out stage, and a unit x task activity matrix.

    python examples/03_meta_rim_training.py [--timesteps 60000] [--env MetaRIM-LavaCrossing-v0] [--mode meta]

Writes to --log-dir: progress.csv (SB3's log, with train/lr_fast, curriculum/*, eval_heldout/*, rim/*),
curriculum.csv (one row per shift), heldout_eval.csv, rim_activity.csv / .npz and model.zip.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

import metarim_gym  # noqa: F401  (registers the MetaRIM ids)
from metarim_sb3 import MultiInputRIMPolicy
from metarim_sb3.callbacks import CurriculumCallback, FastSlowCallback, HeldOutEvalCallback, UnitActivityCallback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="MetaRIM-LavaCrossing-v0", help="a MetaRIM id (default: %(default)s)")
    parser.add_argument("--timesteps", type=int, default=60_000, help="training steps (default: %(default)s)")
    parser.add_argument("--n-envs", type=int, default=8, help="parallel envs (default: %(default)s)")
    parser.add_argument("--n-steps", type=int, default=128, help="rollout length per env (default: %(default)s)")
    parser.add_argument("--mode", default="meta", choices=FastSlowCallback.MODES, help="fast/slow mode")
    parser.add_argument("--slow-every", type=int, default=4, help="rollouts per slow update (default: %(default)s)")
    parser.add_argument("--fast-lr", type=float, default=7e-4, help="fast learning rate (default: %(default)s)")
    parser.add_argument(
        "--slow-lr", type=float, default=7e-5, help="slow learning rate per fast step (default: %(default)s)"
    )
    parser.add_argument("--threshold", type=float, default=0.7, help="success rate to shift (default: %(default)s)")
    parser.add_argument("--window", type=int, default=50, help="episodes in the success window (default: %(default)s)")
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=None,
        help="held-out episodes per evaluation (default: 10, fewer below 50k)",
    )
    parser.add_argument("--log-dir", type=Path, default=Path("runs/03_meta_rim"), help="output folder")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small nets: 1 is fastest on CPU)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    # tiny budgets (a smoke run): shorter rollouts and fewer held-out episodes, so that it takes seconds
    n_steps = min(args.n_steps, max(16, args.timesteps // args.n_envs))
    n_eval = args.eval_episodes or min(10, max(2, args.timesteps // 5000))
    env = make_vec_env(args.env, n_envs=args.n_envs, seed=args.seed)
    model = RecurrentPPO(
        MultiInputRIMPolicy,
        env,
        n_steps=n_steps,
        batch_size=256,
        n_epochs=4,
        ent_coef=0.01,
        seed=args.seed,
        policy_kwargs=dict(n_units=6, unit_size=16, k=3),
    )
    log_dir = str(args.log_dir)
    model.set_logger(configure(log_dir, ["stdout", "csv"]))
    rollout = args.n_envs * n_steps
    # the held-out stage (a stage never trained on), episodes spread over a few envs so predictions are batched
    heldout_env = make_vec_env(args.env, n_envs=min(n_eval, 5), seed=args.seed + 1000, env_kwargs={"stage": "heldout"})
    callbacks = [
        FastSlowCallback(fast_lr=args.fast_lr, slow_lr=args.slow_lr, slow_every=args.slow_every, mode=args.mode),
        CurriculumCallback(threshold=args.threshold, window=args.window, log_dir=log_dir, verbose=1),
        HeldOutEvalCallback(
            heldout_env,
            eval_freq=max(args.timesteps // 5, rollout),
            n_eval_episodes=n_eval,
            log_dir=log_dir,
            verbose=1,
        ),
        UnitActivityCallback(log_dir=log_dir),
    ]
    fast_slow, curriculum, heldout, activity = callbacks

    start = time.perf_counter()
    model.learn(args.timesteps, callback=callbacks, log_interval=4)
    elapsed = time.perf_counter() - start
    model.save(args.log_dir / "model.zip")

    print(f"\n{model.num_timesteps} steps in {elapsed:.0f} s; {fast_slow.slow_updates} slow updates ({args.mode})")
    print(f"curriculum: stage {curriculum.stage} of {curriculum.n_stages}; shifts:")
    for shift in curriculum.shifts:
        print(f"  step {shift['timestep']:>7}: stage {shift['from_stage']} -> {shift['to_stage']}")
    final = heldout.evaluate() if not heldout.evaluations else heldout.evaluations[-1]
    print(f"held-out stage: success {final['success_rate']:.2f}, reward {final['mean_reward']:.3f}")
    tasks, matrix = activity.activation_matrix()
    print("unit activity (fraction of steps active), per task:")
    for task, row in zip(tasks, matrix, strict=True):
        print(f"  {task:28s} " + " ".join(f"{v:.2f}" for v in row))
    print(f"outputs in {args.log_dir}/")


if __name__ == "__main__":
    main()
