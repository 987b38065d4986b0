"""Whole-run equivalence of many seeds in one process: seeds trained batched against the same seeds trained apart.

Declared before the runs' results were read (issue 23). Two sets of ordinary run folders of one configuration
(``metarim train --agent meta-rim --env MetaRIM-GoTo-v0 --timesteps 150000``), seeds 0-9:

- ``<runs>/batched/seed_<s>``: all ten in one process (``metarim train --seeds 0,...,9``, the seed-batched trainer);
- ``<runs>/separate/seed_<s>``: each its own ``metarim train --seed s`` process.

Both sets seed their envs and initial weights alike; what differs is the trainer, and the random streams that sample
actions and minibatch order (``metarim_sb3.experiments.training.seed_runs``). If the seed-batched trainer trains each
seed as a separate run would, the two sets are draws from one distribution of final metrics.

**Metrics**, one value per run, from its committed summary files:

- ``heldout_success`` (primary): success rate of the final evaluation on the held-out stage (``final_eval.json``,
  100 episodes, actions sampled);
- ``heldout_return``: its mean return;
- ``heldout_curve_mean``: the mean success rate of the periodic held-out evaluations during training
  (``heldout_eval.csv``);
- ``last_train_success``: the mean training success rate over the last 10 rollouts (``curve.csv``);
- ``final_stage``: the curriculum stage at the end (``done.json``);
- ``frames_to_first_shift``: frames until the curriculum first left stage 0 (``curriculum.csv``); a run that never
  left it is censored at its budget, so this metric gets the rank test only (censored values share one value, the
  largest, and are never averaged).

**Tests**, per metric: the two-sided Mann-Whitney U test of batched against separate (primary), and for every metric
but the censored one the difference of means (batched minus separate) with a Welch 95 % interval. Secondary: the
two-sided Wilcoxon signed-rank test of the primary metric paired by seed (the pair shares envs and initial weights).

**Verdict**: "no difference detected" if no metric's uncorrected Mann-Whitney p is below 0.05 (uncorrected over the
six metrics: stricter than a correction for a check of sameness), else "differs" on the metrics that fall below it,
with their Holm-corrected p beside. Ten runs a side detect only large shifts: the report states the smallest shift of
the primary metric, in its pooled standard deviations, that a two-sided t test at 0.05 detects with 80 % power.

    python studies/seed_batch_equivalence.py [--runs results/seed_batch/runs] [--out results/seed_batch]

It writes ``<out>/report.md`` and ``<out>/equivalence.csv`` (one row per run).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from metarim_sb3.experiments.reporting.comparisons import holm

#: The arms, as folder names under ``--runs``.
ARMS = ("batched", "separate")
#: The declared metrics, the primary first; the censored one gets the rank test only.
METRICS = (
    "heldout_success",
    "heldout_return",
    "heldout_curve_mean",
    "last_train_success",
    "final_stage",
    "frames_to_first_shift",
)
CENSORED = "frames_to_first_shift"
ALPHA, LAST_ROLLOUTS = 0.05, 10


@dataclass(frozen=True)
class RunMetrics:
    """
    The declared metrics of one run.

    :param arm: ``batched`` or ``separate``.
    :param seed: its seed.
    :param values: metric name -> value.
    :param censored: whether ``frames_to_first_shift`` is censored at the budget (the run never left stage 0).
    """

    arm: str
    seed: int
    values: dict[str, float]
    censored: bool


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_metrics(folder: Path, arm: str) -> RunMetrics:
    """
    :param folder: a finished run folder (``done.json``).
    :param arm: its arm.
    :return: its declared metrics.
    :raises FileNotFoundError: if the run has not finished.
    """
    done = json.loads((folder / "done.json").read_text())
    final = json.loads((folder / "final_eval.json").read_text())
    curve = _rows(folder / "curve.csv")
    heldout = _rows(folder / "heldout_eval.csv")
    shifts = _rows(folder / "curriculum.csv") if (folder / "curriculum.csv").exists() else []
    censored = not shifts
    values = {
        "heldout_success": float(final["success_rate"]),
        "heldout_return": float(final["mean_return"]),
        "heldout_curve_mean": float(np.mean([float(r["success_rate"]) for r in heldout])),
        "last_train_success": float(np.mean([float(r["success_rate"]) for r in curve[-LAST_ROLLOUTS:]])),
        "final_stage": float(done["final_stage"]),
        "frames_to_first_shift": float(done["timesteps"]) if censored else float(shifts[0]["timestep"]),
    }
    return RunMetrics(arm, int(done["seed"]), values, censored)


def load_arm(runs: Path, arm: str) -> list[RunMetrics]:
    """
    :param runs: the folder of both arms.
    :param arm: one of :data:`ARMS`.
    :return: the metrics of the arm's finished runs, by seed.
    """
    found = sorted((runs / arm).glob("seed_*/done.json"), key=lambda p: int(p.parent.name.removeprefix("seed_")))
    return [run_metrics(p.parent, arm) for p in found]


@dataclass(frozen=True)
class MetricTest:
    """
    One metric's comparison of the arms.

    :param metric: its name.
    :param batched: the batched runs' values.
    :param separate: the separate runs' values.
    :param p_mwu: the two-sided Mann-Whitney U p-value.
    :param diff: mean batched minus mean separate (``nan`` for the censored metric).
    :param ci: its Welch 95 % interval (``nan`` bounds for the censored metric or a zero variance).
    """

    metric: str
    batched: list[float]
    separate: list[float]
    p_mwu: float
    diff: float
    ci: tuple[float, float]


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """
    :param a: one sample.
    :param b: the other.
    :param level: the interval's coverage.
    :return: ``mean(a) - mean(b)`` and its Welch ``level`` interval (``nan`` bounds if both variances are 0).
    """
    x, y = np.asarray(a, float), np.asarray(b, float)
    diff = float(x.mean() - y.mean())
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, math.nan, math.nan
    dof = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    return diff, diff - half, diff + half


def compare(batched: list[RunMetrics], separate: list[RunMetrics]) -> list[MetricTest]:
    """
    :param batched: the batched arm.
    :param separate: the separate arm.
    :return: one test per declared metric.
    """
    tests = []
    for metric in METRICS:
        a = [r.values[metric] for r in batched]
        b = [r.values[metric] for r in separate]
        p = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue) if len(set(a + b)) > 1 else 1.0
        if metric == CENSORED:
            diff, lo, hi = math.nan, math.nan, math.nan
        else:
            diff, lo, hi = welch_interval(a, b)
        tests.append(MetricTest(metric, a, b, p, diff, (lo, hi)))
    return tests


def detectable_shift(n_a: int, n_b: int, alpha: float = ALPHA, power: float = 0.8) -> float:
    """
    :param n_a: runs in one arm.
    :param n_b: runs in the other.
    :param alpha: the two-sided level.
    :param power: the power.
    :return: the smallest shift of means, in pooled standard deviations, that a two-sided two-sample t test at
        ``alpha`` detects with ``power`` (noncentral t, solved by bisection).
    """
    dof = n_a + n_b - 2
    crit = float(stats.t.ppf(1 - alpha / 2, dof))
    scale = math.sqrt(n_a * n_b / (n_a + n_b))

    def power_at(d: float) -> float:
        nc = d * scale
        return float(stats.nct.sf(crit, dof, nc) + stats.nct.cdf(-crit, dof, nc))

    lo, hi = 0.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if power_at(mid) < power else (lo, mid)
    return hi


def _fmt(x: float, digits: int = 3) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


def report(batched: list[RunMetrics], separate: list[RunMetrics], out: Path) -> str:
    """
    Write ``out/equivalence.csv`` (one row per run) and ``out/report.md``.

    :param batched: the batched arm.
    :param separate: the separate arm.
    :param out: the output folder.
    :return: the verdict line.
    """
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "equivalence.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["arm", "seed", *METRICS, "frames_to_first_shift_censored"])
        for r in batched + separate:
            writer.writerow([r.arm, r.seed, *(repr(r.values[m]) for m in METRICS), int(r.censored)])
    tests = compare(batched, separate)
    adjusted = holm([t.p_mwu for t in tests])
    low = [t.metric for t in tests if t.p_mwu < ALPHA]
    verdict = "no difference detected" if not low else "differs on " + ", ".join(low)
    by_seed = {r.seed: r.values["heldout_success"] for r in separate}
    pairs = [(r.values["heldout_success"], by_seed[r.seed]) for r in batched if r.seed in by_seed]
    diffs = [a - b for a, b in pairs]
    p_paired = float(stats.wilcoxon(diffs).pvalue) if any(d != 0 for d in diffs) else 1.0
    primary = tests[0]
    sd = math.sqrt((np.var(primary.batched, ddof=1) + np.var(primary.separate, ddof=1)) / 2)
    shift = detectable_shift(len(batched), len(separate))
    censored = {arm: sum(r.censored for r in rs) for arm, rs in (("batched", batched), ("separate", separate))}
    lines = [
        "# Many seeds in one process: whole-run equivalence",
        "",
        f"meta-rim on `MetaRIM-GoTo-v0`, 150,000 frames, seeds {_seeds(batched)} trained in one process "
        f"(`batched`, {len(batched)} runs) and seeds {_seeds(separate)} each in its own process (`separate`, "
        f"{len(separate)} runs). Protocol, metrics and verdict rule: `studies/seed_batch_equivalence.py` "
        "(declared before the results were read); commands: `commands.sh`; per-run values: `equivalence.csv`.",
        "",
        f"**Verdict: {verdict}** (two-sided Mann-Whitney U per metric, uncorrected level {ALPHA}).",
        "",
        "| metric | batched | separate | batched - separate (Welch 95 % CI) | Mann-Whitney p | Holm p |",
        "|---|---|---|---|---|---|",
    ]
    for t, p_holm in zip(tests, adjusted, strict=True):
        if t.metric == CENSORED:  # never averaged: medians (censored values are the largest)
            arm_runs = (batched, separate)
            mb, ms = (_censored_median([r.values[CENSORED] for r in rs], [r.censored for r in rs]) for rs in arm_runs)
            diff = "-"
        else:
            mb, ms = _fmt(float(np.mean(t.batched))), _fmt(float(np.mean(t.separate)))
            diff = f"{_fmt(t.diff)} [{_fmt(t.ci[0])}, {_fmt(t.ci[1])}]"
        lines.append(f"| `{t.metric}` | {mb} | {ms} | {diff} | {t.p_mwu:.3f} | {p_holm:.3f} |")
    lines += [
        "",
        f"- `frames_to_first_shift`: runs that never left stage 0 (censored at 150,000, ranked as the largest): "
        f"batched {censored['batched']}, separate {censored['separate']}.",
        f"- Paired by seed (same envs and initial weights), `heldout_success` batched minus separate: mean "
        f"{_fmt(float(np.mean(diffs)))} over {len(diffs)} pairs, two-sided Wilcoxon signed-rank p {p_paired:.3f}.",
        f"- What this can detect: with {len(batched)} and {len(separate)} runs, a two-sided t test at {ALPHA} has 80 % "
        f"power against a shift of {shift:.2f} pooled standard deviations; for `heldout_success` (pooled SD "
        f"{sd:.3f}) that is a shift of {shift * sd:.3f}. Smaller differences may exist undetected: the Welch "
        "intervals above bound them.",
        "- Wall times in the runs' `done.json` are not costs: both arms ran at once beside other work on 2 cores. "
        "The cost per seed is measured by `benchmarks/bench_seed_batch.py` (`results/bench`).",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    return verdict


def _censored_median(values: list[float], censored: list[bool]) -> str:
    """
    :param values: frames to the first shift, a censored one at the budget.
    :param censored: which are censored.
    :return: the median (censored values rank largest; a median that falls on one reads ``>= budget``).
    """
    order = sorted(zip(values, censored, strict=True))
    n = len(order)
    middle = order[(n - 1) // 2 : n // 2 + 1]
    if any(c for _, c in middle):
        return f"median >= {middle[-1][0]:,.0f}"
    return f"median {np.mean([v for v, _ in middle]):,.0f}"


def _seeds(runs: list[RunMetrics]) -> str:
    seeds = [r.seed for r in runs]
    if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def main(argv: list[str] | None = None) -> int:
    """
    :param argv: command-line arguments (default ``sys.argv[1:]``).
    :return: the exit code.
    """
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("results/seed_batch/runs"), help="the arms' folder")
    parser.add_argument("--out", type=Path, default=Path("results/seed_batch"), help="where the report goes")
    args = parser.parse_args(argv)
    arms = {arm: load_arm(args.runs, arm) for arm in ARMS}
    for arm, runs in arms.items():
        if len(runs) < 3:
            parser.error(f"--runs: {args.runs / arm} holds {len(runs)} finished runs; at least 3 a side are needed")
    verdict = report(arms["batched"], arms["separate"], args.out)
    print(f"{verdict}; wrote {args.out / 'report.md'} and {args.out / 'equivalence.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
