"""Curriculum and zero-shot transfer: train on a shifting MetaRIM family, moving to the next stage once the agent
masters the current one, and follow the success on the held-out stage (a harder task never trained on).

    python examples/04_curriculum_zero_shot.py [--timesteps 40000] [--env MetaRIM-GoTo-v0] [--policy rim]

``CurriculumCallback`` shifts every environment to the next stage when the success rate over the last ``--window``
episodes of the stage reaches ``--threshold``; ``HeldOutEvalCallback`` evaluates the held-out stage every
``--eval-freq`` steps (the zero-shot curve). Both append to CSV files in ``--log-dir`` (``curriculum.csv``,
``heldout_eval.csv``). A final ``evaluate_policy`` on ``gym.make(env_id, stage="heldout")`` gives the zero-shot
number. No fast/slow learning rates here: ``03_meta_rim_training.py`` adds them.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import metarim_gym  # noqa: F401  (registers the MetaRIM ids)
from metarim_sb3 import CurriculumCallback, HeldOutEvalCallback, MultiInputFastLstmPolicy, MultiInputRIMPolicy

#: The recurrent core: 4 RIM units of 32 (3 active per step), or an LSTM with the same state size.
POLICIES: dict[str, tuple[type, dict[str, Any]]] = {
    "rim": (MultiInputRIMPolicy, {"n_units": 4, "unit_size": 32, "k": 3}),
    "lstm": (MultiInputFastLstmPolicy, {"lstm_hidden_size": 128}),
}


def read_csv(path: Path) -> list[dict[str, str]]:
    """:return: the rows of a CSV file written by a callback (none if the file was never written)."""
    if not path.exists():
        return []
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--env", default="MetaRIM-GoTo-v0", help="a MetaRIM id (default: %(default)s)")
    add("--policy", default="rim", choices=sorted(POLICIES), help="recurrent core (default: %(default)s)")
    add("--timesteps", type=int, default=40_000, help="training steps (default: %(default)s)")
    add("--n-envs", type=int, default=8, help="parallel training envs (default: %(default)s)")
    add("--threshold", type=float, default=0.8, help="success rate that shifts the stage (default: %(default)s)")
    add("--window", type=int, default=50, help="episodes the success rate is taken over (default: %(default)s)")
    add("--eval-freq", type=int, default=10_000, help="steps between held-out evaluations (default: %(default)s)")
    add("--eval-episodes", type=int, default=20, help="episodes per held-out evaluation (default: %(default)s)")
    add("--final-episodes", type=int, default=50, help="episodes of the final evaluation (default: %(default)s)")
    add("--log-dir", type=Path, default=Path("runs/04_curriculum"), help="output folder (default: %(default)s)")
    add("--seed", type=int, default=0, help="seed (default: %(default)s)")
    args = parser.parse_args()

    for stale in ("curriculum.csv", "heldout_eval.csv"):  # the callbacks append: start from empty files
        (args.log_dir / stale).unlink(missing_ok=True)
    policy, core_kwargs = POLICIES[args.policy]
    n_steps = min(128, max(16, args.timesteps // args.n_envs))  # short rollouts when the budget is tiny
    model = RecurrentPPO(
        policy,
        make_vec_env(args.env, n_envs=args.n_envs, seed=args.seed),
        n_steps=n_steps,
        batch_size=min(256, args.n_envs * n_steps),
        n_epochs=4,
        learning_rate=7e-4,
        ent_coef=0.01,
        policy_kwargs={**core_kwargs, "enable_critic_lstm": False, "shared_lstm": True, "net_arch": [64]},
        seed=args.seed,
        device="cpu",
    )
    log_dir = str(args.log_dir)
    curriculum = CurriculumCallback(threshold=args.threshold, window=args.window, log_dir=log_dir, verbose=1)
    zero_shot = HeldOutEvalCallback(  # an env id: made as gym.make(env_id, stage="heldout")
        args.env, eval_freq=args.eval_freq, n_eval_episodes=args.eval_episodes, deterministic=False, log_dir=log_dir
    )
    start = time.perf_counter()
    model.learn(args.timesteps, callback=[curriculum, zero_shot])
    print(f"trained {model.num_timesteps} steps in {time.perf_counter() - start:.0f} s ({args.policy})")

    shifts = read_csv(args.log_dir / "curriculum.csv")
    print(f"stage shifts ({len(shifts)}, from curriculum.csv):" + ("" if shifts else " none"))
    for row in shifts:
        rate = float(row["success_rate"])
        print(f"  step {row['timestep']:>7}: stage {row['from_stage']} -> {row['to_stage']} (success {rate:.2f})")
    curve = read_csv(args.log_dir / "heldout_eval.csv")
    print("zero-shot curve: " + ", ".join(f"{r['timesteps']}: {float(r['success_rate']):.2f}" for r in curve))

    successes: list[bool] = []
    heldout = Monitor(gym.make(args.env, stage="heldout"))
    evaluate_policy(
        model,
        heldout,
        n_eval_episodes=args.final_episodes,
        deterministic=False,  # greedy recurrent policies tend to loop on MiniGrid
        callback=lambda loc, _glob: successes.append(bool(loc["info"]["is_success"])) if loc["done"] else None,
    )
    print(f"zero-shot success on the held-out stage: {np.mean(successes):.2f} over {len(successes)} episodes")


if __name__ == "__main__":
    main()
