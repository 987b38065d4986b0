"""``studies/seed_batch_equivalence.py``: the whole-run equivalence report of batched and separate seeds."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from repo_paths import ROOT
from scipy import stats

sys.path.insert(0, str(ROOT / "studies"))
import seed_batch_equivalence as eq


def write_run(folder: Path, seed: int, success: float, shift_at: int | None, budget: int = 150_000) -> None:
    """A finished run folder with the files the report reads."""
    folder.mkdir(parents=True)
    (folder / "done.json").write_text(json.dumps({"seed": seed, "timesteps": budget, "final_stage": 2}))
    (folder / "final_eval.json").write_text(json.dumps({"success_rate": success, "mean_return": success / 2}))
    with open(folder / "curve.csv", "w") as f:
        f.write("timesteps,success_rate\n" + "".join(f"{1024 * i},{success}\n" for i in range(1, 13)))
    with open(folder / "heldout_eval.csv", "w") as f:
        f.write(f"timesteps,success_rate\n25000,{success / 2}\n50000,{success}\n")
    if shift_at is not None:
        (folder / "curriculum.csv").write_text(f"timestep,from_stage,to_stage,success_rate\n{shift_at},0,1,0.8\n")


def make_arms(tmp_path: Path, batched: list[float], separate: list[float], censored: int = 0) -> Path:
    runs = tmp_path / "runs"
    for arm, values in (("batched", batched), ("separate", separate)):
        for seed, value in enumerate(values):
            shift = None if seed < censored else 10_000 + 1_000 * seed
            write_run(runs / arm / f"seed_{seed}", seed, value, shift)
    return runs


def test_same_values_detect_no_difference_and_write_one_row_per_run(tmp_path: Path) -> None:
    values = [0.5, 0.6, 0.7, 0.8, 0.55]
    runs = make_arms(tmp_path, values, list(reversed(values)))
    assert eq.main(["--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "**Verdict: no difference detected**" in text
    with open(tmp_path / "out" / "equivalence.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10
    assert {r["arm"] for r in rows} == {"batched", "separate"}


def test_a_large_shift_is_reported_as_a_difference(tmp_path: Path) -> None:
    runs = make_arms(tmp_path, [0.9, 0.92, 0.95, 0.91, 0.93, 0.94], [0.1, 0.12, 0.15, 0.11, 0.13, 0.14])
    eq.main(["--runs", str(runs), "--out", str(tmp_path / "out")])
    text = (tmp_path / "out" / "report.md").read_text()
    assert "**Verdict: differs on heldout_success, heldout_return, heldout_curve_mean, last_train_success**" in text


def test_censored_frames_are_never_averaged(tmp_path: Path) -> None:
    runs = make_arms(tmp_path, [0.5, 0.6, 0.7], [0.5, 0.6, 0.7], censored=2)  # 2 of 3 never left stage 0
    eq.main(["--runs", str(runs), "--out", str(tmp_path / "out")])
    text = (tmp_path / "out" / "report.md").read_text()
    assert "median >= 150,000" in text
    assert "batched 2, separate 2" in text


def test_welch_interval_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.5, 0.1, 10), rng.normal(0.45, 0.2, 8)
    diff, lo, hi = eq.welch_interval(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert (lo, hi) == pytest.approx((ci.low, ci.high))


def test_detectable_shift_matches_the_power_tables() -> None:
    # two-sided two-sample t test, 10 a side, alpha 0.05, power 0.8: d = 1.325 (G*Power, Cohen's tables: 1.32)
    assert eq.detectable_shift(10, 10) == pytest.approx(1.325, abs=0.002)


def test_too_few_runs_is_a_usage_error(tmp_path: Path) -> None:
    runs = make_arms(tmp_path, [0.5, 0.6], [0.5, 0.6, 0.7])
    with pytest.raises(SystemExit) as err:
        eq.main(["--runs", str(runs), "--out", str(tmp_path / "out")])
    assert err.value.code == 2


def test_the_committed_report_regenerates_identically(tmp_path: Path) -> None:
    committed = ROOT / "results" / "seed_batch"
    if not (committed / "runs").is_dir():
        pytest.skip("results/seed_batch/runs is not in this checkout")
    eq.main(["--runs", str(committed / "runs"), "--out", str(tmp_path)])
    for name in ("report.md", "equivalence.csv"):
        assert (tmp_path / name).read_text() == (committed / name).read_text(), f"results/seed_batch/{name} differs"
