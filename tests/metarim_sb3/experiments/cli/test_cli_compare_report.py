"""``metarim compare`` on a 2-agent x 2-seed grid (train in workers, then report), its resumption, and
``metarim report``'s files."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.image as mpimg
import pytest
import yaml
from cli_helpers import ENV_ID, TINY, metarim

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ("learning_curves.png", "adaptation.png", "zero_shot.png", "unit_activity.png")


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A compare preset file and the results folder of one compare run."""
    root = tmp_path_factory.mktemp("compare")
    preset = root / "tiny_grid.yaml"
    preset.write_text(
        yaml.safe_dump(
            {"agents": ["meta-rim", "lstm"], "envs": [ENV_ID], "seeds": 2, "timesteps": 256, "overrides": TINY}
        )
    )
    out = root / "results"
    result = metarim("compare", "--preset", preset, "--workers", "2", "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    return preset, out


def test_compare_runs_the_grid(grid: tuple[Path, Path]) -> None:
    _, out = grid
    runs = sorted(p.parent for p in (out / "runs").rglob("done.json"))
    assert [p.relative_to(out / "runs").as_posix() for p in runs] == [
        f"{ENV_ID}/{agent}/seed_{seed}" for agent in ("lstm", "meta-rim") for seed in (0, 1)
    ]
    for run in runs:
        assert yaml.safe_load((run / "config.yaml").read_text())["timesteps"] == 256


def test_report_files(grid: tuple[Path, Path]) -> None:
    _, out = grid
    with open(out / "summary.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 4 and {r["agent"] for r in rows} == {"meta-rim", "lstm"}
    assert all(r["status"] == "done" and r["heldout_success"] != "" for r in rows)
    for name in FIGURES:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        image = mpimg.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, name
    report = (out / "report.md").read_text()
    for name in FIGURES:
        assert f"]({name})" in report
    assert "metarim compare --preset" in report and "| meta-rim |" in report and "| lstm |" in report


def test_compare_skips_completed_runs(grid: tuple[Path, Path]) -> None:
    preset, out = grid
    done = sorted((out / "runs").rglob("done.json"))
    before = [p.stat().st_mtime_ns for p in done]
    result = metarim("compare", "--preset", preset, "--workers", "2", "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("[skip]") == 4
    assert [p.stat().st_mtime_ns for p in done] == before


def test_report_command(grid: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = grid
    lstm_only = sorted((out / "runs" / ENV_ID / "lstm").iterdir())
    result = metarim("report", *lstm_only, "--out", tmp_path / "rep")
    assert result.returncode == 0, result.stderr
    for name in (*FIGURES, "summary.csv", "aggregate.csv", "report.md"):
        assert (tmp_path / "rep" / name).is_file(), name
    assert "no unit activity" not in (tmp_path / "rep" / "report.md").read_text()  # the figure says it, not the text
    assert mpimg.imread(tmp_path / "rep" / "unit_activity.png").ndim == 3
