"""How far the slow group moves relative to the fast one under FastSlowCallback: the table of the fast/slow guide.

For each setting, trains a fresh model with ``FastSlowCallback(slow_every=4, mode=..., slow_lr=rho * fast_lr,
slow_lr_scale=...)`` and a ParameterDriftCallback, and reports the ratio of relative drift from initialisation,
slow RIM group over fast RIM group (attention / unit cells in ``meta``; unit cells / attention in ``reversed``).
Deterministic for a given seed (one torch thread), so the numbers do not depend on machine load.

- ``goto``: MetaRIM-GoTo-v0 with the presets' sizes (MultiInputRIMPolicy 4 units x 32, k 3, critic on the detached
  actor output, net_arch [64], features 64) and PPO settings (8 envs, n_steps 128, batch 256, 4 epochs,
  lr 7e-4, ent_coef 0.01, max_grad_norm 0.5), 9 rollouts: 2 slow steps;
- ``tiny``: the tiny RIM on CartPole of ``tests/metarim_sb3/callbacks/test_drift.py`` at lr 7e-4, 12 rollouts: 3 slow
  steps.

    python benchmarks/drift_ratio.py [--json results/bench/drift_ratio.json] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.env_util import make_vec_env

import metarim_gym  # noqa: F401  (registers the MetaRIM ids)
from metarim_sb3 import MlpRIMPolicy, MultiInputRIMPolicy
from metarim_sb3.callbacks import FastSlowCallback
from metarim_sb3.callbacks.drift import ParameterDriftCallback

LR = 7e-4


def goto_model(seed: int) -> tuple[RecurrentPPO, int]:
    env = make_vec_env("MetaRIM-GoTo-v0", n_envs=8, seed=seed)
    policy_kwargs = dict(
        n_units=4,
        unit_size=32,
        k=3,
        net_arch=[64],
        enable_critic_lstm=False,
        shared_lstm=True,
        features_extractor_kwargs=dict(features_dim=64),
    )
    model = RecurrentPPO(
        MultiInputRIMPolicy,
        env,
        n_steps=128,
        batch_size=256,
        n_epochs=4,
        learning_rate=LR,
        ent_coef=0.01,
        max_grad_norm=0.5,
        seed=seed,
        policy_kwargs=policy_kwargs,
    )
    return model, 9 * 1024


def tiny_model(seed: int) -> tuple[RecurrentPPO, int]:
    env = make_vec_env("CartPole-v1", n_envs=2, seed=seed)
    policy_kwargs = dict(
        net_arch=dict(pi=[8], vf=[8]), n_units=3, unit_size=4, k=2, input_key_size=8, comm_key_size=4,
        comm_value_size=4, comm_heads=2,
    )  # fmt: skip
    model = RecurrentPPO(
        MlpRIMPolicy, env, n_steps=8, batch_size=8, n_epochs=2, learning_rate=LR, seed=seed, policy_kwargs=policy_kwargs
    )
    return model, 12 * 16


def ratio(setting: str, mode: str, rho: float, scale: str | float, seed: int) -> float:
    """Slow / fast relative drift after the setting's budget."""
    model, steps = (goto_model if setting == "goto" else tiny_model)(seed)
    drift = ParameterDriftCallback()
    fast_slow = FastSlowCallback(slow_lr=rho * LR, slow_every=4, mode=mode, slow_lr_scale=scale)
    model.learn(steps, callback=CallbackList([fast_slow, drift]))
    slow, fast = ("attention", "modules") if mode == "meta" else ("modules", "attention")
    return drift.last["drift"][slow] / drift.last["drift"][fast]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the tiny setting (GoTo: seed 0 only)")
    args = parser.parse_args()
    th.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    plan: list[tuple[str, str, float, str | float, list[int]]] = [
        ("goto", "meta", 1.0, 1.0, [0]),
        ("goto", "meta", 0.1, "steps", [0]),
        ("goto", "meta", 0.25, "steps", [0]),
        ("goto", "reversed", 0.25, "steps", [0]),
    ]
    plan += [
        ("tiny", mode, rho, "steps", list(range(args.seeds)))
        for mode in ("meta", "reversed")
        for rho in (0.1, 0.25, 0.5)
    ]
    print(f"{'setting':8} {'mode':9} {'rho':>5} {'scale':>6}  slow/fast drift per seed")
    for setting, mode, rho, scale, seeds in plan:
        values = [ratio(setting, mode, rho, scale, seed) for seed in seeds]
        rows.append(dict(setting=setting, mode=mode, rho=rho, slow_lr_scale=scale, seeds=seeds, ratio=values))
        print(f"{setting:8} {mode:9} {rho:5.2f} {scale!s:>6}  " + " ".join(f"{v:.3f}" for v in values), flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
