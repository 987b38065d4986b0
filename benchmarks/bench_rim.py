"""Benchmark the RIM core against torch's fused LSTM on CPU.

Cases (input 64, RIM 6 units x 64 (k 4) vs ``nn.LSTM(64, 384)``: the reference has the RIM's total hidden size,
6 x 64 = 384, so both carry the same state width):

* ``train``: forward + backward over a sequence (T=32) at B=16 and B=64, with the fused kernel (the default) and
  with it off (``fused=False``: the plain autograd loop of :mod:`metarim_sb3.cores.rim.reference`), to show what it
  buys;
* ``rollout``: one step (T=1, B=8) under ``torch.no_grad``, against ``nn.LSTMCell(64, 384)`` and against
  ``nn.LSTM`` called with T=1.

Each timed repeat runs the RIM and its reference back to back, alternating which goes first, so that load from
other processes hits both alike; the table reports the median time of each and the median of the per-repeat
ratios (and the ratio of the minima, the least disturbed estimate). Runs with 2 threads and with 1 thread.
Target: the fused training case <= 1.5x ``nn.LSTM`` of equal total hidden at B=16 and B=64 with 2 threads.

Usage::

    python benchmarks/bench_rim.py [--quick] [--threads 2 1] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metarim_sb3.cores.rim import RIM

INPUT, UNITS, UNIT_SIZE, K = 64, 6, 64, 4
HIDDEN = UNITS * UNIT_SIZE  # the reference LSTM's hidden size: the RIM's total hidden size
#: The fused training case is held to at most this many times ``nn.LSTM(INPUT, HIDDEN)`` (2 threads).
TARGET = 1.5


def _time(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e3


def compare(a: Callable[[], object], b: Callable[[], object], n: int, repeats: int) -> dict[str, float]:
    """Time ``a`` (the RIM) and ``b`` (the reference) in alternating order; times in ms.

    :param a: the candidate.
    :param b: the reference.
    :param n: calls per timing.
    :param repeats: timings of each.
    :return: medians, minima and the ratio statistics.
    """
    for _ in range(2):
        a()
        b()
    ta: list[float] = []
    tb: list[float] = []
    for r in range(repeats):
        if r % 2:
            tb.append(_time(b, n))
            ta.append(_time(a, n))
        else:
            ta.append(_time(a, n))
            tb.append(_time(b, n))
    ratios = [x / y for x, y in zip(ta, tb, strict=True)]
    return {
        "rim_ms": statistics.median(ta),
        "ref_ms": statistics.median(tb),
        "rim_min_ms": min(ta),
        "ref_min_ms": min(tb),
        "ratio_median": statistics.median(ratios),
        "ratio_of_min": min(ta) / min(tb),
    }


def train_case(batch: int, seq: int, cell: str, n: int, repeats: int, fused: bool = True) -> dict[str, float]:
    """Forward + backward over ``seq`` steps, RIM (fused kernel or not) vs ``nn.LSTM`` of equal total hidden."""
    torch.manual_seed(0)
    rim = RIM(INPUT, UNITS, UNIT_SIZE, K, cell=cell, fused=fused)
    lstm = nn.LSTM(INPUT, HIDDEN)
    x = torch.randn(seq, batch, INPUT, requires_grad=True)
    state = (torch.zeros(1, batch, HIDDEN), torch.zeros(1, batch, HIDDEN))

    def run_rim() -> None:
        out, _ = rim(x, state)
        out.sum().backward()

    def run_lstm() -> None:
        out, _ = lstm(x, state)
        out.sum().backward()

    return compare(run_rim, run_lstm, n, repeats)


def rollout_case(batch: int, reference: str, n: int, repeats: int) -> dict[str, float]:
    """One no-grad step, RIM vs ``nn.LSTMCell`` or ``nn.LSTM`` with T=1."""
    torch.manual_seed(0)
    rim = RIM(INPUT, UNITS, UNIT_SIZE, K).eval()
    x = torch.randn(1, batch, INPUT)
    h, c = torch.zeros(1, batch, HIDDEN), torch.zeros(1, batch, HIDDEN)
    starts = torch.zeros(1, batch)

    @torch.no_grad()
    def run_rim() -> None:
        rim(x, (h, c), starts)

    if reference == "LSTMCell":
        cell = nn.LSTMCell(INPUT, HIDDEN)

        @torch.no_grad()
        def run_ref() -> None:
            cell(x[0], (h[0], c[0]))

    else:
        lstm = nn.LSTM(INPUT, HIDDEN)

        @torch.no_grad()
        def run_ref() -> None:
            lstm(x, (h, c))

    return compare(run_rim, run_ref, n, repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run, noisy)")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="torch thread counts to run")
    parser.add_argument("--seq", type=int, default=32, help="sequence length of the training case")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64], help="batch sizes of the training case")
    parser.add_argument("--cells", nargs="+", default=["lstm"], choices=["lstm", "gru"], help="RIM cells")
    parser.add_argument("--repeats", type=int, default=None, help="timings per case (default 11, quick 3)")
    parser.add_argument("--no-unfused", action="store_true", help="skip the training rows with fused=False")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 11)
    n_train, n_roll = (1, 20) if args.quick else (3, 200)

    rows: list[dict[str, object]] = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for cell in args.cells:
            for batch in args.batches:
                for fused in (True, False) if not args.no_unfused else (True,):
                    res = train_case(batch, args.seq, cell, n_train, repeats, fused)
                    case = f"train T={args.seq} B={batch}" + ("" if fused else " unfused")
                    rows.append(dict(case=case, rim=cell, ref="nn.LSTM", threads=threads, fused=fused, **res))
        for ref in ("LSTMCell", "LSTM(T=1)"):
            res = rollout_case(8, ref, n_roll, repeats)
            rows.append(
                dict(case="rollout T=1 B=8 no_grad", rim="lstm", ref=f"nn.{ref}", threads=threads, fused=True, **res)
            )

    head = f"{'case':<32} {'rim':<4} {'reference':<14} {'thr':>3} {'RIM ms':>8} {'ref ms':>8} {'ratio':>6}"
    head += f" {'min-ratio':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['case']:<32} {r['rim']:<4} {r['ref']:<14} {r['threads']:>3} {r['rim_ms']:>8.3f} {r['ref_ms']:>8.3f} "
            f"{r['ratio_median']:>6.2f} {r['ratio_of_min']:>9.2f}"
        )
    checked = [r for r in rows if r["fused"] and r["threads"] == 2 and str(r["case"]).startswith("train")]
    if checked:
        worst = max(float(r["ratio_median"]) for r in checked)  # type: ignore[arg-type]
        print(f"target: fused training <= {TARGET}x nn.LSTM({INPUT}, {HIDDEN}) at 2 threads: "
              f"{'met' if worst <= TARGET else 'not met'} (worst {worst:.2f})")  # fmt: skip
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"\ntorch {torch.__version__}, {os.cpu_count()} CPUs, load average {load}; ratio = median of per-repeat ratios"
    )
    if args.json is not None:
        meta = dict(torch=torch.__version__, cpus=os.cpu_count(), load_average=load, platform=platform.platform())
        args.json.write_text(json.dumps(dict(meta=meta, repeats=repeats, results=rows), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
