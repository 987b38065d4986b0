"""The pilot of the study v2: the budgets, the tuning-parity choice and the power calculation, from committed runs.

Reads three sets of run folders and writes ``<out>/pilot.md`` (and ``<out>/tuning.csv``):

- **MultiRoom budgets**: the pilot runs (``<out>/multiroom/runs``: meta-rim and lstm, calibration seeds 0-1, the
  success-threshold curriculum, 409,600 frames): the frames each visit needed to reach the threshold
  (``mastery.csv``), which set the v2 schedule's visit lengths for MultiRoom. GoTo and DoorKey take theirs from
  the study v1 runs (``results/study-v1``), listed the same way.
- **Tuning parity**: the learning-rate sweep of rim, lstm and gru (``<out>/tuning/runs``: 5 cells x calibration
  seeds 0-2 on the calibrate sweep's settings); by the rule declared in the sweep's preset, each agent takes the
  cell with the highest mean first-visit adaptation AUC over its seeds (ties: 7e-4).
- **Power**: the SD of the paired per-seed differences (meta-rim minus each other agent) of study v1's adaptation
  AUC and zero-shot success, per family; the pairs a one-sided paired t test at the Bonferroni level 0.05 / 16 needs
  for 80 % power to detect an advantage of 0.05 (the v2 margin), by
  :func:`metarim_sb3.experiments.reporting.protocol.seeds_needed`. v1's AUC is a noisier cousin of v2's (10 or 5
  episodes per evaluation, a horizon that visits often left early), so these counts are an upper guide, not a promise.

    python studies/study_v2_pilot.py [--out results/study/pilot] [--v1 results/study-v1/runs]
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from metarim_sb3.experiments.reporting.protocol import seeds_needed
from metarim_sb3.experiments.reporting.runs import RunData, find_runs, load_run
from metarim_sb3.experiments.reporting.sections.adaptation import run_visit_aucs

#: The v2 decision rule's numbers (presets/compare.yaml, study): level, claims per family, margin.
ALPHA, CLAIMS_PER_FAMILY, MARGIN = 0.05, 16, 0.05
DEFAULT_LR = 7e-4


def first_visit_auc(run: RunData) -> float:
    """Mean adaptation AUC of the run's defined first visits after a shift (v1 and the sweep: mastery curriculum)."""
    aucs = run_visit_aucs(run) or []
    values = [a.auc for k, (v, a) in enumerate(aucs) if k >= 1 and not v.revisit and not math.isnan(a.auc)]
    return float(np.mean(values)) if values else math.nan


def mastery_lines(runs: list[RunData]) -> list[str]:
    """Per env, agent and seed: frames from entering each stage to its threshold (``-`` if never)."""
    lines = ["| env | agent | seed | frames to threshold per stage visit (stage: frames) |", "|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r.env, r.agent, r.seed)):
        cells = [
            f"{v['stage']}: {int(v['mastered_at'] - v['entered_at']):,}" if v["mastered_at"] is not None else
            f"{v['stage']}: not in {int(v['left_at'] - v['entered_at']):,}"
            for v in r.visits
        ]  # fmt: skip
        lines.append(f"| {r.env} | {r.agent} | {r.seed} | {'; '.join(cells)} |")
    return lines


def tuning(runs: list[RunData], out: Path) -> list[str]:
    """The sweep's table and each agent's chosen learning rate."""
    cells: dict[tuple[str, float], list[float]] = defaultdict(list)
    for r in (r for r in runs if r.done is not None):  # complete runs only
        cells[(str(r.config.get("variant_of", r.agent)), float(r.config["ppo"]["learning_rate"]))].append(
            first_visit_auc(r)
        )
    with open(out / "tuning.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["agent", "learning_rate", "seeds", "mean_first_visit_auc", "aucs"])
        for (agent, lr), values in sorted(cells.items()):
            writer.writerow([agent, lr, len(values), f"{np.nanmean(values):.4f}", " ".join(f"{v:.4f}" for v in values)])
    lines = ["| agent | learning rate | seeds | mean first-visit AUC | chosen |", "|---|---|---|---|---|"]
    for agent in sorted({a for a, _ in cells}):
        rows = sorted((lr, float(np.nanmean(v)), len(v)) for (a, lr), v in cells.items() if a == agent)
        best = max((m for _, m, _ in rows if not math.isnan(m)), default=math.nan)
        chosen = DEFAULT_LR if any(lr == DEFAULT_LR and m == best for lr, m, _ in rows) else next(
            (lr for lr, m, _ in rows if m == best), DEFAULT_LR)  # fmt: skip
        for lr, m, n in rows:
            lines.append(f"| {agent} | {lr:g} | {n} | {m:.3f} | {'**yes**' if lr == chosen else ''} |")
    return lines


def power_lines(runs: list[RunData]) -> list[str]:
    """SD of v1's paired differences and the pairs that 80 % power would need."""
    scores: dict[tuple[str, str, int], dict[str, float]] = {}
    for r in runs:
        final = (r.final_eval or {}).get("success_rate")
        scores[(r.env, r.agent, r.seed)] = {
            "adaptation AUC (v1)": first_visit_auc(r),
            "zero-shot success": math.nan if final is None else float(final),
        }
    lines = [
        "| family | metric | against | pairs | SD of the paired differences | pairs for 80 % power |",
        "|---|---|---|---|---|---|",
    ]
    level = ALPHA / CLAIMS_PER_FAMILY
    for env in sorted({e for e, _, _ in scores}):
        for metric in ("adaptation AUC (v1)", "zero-shot success"):
            for other in ("rim", "reversed", "lstm", "gru"):
                d = [
                    scores[(env, "meta-rim", s)][metric] - scores[(env, other, s)][metric]
                    for e, a, s in scores
                    if e == env and a == "meta-rim" and (env, other, s) in scores
                ]
                d = [x for x in d if not math.isnan(x)]
                sd = float(np.std(d, ddof=1)) if len(d) >= 2 else math.nan
                need = seeds_needed(sd, MARGIN, level) if len(d) >= 3 else None
                lines.append(
                    f"| {env} | {metric} | {other} | {len(d)} | {sd:.3f} | {need if need is not None else 'n/a'} |"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/study/pilot"))
    parser.add_argument("--v1", type=Path, default=Path("results/study-v1/runs"))
    args = parser.parse_args()
    v1 = [load_run(p) for p in find_runs([args.v1])]
    multiroom = [load_run(p) for p in find_runs([args.out / "multiroom" / "runs"])]
    sweep = [load_run(p) for p in find_runs([args.out / "tuning" / "runs"])]
    text = [
        "# Study v2 pilot",
        "",
        f"Produced by `python studies/study_v2_pilot.py --out {args.out} --v1 {args.v1}` (module docstring: what "
        "each part reads and why).",
        "",
        "## MultiRoom: frames to the threshold (pilot, success-threshold curriculum)",
        "",
        *mastery_lines(multiroom),
        "",
        "## GoTo and DoorKey: frames to the threshold (study v1)",
        "",
        *mastery_lines(v1),
        "",
        "## Tuning parity: learning rate of rim, lstm and gru (mean first-visit adaptation AUC, calibration seeds)",
        "",
        *tuning(sweep, args.out),
        "",
        f"## Power (from study v1): pairs for 80 % power at the level {ALPHA:g}/{CLAIMS_PER_FAMILY}, margin {MARGIN:g}",
        "",
        *power_lines(v1),
        "",
    ]
    (args.out / "pilot.md").write_text("\n".join(text), encoding="utf-8")
    print(args.out / "pilot.md")


if __name__ == "__main__":
    main()
