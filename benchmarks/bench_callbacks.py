"""Training wall time of RecurrentPPO + RIMPolicy with the Meta-RIMs callbacks vs without.

Config: MetaRIM-MultiRoom-v0, 8 envs in a DummyVecEnv, n_steps 128, the agents' RIM sizes (``presets/agents.yaml``: 4
units x 32, k 3), sb3-contrib's other defaults (batch 128, 10 epochs). "all" = FastSlowCallback (meta, K 4) +
CurriculumCallback + UnitActivityCallback (HeldOutEvalCallback is left out: it runs extra episodes by design, not
overhead). Each measurement builds a fresh model (same seed, untimed) and times ``learn()``; variants alternate in one
process (A B B A ...) after an untimed warm-up; the table reports medians and the ratio to "none". Target: overhead of
"all" <= 5 %.

Wall-time ratios are noisy on a shared machine, so one more run of "all" measures the callbacks' own time
directly (every callback method and hook wrapped in a timer): "self time", as a fraction of that ``learn()``.

    python benchmarks/bench_callbacks.py [--rollouts 3] [--repeats 4] [--each] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch as th
from agent_sizes import rim_sizes
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

import metarim_gym  # noqa: F401  (registers the MetaRIM ids)
from metarim_sb3 import MultiInputRIMPolicy
from metarim_sb3.callbacks import CurriculumCallback, FastSlowCallback, UnitActivityCallback

ENV_ID, N_ENVS, N_STEPS = "MetaRIM-MultiRoom-v0", 8, 128
RIM = rim_sizes()  # the agents' sizes (presets/agents.yaml)


def _variants(log_dir: str, each: bool) -> dict[str, Callable[[], list[BaseCallback]]]:
    def fast_slow() -> list[BaseCallback]:
        return [FastSlowCallback(fast_lr=7e-4, slow_lr=3e-4, slow_every=4)]

    def curriculum() -> list[BaseCallback]:
        return [CurriculumCallback(threshold=0.8, window=100, log_dir=log_dir)]

    def activity() -> list[BaseCallback]:
        return [UnitActivityCallback(log_dir=log_dir)]

    variants: dict[str, Callable[[], list[BaseCallback]]] = {"none": list}
    if each:
        variants.update(fast_slow=fast_slow, curriculum=curriculum, activity=activity)
    variants["all"] = lambda: fast_slow() + curriculum() + activity()
    return variants


class _SelfTimer:
    """Wraps callback entry points (methods SB3 calls, optimizer/autograd/forward hooks) to sum their time."""

    ENTRY_POINTS = ("on_training_start", "on_rollout_start", "on_step", "on_rollout_end", "on_training_end")
    HOOKS = ("_pre_step", "_grab")  # bound when the hooks are registered, so instance attributes take effect

    def __init__(self) -> None:
        self.total = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - start

        return timed

    def instrument(self, callbacks: list[BaseCallback]) -> list[BaseCallback]:
        for cb in callbacks:
            for name in self.ENTRY_POINTS + self.HOOKS:
                if hasattr(cb, name):
                    setattr(cb, name, self.wrap(getattr(cb, name)))
            if isinstance(cb, FastSlowCallback):  # per-parameter autograd hooks are made by a factory
                make = cb._make_grab
                cb._make_grab = lambda index, make=make: self.wrap(make(index))  # type: ignore[method-assign]
        return callbacks


def _time_learn(timesteps: int, callbacks: list[BaseCallback]) -> float:
    env = make_vec_env(ENV_ID, n_envs=N_ENVS, seed=0)
    model = RecurrentPPO(MultiInputRIMPolicy, env, n_steps=N_STEPS, seed=0, policy_kwargs=RIM)
    start = time.perf_counter()
    model.learn(timesteps, callback=callbacks or None)
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=3, help="rollouts (+ train) per measurement (default: 3)")
    parser.add_argument("--repeats", type=int, default=4, help="measurements per variant (default: 4)")
    parser.add_argument("--each", action="store_true", help="also time each callback alone")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--quick", action="store_true", help="1 rollout, 2 repeats: a smoke run")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.rollouts, args.repeats = 1, 2
    th.set_num_threads(args.threads)
    timesteps = args.rollouts * N_ENVS * N_STEPS

    with tempfile.TemporaryDirectory() as log_dir:
        variants = _variants(log_dir, args.each)
        _time_learn(N_ENVS * N_STEPS, variants["all"]())  # warm-up (imports, allocator, caches)
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for repeat in range(args.repeats):
            for name in names if repeat % 2 == 0 else names[::-1]:
                times[name].append(_time_learn(timesteps, variants[name]()))
        timer = _SelfTimer()
        instrumented = _time_learn(timesteps, timer.instrument(variants["all"]()))
        self_time = timer.total / instrumented

    base = statistics.median(times["none"])
    rows = []
    print(f"{ENV_ID}, {N_ENVS} envs, n_steps {N_STEPS}, RIM {RIM}, {timesteps} steps x {args.repeats} repeats")
    print(f"{'callbacks':12s} {'median s':>9s} {'min s':>7s} {'steps/s':>8s} {'ratio':>6s}")
    for name, values in times.items():
        median = statistics.median(values)
        row = dict(variant=name, median_s=median, min_s=min(values), steps_per_s=timesteps / median,
                   ratio=median / base, times_s=values)  # fmt: skip
        rows.append(row)
        print(f"{name:12s} {median:9.2f} {min(values):7.2f} {timesteps / median:8.0f} {median / base:6.3f}")
    overhead = statistics.median(times["all"]) / base - 1.0
    print(f"overhead of all callbacks: {100 * overhead:+.1f} % wall time (target <= 5 %)")
    print(
        f"self time of all callbacks: {100 * self_time:.2f} % of learn() ({timer.total:.3f} s of {instrumented:.2f} s)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = dict(env=ENV_ID, n_envs=N_ENVS, n_steps=N_STEPS, rim=RIM, timesteps=timesteps,
                      repeats=args.repeats, threads=args.threads, overhead=overhead, self_time=self_time,
                      rows=rows)  # fmt: skip
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
