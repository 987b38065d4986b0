"""``metarim report``: run folders in; ``summary.csv``, ``aggregate.csv``, plots and ``report.md`` out.

Numbers (all from files the runs wrote, see :mod:`metarim_sb3.experiments.training.folder`):

- **adaptation** (primary): success AUC over ``adaptation.horizon`` frames after each shift, from the per-stage
  evaluations (``stage_eval.csv``), first visits and revisits apart; IQM over seeds with a stratified bootstrap
  95 % CI (strata: visit index), no interval under three seeds; undefined visits are counted with their reasons.
- **frames to threshold** (secondary): Kaplan–Meier curve of the frames from a shift to the success threshold
  (``mastery.csv``); unmastered visits are right-censored, never averaged; restricted mean up to one ``tau`` per
  env, and the median.
- **zero-shot**: success on the held-out stage after training (``final_eval.json``); mean over seeds with a
  percentile-bootstrap 95 % CI over seeds. During training (``heldout_eval.csv``) at fixed frame counts, and when
  the last training stage was first mastered (``zero_shot_mastery.csv``): per seed a Wilson interval, across
  seeds the IQM with a bootstrap CI; a run that never mastered that stage is counted as not reached, never averaged.

Each section is computed and written by a module of :mod:`metarim_sb3.experiments.reporting.sections`, the figures by
:mod:`metarim_sb3.experiments.reporting.plots`; :func:`build_report` puts them together.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from metarim_sb3.experiments.reporting.claims import Claims, judge, missing_runs, verdict_markdown
from metarim_sb3.experiments.reporting.runs import RunData, agent_order, dirty_runs, find_runs, load_run
from metarim_sb3.experiments.reporting.sections.adaptation import adaptation_auc_markdown, adaptation_auc_rows
from metarim_sb3.experiments.reporting.sections.cost import cost_markdown
from metarim_sb3.experiments.reporting.sections.drift import drift_groups, drift_markdown
from metarim_sb3.experiments.reporting.sections.forgetting import forgetting_markdown, forgetting_rows
from metarim_sb3.experiments.reporting.sections.generalization import report_section, run_tests, write_report_csv
from metarim_sb3.experiments.reporting.sections.paired import paired_markdown, paired_rows
from metarim_sb3.experiments.reporting.sections.summary import (
    AggregateRow,
    aggregate,
    limits,
    summary_table,
    write_aggregate,
    write_summary,
)
from metarim_sb3.experiments.reporting.sections.verdict import verdict_v2
from metarim_sb3.experiments.reporting.sections.zero_shot import (
    zero_shot_markdown,
    zero_shot_mastery_markdown,
    zero_shot_mastery_rows,
    zero_shot_rows,
)
from metarim_sb3.experiments.training.folder import VERSIONS, read_json
from metarim_sb3.experiments.training.ownership import check_out_folder

__all__ = ["build_report"]


def _markdown(
    runs: list[RunData],
    rows: Sequence[AggregateRow],
    images: Mapping[str, str],
    command: str,
    extra: list[str],
    verdict: list[str],
    summary_rows: str,
) -> str:
    """
    :param runs: the loaded runs of the report.
    :param rows: the aggregate, from :func:`~metarim_sb3.experiments.reporting.sections.summary.aggregate`.
    :param images: the file name of each figure, relative to ``report.md``, by section key.
    :param command: the command that produced the report (``""``: no ``Produced by`` line).
    :param extra: the lines of the sections after the figures.
    :param verdict: the lines right after the summary table (the claims' verdict, the zero-shot tests).
    :param summary_rows: what a row of ``summary.csv`` is, for the Files section.
    :return: the text of ``report.md``.
    """
    seeds = sorted({r.seed for r in runs})
    budgets = sorted({r.config.timesteps for r in runs})
    threshold = sorted({r.config.curriculum.threshold for r in runs})
    versions: Mapping[str, object] = {}
    if (runs[0].path / VERSIONS).exists():
        versions = read_json(runs[0].path / VERSIONS).get("started", {})
    dirty = dirty_runs(runs)
    lines = [
        f"**Uncommitted code**: {len(dirty)} of {len(runs)} runs were made from a working tree with uncommitted "
        "changes (git sha ending in `-dirty` in versions.json): their numbers cannot be tied to a commit."
        if dirty
        else "",
        "",
        "# metarim report",
        "",
        f"Produced by `{command}` on {time.strftime('%Y-%m-%d %H:%M')}." if command else "",
        "",
        f"{len(runs)} runs ({sum(r.done is not None for r in runs)} complete): agents "
        f"{', '.join(agent_order(r.agent for r in runs))}; envs {', '.join(sorted({r.env for r in runs}))}; "
        f"seeds {seeds}; budget {', '.join(f'{b:,}' for b in budgets)} steps per run; success threshold "
        f"{', '.join(map(str, threshold))}.",
        "",
        limits(runs),
        "",
        *summary_table(rows),
    ]
    lines += verdict
    sections = {
        "learning_curves": (
            "Learning curves",
            "Training success rate (episodes of whatever stage the agent is in; drops mark shifts, ticks at the "
            "bottom mark each run's shifts) against environment frames and against training wall time. Line: "
            "mean over seeds; band: 95 % percentile-bootstrap CI over seeds. Wall time includes evaluations and "
            "depends on how busy the machine was while each run ran: compare it only between runs made side by "
            "side on an otherwise idle machine.",
        ),
        "adaptation": (
            "Frames to threshold after a shift (Kaplan–Meier)",
            "Fraction of stage visits after a shift that have not yet reached the success threshold, against "
            "frames since the shift (`mastery.csv`), pooled over seeds and shifts. A visit that never reached it "
            "(stage left or budget spent) is censored at the frames it lasted: it leaves the risk set there and "
            "never enters a mean. The table's restricted mean is the area under this curve up to one tau shared by "
            "the agents of an env (the smallest of their longest visits); the median is the first frame where the "
            "curve drops to 0.5 ('not reached' if it never does). Lower is better. Band: pointwise 95 % (log-log).",
        ),
        "zero_shot": (
            "Zero-shot transfer",
            "Success rate on the held-out stage (never trained on) after training. Bars: mean over seeds with "
            "95 % bootstrap CI; dots: seeds (each from the run's final evaluation, with a Wilson CI in "
            "final_eval.json).",
        ),
        "unit_activity": (
            "Unit activity",
            "Fraction of rollout steps on which each RIM unit was active, per task (rows sum to k). Units are "
            "numbered independently in each seed: compare patterns within a panel, not unit numbers across panels.",
        ),
    }
    for key, (title, text) in sections.items():
        lines += ["", f"## {title}", "", text, "", f"![{title}]({images[key]})"]
    lines += extra
    lines += ["", "## Files", "", f"`summary.csv`: {summary_rows}; `aggregate.csv`: the table above.", ""]
    if versions:
        lines += ["## Versions", "", ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    if not lines[0]:
        lines = lines[2:]
    return "\n".join(lines)


def build_report(
    paths: Iterable[str | Path],
    out: str | Path,
    command: str = "",
    reference: str | None = None,
    claims: Claims | None = None,
    planned: Iterable[tuple[str, str, int]] | None = None,
) -> dict[str, Path]:
    """
    Write the report of the runs found under ``paths`` into ``out``.

    :param paths: run folders or folders containing them.
    :param out: the report folder (created).
    :param command: the command that produced the report (quoted in ``report.md``).
    :param reference: the agent the paired comparisons compare the others with (default: the claims' reference,
        else meta-rim).
    :param claims: claims to give a verdict on (a ``Verdict`` section near the top of ``report.md``), e.g. a
        comparison preset's ``claims``.
    :param planned: the (env, agent, seed) runs of the grid behind the claims: the verdict says which are missing.
    :return: the written files by name (``summary``, ``aggregate``, the plots, ``report``).
    :raises ValueError: if ``reference`` differs from the claims' reference.
    """
    from metarim_sb3.experiments.reporting import plots

    if claims is not None and reference not in (None, claims.reference):
        raise ValueError(f"reference must be the claims' reference {claims.reference!r}, got {reference!r}")
    reference = reference or (claims.reference if claims else "meta-rim")
    out = Path(out)
    check_out_folder(out)
    runs = [load_run(p) for p in find_runs(paths)]
    out.mkdir(parents=True, exist_ok=True)
    written = {"summary": out / "summary.csv", "aggregate": out / "aggregate.csv"}
    tests = run_tests(runs)  # zero-shot tests of one-stage runs: then summary.csv has a row per run and test env
    if tests:
        write_report_csv(runs, tests, written["summary"])
    else:
        write_summary(runs, written["summary"])
    rows = aggregate(runs)
    write_aggregate(rows, written["aggregate"])
    images = {}
    for name, draw in (
        ("learning_curves", plots.learning_curves),
        ("adaptation", plots.adaptation),
        ("zero_shot", plots.zero_shot),
        ("unit_activity", plots.unit_activity),
    ):
        written[name] = draw(runs, out / f"{name}.png")
        images[name] = f"{name}.png"
    auc_rows = adaptation_auc_rows(runs)
    written["adaptation_auc"] = plots.adaptation_auc(auc_rows, out / "adaptation_auc.png")
    written["drift"] = plots.drift(runs, drift_groups(runs), out / "drift.png")
    greedy = {r.config.deterministic_eval for r in runs}
    actions = (
        "greedy actions"
        if greedy == {True}
        else "sampled actions"
        if greedy == {False}
        else "greedy or sampled actions (runs differ)"
    )
    extra = adaptation_auc_markdown(auc_rows, "adaptation_auc.png", actions)
    written["forgetting"] = plots.stage_heatmaps(runs, out / "forgetting.png")
    extra += forgetting_markdown(forgetting_rows(runs), "forgetting.png")
    extra += zero_shot_markdown(zero_shot_rows(runs))
    extra += zero_shot_mastery_markdown(zero_shot_mastery_rows(runs))
    comparisons = paired_rows(runs, reference)
    verdict = []
    if claims:
        envs = sorted({r.env for r in runs})
        by_env = {e: judge(claims, paired_rows([r for r in runs if r.env == e], reference)) for e in envs}
        complete = [(r.env, r.agent, r.seed) for r in runs if r.done is not None]
        missing = missing_runs(planned, complete) if planned is not None else ""
        if claims.rule == "v2":
            verdict = verdict_v2(runs, claims, missing)
        else:
            verdict = verdict_markdown(claims, judge(claims, comparisons), envs, by_env, missing)
    test_lines, files = report_section(runs, tests, out, command)
    written.update(files)
    verdict += test_lines  # after the summary table: the result of a grid that tests each run on several envs
    extra += paired_markdown(comparisons, reference)
    extra += drift_markdown(runs, "drift.png")
    extra += cost_markdown(runs)
    written["report"] = out / "report.md"
    summary_rows = "one row per run" + (" and test env" if tests else "")
    markdown = _markdown(runs, rows, images, command, extra, verdict, summary_rows)
    written["report"].write_text(markdown, encoding="utf-8")
    return written
