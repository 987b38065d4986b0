"""CPU milliseconds per environment step of each agent on a compare preset's settings, evaluations included.

Each measurement is one whole run as ``metarim train`` makes it, in this process:
:func:`~metarim_sb3.experiments.training.runner.run` on
:func:`~metarim_sb3.experiments.training.config.resolve_config` of the agent and env with the preset's overrides
(default preset ``quick``, its envs; agents meta-rim, rim, reversed, lstm, gru), one torch thread, a fresh temporary
run folder. CPU = ``time.process_time()`` of this process over the whole run (training, periodic and final
evaluations, checkpoints, logs); ms/step = CPU / ``--timesteps``; wall ms/step likewise from
``time.perf_counter()``.

The budget is short, so the run is the preset's run scaled down: with r = ``--timesteps`` / the preset's budget
for that env, the periodic intervals (``heldout_eval.every``, ``stage_eval.every``, ``checkpoint.every``) and the
final evaluation's episodes are multiplied by r, so that evaluations and checkpoints keep the share per step they
have in the full run (``--no-scale-evals`` runs the preset's values as they are). A short run stays in the early
stages of the curriculum, whose episodes may cost more or less than later ones.

One untimed warm-up run per agent (one rollout, no periodic evaluation) comes first; then each repeat runs every
agent x env cell, the order rotated on each repeat; the table shows medians. Target: <= 0.8 CPU ms per step for
the RIM agents (meta-rim, rim, reversed). ``--write-costs`` writes the medians to
``metarim_sb3/experiments/presets/costs.yaml`` (or a given path), which ``metarim compare --dry-run`` turns into
CPU core-hours and wall hours of any preset.

    python benchmarks/bench_study.py [--preset quick] [--timesteps 8192] [--repeats 3] [--json out.json]
    python benchmarks/bench_study.py --write-costs    # also record the figures for metarim compare --dry-run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch as th

from metarim_sb3.experiments.grid.cost import package_costs_path, write_costs
from metarim_sb3.experiments.grid.presets import compare_preset
from metarim_sb3.experiments.training.config import AGENTS, merge, resolve_config
from metarim_sb3.experiments.training.run_config import RunConfig
from metarim_sb3.experiments.training.runner import run, versions

#: CPU ms per environment step the RIM agents are held to.
TARGET_MS = 0.8
#: Config keys holding an interval in environment steps, scaled with the budget.
#: The periodic intervals scaled with the budget: ``(section, field)``.
INTERVALS = (("heldout_eval", "every"), ("stage_eval", "every"), ("checkpoint", "every"))


def scaled_config(agent: str, env: str, preset: dict[str, Any], timesteps: int, scale: bool) -> RunConfig:
    """
    :param agent: agent name.
    :param env: environment id.
    :param preset: the compare preset (:func:`~metarim_sb3.experiments.grid.presets.compare_preset`).
    :param timesteps: the short budget.
    :param scale: scale the periodic intervals and the final evaluation's episodes by ``timesteps / budget``.
    :return: the run's resolved config.
    """
    config = resolve_config(agent, env, overrides=preset["overrides"], timesteps=timesteps)
    if scale:
        rollout = config.n_envs * config.ppo.n_steps  # learn() runs whole rollouts
        ratio = math.ceil(timesteps / rollout) * rollout / preset["timesteps"][env]
        changes: dict[str, object] = {
            section: {name: max(1, round(getattr(getattr(config, section), name) * ratio))}
            for section, name in INTERVALS
        }
        changes["final_eval"] = {"episodes": max(1, math.ceil(config.final_eval.episodes * ratio))}
        config = config.with_changes(**changes)
    return config


def warmup_config(agent: str, env: str, preset: dict[str, Any]) -> RunConfig:
    """:return: a one-rollout run of ``agent`` without periodic evaluations (first-call costs, untimed)."""
    base = resolve_config(agent, env, overrides=preset["overrides"])
    rollout = base.n_envs * base.ppo.n_steps
    layer = {"heldout_eval": {"enabled": False}, "stage_eval": {"enabled": False}, "final_eval": {"episodes": 1}}
    return resolve_config(agent, env, overrides=merge(preset["overrides"], layer), timesteps=rollout)


def measure(config: RunConfig, seed: int) -> dict[str, float]:
    """
    One whole run in a temporary folder.

    :param config: the resolved config.
    :param seed: the run's seed.
    :return: CPU and wall seconds, steps, ms per step, the final evaluation's wall seconds.
    """
    with (
        tempfile.TemporaryDirectory(prefix="bench_study_") as tmp,
        open(os.devnull, "w") as sink,
        contextlib.redirect_stdout(sink),
    ):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        summary = run(config, seed, Path(tmp) / "run")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    steps = int(summary["timesteps"])
    return {"cpu_s": cpu, "wall_s": wall, "timesteps": steps, "cpu_ms": cpu / steps * 1e3,
            "wall_ms": wall / steps * 1e3, "final_eval_s": float(summary["final_eval_s"])}  # fmt: skip


def _machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip() + ", "
                break
    return f"{model}{os.cpu_count()} CPUs, {platform.platform()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick", help="compare preset whose settings are used (default: quick)")
    parser.add_argument("--agents", nargs="+", choices=AGENTS, default=list(AGENTS), help="agents (default: all)")
    parser.add_argument("--envs", nargs="+", default=None, help="env ids (default: the preset's)")
    parser.add_argument("--timesteps", type=int, default=8192, help="steps per run (default: 8192)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each cell (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (default: 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default: 1, as compare)")
    parser.add_argument("--no-scale-evals", action="store_true", help="keep the preset's evaluation intervals")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up runs")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument(
        "--write-costs",
        type=Path,
        nargs="?",
        const=package_costs_path(),
        default=None,
        metavar="PATH",
        help=f"write the medians as the costs file of metarim compare --dry-run (default path: {package_costs_path()})",
    )
    args = parser.parse_args(argv)
    for name in ("timesteps", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    preset = compare_preset(args.preset)
    envs = args.envs or preset["envs"]
    unknown = [e for e in envs if e not in preset["timesteps"]]
    if unknown:
        parser.error(f"--envs {unknown} are not in preset {args.preset}; allowed: {', '.join(preset['envs'])}")
    th.set_num_threads(args.threads)
    with contextlib.suppress(RuntimeError):
        th.set_num_interop_threads(1)

    cells = [(agent, env) for env in envs for agent in args.agents]
    configs = {c: scaled_config(*c, preset, args.timesteps, not args.no_scale_evals) for c in cells}
    if not args.no_warmup:
        for agent in args.agents:
            measure(warmup_config(agent, envs[0], preset), args.seed)
    runs: dict[tuple[str, str], list[dict[str, float]]] = {c: [] for c in cells}
    for repeat in range(args.repeats):
        shift = repeat % len(cells)
        for cell in cells[shift:] + cells[:shift]:
            runs[cell].append(measure(configs[cell], args.seed))
            r = runs[cell][-1]
            print(f"  repeat {repeat}: {cell[0]:9s} {cell[1]:24s} {r['cpu_ms']:7.3f} CPU ms/step", flush=True)

    rows: list[dict[str, Any]] = []
    for agent, env in cells:
        rim = "RIM" in configs[agent, env]["policy"]
        cpu_ms = statistics.median(r["cpu_ms"] for r in runs[agent, env])
        wall_ms = statistics.median(r["wall_ms"] for r in runs[agent, env])
        eval_share = statistics.median(r["final_eval_s"] / r["wall_s"] for r in runs[agent, env])
        rows.append({"agent": agent, "env": env, "rim": rim, "cpu_ms": cpu_ms, "wall_ms": wall_ms,
                     "final_eval_share": eval_share, "runs": runs[agent, env]})  # fmt: skip

    print(f"\npreset {args.preset}, {args.timesteps} steps per run x {args.repeats}, {args.threads} torch thread(s), "
          f"evaluations {'unscaled' if args.no_scale_evals else 'scaled to the budget'}; medians")  # fmt: skip
    print(f"{'agent':10s} {'env':24s} {'CPU ms/step':>11s} {'wall ms/step':>12s} {'final eval':>10s}  target")
    for r in rows:
        verdict = ("met" if r["cpu_ms"] <= TARGET_MS else "not met") if r["rim"] else "-"
        print(f"{r['agent']:10s} {r['env']:24s} {r['cpu_ms']:11.3f} {r['wall_ms']:12.3f} "
              f"{r['final_eval_share']:10.0%}  {verdict}")  # fmt: skip
    rim_rows = [r for r in rows if r["rim"]]
    if rim_rows:
        worst = max(rim_rows, key=lambda r: r["cpu_ms"])
        ok = worst["cpu_ms"] <= TARGET_MS
        print(f"target: RIM agents <= {TARGET_MS} CPU ms/step: {'met' if ok else 'not met'} "
              f"(worst {worst['agent']} on {worst['env']}: {worst['cpu_ms']:.3f})")  # fmt: skip

    command = " ".join(shlex.quote(a) for a in ["python", "benchmarks/bench_study.py", *(argv or sys.argv[1:])])
    meta = {"command": command, "commit": versions().get("git_sha", "unknown"),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": _machine(),
            "torch_threads": args.threads, "torch": str(th.__version__), "preset": args.preset,
            "timesteps": args.timesteps, "repeats": args.repeats, "seed": args.seed,
            "scaled_evals": not args.no_scale_evals}  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "target_ms": TARGET_MS, "rows": rows}, indent=2))
    if args.write_costs is not None:
        figures: dict[str, dict[str, dict[str, float]]] = {}
        for row in rows:
            figures.setdefault(row["agent"], {})[row["env"]] = {"cpu_ms": row["cpu_ms"], "wall_ms": row["wall_ms"]}
        print(f"wrote {write_costs(args.write_costs, figures, meta)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
