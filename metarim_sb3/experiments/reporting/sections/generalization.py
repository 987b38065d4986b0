"""The report's zero-shot section of runs trained on one stage and tested on others (their
``generalization.csv``, written by :mod:`metarim_sb3.experiments.training.generalization`).

**In the report** (:func:`report_section`, called by :func:`~metarim_sb3.experiments.reporting.report.build_report`
when a run wrote ``generalization.csv``): the report folder's ``summary.csv`` has one row per run and test env, the
columns :data:`REPORT_COLUMNS` first, then the run's own summary columns; in ``report.md``, per training env and
test env, each agent's mean success over seeds with a 95 % t interval (none under 3 seeds), the paired difference
of each RIM agent (an agent or variant of ``rim``, ``meta-rim`` or ``reversed``) against the LSTM and against the
GRU on common seeds (mean with a 95 % t interval, two-sided paired t test, Holm-corrected over all the comparisons
of one training env) with the verdict of the preset's rule (:mod:`.generalization_verdict`), the training success
over the third and the last quarter of the budget (the plateau check), and ``generalization.png`` (success against
the test env, ordered by size, per agent).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from metarim_sb3.callbacks._common import write_csv
from metarim_sb3.experiments.reporting.comparisons import holm
from metarim_sb3.experiments.reporting.formatting import MIN_SEEDS_FOR_INTERVAL, format_estimate
from metarim_sb3.experiments.reporting.runs import RunData
from metarim_sb3.experiments.reporting.sections.generalization_verdict import direction, verdict_markdown
from metarim_sb3.experiments.reporting.sections.summary import run_table
from metarim_sb3.experiments.training.config import AGENTS, RIM_AGENTS
from metarim_sb3.experiments.training.generalization import GENERALIZATION, HELDOUT

__all__ = [
    "BASELINES",
    "PLATEAU_TOLERANCE",
    "REPORT_COLUMNS",
    "RIM_AGENTS",
    "PairedRow",
    "PlateauRow",
    "SuccessRow",
    "TestRow",
    "mean_interval",
    "paired_rows",
    "paired_t",
    "plateau_rows",
    "plot",
    "read_run_rows",
    "report_section",
    "run_tests",
    "success_rows",
    "write_report_csv",
]


#: The first columns of the report's ``summary.csv`` when runs have zero-shot tests: one row per run and test env
#: (the run's own summary columns follow, but for ``agent`` and ``seed``).
REPORT_COLUMNS = (
    "agent",
    "train_env",
    "test_env",
    "seed",
    "episodes",
    "success",
    "return",
    "success_low",
    "success_high",
)
#: Agents the paired comparisons measure against: the preset agents without a RIM core. The preset agents whose
#: variants count as RIM agents are :data:`~metarim_sb3.experiments.training.config.RIM_AGENTS`; both derived from
#: ``presets/agents.yaml``, in its order.
BASELINES: tuple[str, ...] = tuple(a for a in AGENTS if a not in RIM_AGENTS)
#: Largest difference between the training success of the last and the third quarter of the budget that counts
#: as a plateau (the plateau check of the ``generalization`` preset).
PLATEAU_TOLERANCE = 0.05


@dataclass(frozen=True)
class TestRow:
    """One run on one test env (a row of the report's ``summary.csv``)."""

    agent: str
    #: The preset agent it is (its ``variant_of``, else itself).
    base: str
    env: str
    train_env: str
    test_env: str
    #: Position of the test stage in its family (stage index; the held-out stage last): the size order.
    order: int
    in_distribution: bool
    seed: int
    episodes: int
    successes: int
    success: float
    ret: float
    success_low: float
    success_high: float


def _stage_order(stage: str) -> int:
    return 1_000_000 if stage == HELDOUT else int(stage)


def read_run_rows(run: RunData) -> list[TestRow] | None:
    """
    :param run: a loaded run.
    :return: its test rows from ``generalization.csv``; ``None`` if the run wrote none (the section was off, the
        run is unfinished, or it predates the feature).
    :raises RunError: if the file is damaged (a missing column, or a value that is not a number where one belongs).
    """
    from metarim_sb3.experiments.training.folder import RunError

    path = run.path / GENERALIZATION
    if run.done is None or not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as file:
        table = list(csv.DictReader(file))
    out = []
    base = run.config.variant_of or run.agent
    for i, row in enumerate(table):
        try:
            episodes, successes = int(row["episodes"]), int(row["successes"])
            if not 0 <= successes <= episodes:
                raise ValueError(f"successes {successes} of {episodes} episodes")
            out.append(
                TestRow(
                    agent=run.agent,
                    base=base,
                    env=run.env,
                    train_env=row["train_env"],
                    test_env=row["test_env"],
                    order=_stage_order(row["test_stage"]),
                    in_distribution=row["in_distribution"] == "1",
                    seed=run.seed,
                    episodes=episodes,
                    successes=successes,
                    success=float(row["success_rate"]),
                    ret=float(row["mean_return"]),
                    success_low=float(row["success_low"]),
                    success_high=float(row["success_high"]),
                )
            )
        except (KeyError, TypeError, ValueError) as err:
            raise RunError(
                f"{path} is damaged (row {i + 1}: {err}); restore it or remove the run from the report"
            ) from None
    return out


def write_report_csv(runs: Sequence[RunData], tests: Mapping[Path, Sequence[TestRow]], path: Path) -> Path:
    """
    Write the report's ``summary.csv`` for runs with zero-shot tests.

    :param runs: the report's runs.
    :param tests: each run's test rows, by run folder (a run missing here, or with none, has no tests).
    :param path: the CSV to write: one row per run and test env, the columns :data:`REPORT_COLUMNS` first (the
        success interval is the run's 95 % Wilson interval over its episodes), then the run's summary columns
        (:func:`~metarim_sb3.experiments.reporting.sections.summary.run_table`) but for ``agent`` and ``seed``;
        the rows of tests in size order, then one row per run without tests, its test columns empty (with the one
        CSV writer, :func:`metarim_sb3.callbacks._common.write_csv`).
    :return: ``path``.
    """
    header, run_rows = run_table(runs)
    keep = [i for i, name in enumerate(header) if name not in ("agent", "seed")]
    tested: list[tuple[TestRow, list[Any]]] = []
    untested: list[list[Any]] = []
    for run, row in zip(runs, run_rows, strict=True):
        own = [row[i] for i in keep]
        its_tests = tests.get(run.path, ())
        tested += [(r, own) for r in its_tests]
        if not its_tests:
            untested.append([run.agent, "", "", run.seed, "", "", "", "", "", *own])
    table: list[list[Any]] = [[*REPORT_COLUMNS, *(header[i] for i in keep)]]
    for r, own in sorted(tested, key=lambda pair: _size_order(pair[0])):
        table.append([r.agent, r.train_env, r.test_env, r.seed, r.episodes, r.success, r.ret,
                      r.success_low, r.success_high, *own])  # fmt: skip
    write_csv(path, table + untested)
    return path


def _agent_key(agent: str, base: str) -> tuple[int, str]:
    order = (*BASELINES, *RIM_AGENTS)
    return (order.index(base) if base in order else len(order), agent)


def _size_order(r: TestRow) -> tuple[str, int, tuple[int, str], int]:
    return (r.train_env, r.order, _agent_key(r.agent, r.base), r.seed)


def _sorted(rows: Sequence[TestRow]) -> list[TestRow]:
    return sorted(rows, key=_size_order)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """
    :param values: one success rate per seed.
    :return: ``(mean, low, high)``: the 95 % t interval over seeds, clipped to [0, 1]; no interval (NaN) under
        :data:`~metarim_sb3.experiments.reporting.formatting.MIN_SEEDS_FOR_INTERVAL` seeds.
    """
    from scipy import stats as sps

    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < MIN_SEEDS_FOR_INTERVAL:
        return mean, math.nan, math.nan
    half = float(sps.t.ppf(0.975, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def paired_t(d: Sequence[float]) -> tuple[int, float, float, float, float]:
    """
    :param d: paired differences (one per common seed).
    :return: ``(n, mean, low, high, p)``: the mean with its 95 % t interval and the two-sided paired t test's p of
        a mean of 0 (differences all equal: p 1 if they are 0, else 0); interval and p NaN under 2 pairs.
    """
    from scipy import stats as sps

    x = np.asarray(d, dtype=float)
    n = int(x.size)
    if n < 2:
        return n, float(x.mean()) if n else math.nan, math.nan, math.nan, math.nan
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):
        return n, mean, mean, mean, 1.0 if mean == 0 else 0.0
    se = sd / math.sqrt(n)
    half = float(sps.t.ppf(0.975, n - 1)) * se
    p = float(2 * sps.t.sf(abs(mean) / se, n - 1))
    return n, mean, mean - half, mean + half, p


@dataclass(frozen=True)
class PairedRow:
    """One RIM agent against one baseline on one test env: success difference (agent minus baseline) by seed."""

    train_env: str
    test_env: str
    #: Whether the test env is the training env.
    in_distribution: bool
    agent: str
    baseline: str
    n: int
    mean: float
    low: float
    high: float
    p: float
    p_holm: float


class SuccessRow(TypedDict):
    """One agent's zero-shot success on one test env after training on one env, over seeds (:func:`success_rows`)."""

    #: The env the runs trained on.
    train_env: str
    #: The env they were tested on.
    test_env: str
    #: Whether the test env is the training env (the in-distribution reference).
    in_distribution: bool
    #: Agent name.
    agent: str
    #: Runs tested on this env (count of seeds).
    seeds: int
    #: Success rate on the test env (fraction): ``(mean, low, high)``, the mean over seeds and its 95 % t interval
    #: clipped to [0, 1] (:func:`mean_interval`; NaN interval under three seeds).
    success: tuple[float, float, float]


class PlateauRow(TypedDict):
    """One agent's training success late in the budget on one training env (:func:`plateau_rows`): the plateau check."""

    #: The env the runs trained on.
    train_env: str
    #: Agent name.
    agent: str
    #: Runs (count of seeds).
    seeds: int
    #: Training success rate (fraction; ``curve.csv``, weighted by episodes) over the third quarter of the budget,
    #: mean over seeds (NaN when no seed has one).
    third: float
    #: Training success rate (fraction) over the last quarter of the budget, mean over seeds (NaN when no seed has
    #: one).
    last: float
    #: Seeds whose two quarters differ by less than :data:`PLATEAU_TOLERANCE` (count).
    flat: int
    #: Seeds whose last quarter is at least :data:`PLATEAU_TOLERANCE` above their third (still rising; count).
    rising: int
    #: Seeds whose last quarter is at least :data:`PLATEAU_TOLERANCE` below their third (fell, e.g. a collapse after
    #: mastery; count).
    falling: int


def success_rows(rows: Sequence[TestRow]) -> list[SuccessRow]:
    """
    :param rows: every run's test rows.
    :return: one :class:`SuccessRow` per (train env, test env, agent): seeds and the mean success with its interval
        (:func:`mean_interval`), in size order.
    """
    groups: dict[tuple[str, int, str, str, str], list[float]] = defaultdict(list)
    bases: dict[str, str] = {}
    for r in rows:
        groups[(r.train_env, r.order, r.test_env, r.agent, "id" if r.in_distribution else "")].append(r.success)
        bases[r.agent] = r.base
    out: list[SuccessRow] = []
    for train_env, order, test_env, agent, tag in sorted(
        groups, key=lambda k: (k[0], k[1], _agent_key(k[3], bases[k[3]]))
    ):
        values = groups[(train_env, order, test_env, agent, tag)]
        out.append(
            {
                "train_env": train_env,
                "test_env": test_env,
                "in_distribution": tag == "id",
                "agent": agent,
                "seeds": len(values),
                "success": mean_interval(values),
            }
        )
    return out


def paired_rows(rows: Sequence[TestRow]) -> list[PairedRow]:
    """
    :param rows: every run's test rows.
    :return: each RIM agent (base ``rim``, ``meta-rim`` or ``reversed``) against each baseline (``lstm``, ``gru``)
        present, per train env and test env, on the seeds both have; p-values Holm-corrected over every comparison
        of the same train env.
    """
    success = {(r.train_env, r.test_env, r.agent, r.seed): r.success for r in rows}
    agents = sorted({(r.agent, r.base) for r in rows}, key=lambda a: _agent_key(*a))
    rims = [a for a, base in agents if base in RIM_AGENTS]
    baselines = [b for b in BASELINES if any(a == b for a, _ in agents)]
    tests = sorted({(r.train_env, r.order, r.test_env, r.in_distribution) for r in rows})
    raw: list[tuple[str, str, bool, str, str, tuple[int, float, float, float, float]]] = []
    for train_env, _, test_env, in_dist in tests:
        for agent in rims:
            for baseline in baselines:
                seeds = sorted(
                    s for (t, e, a, s) in success if (t, e, a) == (train_env, test_env, agent)
                    and (train_env, test_env, baseline, s) in success
                )  # fmt: skip
                d = [
                    success[(train_env, test_env, agent, s)] - success[(train_env, test_env, baseline, s)]
                    for s in seeds
                ]
                if d:
                    raw.append((train_env, test_env, in_dist, agent, baseline, paired_t(d)))
    out = []
    for train_env in sorted({t for t, *_ in raw}):
        family = [item for item in raw if item[0] == train_env]
        adjusted = holm([item[5][4] for item in family])
        for (t, e, i, a, b, (n, mean, low, high, p)), p_holm in zip(family, adjusted, strict=True):
            out.append(PairedRow(t, e, i, a, b, n, mean, low, high, p, float(p_holm)))
    return out


def _quarter_success(run: RunData, low: float, high: float) -> float:
    """Training success (``curve.csv``, weighted by the episodes of each rollout) over ``low < frames <= high``."""
    curve = run.curve
    steps, success, episodes = curve["timesteps"], curve["success_rate"], np.nan_to_num(curve["episodes"])
    mask = (steps > low) & (steps <= high) & ~np.isnan(success) & (episodes > 0)
    if not mask.any():
        return math.nan
    return float(np.sum(success[mask] * episodes[mask]) / np.sum(episodes[mask]))


def plateau_rows(runs: Sequence[RunData], train_envs: Mapping[Path, str]) -> list[PlateauRow]:
    """
    :param runs: the runs with test rows.
    :param train_envs: each run's training env name, by run folder.
    :return: one :class:`PlateauRow` per (train env, agent): seeds, the mean training success over the third and
        over the last quarter of the budget, and the seeds whose two quarters differ by less than
        :data:`PLATEAU_TOLERANCE` (flat), whose last quarter is higher by at least that (rising) or lower by at least
        that (falling). A seed without training episodes in either quarter is in none of the three.
    """
    groups: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    bases: dict[str, str] = {}
    for run in runs:
        budget = float(run.config.timesteps)
        q3, q4 = _quarter_success(run, budget / 2, 0.75 * budget), _quarter_success(run, 0.75 * budget, budget)
        groups[(train_envs[run.path], run.agent)].append((q3, q4))
        bases[run.agent] = run.config.variant_of or run.agent
    out: list[PlateauRow] = []
    for train_env, agent in sorted(groups, key=lambda k: (k[0], _agent_key(k[1], bases[k[1]]))):
        pairs = groups[(train_env, agent)]
        q3s, q4s = [p[0] for p in pairs], [p[1] for p in pairs]
        changes = [b - a for a, b in pairs if not (math.isnan(a) or math.isnan(b))]
        out.append(
            {
                "train_env": train_env,
                "agent": agent,
                "seeds": len(pairs),
                "third": float(np.nanmean(q3s)) if not all(map(math.isnan, q3s)) else math.nan,
                "last": float(np.nanmean(q4s)) if not all(map(math.isnan, q4s)) else math.nan,
                "flat": sum(abs(c) < PLATEAU_TOLERANCE for c in changes),
                "rising": sum(c >= PLATEAU_TOLERANCE for c in changes),
                "falling": sum(c <= -PLATEAU_TOLERANCE for c in changes),
            }
        )
    return out


def _fmt_p(p: float) -> str:
    return "n/a" if math.isnan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _markdown(
    rows: Sequence[TestRow],
    means: Sequence[SuccessRow],
    paired: Sequence[PairedRow],
    plateau: Sequence[PlateauRow],
    image: str,
    command: str,
    runs: Sequence[RunData],
) -> list[str]:
    """
    :param rows: every run's test rows.
    :param means: from :func:`success_rows`.
    :param paired: from :func:`paired_rows`.
    :param plateau: from :func:`plateau_rows`.
    :param image: the plot's file name, relative to ``report.md``.
    :param command: the command that made the report (``""``: the generic ``metarim report`` command is shown).
    :param runs: the runs with test rows.
    :return: the section's lines.
    """
    episodes = sorted({r.episodes for r in rows})
    agents = sorted({(r.agent, r.base) for r in rows}, key=lambda a: _agent_key(*a))
    names = [a for a, _ in agents]
    lines = [
        "",
        "## Zero-shot to larger envs",
        "",
        "Each run trained on one env (its training stage, no curriculum) and was then tested, with no further "
        f"training, on each listed stage of its family: {', '.join(map(str, episodes))} episodes per test env, the "
        "same episodes (env seeds: the run seed + 20,000) for every agent with the same seed; actions sampled as in "
        "training. `summary.csv`: one row per run and test env (success rate, mean return, the run's 95 % "
        "Wilson interval over its episodes, then the run's own summary columns). Below, per test env (in size "
        "order; * = the training env, the in-distribution reference): mean success over seeds with a 95 % t "
        "interval (clipped to [0, 1]; no interval under 3 seeds).",
        "",
        f"| train env | test env | {' | '.join(names)} |",
        f"|---|---|{'---|' * len(names)}",
    ]
    cells: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    tests: list[tuple[str, str, bool]] = []
    for m in means:
        key = (m["train_env"], m["test_env"])
        if (*key, m["in_distribution"]) not in tests:
            tests.append((*key, m["in_distribution"]))
        text = format_estimate(*m["success"], m["seeds"])  # under 3 seeds it names n itself: "(n=1: no interval)"
        cells[key][m["agent"]] = text if "no interval" in text else f"{text} (n={m['seeds']})"
    for train_env, test_env, in_dist in tests:
        row = [cells[(train_env, test_env)].get(a, "-") for a in names]
        lines.append(f"| {train_env} | {test_env}{' *' if in_dist else ''} | {' | '.join(row)} |")
    lines += [
        "",
        "### Paired differences: each RIM agent against the LSTM and the GRU",
        "",
        "Success of the RIM agent minus the baseline's, seed by seed (the same env seeds), on the seeds both "
        "have: mean with a 95 % t interval, the two-sided paired t test's p and its Holm correction over every "
        "comparison of the same training env (all its test envs, RIM agents and baselines). Positive: the RIM "
        "agent generalizes better.",
        "",
    ]
    if paired:
        lines += [
            "| train env | test env | agent | against | pairs | mean difference [95% CI] | p | Holm p | result |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for c in paired:
            estimate = format_estimate(c.mean, c.low, c.high, c.n)
            lines.append(
                f"| {c.train_env} | {c.test_env} | {c.agent} | {c.baseline} | {c.n} | {estimate} "
                f"| {_fmt_p(c.p)} | {_fmt_p(c.p_holm)} | {direction(c)} |"
            )
        lines += verdict_markdown(paired, BASELINES)
    else:
        lines.append("No comparison: the runs hold no RIM agent with an `lstm` or `gru` run of the same seed.")
    lines += [
        "",
        "### Training plateau",
        "",
        "Training success (`curve.csv`, episodes of the training env) over the third and over the last quarter of "
        f"the budget, mean over seeds; a seed counts as flat when the two differ by less than {PLATEAU_TOLERANCE}, "
        "as rising when its last quarter is higher by at least that, and as falling when it is lower by at least "
        "that.",
        "",
        "| train env | agent | seeds | third quarter | last quarter | flat seeds | rising seeds | falling seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in plateau:
        third = "n/a" if math.isnan(p["third"]) else f"{p['third']:.2f}"
        last = "n/a" if math.isnan(p["last"]) else f"{p['last']:.2f}"
        lines.append(
            f"| {p['train_env']} | {p['agent']} | {p['seeds']} | {third} | {last} | {p['flat']}/{p['seeds']} "
            f"| {p['rising']}/{p['seeds']} | {p['falling']}/{p['seeds']} |"
        )
    budgets = sorted({r.config.timesteps for r in runs})
    lines += [
        "",
        f"![Zero-shot success against env size]({image})",
        "",
        "Success against the test env (ordered by size: the family's stages, then its held-out stage), per "
        f"agent: mean over seeds with its 95 % t interval (3+ seeds), dots for seeds. Budgets: "
        f"{', '.join(f'{b:,}' for b in budgets)} frames per run.",
        "",
        "Commands: this report by "
        + (f"`{command}`" if command else "`metarim report RUNS --out DIR`")
        + "; each run by `metarim train` with its folder's `config.yaml` (a grid: `metarim compare --preset NAME`).",
    ]
    return lines


def plot(rows: Sequence[TestRow], path: Path) -> Path:
    """
    Success against the test env (size order) per agent, one panel per training env.

    :param rows: every run's test rows.
    :param path: the PNG to write.
    :return: ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from metarim_sb3.experiments.reporting.plots import COLORS

    train_envs = sorted({r.train_env for r in rows})
    agents = sorted({(r.agent, r.base) for r in rows}, key=lambda a: _agent_key(*a))
    fig = Figure(figsize=(7.5, 3.6 * len(train_envs)), layout="constrained")
    axes = fig.subplots(len(train_envs), 1, squeeze=False)
    for row, train_env in enumerate(train_envs):
        ax = axes[row][0]
        tests = sorted({(r.order, r.test_env) for r in rows if r.train_env == train_env})
        x_of = {name: i for i, (_, name) in enumerate(tests)}
        for k, (agent, _) in enumerate(agents):
            mine = [r for r in rows if r.train_env == train_env and r.agent == agent]
            if not mine:
                continue
            color = COLORS.get(agent, f"C{k % 10}")
            shift = (k - (len(agents) - 1) / 2) * 0.06
            xs, means, errs = [], [], []
            for _, name in tests:
                values = [r.success for r in mine if r.test_env == name]
                if not values:
                    continue
                mean, low, high = mean_interval(values)
                xs.append(x_of[name] + shift)
                means.append(mean)
                errs.append((mean - low, high - mean) if not math.isnan(low) else (0.0, 0.0))
                ax.scatter([x_of[name] + shift] * len(values), values, color=color, s=8, alpha=0.4)
            ax.errorbar(xs, means, yerr=np.array(errs).T, color=color, marker="o", capsize=3, label=agent)
        ax.set_xticks(range(len(tests)), [name for _, name in tests])
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("test env (larger to the right)")
        ax.set_ylabel("success rate")
        ax.set_title(f"trained on {train_env}: zero-shot success")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def run_tests(runs: Sequence[RunData]) -> dict[Path, list[TestRow]]:
    """
    :param runs: the loaded runs of the report.
    :return: the test rows of each run that has some (:func:`read_run_rows`), by run folder; empty when none has.
    """
    return {run.path: rows for run in runs if (rows := read_run_rows(run))}


def report_section(
    runs: Sequence[RunData], tests: Mapping[Path, Sequence[TestRow]], out: Path, command: str = ""
) -> tuple[list[str], dict[str, Path]]:
    """
    The report's zero-shot section, if any run wrote ``generalization.csv`` (its ``summary.csv`` is
    :func:`write_report_csv`'s, written by the report).

    :param runs: the loaded runs of the report.
    :param tests: from :func:`run_tests`.
    :param out: the report folder (``generalization.png`` is written there).
    :param command: the command that made the report.
    :return: the lines of ``report.md`` and the files written by name (both empty when no run has test rows).
    """
    with_rows = [run for run in runs if run.path in tests]
    if not with_rows:
        return [], {}
    rows = [row for run in with_rows for row in tests[run.path]]
    train_envs = {run.path: tests[run.path][0].train_env for run in with_rows}
    written = {"generalization_plot": plot(rows, out / "generalization.png")}
    lines = _markdown(
        rows, success_rows(rows), paired_rows(rows), plateau_rows(with_rows, train_envs), "generalization.png",
        command, with_rows,
    )  # fmt: skip
    return lines, written
