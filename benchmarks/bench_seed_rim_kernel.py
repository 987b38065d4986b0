"""Time the seed-batched RIM core alone: ``SeedRIM`` fused (seeds as the kernel's groups) and plain (``fused=False``)
against ``S`` ordinary fused RIMs run one after another, side by side in one process.

Two workloads, each timed in CPU seconds (``time.process_time``) with ``torch.set_num_threads(1)``, the candidates
run back to back in an order that rotates every repeat:

* ``update``: forward and backward over ``T`` steps and ``B`` sequences per seed (a PPO chunk), every parameter's
  and the input's gradient;
* ``rollout``: one no-grad step of ``B_r`` environments per seed (what each rollout step runs).

The ratio is the seed-batched time over the ``S`` separate RIMs' time (the per-seed cost relative to a separate run),
the median over repeats with min and max. Sizes: the presets' RIM (4 units x 32, k 3, input 64).

Usage::

    python benchmarks/bench_seed_rim_kernel.py [--seeds 8] [--t-len 32] [--batch 16] [--rollout-batch 4]
        [--repeats 7] [--cell lstm]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metarim_sb3.cores.rim import RIM
from metarim_sb3.seed_batch import stack_into
from metarim_sb3.seed_batch.cores import SeedRIM

SIZES = dict(n_units=4, unit_size=32, k=3, input_key_size=64, comm_key_size=32, comm_value_size=32, comm_heads=4)
INPUT = 64


def _update(core: torch.nn.Module, x: torch.Tensor, h: torch.Tensor, starts: torch.Tensor) -> Callable[[], None]:
    """Forward and backward of one core over ``x`` (gradients of the input and every parameter)."""

    def run() -> None:
        xi = x.detach().requires_grad_(True)
        out, (h_t, c_t) = core(xi, (h, h), starts)
        loss = out.square().sum() + h_t.sum() + c_t.sum()
        torch.autograd.grad(loss, [xi, *core.parameters()])

    return run


def _rollout(core: torch.nn.Module, x: torch.Tensor, h: torch.Tensor, starts: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            core(x, (h, h), starts)

    return run


def _candidates(
    rims: list[RIM], plain: SeedRIM, fused: SeedRIM, t_len: int, b: int, update: bool
) -> dict[str, Callable[[], None]]:
    s, gen = len(rims), torch.Generator().manual_seed(0)
    hidden = rims[0].hidden_size
    x = torch.randn(s, t_len, b, INPUT, generator=gen)
    h = 0.3 * torch.randn(s, 1, b, hidden, generator=gen)
    starts = (torch.rand(s, t_len, b, generator=gen) < 0.05).float()
    make = _update if update else _rollout
    runs = [make(rim, x[i], h[i], starts[i]) for i, rim in enumerate(rims)]

    def separate() -> None:
        for run in runs:
            run()

    return {"separate": separate, "plain": make(plain, x, h, starts), "fused": make(fused, x, h, starts)}


def _time(cands: dict[str, Callable[[], None]], repeats: int, inner: int) -> dict[str, list[float]]:
    for fn in cands.values():  # warm up (pool, caches)
        fn()
        fn()
    names = list(cands)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            start = time.process_time()
            for _ in range(inner):
                cands[n]()
            times[n].append((time.process_time() - start) / inner)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--t-len", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rollout-batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rims = []
    for s in range(args.seeds):
        torch.manual_seed(s)
        rims.append(RIM(INPUT, cell=args.cell, **SIZES))  # type: ignore[arg-type]
    plain, fused = SeedRIM(rims[0], args.seeds, fused=False), SeedRIM(rims[0], args.seeds)
    stack_into(plain, rims)
    stack_into(fused, rims)
    print(f"S={args.seeds} cell={args.cell} T={args.t_len} B={args.batch} rollout B={args.rollout_batch}, one thread")
    for label, t_len, b, inner in (("update", args.t_len, args.batch, 2), ("rollout", 1, args.rollout_batch, 50)):
        times = _time(_candidates(rims, plain, fused, t_len, b, label == "update"), args.repeats, inner)
        sep = times["separate"]
        print(f"{label}: separate x{args.seeds} {1e3 * statistics.median(sep):.2f} ms")
        for name in ("plain", "fused"):
            ratios = [t / ref for t, ref in zip(times[name], sep, strict=True)]
            print(
                f"  {name:6s} {1e3 * statistics.median(times[name]):.2f} ms, per-seed ratio "
                f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
            )


if __name__ == "__main__":
    main()
