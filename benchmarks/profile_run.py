"""Where a whole training run's time goes: py-spy samples of a ``metarim train`` process, grouped by phase.

``bench_study.py`` gives a run's cost per environment step; this says what that cost is made of, on the real
thing: env stepping, the policy's rollout forward, the evaluation callbacks, the PPO update's forward and backward,
the RIM core inside them. It samples the Python stacks of a running process with py-spy (``pip install py-spy``;
sampling adds no work to the process), either one it starts (``metarim train`` with the given agent, env and
budget) or one already running (``--pid``, e.g. a worker of ``metarim compare``), and prints each sample's phase.

Usage::

    python benchmarks/profile_run.py --agent meta-rim --env MetaRIM-GoTo-v0 --timesteps 150000 \\
        [--out results/bench/profile_run.txt]
    python benchmarks/profile_run.py --pid 1234 --duration 60 [--out FILE]

A phase is the first rule (in :data:`PHASES` order) that matches a frame of the sample's stack, so each sample
counts once; "RIM core" lines count samples inside the fused RIM kernel wherever they occur.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

#: (phase, substring of a frame's function name that puts a sample in it); first match in this order wins.
PHASES: tuple[tuple[str, str], ...] = (
    ("PPO update: backward", "Tensor.backward"),
    ("PPO update: optimizer step (fast/slow hooks in it)", "Optimizer"),
    ("PPO update: forward and the rest", ".train "),
    ("callbacks (evaluations, curriculum, telemetry)", "Callback"),
    ("rollout: env step", "VecEnv.step"),
    ("rollout: policy forward and buffer", "collect_rollouts"),
)
#: Frames inside the RIM core (the fused kernel's forward and backward), counted across phases.
RIM_CORE = ("RIMSequence.forward", "RIMSequence.backward", "rollout_step", "run_no_grad")


def classify(stack: list[str]) -> str:
    """
    :param stack: a sample's frames, outermost first (``function (file:line)``).
    :return: its phase (``other`` when no rule matches: setup, the final evaluation, checkpoints).
    """
    names = [frame.split(" (")[0] + " " for frame in stack]
    for phase, needle in PHASES:
        if any(needle in name for name in names):
            return phase
    return "other (setup, final evaluation, checkpoints)"


def summarize(raw: str) -> tuple[int, Counter[str], int]:
    """
    :param raw: py-spy's ``--format raw`` output (one ``frame;frame;... count`` line per distinct stack).
    :return: total samples, samples per phase, samples inside the RIM core.
    """
    total, rim = 0, 0
    phases: Counter[str] = Counter()
    for line in raw.splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        n, frames = int(count), stack.split(";")
        total += n
        phases[classify(frames)] += n
        if any(needle in frame for frame in frames for needle in RIM_CORE):
            rim += n
    return total, phases, rim


def table(total: int, phases: Counter[str], rim: int, header: str) -> str:
    """:return: the summary as text (shares of all samples)."""
    lines = [header, "", f"{'phase':<52} {'share':>6}", "-" * 59]
    for phase, n in phases.most_common():
        lines.append(f"{phase:<52} {100 * n / max(total, 1):5.1f}%")
    lines += ["-" * 59, f"{'RIM core (fused forward + backward, any phase)':<52} {100 * rim / max(total, 1):5.1f}%"]
    return "\n".join([*lines, f"samples: {total}", ""])


def _record(args: argparse.Namespace, raw_path: Path) -> str:
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: pip install py-spy")
    base = [spy, "record", "--rate", str(args.rate), "--format", "raw", "--output", str(raw_path), "--nonblocking"]
    if args.pid is not None:
        subprocess.run([*base, "--pid", str(args.pid), "--duration", str(args.duration)], check=True)
        return f"pid {args.pid}, {args.duration} s"
    with tempfile.TemporaryDirectory() as run_dir:
        cmd = [sys.executable, "-m", "metarim_sb3.experiments.cli", "train", "--agent", args.agent, "--env"]
        cmd += [args.env, "--timesteps", str(args.timesteps), "--seed", "0", "--out", f"{run_dir}/run"]
        start = time.perf_counter()
        subprocess.run([*base, "--", *cmd], check=True, stdout=subprocess.DEVNULL)
        return f"metarim train --agent {args.agent} --env {args.env} --timesteps {args.timesteps} --seed 0, " + (
            f"{time.perf_counter() - start:.0f} s wall"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="meta-rim", help="agent of the run to start (default: meta-rim)")
    parser.add_argument("--env", default="MetaRIM-GoTo-v0", help="env of the run to start (default: GoTo)")
    parser.add_argument("--timesteps", type=int, default=150_000, help="budget of the run to start (default: 150000)")
    parser.add_argument("--pid", type=int, default=None, help="sample this running process instead (default: none)")
    parser.add_argument("--duration", type=int, default=60, help="seconds to sample with --pid (default: 60)")
    parser.add_argument("--rate", type=int, default=50, help="samples per second (default: 50)")
    parser.add_argument("--label", default="", help="what the process is, for the header (default: none)")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here (default: print only)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = Path(tmp) / "raw.txt"
        what = _record(args, raw_path)
        header = f"py-spy samples of {what}" + (f" ({args.label})" if args.label else "")
        text = table(*summarize(raw_path.read_text()), header=header)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
