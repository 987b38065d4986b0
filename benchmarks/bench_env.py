"""Steps per second of every MetaRIM id (fixed at one stage) vs the raw MiniGrid task it wraps.

Both sides are unwrapped environments stepped with the same pre-drawn random actions, resetting at episode end,
measured alternately (A, B, A, B, ...) in one process; the table reports the median steps/s of each side and, as
the ratio MetaRIM / raw, the median of the per-repeat ratios (each pair ran back to back, so a load that comes and
goes on the machine affects both sides of a pair alike). Target: ratio >= 0.95. A third side, MetaRIM with
``fast_obs=False`` (MiniGrid's own ``gen_obs``), measured in the same rotation, gives ``fast_obs`` gain: the median
per-repeat ratio of MetaRIM's steps/s with and without it.

    python benchmarks/bench_env.py [--steps 20000] [--repeats 9] [--json results/bench/bench_env.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import metarim_gym


def _steps_per_second(env: gym.Env, actions: np.ndarray) -> float:
    env.reset(seed=0)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(int(a))
        if terminated or truncated:
            env.reset()
    return len(actions) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000, help="steps per measurement (default: 20000)")
    parser.add_argument("--repeats", type=int, default=9, help="alternating repeats per pair (default: 9)")
    parser.add_argument("--stage", type=int, default=0, help="stage to fix every MetaRIM id at (default: 0)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()

    actions = np.random.default_rng(0).integers(0, 3, size=args.steps)  # turn/forward: long, realistic episodes
    rows = []
    print(f"{'id':26s} {'raw task':36s} {'MetaRIM steps/s':>16s} {'raw steps/s':>12s} {'ratio':>6s} {'fast_obs':>9s}")
    for env_id in metarim_gym.ENV_IDS:
        ours = gym.make(env_id, stage=args.stage).unwrapped
        slow = gym.make(env_id, stage=args.stage, fast_obs=False).unwrapped
        task = ours.stages[args.stage].tasks[0]
        if len(ours.stages[args.stage].tasks) > 1:  # a mixture: compare against a single-task MultiTaskEnv
            ours = metarim_gym.MultiTaskEnv([[task]])
            slow = metarim_gym.MultiTaskEnv([[task]], fast_obs=False)
        raw = gym.make(task.env_id, **task.kwargs).unwrapped
        a, b, c = [], [], []
        for _ in range(args.repeats):
            a.append(_steps_per_second(ours, actions))
            b.append(_steps_per_second(raw, actions))
            c.append(_steps_per_second(slow, actions))
        ours_fps, raw_fps = statistics.median(a), statistics.median(b)
        ratio = statistics.median(x / y for x, y in zip(a, b, strict=True))
        gain = statistics.median(x / z for x, z in zip(a, c, strict=True))
        rows.append({"id": env_id, "task": task.name, "metarim_sps": ours_fps, "raw_sps": raw_fps,
                     "ratio": ratio, "ratio_of_medians": ours_fps / raw_fps, "fast_obs_gain": gain})  # fmt: skip
        print(f"{env_id:26s} {task.name:36s} {ours_fps:16.0f} {raw_fps:12.0f} {ratio:6.3f} {gain:8.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"steps": args.steps, "repeats": args.repeats, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
