"""Which critic wiring should the RIM agents use? A measured comparison on the GoTo family.

Three wirings of the critic (``docs/guides/experiments.md``), each trained as the ``meta-rim`` agent of the presets on
``MetaRIM-GoTo-v0`` with the ``quick`` grid's budget and evaluation settings, seeds 0..S-1:

- ``shared-detached``: one core; the critic reads its output detached (sb3-contrib's ``shared_lstm=True``);
- ``shared``: one core; the value loss trains it too (``shared_critic_gradient=True``);
- ``separate``: a second RIM for the critic (``shared_lstm=False``, ``enable_critic_lstm=True``).

Each run is ``metarim train`` into ``<out>/runs/<wiring>/seed<k>`` (completed runs are skipped, so the study
resumes). The summary gives, per wiring, the final held-out success (50 episodes per seed), the final stage reached,
and the training frames to master stage 1 (the first shift's adaptation; censored runs are counted, never
averaged), as the interquartile mean over seeds with a 95 % percentile-bootstrap interval over seeds (no interval
below 3 seeds). Writes ``<out>/summary.csv`` and ``<out>/report.md``.

    python studies/critic_wiring.py [--seeds 3] [--workers 2] [--timesteps 61440] [--out results/critic]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from metarim_sb3.experiments.reporting.stats import bootstrap_ci, iqm

WIRINGS: dict[str, list[str]] = {
    "shared-detached": [],
    "shared": ["policy_kwargs.shared_critic_gradient=true"],
    "separate": ["policy_kwargs.shared_lstm=false", "policy_kwargs.enable_critic_lstm=true"],
}
COMMON = ["heldout_eval.every=20000", "heldout_eval.episodes=20", "final_eval.episodes=50", "checkpoint.every=20000"]


def train(run_dir: Path, wiring: str, seed: int, timesteps: int) -> None:
    """Run (or resume, or skip) one cell with ``metarim train``."""
    if (run_dir / "done.json").is_file():
        return
    cmd = [sys.executable, "-m", "metarim_sb3.experiments.cli", "train", "--agent", "meta-rim", "--env",
           "MetaRIM-GoTo-v0", "--seed", str(seed), "--timesteps", str(timesteps), "--out", str(run_dir)]  # fmt: skip
    cmd += ["--resume"] if (run_dir / "checkpoint.zip").is_file() else []
    for item in (*COMMON, *WIRINGS[wiring]):
        cmd += ["--set", item]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{wiring} seed {seed} failed:\n{done.stderr[-2000:]}")


def first_mastery(run_dir: Path) -> tuple[float, bool]:
    """Frames from entering stage 1 to mastering it, and whether it was mastered (else: frames it lasted)."""
    rows: list[dict[str, str]] = []
    if (run_dir / "mastery.csv").is_file():
        with open(run_dir / "mastery.csv", newline="") as file:
            rows = list(csv.DictReader(file))
    for row in rows:
        if int(float(row["stage"])) == 1:
            entered = float(row["entered_at"])
            if row.get("mastered_at") not in (None, ""):
                return float(row["mastered_at"]) - entered, True
            end = row.get("left_at") or json.loads((run_dir / "done.json").read_text())["timesteps"]
            return float(end) - entered, False
    return float("nan"), False


def summarise(values: list[float]) -> str:
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if x.size == 0:
        return "n/a"
    if x.size < 3:
        return f"{iqm(x):.3g} (n={x.size}: no interval)"
    low, high = bootstrap_ci(x, iqm)
    return f"{iqm(x):.3g} [{low:.3g}, {high:.3g}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timesteps", type=int, default=61440)
    parser.add_argument("--out", type=Path, default=Path("results/critic"))
    args = parser.parse_args()
    cells = [(w, s) for s in range(args.seeds) for w in WIRINGS]
    with ThreadPoolExecutor(args.workers) as pool:
        futures = [pool.submit(train, args.out / "runs" / w / f"seed{s}", w, s, args.timesteps) for w, s in cells]
        for future in futures:
            future.result()
    rows: list[dict[str, Any]] = []
    for wiring, seed in cells:
        run = args.out / "runs" / wiring / f"seed{seed}"
        done = json.loads((run / "done.json").read_text())
        frames, mastered = first_mastery(run)
        rows.append(dict(wiring=wiring, seed=seed, heldout_success=done["heldout_success"],
                         final_stage=done["final_stage"], stage1_frames=frames, stage1_mastered=int(mastered),
                         wall_time_s=done["wall_time_s"]))  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "summary.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Critic wiring on MetaRIM-GoTo-v0 (meta-rim agent)",
        "",
        f"`python studies/critic_wiring.py --seeds {args.seeds} --timesteps {args.timesteps}`; {args.seeds} seeds per"
        " wiring; IQM over seeds [95 % percentile bootstrap over seeds]. Stage-1 frames: only runs that mastered"
        " stage 1 enter the IQM; the count of those that did not (censored) is given beside it.",
        "",
        "| wiring | held-out success | final stage (per seed) | stage-1 frames (mastered) | not mastered | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for wiring in WIRINGS:
        mine = [r for r in rows if r["wiring"] == wiring]
        mastered = [r["stage1_frames"] for r in mine if r["stage1_mastered"]]
        stages = ", ".join(str(r["final_stage"]) for r in mine)
        walls = summarise([r["wall_time_s"] for r in mine])
        lines.append(f"| {wiring} | {summarise([r['heldout_success'] for r in mine])} | {stages} | "
                     f"{summarise(mastered)} | {len(mine) - len(mastered)} | {walls} |")  # fmt: skip
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
