"""Zero-shot tests of a run trained on one stage (config ``generalization``): the config checks, the run's
``generalization.csv``, the report's table and statistics on synthetic run folders, the committed
``generalization`` preset, and a tiny grid end to end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from cli_helpers import ENV_ID, TINY, metarim
from scipy import stats as sps

from metarim_sb3.experiments.grid.compare import plan
from metarim_sb3.experiments.grid.presets import compare_preset
from metarim_sb3.experiments.reporting.report import build_report
from metarim_sb3.experiments.reporting.runs import load_run
from metarim_sb3.experiments.reporting.sections.generalization import (
    REPORT_COLUMNS,
    mean_interval,
    paired_t,
    read_run_rows,
)
from metarim_sb3.experiments.training.config import resolve_config
from metarim_sb3.experiments.training.folder import RunError
from metarim_sb3.experiments.training.generalization import RUN_COLUMNS
from metarim_sb3.experiments.training.yaml_io import ConfigError

#: A one-stage run with zero-shot tests on GoTo (short episodes): curriculum off, stage 0, tests 0, 1 and held out.
ONE_STAGE = {
    **TINY,
    "curriculum": {"enabled": False},
    "env_kwargs": {"stage": 0},
    "heldout_eval": {"enabled": False},
    "stage_eval": {"enabled": False},
    "final_eval": {"episodes": 4, "n_envs": 2},
    "generalization": {"stages": [0, 1, "heldout"], "episodes": 4, "n_envs": 2},
}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


# ------------------------------------------------------------------------------------------------ config
def test_config_section_defaults_off_and_accepts_stage_lists() -> None:
    config = resolve_config("lstm", ENV_ID)
    assert config.generalization.stages == []
    assert config.generalization.episodes >= 100
    config = resolve_config("lstm", ENV_ID, overrides={"generalization": {"stages": [0, 2, "heldout"]}})
    assert config.generalization.stages == [0, 2, "heldout"]


@pytest.mark.parametrize(
    "stages", [[0, 0], ["hard"], [-1], [True], "heldout", [0, "heldout", "heldout"], [1.5]], ids=str
)
def test_config_refuses_bad_test_stages(stages: object) -> None:
    with pytest.raises(ConfigError, match=r"generalization\.stages(:| must be a list of distinct) "):
        resolve_config("lstm", ENV_ID, overrides={"generalization": {"stages": stages}})


def test_config_bounds_the_test_episodes() -> None:
    with pytest.raises(ConfigError, match=r"generalization\.n_envs must be an integer >= 1 and <= 256"):
        resolve_config("lstm", ENV_ID, overrides={"generalization": {"n_envs": 0}})


def test_a_stage_the_family_lacks_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({**ONE_STAGE, "generalization": {"stages": [0, 3]}}))
    out = tmp_path / "run"
    result = metarim("train", "--agent", "lstm", "--env", ENV_ID, "--timesteps", "64", "--out", out, "--config", config)
    assert result.returncode == 2, result.stderr
    assert "has no stage 3" in result.stderr and "allowed: 0, 1, 2, heldout" in result.stderr
    assert not out.exists() or not any(p.name != ".metarim.lock" for p in out.iterdir())


# ------------------------------------------------------------------------------------------------ a run
def test_train_writes_the_test_table(tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(ONE_STAGE))
    out = tmp_path / "run"
    args = ("train", "--agent", "lstm", "--env", ENV_ID, "--timesteps", "128", "--seed", "3", "--config", config)
    result = metarim(*args, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "zero-shot success by test env: GoToObjS4 " in result.stdout
    rows = _rows(out / "generalization.csv")
    assert tuple(rows[0]) == RUN_COLUMNS
    assert [r["test_stage"] for r in rows] == ["0", "1", "heldout"]
    assert [r["test_env"] for r in rows] == ["GoToObjS4", "GoToLocalS6N2", "GoToLocalS8N7"]
    assert [r["in_distribution"] for r in rows] == ["1", "0", "0"]
    assert {r["train_env"] for r in rows} == {"GoToObjS4"} and {r["eval_seed"] for r in rows} == {"20003"}
    for r in rows:
        successes, episodes = int(r["successes"]), int(r["episodes"])
        assert episodes == 4 and float(r["success_rate"]) == successes / episodes
        assert float(r["success_low"]) <= float(r["success_rate"]) <= float(r["success_high"])
    final = json.loads((out / "final_eval.json").read_text())  # same seed and envs: the held-out test is reused
    assert float(rows[2]["success_rate"]) == final["success_rate"]
    per_episode = _rows(out / "generalization_episodes.csv")
    assert len(per_episode) == 12 and {e["test_stage"] for e in per_episode} == {"0", "1", "heldout"}
    done = json.loads((out / "done.json").read_text())
    assert list(done["generalization"]) == ["GoToObjS4", "GoToLocalS6N2", "GoToLocalS8N7"]
    curve = _rows(out / "curve.csv")
    assert {r["stage"] for r in curve} == {"0"}  # trained on one stage: no shift


# ------------------------------------------------------------------------------------------------ the report
TESTS = [("0", "DoorKey-5x5", 0.9), ("1", "DoorKey-6x6", 0.5), ("heldout", "DoorKey-16x16", 0.1)]
#: Each agent's success offset from the LSTM's, per seed s: ``a + b * s``.
OFFSETS = {
    "lstm": (0.0, 0.0),
    "gru": (-0.05, 0.0),
    "rim": (0.1, 0.01),
    "rim-k2": (0.05, -0.02),
    "meta-rim": (0.0, 0.03),
}


def _success(agent: str, base: float, seed: int) -> float:
    a, b = OFFSETS[agent]
    return round(min(1.0, max(0.0, base + a + b * seed)), 2)


def _write_csv(path: Path, header: list[str] | tuple[str, ...], rows: list[list[object]]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


def synthetic_run(root: Path, agent: str, seed: int, tests: bool = True, episodes: int = 100) -> Path:
    """A finished one-stage run folder with a ``generalization.csv`` of known success rates."""
    run = root / agent / f"seed_{seed}"
    run.mkdir(parents=True)
    base = resolve_config("rim" if agent == "rim-k2" else agent, "MetaRIM-DoorKey-v0", timesteps=4000)
    changes: dict[str, object] = {"agent": agent, "seed": seed, "curriculum": {"threshold": 0.8, "enabled": False}}
    if agent == "rim-k2":
        changes["variant_of"] = "rim"
    config = base.with_changes(**changes).to_dict()
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "done.json").write_text(json.dumps({"timesteps": 4000, "wall_time_s": 10.0, "fps": 400.0}))
    (run / "final_eval.json").write_text(json.dumps({"success_rate": 0.1, "success_ci": [0.0, 0.3]}))
    # training success: 0.5 in the first half, 0.8 in the third quarter, then in the last 0.82 (lstm: flat),
    # 0.70 (gru: falling) or 0.95 (the others: rising)
    last = {"lstm": 0.82, "gru": 0.70}.get(agent, 0.95)
    curve: list[list[object]] = [
        [t, t / 400, 0, s, 10] for t, s in ((1000, 0.5), (2000, 0.5), (3000, 0.8), (4000, last))
    ]
    _write_csv(run / "curve.csv", ["timesteps", "time_s", "stage", "success_rate", "episodes"], curve)
    if tests:
        rows: list[list[object]] = []
        for stage, name, base in TESTS:
            rate = _success(agent, base, seed)
            k = round(rate * episodes)
            rows.append([0, "DoorKey-5x5", stage, name, int(stage == "0"), 20000 + seed, episodes, k, k / episodes,
                         0.0, 1.0, rate / 2, 0.0, 1.0, 50.0])  # fmt: skip
        _write_csv(run / "generalization.csv", RUN_COLUMNS, rows)
    return run


def test_mean_interval_and_paired_t_match_scipy() -> None:
    values = [0.2, 0.4, 0.9, 0.5]
    mean, low, high = mean_interval(values)
    expected = sps.t.interval(0.95, 3, loc=0.5, scale=sps.sem(values))
    assert mean == pytest.approx(0.5) and (low, high) == pytest.approx((max(0.0, expected[0]), expected[1]))
    assert math.isnan(mean_interval([0.2, 0.4])[1])  # no interval under 3 seeds
    assert mean_interval([1.0, 1.0, 0.9])[2] == 1.0  # clipped to [0, 1]
    x, y = [0.5, 0.7, 0.2, 0.9], [0.4, 0.3, 0.2, 0.5]
    n, mean, low, high, p = paired_t([a - b for a, b in zip(x, y, strict=True)])
    assert n == 4 and mean == pytest.approx(0.225) and p == pytest.approx(sps.ttest_rel(x, y).pvalue)
    assert paired_t([0.1, 0.1, 0.1])[4] == 0.0 and paired_t([0.0, 0.0])[4] == 1.0
    assert math.isnan(paired_t([0.3])[4])


def test_a_mean_under_3_seeds_names_its_seeds_once(tmp_path: Path) -> None:
    for agent in ("lstm", "rim"):
        synthetic_run(tmp_path / "runs", agent, 0)
    report = build_report([tmp_path / "runs"], tmp_path / "rep")["report"].read_text()
    line = next(x for x in report.splitlines() if x.startswith("| DoorKey-5x5 | DoorKey-6x6 |"))
    assert (
        line == f"| DoorKey-5x5 | DoorKey-6x6 | {_success('lstm', 0.5, 0):.2f} (n=1: no interval) | "
        f"{_success('rim', 0.5, 0):.2f} (n=1: no interval) |"
    )


def test_report_table_and_section(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    agents = list(OFFSETS)
    for agent in agents:
        for seed in range(3):
            synthetic_run(runs, agent, seed)
    synthetic_run(runs, "lstm", 3)  # a seed no RIM agent has: never paired
    paths = build_report([runs], tmp_path / "rep", command="metarim report runs --out rep")
    table = _rows(paths["summary"])
    assert paths["summary"] == tmp_path / "rep" / "summary.csv"
    assert tuple(table[0])[: len(REPORT_COLUMNS)] == REPORT_COLUMNS
    assert tuple(table[0])[len(REPORT_COLUMNS) :][:3] == ("env", "status", "timesteps")  # the run's own columns
    assert len(table) == (len(agents) * 3 + 1) * len(TESTS)
    assert {(r["env"], r["status"], r["timesteps"]) for r in table} == {("MetaRIM-DoorKey-v0", "done", "4000")}
    first = table[0]  # sorted by train env, size, agent (baselines first), seed
    assert (first["agent"], first["train_env"], first["test_env"], first["seed"]) == ("lstm", "DoorKey-5x5",
                                                                                    "DoorKey-5x5", "0")  # fmt: skip
    rim = [r for r in table if r["agent"] == "rim" and r["test_env"] == "DoorKey-6x6"]
    assert [float(r["success"]) for r in rim] == [_success("rim", 0.5, s) for s in range(3)]
    assert {r["episodes"] for r in table} == {"100"} and paths["generalization_plot"].stat().st_size > 0
    assert not (tmp_path / "rep" / "generalization.csv").exists()  # one table of runs: summary.csv
    report = paths["report"].read_text()
    section = report.split("## Zero-shot to larger envs")[1].split("\n## ")[0]
    assert section.index("| DoorKey-5x5 | DoorKey-5x5 * |") < section.index("| DoorKey-5x5 | DoorKey-16x16 |")
    header = next(line for line in section.splitlines() if line.startswith("| train env | test env | lstm"))
    assert header == "| train env | test env | lstm | gru | meta-rim | rim | rim-k2 |"
    lstm_cell = next(line for line in section.splitlines() if line.startswith("| DoorKey-5x5 | DoorKey-6x6 |"))
    expected = mean_interval([_success("lstm", 0.5, s) for s in range(4)])
    assert f"{expected[0]:.2f} [{expected[1]:.2f}, {expected[2]:.2f}] (n=4)" in lstm_cell
    # paired: rim against lstm on 6x6, seeds 0-2 (lstm's seed 3 has no partner)
    d = [_success("rim", 0.5, s) - _success("lstm", 0.5, s) for s in range(3)]
    n, mean, low, high, p = paired_t(d)
    assert n == 3
    line = next(x for x in section.splitlines() if x.startswith("| DoorKey-5x5 | DoorKey-6x6 | rim | lstm |"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[4] == "3" and cells[5] == f"{mean:.2f} [{low:.2f}, {high:.2f}]"
    assert float(cells[6]) == pytest.approx(p, abs=1e-3)
    # Holm over the 3 test envs x 3 RIM agents x 2 baselines of the training env
    comparisons = [x for x in section.splitlines() if x.startswith("| DoorKey-5x5 | DoorKey-")]
    paired = [x for x in comparisons if x.count("|") == 10]
    assert len(paired) == 3 * 3 * 2
    for x in paired:  # each row's result is its Holm p and sign read by the preset's rule
        row = [c.strip() for c in x.split("|")[1:-1]]
        resolved = row[7] == "<0.001" or float(row[7]) < 0.05
        sign = "better" if float(row[5].split()[0]) > 0 else "worse"
        assert row[8] == (sign if resolved else "no difference resolved"), x
    verdicts = section.split("### Verdict: does a RIM agent generalize")[1].split("### Training plateau")[0]
    verdict_rows = [x for x in verdicts.splitlines() if x.startswith("| DoorKey-5x5 | ")]
    assert [x.split("|")[2].strip() for x in verdict_rows] == ["meta-rim", "rim", "rim-k2"]
    assert all(x.endswith(("| **supported** |", "| **not supported** |", "| **inconclusive** |")) for x in verdict_rows)
    assert not any("| lstm | gru |" in x or x.split("|")[3].strip() in ("lstm", "gru") for x in paired)
    holm = float(cells[7]) if cells[7] != "<0.001" else 0.0
    assert holm >= float(cells[6]) - 1e-3 and holm <= min(1.0, 18 * p) + 1e-3
    # the plateau table: lstm flat (0.80 -> 0.82), gru falling (0.80 -> 0.70), the others rising (0.80 -> 0.95)
    assert "| DoorKey-5x5 | lstm | 4 | 0.80 | 0.82 | 4/4 | 0/4 | 0/4 |" in section
    assert "| DoorKey-5x5 | gru | 3 | 0.80 | 0.70 | 0/3 | 0/3 | 3/3 |" in section
    assert "| DoorKey-5x5 | rim | 3 | 0.80 | 0.95 | 0/3 | 3/3 | 0/3 |" in section
    assert "`metarim report runs --out rep`" in section
    assert report.index("## Zero-shot to larger envs") < report.index("## Learning curves")
    assert "`summary.csv`: one row per run and test env;" in report.split("## Files")[1]


def test_report_without_tests_has_no_section(tmp_path: Path) -> None:
    synthetic_run(tmp_path / "runs", "lstm", 0, tests=False)
    paths = build_report([tmp_path / "runs"], tmp_path / "rep")
    assert "generalization" not in paths and not (tmp_path / "rep" / "generalization.csv").exists()
    assert "Zero-shot to larger envs" not in paths["report"].read_text()
    assert "`summary.csv`: one row per run;" in paths["report"].read_text().split("## Files")[1]


def test_a_run_without_tests_keeps_one_summary_row(tmp_path: Path) -> None:
    synthetic_run(tmp_path / "runs", "lstm", 0)
    synthetic_run(tmp_path / "runs", "rim", 0, tests=False)
    table = _rows(build_report([tmp_path / "runs"], tmp_path / "rep")["summary"])
    assert [r["agent"] for r in table] == ["lstm"] * len(TESTS) + ["rim"]
    untested = table[-1]
    assert untested["seed"] == "0" and untested["status"] == "done" and untested["test_env"] == ""
    assert untested["success"] == "" and untested["env"] == "MetaRIM-DoorKey-v0"


def test_two_seeds_print_no_interval(tmp_path: Path) -> None:
    for agent in ("lstm", "rim"):
        for seed in range(2):
            synthetic_run(tmp_path / "runs", agent, seed)
    report = build_report([tmp_path / "runs"], tmp_path / "rep")["report"].read_text()
    section = report.split("## Zero-shot to larger envs")[1].split("\n## ")[0]
    assert "(n=2: no interval)" in section and "[" not in section.split("### Paired")[0].split("|---|")[1]


def test_a_damaged_test_table_is_refused(tmp_path: Path) -> None:
    run = synthetic_run(tmp_path / "runs", "lstm", 0)
    text = (run / "generalization.csv").read_text().splitlines()
    (run / "generalization.csv").write_text("\n".join([text[0], text[1].replace(",100,", ",x,", 1)]) + "\n")
    with pytest.raises(RunError, match=r"generalization\.csv is damaged \(row 1"):
        read_run_rows(load_run(run))


# ------------------------------------------------------------------------------------------------ the preset
def test_committed_preset_declares_the_protocol(tmp_path: Path) -> None:
    grid = compare_preset("generalization")
    assert grid["agents"] == ["rim", "rim-k2", "lstm", "gru", "meta-rim"]
    assert grid["envs"] == ["MetaRIM-MultiRoom-v0", "MetaRIM-DoorKey-v0"]
    assert min(grid["seeds"].values()) >= 5 and len(set(grid["seeds"].values())) == 1
    assert grid["variants"] == {"rim-k2": {"agent": "rim", "overrides": {"policy_kwargs": {"k": 2}}}}
    description = " ".join(grid["description"].split())
    for needle in ("PILOT must confirm", "Holm", "95 % t interval", "344,064", "results/study-v1"):
        assert needle in description, needle
    jobs = plan("generalization", tmp_path / "out")
    for job in jobs:
        c = job.config
        assert c.curriculum.enabled is False and c.env_kwargs["stage"] == 0
        assert c.generalization.stages == [0, 1, 2, "heldout"] and c.generalization.episodes >= 100
        assert c.timesteps % (c.n_envs * c.ppo.n_steps) == 0
    by_agent = {j.agent: j.config for j in jobs if j.env == "MetaRIM-DoorKey-v0" and j.seed == grid["first_seed"]}
    assert by_agent["rim"].policy_kwargs["k"] == 3 and by_agent["rim-k2"].policy_kwargs["k"] == 2
    rim, k2 = by_agent["rim"].to_dict(), by_agent["rim-k2"].to_dict()
    for config in (rim, k2):
        config.pop("agent"), config.pop("variant_of", None), config["policy_kwargs"].pop("k")  # type: ignore[union-attr]
    assert rim == k2  # k is the variant's only change
    hidden = by_agent["lstm"].policy_kwargs["lstm_hidden_size"]
    assert hidden == 4 * 32 == by_agent["gru"].policy_kwargs["lstm_hidden_size"]
    seeds: dict[tuple[str, str], list[int]] = {(j.env, j.agent): [] for j in jobs}
    for j in jobs:
        seeds[(j.env, j.agent)].append(j.seed)
    assert len({tuple(s) for s in seeds.values()}) == 1  # the same seeds for every agent and env


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_tiny_grid_end_to_end(tmp_path: Path) -> None:
    preset = tmp_path / "grid.yaml"
    grid = {
        "agents": ["rim-k2", "lstm"],
        "envs": [ENV_ID],
        "seeds": 3,
        "timesteps": 128,
        "overrides": ONE_STAGE,
        "variants": {"rim-k2": {"agent": "rim", "overrides": {"policy_kwargs": {"k": 2}}}},
    }
    preset.write_text(yaml.safe_dump(grid))
    out = tmp_path / "results"
    result = metarim("compare", "--preset", preset, "--out", out, "--workers", "2", "--allow-dirty", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    table = _rows(out / "summary.csv")
    assert tuple(table[0])[: len(REPORT_COLUMNS)] == REPORT_COLUMNS and len(table) == 2 * 3 * 3
    assert {(r["agent"], r["test_env"]) for r in table} == {
        (a, e) for a in ("rim-k2", "lstm") for e in ("GoToObjS4", "GoToLocalS6N2", "GoToLocalS8N7")
    }
    report = (out / "report.md").read_text()
    assert "## Zero-shot to larger envs" in report and "| GoToObjS4 | GoToObjS4 * |" in report
    assert "| GoToObjS4 | GoToLocalS8N7 | rim-k2 | lstm | 3 |" in report
    assert (out / "generalization.png").stat().st_size > 0
