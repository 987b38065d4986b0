"""Training throughput of RecurrentPPO with RIMPolicy vs LSTM baselines vs feed-forward PPO, side by side.

Setup (identical for every row): ``MetaRIM-MultiRoom-v0`` fixed at stage 0, 8 envs in a ``DummyVecEnv``,
``n_steps=128``, ``batch_size=128``, ``n_epochs=10``, the same :class:`~metarim_sb3.MiniGridExtractor`
(``normalize_images=False``) and SB3's default ``net_arch``. Rows:

- ``rim``: RecurrentPPO + :class:`~metarim_sb3.MultiInputRIMPolicy` with the agents' RIM sizes (``presets/agents.yaml``:
  4 units x 32, k 3), actor and critic RIMs;
- ``rim_shared``: the same with one RIM for actor and critic (``shared_lstm=True``: the critic reads the
  detached actor output, as in sb3-contrib), i.e. half the recurrent compute;
- ``rim_chunked``: ``rim`` trained by :class:`~metarim_sb3.ppo.chunked.ChunkedRecurrentPPO` with ``chunk_len=16``
  (minibatches of 8 chunks of 16 steps instead of sequences split at episode starts);
- ``rim_shared_chunked``: ``rim_shared`` trained the same way;
- ``rim_shared_chunked_subproc``: the same with the 8 envs in a ``SubprocVecEnv`` (does stepping them in worker
  processes pay on this machine?);
- ``rim_shared_chunked_2threads``: the same with 2 torch threads instead of ``--threads`` (does a second thread pay
  for one run?);
- ``lstm_sb3``: RecurrentPPO + sb3-contrib's stock ``RecurrentActorCriticPolicy``, with the agents'
  ``lstm_hidden_size`` (128, the RIMs' total state), as every LSTM and GRU row;
- ``lstm_fast``: RecurrentPPO + :class:`~metarim_sb3.MultiInputFastLstmPolicy`;
- ``gru``: RecurrentPPO + :class:`~metarim_sb3.MultiInputGruPolicy` (the GRU agent's policy);
- ``gru_chunked``: ``gru`` trained by ``ChunkedRecurrentPPO`` with ``chunk_len=16``;
- ``ppo``: feed-forward PPO, ``MultiInputPolicy``.

Each measurement is one ``learn()`` of ``--timesteps`` steps on a fresh model (after one untimed warm-up run per
row); rows are interleaved and their order rotated on every repeat, in one process; the table shows medians.
FPS = timesteps / wall time of ``learn()``; ``rollout s`` / ``train s`` split that time (collection vs updates).
Targets: ``rim`` >= 2.5x ``lstm_sb3`` and >= 0.5x ``ppo``; the fastest RIM layout (any ``rim*`` row) is reported
beside it with its own ratios.

    python benchmarks/bench_train.py [--timesteps 4096] [--repeats 3] [--threads 1] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch as th
from agent_sizes import lstm_hidden_size, rim_sizes
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import RecurrentMultiInputActorCriticPolicy
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

import metarim_gym  # noqa: F401  (registers the ids)
from metarim_sb3 import MiniGridExtractor, MultiInputFastLstmPolicy, MultiInputGruPolicy, MultiInputRIMPolicy
from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO

ENV_ID = "MetaRIM-MultiRoom-v0"
EXTRACTOR = dict(features_extractor_class=MiniGridExtractor, normalize_images=False)
HYPER = dict(n_steps=128, batch_size=128, n_epochs=10)
#: The agents' core sizes (``presets/agents.yaml``).
RIM, LSTM_HIDDEN = rim_sizes(), lstm_hidden_size()
#: Targets of the ``rim`` row: at least this many times the FPS of ``lstm_sb3`` and of ``ppo``.
TARGET_LSTM, TARGET_PPO = 2.5, 0.5


class PhaseTimer(BaseCallback):
    """Wall time spent collecting rollouts (the rest of ``learn()`` is updates and logging)."""

    def __init__(self) -> None:
        super().__init__()
        self.rollout_s = 0.0
        self._start = 0.0

    def _on_rollout_start(self) -> None:
        self._start = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.rollout_s += time.perf_counter() - self._start

    def _on_step(self) -> bool:
        return True


#: Rows run with this many torch threads instead of ``--threads``.
ROW_THREADS = {"rim_shared_chunked_2threads": 2}
#: Rows that use more than one core; compared with ``rim_shared_chunked``, not picked as the fastest layout.
MORE_CPU = ("rim_shared_chunked_subproc", "rim_shared_chunked_2threads")


def _stage0() -> gym.Env:
    return gym.make(ENV_ID, stage=0)


def make_env(n_envs: int, subproc: bool = False) -> VecEnv:
    """:param n_envs: envs. :param subproc: step them in worker processes. :return: the ``VecEnv``."""
    return SubprocVecEnv([_stage0] * n_envs) if subproc else DummyVecEnv([_stage0] * n_envs)


def builders(n_envs: int) -> dict[str, Callable[[], BaseAlgorithm]]:
    def rim() -> BaseAlgorithm:
        kwargs = dict(EXTRACTOR, **RIM)
        return RecurrentPPO(MultiInputRIMPolicy, make_env(n_envs), policy_kwargs=kwargs, seed=0, **HYPER)

    def rim_shared() -> BaseAlgorithm:
        kwargs = dict(EXTRACTOR, **RIM, shared_lstm=True, enable_critic_lstm=False)
        return RecurrentPPO(MultiInputRIMPolicy, make_env(n_envs), policy_kwargs=kwargs, seed=0, **HYPER)

    def rim_chunked() -> BaseAlgorithm:
        kwargs = dict(EXTRACTOR, **RIM)
        return ChunkedRecurrentPPO(
            MultiInputRIMPolicy, make_env(n_envs), policy_kwargs=kwargs, seed=0, chunk_len=16, **HYPER
        )

    def rim_shared_chunked(subproc: bool = False) -> BaseAlgorithm:
        kwargs = dict(EXTRACTOR, **RIM, shared_lstm=True, enable_critic_lstm=False)
        return ChunkedRecurrentPPO(
            MultiInputRIMPolicy, make_env(n_envs, subproc), policy_kwargs=kwargs, seed=0, chunk_len=16, **HYPER
        )

    def lstm_sb3() -> BaseAlgorithm:
        kwargs = dict(EXTRACTOR, lstm_hidden_size=LSTM_HIDDEN)
        return RecurrentPPO(
            RecurrentMultiInputActorCriticPolicy, make_env(n_envs), policy_kwargs=kwargs, seed=0, **HYPER
        )

    def lstm_fast() -> BaseAlgorithm:
        kwargs = dict(EXTRACTOR, lstm_hidden_size=LSTM_HIDDEN)
        return RecurrentPPO(MultiInputFastLstmPolicy, make_env(n_envs), policy_kwargs=kwargs, seed=0, **HYPER)

    def gru() -> BaseAlgorithm:
        kwargs = dict(EXTRACTOR, lstm_hidden_size=LSTM_HIDDEN)
        return RecurrentPPO(MultiInputGruPolicy, make_env(n_envs), policy_kwargs=kwargs, seed=0, **HYPER)

    def gru_chunked() -> BaseAlgorithm:
        kwargs = dict(EXTRACTOR, lstm_hidden_size=LSTM_HIDDEN)
        return ChunkedRecurrentPPO(
            MultiInputGruPolicy, make_env(n_envs), policy_kwargs=kwargs, seed=0, chunk_len=16, **HYPER
        )

    def ppo() -> BaseAlgorithm:
        return PPO("MultiInputPolicy", make_env(n_envs), policy_kwargs=dict(EXTRACTOR), seed=0, **HYPER)

    return {
        "rim": rim,
        "rim_shared": rim_shared,
        "rim_chunked": rim_chunked,
        "rim_shared_chunked": rim_shared_chunked,
        "rim_shared_chunked_subproc": lambda: rim_shared_chunked(subproc=True),
        "rim_shared_chunked_2threads": rim_shared_chunked,
        "lstm_sb3": lstm_sb3,
        "lstm_fast": lstm_fast,
        "gru": gru,
        "gru_chunked": gru_chunked,
        "ppo": ppo,
    }


def measure(build: Callable[[], BaseAlgorithm], timesteps: int, threads: int | None = None) -> dict[str, float]:
    """
    :param build: makes the model.
    :param timesteps: steps of the timed ``learn()``.
    :param threads: torch threads for this measurement (restored after), or ``None`` to keep the current setting.
    :return: FPS and the wall time split into collection and updates.
    """
    model = build()
    timer = PhaseTimer()
    before = th.get_num_threads()
    if threads is not None:
        th.set_num_threads(threads)
    try:
        start = time.perf_counter()
        model.learn(timesteps, callback=timer)
        total = time.perf_counter() - start
    finally:
        th.set_num_threads(before)
        model.get_env().close()
    return {"fps": model.num_timesteps / total, "total_s": total, "rollout_s": timer.rollout_s,
            "train_s": total - timer.rollout_s}  # fmt: skip


def target_lines(summary: dict[str, dict[str, Any]]) -> list[str]:
    """
    :param summary: row name -> medians (``fps``).
    :return: one line per target of the ``rim`` row, then the fastest RIM layout's ratios (rows that ran only).
    """
    fps = {name: s["fps"] for name, s in summary.items()}
    if "lstm_sb3" not in fps or "ppo" not in fps:
        return ["targets: need the lstm_sb3 and ppo rows"]
    lines = []
    if "rim" in fps:
        for ref, target in (("lstm_sb3", TARGET_LSTM), ("ppo", TARGET_PPO)):
            ratio = fps["rim"] / fps[ref]
            lines.append(f"target: rim >= {target}x {ref}: {'met' if ratio >= target else 'not met'} ({ratio:.2f}x)")
    layouts = [name for name in fps if name.startswith("rim") and name not in MORE_CPU]
    if layouts:
        best = max(layouts, key=fps.__getitem__)
        lines.append(f"fastest RIM layout: {best}, {fps[best] / fps['lstm_sb3']:.2f}x lstm_sb3, "
                     f"{fps[best] / fps['ppo']:.2f}x ppo")  # fmt: skip
    for name in MORE_CPU:
        if name in fps and "rim_shared_chunked" in fps:
            lines.append(f"{name}: {fps[name] / fps['rim_shared_chunked']:.2f}x rim_shared_chunked")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=4096, help="steps per measurement (default: 4096)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default: 1)")
    parser.add_argument("--n-envs", type=int, default=8, help="DummyVecEnv size (default: 8)")
    parser.add_argument("--rows", nargs="+", default=None, help="subset of rows (default: all)")
    parser.add_argument("--quick", action="store_true", help="small budget: 2048 steps, 1 repeat, no warm-up")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.timesteps, args.repeats = 2048, 1
    th.set_num_threads(args.threads)

    rows = {name: b for name, b in builders(args.n_envs).items() if args.rows is None or name in args.rows}
    if not args.quick:
        for name, build in rows.items():  # warm-up: first-call costs (allocator, kernels, imports)
            measure(build, 128 * args.n_envs, ROW_THREADS.get(name))
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in rows}
    names = list(rows)
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            runs[name].append(measure(rows[name], args.timesteps, ROW_THREADS.get(name)))
            print(f"  repeat {repeat}: {name:18s} {runs[name][-1]['fps']:8.0f} fps", flush=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    summary: dict[str, dict[str, Any]] = {
        name: {key: median(name, key) for key in ("fps", "rollout_s", "train_s")} | {"runs": runs[name]}
        for name in names
    }
    ref_lstm = summary.get("lstm_sb3", {}).get("fps")
    ref_ppo = summary.get("ppo", {}).get("fps")
    print(f"\n{ENV_ID} stage 0, {args.n_envs} envs, {HYPER}, {args.timesteps} steps x {args.repeats}, "
          f"{args.threads} thread(s); medians")  # fmt: skip
    print(f"{'row':18s} {'fps':>8s} {'rollout s':>10s} {'train s':>8s} {'x lstm_sb3':>11s} {'x ppo':>7s}")
    for name, s in summary.items():
        x_lstm = f"{s['fps'] / ref_lstm:11.2f}" if ref_lstm else f"{'-':>11s}"
        x_ppo = f"{s['fps'] / ref_ppo:7.2f}" if ref_ppo else f"{'-':>7s}"
        print(f"{name:18s} {s['fps']:8.0f} {s['rollout_s']:10.2f} {s['train_s']:8.2f} {x_lstm} {x_ppo}")
    for line in target_lines(summary):
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"env_id": ENV_ID, "stage": 0, "n_envs": args.n_envs, **HYPER, "rim": RIM,
                "lstm_hidden_size": LSTM_HIDDEN, "timesteps": args.timesteps,
                "repeats": args.repeats, "threads": args.threads, "torch": th.__version__,
                "machine": platform.machine(), "python": platform.python_version()}  # fmt: skip
        args.json.write_text(json.dumps({"meta": meta, "results": summary}, indent=2))


if __name__ == "__main__":
    main()
