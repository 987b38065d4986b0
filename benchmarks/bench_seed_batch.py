"""Benchmark many seeds in one process (``learn_seed_batch``) against the same seeds trained one after another.

For each agent (``meta-rim``, ``rim``, ``lstm``, ``gru``: the sizes of ``metarim_sb3/experiments/presets/agents.yaml``,
the ``meta-rim`` agent with its FastSlowCallback) and each number of seeds ``S``, the same frames are trained twice
in this process with ``torch.set_num_threads(1)``: once by ``learn_seed_batch`` over ``S`` models, once by ``S``
separate ``model.learn`` runs. Each timed repeat runs the two back to back, alternating which goes first (fresh
models each time, building not timed), so that load from other processes hits both alike. Times are CPU times of
this process (``time.process_time``), split into the update (``train()``: ``trainer._train`` for the batch, each
model's ``train`` for the separate runs) and the rest (rollouts, callbacks, logging). The ratio is the batched
per-seed time over the separate per-seed time, the median of the per-repeat ratios (with min and max).

Peak memory per seed: for each cell and mode a child forked (``os.fork``) from this process before any timing builds
the models and trains once; its peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which a forked child starts
at its RSS at the fork) minus the RSS at the fork, over ``S``. Models, environments and training all count.

Target (issue 23): at ``S = 8`` each seed costs at most 0.3x a separate run (CPU, one core).

Usage::

    python benchmarks/bench_seed_batch.py [--quick] [--agents lstm meta-rim] [--seeds 1 2 4 8 16] [--repeats 3]
        [--iterations 3] [--device cpu] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import metarim_gym  # noqa: F401  (registers the ids)
from metarim_sb3 import MultiInputFastLstmPolicy, MultiInputGruPolicy, MultiInputRIMPolicy
from metarim_sb3.callbacks import FastSlowCallback
from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO
from metarim_sb3.seed_batch import trainer as seed_trainer

#: Per-seed cost of the batch over a separate run that issue 23 asks for at ``S = 8``.
TARGET, TARGET_SEEDS = 0.3, 8
AGENTS = ("meta-rim", "rim", "lstm", "gru")
ENV_ID = "MetaRIM-GoTo-v0"
#: The sizes of ``presets/agents.yaml`` (RIM 4 units x 32, k 3; LSTM and GRU 128; extractor 64, net_arch [64]).
RIM_KWARGS = dict(
    n_units=4,
    unit_size=32,
    k=3,
    cell="lstm",
    input_key_size=64,
    input_heads=1,
    comm_key_size=32,
    comm_value_size=32,
    comm_heads=4,
    dropout=0.0,
)
COMMON = dict(net_arch=[64], features_extractor_kwargs=dict(features_dim=64))
LR = {"meta-rim": 7e-4, "rim": 2.8e-3, "lstm": 7e-4, "gru": 1.4e-3}
META_FAST_SLOW = dict(mode="meta", slow_every=4, slow_lr=7e-5, slow_lr_scale="steps", other="fast")


def make_model(agent: str, seed: int, n_envs: int, n_steps: int, n_epochs: int, device: str) -> ChunkedRecurrentPPO:
    """One model of ``agent`` as the presets size it (4 envs of GoTo by default, chunk 32)."""
    env = make_vec_env(ENV_ID, n_envs=n_envs, seed=seed)
    kwargs: dict[str, Any] = dict(COMMON)
    policy: Any
    if agent in ("meta-rim", "rim"):
        policy, kwargs = MultiInputRIMPolicy, {**kwargs, **RIM_KWARGS}
    else:
        policy = MultiInputFastLstmPolicy if agent == "lstm" else MultiInputGruPolicy
        kwargs.update(lstm_hidden_size=128, n_lstm_layers=1)
    chunk = min(32, n_steps)
    return ChunkedRecurrentPPO(
        policy,
        env,
        seed=seed,
        policy_kwargs=kwargs,
        device=device,
        n_steps=n_steps,
        batch_size=n_steps * n_envs,
        chunk_len=chunk,
        n_epochs=n_epochs,
        learning_rate=LR[agent],
        verbose=0,
    )


def callbacks(agent: str) -> list[BaseCallback]:
    """The agent's learn callbacks (the FastSlowCallback of ``meta-rim``; ``rim`` is joint: plain PPO)."""
    return [FastSlowCallback(**META_FAST_SLOW)] if agent == "meta-rim" else []  # type: ignore[arg-type]


class Timer:
    """CPU seconds spent inside wrapped functions."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - start

        return timed


def run_batched(models: list[ChunkedRecurrentPPO], agent: str, frames: int) -> tuple[float, float]:
    """:return: ``(total, update)`` CPU seconds of one ``learn_seed_batch``."""
    timer, original = Timer(), seed_trainer._train
    seed_trainer._train = timer.wrap(original)  # type: ignore[assignment]
    try:
        start = time.process_time()
        seed_trainer.learn_seed_batch(models, frames, callbacks=[callbacks(agent) for _ in models], log_interval=None)
        total = time.process_time() - start
    finally:
        seed_trainer._train = original  # type: ignore[assignment]
    return total, timer.seconds


def run_separate(models: list[ChunkedRecurrentPPO], agent: str, frames: int) -> tuple[float, float]:
    """:return: ``(total, update)`` CPU seconds of ``S`` ``model.learn`` one after another."""
    timer = Timer()
    total = 0.0
    for model in models:
        model.train = timer.wrap(model.train)  # type: ignore[method-assign]
        torch.manual_seed(model.seed or 0)
        np.random.seed(model.seed or 0)
        start = time.process_time()
        model.learn(frames, callback=callbacks(agent), log_interval=None)  # type: ignore[arg-type]
        total += time.process_time() - start
    return total, timer.seconds


def _rss_kib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


def peak_memory(agent: str, n_seeds: int, mode: str, cfg: dict[str, Any]) -> float | None:
    """Peak RSS above the fork point, MiB per seed, of one run in a forked child (``None`` where fork is missing)."""
    if not hasattr(os, "fork") or not Path("/proc/self/statm").exists():
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: build, train once, report, exit without cleanup
        os.close(read)
        value = -1.0
        try:
            base = _rss_kib()
            models = [build(agent, s, cfg) for s in range(n_seeds)]
            runner = run_batched if mode == "batched" else run_separate
            runner(models, agent, cfg["frames"])
            value = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024 / n_seeds
        finally:
            os.write(write, f"{value}".encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    os.waitpid(pid, 0)
    value = float(text) if text else -1.0
    return None if value < 0 else value


def build(agent: str, seed: int, cfg: dict[str, Any]) -> ChunkedRecurrentPPO:
    return make_model(agent, seed, cfg["n_envs"], cfg["n_steps"], cfg["n_epochs"], cfg["device"])


def measure(agent: str, n_seeds: int, cfg: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Alternating timings of the batch and the separate runs of one cell; per-seed CPU seconds."""
    frames = cfg["frames"]
    batched: list[tuple[float, float]] = []
    separate: list[tuple[float, float]] = []
    error: str | None = None
    for r in range(repeats):
        order = ("batched", "separate") if r % 2 == 0 else ("separate", "batched")
        for mode in order:
            models = [build(agent, 100 * r + s, cfg) for s in range(n_seeds)]
            try:
                if mode == "batched":
                    batched.append(run_batched(models, agent, frames))
                else:
                    separate.append(run_separate(models, agent, frames))
            except ValueError as exc:  # learn_seed_batch refuses the configuration (e.g. a GPU model)
                error = str(exc)
            for model in models:
                model.env.close()  # type: ignore[union-attr]
    row: dict[str, Any] = {"agent": agent, "seeds": n_seeds, "frames_per_seed": frames, "repeats": repeats}
    if error is not None or not batched or not separate:
        return {**row, "error": error or "no timing"}
    ratios = [b[0] / s[0] for b, s in zip(batched, separate, strict=True)]

    def per_seed(runs: list[tuple[float, float]]) -> dict[str, float]:
        total = statistics.median(t for t, _ in runs) / n_seeds
        update = statistics.median(u for _, u in runs) / n_seeds
        return {"total_s": total, "update_s": update, "rollout_s": total - update}

    b, s = per_seed(batched), per_seed(separate)
    return {
        **row,
        "batched": b,
        "separate": s,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratio_update": b["update_s"] / s["update_s"] if s["update_s"] else None,
        "ratio_rollout": b["rollout_s"] / s["rollout_s"] if s["rollout_s"] else None,
        "update_share_batched": b["update_s"] / b["total_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: S 1 and 2, one iteration, one repeat")
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="numbers of seeds (default 1 2 4 8 16)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per cell (default 3, quick 1)")
    parser.add_argument("--iterations", type=int, default=None, help="rollout+update iterations (default 3, quick 1)")
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--n-steps", type=int, default=None, help="steps per env and rollout (default 32, quick 8)")
    parser.add_argument("--n-epochs", type=int, default=4)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (learn_seed_batch takes CPU models only)")
    parser.add_argument("--no-memory", action="store_true", help="skip the forked peak-memory runs")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    seeds = args.seeds or ([1, 2] if args.quick else [1, 2, 4, 8, 16])
    repeats = args.repeats or (1 if args.quick else 3)
    iterations = args.iterations or (1 if args.quick else 3)
    n_steps = args.n_steps or (8 if args.quick else 32)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to run")
        return 1
    torch.set_num_threads(1)
    cfg = dict(n_envs=args.n_envs, n_steps=n_steps, n_epochs=args.n_epochs, device=args.device)
    cfg["frames"] = iterations * n_steps * args.n_envs

    memory: dict[tuple[str, int, str], float | None] = {}
    if not args.no_memory:  # forked before any timing, so the children start from this process's smallest RSS
        for agent in args.agents:
            for s in seeds:
                for mode in ("batched", "separate"):
                    memory[agent, s, mode] = peak_memory(agent, s, mode, cfg)

    rows: list[dict[str, Any]] = []
    print(f"{'agent':>9} {'S':>3} {'ratio':>6} {'(min-max)':>12} {'upd ratio':>9} {'roll ratio':>10} "
          f"{'sep s/seed':>10} {'batch s/seed':>12} {'upd share':>9} {'MiB/seed b/s':>13}")  # fmt: skip
    for agent in args.agents:
        measure(agent, 1, {**cfg, "frames": n_steps * args.n_envs}, 1)  # warm-up (lazy initialisation), not kept
        for s in seeds:
            row = measure(agent, s, cfg, repeats)
            row["peak_mib_per_seed"] = {m: memory.get((agent, s, m)) for m in ("batched", "separate")}
            rows.append(row)
            if "error" in row:
                print(f"{agent:>9} {s:>3} error: {row['error']}")
                continue
            mem = row["peak_mib_per_seed"]
            mem_text = "-" if mem["batched"] is None else f"{mem['batched']:.0f}/{mem['separate']:.0f}"
            print(
                f"{agent:>9} {s:>3} {row['ratio_median']:6.3f} {row['ratio_min']:5.2f}-{row['ratio_max']:5.2f} "
                f"{row['ratio_update']:9.3f} {row['ratio_rollout']:10.3f} {row['separate']['total_s']:10.3f} "
                f"{row['batched']['total_s']:12.3f} {row['update_share_batched']:9.2f} {mem_text:>13}"
            )
    at_target = [r["ratio_median"] for r in rows if r["seeds"] == TARGET_SEEDS and "ratio_median" in r]
    if at_target:
        print(f"target: per-seed ratio <= {TARGET} at S={TARGET_SEEDS}: worst {max(at_target):.3f}")
    if args.json is not None:
        result = {
            "machine": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_avg": os.getloadavg(),
            "torch": torch.__version__,
            "threads": 1,
            "device": args.device,
            "env": ENV_ID,
            "n_envs": args.n_envs,
            "n_steps": n_steps,
            "n_epochs": args.n_epochs,
            "iterations": iterations,
            "repeats": repeats,
            "quick": args.quick,
            "target": TARGET,
            "target_seeds": TARGET_SEEDS,
            "memory_method": "forked child: ru_maxrss minus RSS at the fork, over S (models, envs, training)",
            "time_method": "time.process_time of this process, median over alternating repeats",
            "rows": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
