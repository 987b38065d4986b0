"""Where the RIM core's training time goes: a ``torch.profiler`` table of one forward + backward.

Same case as ``bench_rim.py``'s ``train`` rows (input 64, 6 units x 64, k 4, T=32, fused kernel), at the batch sizes
given, next to ``nn.LSTM(64, 384)``. For each it prints the operator count per call and the operators with the most
self CPU time, which tells per-op overhead (many small ops, time spread thin) from arithmetic (a few matmuls
dominating). Not a benchmark: profiling adds overhead of its own; compare the tables, not the totals.

Usage::

    python benchmarks/profile_rim.py [--batch 16 64] [--threads 2] [--rows 12] [--out results/bench/profile_rim.txt]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metarim_sb3.cores.rim import RIM

INPUT, UNITS, UNIT_SIZE, K, T = 64, 6, 64, 4, 32


def _train_step(model: nn.Module, batch: int) -> Callable[[], None]:
    x = torch.randn(T, batch, INPUT, requires_grad=True)
    hidden = UNITS * UNIT_SIZE
    state = (torch.zeros(1, batch, hidden), torch.zeros(1, batch, hidden))

    def step() -> None:
        model.zero_grad(set_to_none=True)
        out, _ = model(x, state)
        out.sum().backward()

    return step


def profile_case(name: str, step: Callable[[], None], rows: int, calls: int = 5) -> str:
    """
    :param name: the case's title.
    :param step: one forward + backward.
    :param rows: operators to list.
    :param calls: profiled calls (after two warm-up calls).
    :return: the case's text: title, operators per call, total self CPU per call, top operators.
    """
    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            step()
    events = prof.key_averages()
    n_ops = sum(e.count for e in events) / calls
    total_ms = sum(e.self_cpu_time_total for e in events) / calls / 1e3
    table = events.table(sort_by="self_cpu_time_total", row_limit=rows)
    return f"## {name}\n{n_ops:.0f} operator calls per forward+backward, {total_ms:.1f} ms self CPU per call\n{table}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 64], help="batch sizes (default: 16 64)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--rows", type=int, default=12, help="operators listed per case (default: 12)")
    parser.add_argument("--out", type=Path, default=None, help="also write the text here")
    args = parser.parse_args()
    if args.threads < 1 or args.rows < 1 or any(b < 1 for b in args.batch):
        parser.error("--batch, --threads and --rows must be positive integers")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rim = RIM(INPUT, UNITS, UNIT_SIZE, K)
    lstm = nn.LSTM(INPUT, UNITS * UNIT_SIZE)
    head = f"# RIM core profile: T={T}, {UNITS} units x {UNIT_SIZE}, k {K}, {args.threads} thread(s)"
    parts = [f"{head}, torch {torch.__version__}"]
    for batch in args.batch:
        parts.append(profile_case(f"RIM fused, B={batch}", _train_step(rim, batch), args.rows))
        parts.append(
            profile_case(f"nn.LSTM({INPUT}, {UNITS * UNIT_SIZE}), B={batch}", _train_step(lstm, batch), args.rows)
        )
    text = "\n\n".join(parts)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
