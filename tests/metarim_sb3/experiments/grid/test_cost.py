"""The cost estimate of ``metarim compare --dry-run``: arithmetic on hand-made measurements, fallbacks, no file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cli_helpers import load_benchmark, metarim

from metarim_sb3.experiments.grid.cost import (
    costs_from_runs,
    describe_plan,
    estimate,
    load_costs,
    wall_makespan,
    write_costs,
)
from metarim_sb3.experiments.training.yaml_io import ConfigError

GOTO, DOORKEY, MULTIROOM = "MetaRIM-GoTo-v0", "MetaRIM-DoorKey-v0", "MetaRIM-MultiRoom-v0"
HEADER = {"command": "bench_study.py --write-costs", "commit": "abc1234", "date": "2026-01-01T00:00:00Z",
          "machine": "test machine", "torch_threads": 1}  # fmt: skip


@pytest.fixture
def costs_file(tmp_path: Path) -> Path:
    agents = {
        "rim": {GOTO: {"cpu_ms": 1.0, "wall_ms": 2.0}, DOORKEY: {"cpu_ms": 3.0, "wall_ms": 4.0}},
        "lstm": {GOTO: {"cpu_ms": 0.5, "wall_ms": 0.5}},
    }
    return write_costs(tmp_path / "costs.yaml", agents, HEADER)


def test_written_file_round_trips_with_its_header(costs_file: Path) -> None:
    text = costs_file.read_text()
    assert text.startswith("# ")  # the provenance comment
    costs = load_costs(costs_file)
    assert costs is not None
    assert costs.measured == HEADER
    assert costs.agents["rim"][DOORKEY] == {"cpu_ms": 3.0, "wall_ms": 4.0}


def test_core_hours_are_timesteps_times_ms_per_step(costs_file: Path) -> None:
    costs = load_costs(costs_file)
    # 2 rim runs of 3.6 M steps on GoTo (1 ms) + 1 lstm run of 7.2 M steps on GoTo (0.5 ms)
    runs = [("rim", GOTO, 3_600_000), ("rim", GOTO, 3_600_000), ("lstm", GOTO, 7_200_000)]
    est = estimate(runs, workers=1, costs=costs)
    assert [(c.agent, c.runs, c.frames) for c in est.cells] == [("rim", 2, 7_200_000), ("lstm", 1, 7_200_000)]
    assert est.cells[0].core_hours == pytest.approx(2.0)
    assert est.cells[1].core_hours == pytest.approx(1.0)
    assert est.core_hours == pytest.approx(3.0)
    assert est.runs == 3 and est.frames == 14_400_000
    # wall: 2 h + 2 h + 1 h one after another on one worker
    assert est.wall_hours == pytest.approx(5.0)


def test_wall_hours_replay_the_grid_order_on_the_workers(costs_file: Path) -> None:
    costs = load_costs(costs_file)
    runs = [("rim", GOTO, 1_800_000)] * 3  # 1 h of wall each
    assert estimate(runs, workers=2, costs=costs).wall_hours == pytest.approx(2.0)
    assert estimate(runs, workers=3, costs=costs).wall_hours == pytest.approx(1.0)
    est = estimate(runs, workers=16, costs=costs)
    assert est.workers == 3  # capped by the number of runs, as the grid does
    assert est.core_hours == pytest.approx(1.5)  # CPU does not depend on the workers


def test_makespan_starts_each_run_on_the_first_free_worker() -> None:
    # worker A: 5, worker B: 1 then 1 then 3 -> ends at 5
    assert wall_makespan([5.0, 1.0, 1.0, 3.0], 2) == pytest.approx(5.0)
    assert wall_makespan([], 4) == 0.0
    with pytest.raises(ValueError, match="workers"):
        wall_makespan([1.0], 0)


def test_unmeasured_env_falls_back_to_the_agents_most_expensive(costs_file: Path) -> None:
    costs = load_costs(costs_file)
    est = estimate([("rim", MULTIROOM, 1_200_000)], workers=1, costs=costs)
    (cell,) = est.cells
    assert cell.fallback and cell.measured_env == DOORKEY
    assert cell.core_hours == pytest.approx(1.0)  # 1.2 M x 3 ms
    text = describe_plan([("rim", MULTIROOM, 1_200_000)], 1, costs)
    assert f"rim on {MULTIROOM} (as {DOORKEY})" in text
    assert "1.0 CPU core-hours" in text


def test_unmeasured_agent_gives_no_number(costs_file: Path) -> None:
    costs = load_costs(costs_file)
    runs = [("rim", GOTO, 1000), ("gru", GOTO, 1000)]
    est = estimate(runs, workers=2, costs=costs)
    assert est.core_hours is None and est.wall_hours is None
    assert est.unmeasured_agents == ["gru"]
    text = describe_plan(runs, 2, costs)
    assert "estimate: no measurement (agent(s) gru not in" in text
    assert "CPU core-hours" not in text


def test_no_costs_file(tmp_path: Path) -> None:
    assert load_costs(tmp_path / "missing.yaml") is None
    text = describe_plan([("rim", GOTO, 1000)], 1, None)
    assert "estimate: no measurement" in text
    assert "total: 1 runs, 1,000 frames" in text


def test_bad_costs_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "costs.yaml"
    path.write_text(yaml.safe_dump({"measured": HEADER, "agents": {"rim": {GOTO: {"cpu_ms": -1, "wall_ms": 1}}}}))
    with pytest.raises(ConfigError, match="positive numbers cpu_ms and wall_ms"):
        load_costs(path)
    path.write_text(yaml.safe_dump({"measured": {"date": "x"}, "agents": {}}))
    with pytest.raises(ConfigError, match="measured must be a mapping with keys command"):
        load_costs(path)
    with pytest.raises(ConfigError, match="machine"):
        write_costs(tmp_path / "out.yaml", {}, {"command": "c", "commit": "c", "date": "d", "torch_threads": 1})


def test_bad_timesteps_or_workers_are_refused() -> None:
    with pytest.raises(ValueError, match="timesteps must be a positive integer"):
        estimate([("rim", GOTO, 0)], workers=1, costs=None)
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        estimate([("rim", GOTO, 10)], workers=0, costs=None)


def test_compare_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    result = metarim("compare", "--preset", "quick", "--seeds", "1", "--workers", "2", "--out", out, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "total: " in result.stdout and "frames" in result.stdout
    assert "estimate: " in result.stdout
    assert not out.exists()


@pytest.mark.slow
def test_bench_study_writes_costs_the_estimate_and_the_report_read(tmp_path: Path) -> None:
    bench = load_benchmark("bench_study")
    costs_path, json_path = tmp_path / "costs.yaml", tmp_path / "bench_study.json"
    argv = ["--agents", "lstm", "--timesteps", "512", "--repeats", "1", "--no-warmup", "--json", str(json_path),
            "--write-costs", str(costs_path)]  # fmt: skip
    assert bench.main(argv) == 0
    costs = load_costs(costs_path)
    assert costs is not None and costs.measured["torch_threads"] == 1
    assert set(costs.agents) == {"lstm"} and GOTO in costs.agents["lstm"]
    est = estimate([("lstm", GOTO, 10_000)], workers=1, costs=costs)
    assert est.core_hours is not None and est.core_hours > 0
    report = load_benchmark("report")
    lines = report.study_section(json.loads(json_path.read_text()))
    assert any("`lstm`" in line for line in lines)


def test_costs_from_runs_take_the_median_wall_ms_per_step(tmp_path: Path) -> None:
    from report_runs import ENV, make_run

    for seed, wall in enumerate((10.0, 30.0, 20.0)):
        run = make_run(tmp_path / "runs", "meta-rim", seed, 1, 0.5)  # 1000 steps
        (run / "done.json").write_text(json.dumps({"timesteps": 1000, "wall_time_s": wall, "finished_at": f"t{seed}"}))
    variant = make_run(tmp_path / "runs", "meta-k8", 0, 1, 0.5)
    config = yaml.safe_load((variant / "config.yaml").read_text())
    (variant / "config.yaml").write_text(yaml.safe_dump({**config, "variant_of": "lstm"}))
    (make_run(tmp_path / "runs", "gru", 0, 1, 0.5) / "done.json").unlink()  # unfinished: no figure
    costs = costs_from_runs([tmp_path / "runs"])
    assert costs.agents["meta-rim"][ENV] == {"cpu_ms": 20.0, "wall_ms": 20.0}
    assert costs.agents["lstm"][ENV]["wall_ms"] == 10.0 and "gru" not in costs.agents
    assert costs.measured["commit"] == "abc123" and costs.measured["date"] == "t2"
    est = estimate([("meta-rim", ENV, 3600)], workers=1, costs=costs)
    assert est.core_hours == pytest.approx(0.02)


def test_compare_dry_run_costs_from_runs(tmp_path: Path) -> None:
    from report_runs import make_run

    make_run(tmp_path / "runs", "meta-rim", 0, 1, 0.5)
    result = metarim("compare", "--preset", "quick", "--dry-run", "--costs-from", tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    meta = next(line for line in result.stdout.splitlines() if line.startswith("meta-rim"))
    assert "10.000" in meta  # 10 s for 1000 steps
    assert "agent(s) rim, reversed, lstm not in runs under" in result.stdout  # no figure: no number
    bad = metarim("compare", "--preset", "quick", "--costs-from", tmp_path / "runs", "--out", tmp_path / "o")
    assert (
        bad.returncode == 2 and "--costs-from is an option of --dry-run" in bad.stderr and not (tmp_path / "o").exists()
    )
    empty = metarim("compare", "--preset", "quick", "--dry-run", "--costs-from", tmp_path / "nothing")
    assert empty.returncode == 2 and "--costs-from:" in empty.stderr and "does not exist" in empty.stderr
