"""Longer checks (``pytest -m slow``): an interrupted ``compare`` resumes, and the ``make demo`` grid learns."""

from __future__ import annotations

import csv
import json
import signal
import time
from pathlib import Path

import pytest
import yaml
from cli_helpers import ENV_ID, TINY, metarim, popen_metarim

pytestmark = pytest.mark.slow


def test_interrupted_compare_resumes(tmp_path: Path) -> None:
    preset = tmp_path / "grid.yaml"
    grid = {"agents": ["rim", "lstm"], "envs": [ENV_ID], "seeds": 2, "timesteps": 20480, "overrides": TINY}
    preset.write_text(yaml.safe_dump(grid))
    out = tmp_path / "results"
    proc = popen_metarim("compare", "--preset", preset, "--workers", "2", "--out", out)
    deadline = time.time() + 180
    while time.time() < deadline and len(list(out.rglob("checkpoint.json"))) < 2:
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130, stdout + stderr
    assert stdout.count("interrupted at") == 2 and not list(out.rglob("done.json"))
    assert len(list(out.rglob("train.log"))) == 2  # the two queued runs were not started after Ctrl-C
    result = metarim("compare", "--preset", preset, "--workers", "2", "--out", out, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    for done in out.rglob("done.json"):
        assert json.loads(done.read_text())["timesteps"] == 20480
        assert "resumed" in json.loads((done.parent / "versions.json").read_text())
    assert (out / "report.md").exists()


def test_quick_preset_demo(tmp_path: Path) -> None:
    """What ``make demo`` runs: every agent learns stage 0 and is shifted at least once."""
    start = time.perf_counter()
    result = metarim("compare", "--preset", "quick", "--out", tmp_path / "quick", timeout=1800)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp_path / "quick" / "summary.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 8
    for row in rows:
        assert int(row["shifts"]) >= 1, row
        assert row["adapt_mastered_0"] == "1", row  # stage 0 reached the success threshold
    print(f"quick preset: {elapsed:.0f} s")
