"""The report's rules on synthetic run folders: no interval under three seeds, integer stages, dirty code first."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from report_runs import ENV, make_run, write_csv

from metarim_sb3.experiments.reporting.report import build_report


def test_report_rules(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed, stage in enumerate((1, 2, 2)):
        make_run(runs, "meta-rim", seed, stage, 0.5 + 0.1 * seed)
    make_run(runs, "lstm", 0, 1, 0.4, sha="abc123-dirty")
    make_run(runs, "lstm", 1, 0, 0.6)
    build_report([runs], tmp_path / "rep")
    report = (tmp_path / "rep" / "report.md").read_text()
    first = report.splitlines()[0]
    assert "uncommitted" in first.lower() and "1 of 5" in first
    summary = report.split("\n## ")[0]  # the summary table, before the first section
    rows = {line.split("|")[2].strip(): line for line in summary.splitlines() if line.startswith(f"| {ENV}")}
    assert "(n=2: no interval)" in rows["lstm"] and "[" not in rows["lstm"].split("|")[10]
    assert "(n=3: no interval)" not in rows["meta-rim"] and "0.60 [" in rows["meta-rim"]
    assert rows["meta-rim"].split("|")[4].strip() == "1, 2, 2"
    assert rows["lstm"].split("|")[4].strip() == "0, 1"
    with open(tmp_path / "rep" / "aggregate.csv", newline="") as file:
        agg = {r["agent"]: r for r in csv.DictReader(file)}
    assert agg["meta-rim"]["final_stage_median"] == "2" and agg["meta-rim"]["final_stages"] == "1 2 2"


def test_clean_runs_have_no_warning(tmp_path: Path) -> None:
    make_run(tmp_path / "runs", "meta-rim", 0, 1, 0.5)
    report = tmp_path / "rep" / "report.md"
    build_report([tmp_path / "runs"], tmp_path / "rep")
    assert report.read_text().splitlines()[0] == "# metarim report"


def _stage_eval(run: Path, rows: list[list[object]], horizon: int = 200) -> None:
    """Add a ``stage_eval.csv`` (rows: timesteps, stage, current, success_rate) and the horizon to ``run``."""
    header = ["timesteps", "stage", "current", "episodes", "successes", "success_rate", "mean_return"]
    full = [[t, s, c, 10, round(10 * p), p, 0.0] for t, s, c, p in rows]
    write_csv(run / "stage_eval.csv", header, full)
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "adaptation": {"horizon": horizon}}))


def _auc_rows(report: str) -> dict[tuple[str, str], list[str]]:
    section = report.split("## Adaptation: success AUC after a shift")[1].split("\n## ")[0]
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines() if line.startswith(f"| {ENV}")]
    return {(c[1], c[2]): c for c in cells}


def test_adaptation_auc_section(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # three meta-rim seeds: shift 0 -> 1 at 500; AUC over [500, 700] of success 0 -> 1 linear = 0.5, 0 -> 0.5 = 0.25
    for seed, end in enumerate((1.0, 1.0, 0.5)):
        run = make_run(runs, "meta-rim", seed, 1, 0.5)
        _stage_eval(run, [[0, 0, 1, 0.0], [500, 0, 0, 0.9], [500, 1, 1, 0.0], [700, 1, 1, end], [900, 1, 1, end]])
    # one lstm seed whose evaluations end before the horizon (censored), one that never shifts
    run = make_run(runs, "lstm", 0, 1, 0.4)
    _stage_eval(run, [[0, 0, 1, 0.0], [500, 1, 1, 0.0], [600, 1, 1, 0.5]])
    _stage_eval(make_run(runs, "lstm", 1, 0, 0.6), [[0, 0, 1, 0.0], [1000, 0, 1, 0.9]])
    written = build_report([runs], tmp_path / "rep")
    assert written["adaptation_auc"].exists() and written["adaptation_auc"].stat().st_size > 0
    rows = _auc_rows(written["report"].read_text())
    meta = rows[("meta-rim", "first visit")]
    assert meta[4] == "3/3" and meta[5].startswith("0.42 [0.25, 0.50]") and meta[6] == "-"  # IQM of 3 = mean
    assert rows[("lstm", "first visit")][4] == "0/1"
    assert rows[("lstm", "first visit")][6] == "training ended before the horizon: 1"
    assert rows[("lstm", "first visit")][5] == "n/a" and rows[("meta-rim", "revisit")][4] == "0/0"


def test_old_runs_say_not_recorded(tmp_path: Path) -> None:
    make_run(tmp_path / "runs", "meta-rim", 0, 1, 0.5)
    written = build_report([tmp_path / "runs"], tmp_path / "rep")
    assert "(`stage_eval.csv`) not recorded in these runs" in written["report"].read_text()
    assert written["adaptation_auc"].exists()


def test_km_section_censored_visits(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed in range(3):  # each seed: one censored shift visit (500 frames), from make_run
        make_run(runs, "meta-rim", seed, 1, 0.5)
    make_run(runs, "lstm", 0, 0, 0.5)  # never shifts
    written = build_report([runs], tmp_path / "rep")
    assert written["adaptation"].exists()
    report = written["report"].read_text()
    row = next(line for line in report.splitlines() if line.startswith(f"| {ENV} | meta-rim"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[6] == "0/3" and cells[7] == "0.5k (0.5k)"  # all censored at 500: area 500 up to tau
    assert cells[8] == "not reached"
    lstm = [c.strip() for c in next(x for x in report.splitlines() if x.startswith(f"| {ENV} | lstm")).split("|")]
    assert lstm[8:10] == ["n/a", "n/a"]


def test_drift_and_paired_sections(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    header = ["timesteps", "drift_modules", "update_modules", "drift_other", "update_other"]
    for agent, success in (("meta-rim", 0.5), ("lstm", 0.8)):
        for seed in range(3):
            run = make_run(runs, agent, seed, 1, success + 0.01 * seed)
            write_csv(run / "drift.csv", header, [[0, 0.0, 0.0, 0.0, 0.0], [1000, 0.1 * (seed + 1), 0.01, 2.0, 0.1]])
    written = build_report([runs], tmp_path / "rep")
    assert written["drift"].exists()
    report = written["report"].read_text()
    drift = report.split("## Parameter drift")[1]
    assert f"| {ENV} | meta-rim | 3 | 0.2000 | 2 |" in drift  # mean of 0.1, 0.2, 0.3; integral 2.0 prints as 2
    paired = report.split("## Paired comparisons with meta-rim")[1].split("\n## ")[0]
    row = next(line for line in paired.splitlines() if line.startswith("| zero-shot success | lstm"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[2] == "3" and cells[3].startswith("0.30 [0.30, 0.30]") and cells[4].startswith("1.00")


def test_paired_needs_three_seeds(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for agent in ("meta-rim", "lstm"):
        for seed in range(2):
            make_run(runs, agent, seed, 1, 0.5)
    report = build_report([runs], tmp_path / "rep")["report"].read_text()
    assert "Not shown: fewer than 3 seeds" in report
    assert "(`drift.csv`) not recorded in these runs" in report


def test_zero_shot_at_fixed_frames(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    header = ["timesteps", "success_rate", "mean_reward", "n_episodes", "mean_ep_length"]
    for seed, late in enumerate((0.5, 0.7, 0.7)):
        run = make_run(runs, "meta-rim", seed, 1, 0.5)
        write_csv(run / "heldout_eval.csv", header, [[500, 0.0, 0.0, 10, 5.0], [1000, late, 0.3, 10, 5.0]])
    run = make_run(runs, "lstm", 0, 1, 0.5)
    write_csv(run / "heldout_eval.csv", header, [[500, 0.2, 0.0, 10, 5.0], [1000, 0.4, 0.3, 10, 5.0]])
    report = build_report([runs], tmp_path / "rep")["report"].read_text()
    section = report.split("## Zero-shot success during training")[1].split("\n## ")[0]
    cells = {
        (c[1], c[2]): c
        for c in ([x.strip() for x in line.split("|")[1:-1]] for line in section.splitlines())
        if c and c[0] == ENV
    }
    assert cells[("meta-rim", "1,000")][4].startswith("0.63 [")  # IQM of 3 seeds = their mean
    assert cells[("lstm", "500")][4] == "0.20 (n=1: no interval)"
    assert "s0: 0.20 [0.06, 0.51]" in cells[("lstm", "500")][3]  # Wilson interval of 2/10


def test_forgetting_section(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed in range(3):  # stage 0 left at 500 with 0.9, evaluated later at 0.6 and 0.6 - 0.1 * seed
        run = make_run(runs, "meta-rim", seed, 1, 0.5)
        rows = [[0, 0, 1, 0.0], [500, 0, 0, 0.9], [500, 1, 1, 0.0], [700, 0, 0, 0.6], [700, 1, 1, 0.5]]
        _stage_eval(run, [*rows, [900, 0, 0, 0.6 - 0.1 * seed], [900, 1, 1, 1.0]])
    written = build_report([runs], tmp_path / "rep")
    assert written["forgetting"].exists()
    section = written["report"].read_text().split("## Forgetting")[1].split("\n## ")[0]
    cells = {c[2]: c for c in ([x.strip() for x in line.split("|")[1:-1]] for line in section.splitlines()) if c}
    assert cells["0"][3] == "3" and cells["0"][4].startswith("0.40 [")  # drops 0.3, 0.4, 0.5
    assert cells["1"][3] == "0" and "never mastered or left: 3" in cells["1"][6]  # stage 1 is never left


def test_cli_reference(tmp_path: Path) -> None:
    from metarim_sb3.experiments.cli import main

    for agent in ("meta-rim", "lstm"):
        make_run(tmp_path / "runs", agent, 0, 1, 0.5)
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--reference", "lstm"])
    assert exit_.value.code == 0
    assert "## Paired comparisons with lstm" in (tmp_path / "rep" / "report.md").read_text()


def _at_mastery(run: Path, row: list[object] | None) -> None:
    """Add a ``zero_shot_mastery.csv``: its header, and ``row`` (timesteps, successes of 10) if mastery was reached."""
    header = ["timesteps", "stage", "episodes", "successes", "success_rate", "mean_return"]
    rows = [] if row is None else [[row[0], 2, 10, row[1], int(row[1]) / 10, 0.1]]  # type: ignore[call-overload]
    write_csv(run / "zero_shot_mastery.csv", header, rows)


def test_zero_shot_at_mastery(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed, row in enumerate(([600, 3], [800, 5], None)):  # seed 2 never masters the last training stage
        _at_mastery(make_run(runs, "meta-rim", seed, 2, 0.5), row)
    for seed, successes in enumerate((2, 4, 6)):
        _at_mastery(make_run(runs, "rim", seed, 2, 0.5), [700, successes])
    _at_mastery(make_run(runs, "lstm", 0, 2, 0.5), None)
    make_run(runs, "lstm", 1, 1, 0.5)  # an older run that did not record it: left out, not counted as not reached
    report = build_report([runs], tmp_path / "rep")["report"].read_text()
    section = report.split("### At mastery of the last training stage")[1].split("\n## ")[0]
    cells = {c[1]: c for c in ([x.strip() for x in line.split("|")[1:-1]] for line in section.splitlines()) if c}
    meta = cells["meta-rim"]
    assert meta[2:4] == ["2/3", "1"]  # reached / recorded, never reached
    assert meta[4] == "s0: 0.30 [0.11, 0.60] at 600; s1: 0.50 [0.24, 0.76] at 800"  # Wilson of 3/10 and 5/10
    assert meta[5] == "0.40 (n=2: no interval)"  # the unreached seed is not averaged in
    assert cells["rim"][2:4] == ["3/3", "0"] and cells["rim"][5].startswith("0.40 [")  # IQM of 3 = their mean
    assert cells["lstm"][2:] == ["0/1", "1", "n/a", "n/a (no seed reached mastery)"]


def test_zero_shot_at_mastery_not_recorded(tmp_path: Path) -> None:
    make_run(tmp_path / "runs", "meta-rim", 0, 1, 0.5)
    report = build_report([tmp_path / "runs"], tmp_path / "rep")["report"].read_text()
    assert "The evaluation at mastery (`zero_shot_mastery.csv`) was not recorded in these runs." in report


def test_cost_section_sums_complete_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed in range(3):
        make_run(runs, "meta-rim", seed, 1, 0.5)  # 1000 frames in 10 s each
    unfinished = make_run(runs, "lstm", 0, 1, 0.5)
    (unfinished / "done.json").unlink()
    build_report([runs], tmp_path / "rep")
    section = (tmp_path / "rep" / "report.md").read_text().split("## Cost")[1].split("\n## ")[0]
    assert f"| {ENV} | meta-rim | 3 | 3,000 | 0.01 | 10.00 | 10 s |" in section
    assert "| lstm |" not in section and "Total: 3 complete runs" in section


def test_limits_name_the_fewest_seeds(tmp_path: Path) -> None:
    for seed in range(5):
        make_run(tmp_path / "runs", "meta-rim", seed, 1, 0.5)
    build_report([tmp_path / "runs"], tmp_path / "five")
    limits = next(line for line in (tmp_path / "five" / "report.md").read_text().splitlines() if "Limits" in line)
    assert f"by env: {ENV} 5." in limits and "anecdotes" not in limits
    for seed in range(2):
        make_run(tmp_path / "runs", "lstm", seed, 1, 0.5)
    build_report([tmp_path / "runs"], tmp_path / "mixed")
    limits = next(line for line in (tmp_path / "mixed" / "report.md").read_text().splitlines() if "Limits" in line)
    assert f"by env: {ENV} 2-5." in limits and "as few as 2 seed(s)" in limits and "anecdotes" in limits
