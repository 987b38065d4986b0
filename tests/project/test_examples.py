"""Every numbered script in ``examples/`` runs end to end with a tiny budget and produces its output."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from repo_paths import ROOT

EXAMPLES = ROOT / "examples"


def _rows(path: Path) -> list[dict[str, str]]:
    assert path.is_file(), f"{path.name} was not written"
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def _check_01(stdout: str, tmp: Path) -> None:
    assert "episode ended: task=" in stdout
    assert "held-out task:" in stdout


def _check_02(stdout: str, tmp: Path) -> None:
    assert "training stage: success" in stdout
    assert "held-out stage: success" in stdout


def _check_03(stdout: str, tmp: Path) -> None:
    for name in ("progress.csv", "heldout_eval.csv", "rim_activity.csv", "rim_activity.npz", "model.zip"):
        assert (tmp / "run" / name).is_file(), name
    assert len(_rows(tmp / "run" / "heldout_eval.csv")) >= 1
    assert "held-out stage: success" in stdout


def _check_04(stdout: str, tmp: Path) -> None:
    assert "zero-shot success on the held-out stage:" in stdout
    assert _rows(tmp / "run" / "heldout_eval.csv")
    shifts = _rows(tmp / "run" / "curriculum.csv")  # the tiny threshold and window make stage 0 shift
    assert shifts and shifts[0]["from_stage"] == "0"
    assert f"stage shifts ({len(shifts)}, from curriculum.csv)" in stdout


def _check_05(stdout: str, tmp: Path) -> None:
    from matplotlib.image import imread

    image = imread(tmp / "unit_activity.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert "fraction of steps active" in stdout


#: Tiny-budget arguments (``{tmp}``: the test's temporary folder) and the check of each example's output.
CASES: dict[str, tuple[str, Callable[[str, Path], None]]] = {
    "01_make_env.py": ("--steps 256", _check_01),
    "02_train_rim.py": ("--timesteps 256 --eval-episodes 4", _check_02),
    "03_meta_rim_training.py": (
        "--timesteps 512 --n-envs 2 --window 5 --eval-episodes 2 --log-dir {tmp}/run",
        _check_03,
    ),
    "04_curriculum_zero_shot.py": (
        "--timesteps 512 --n-envs 2 --threshold 0.5 --window 2 --eval-freq 256 --eval-episodes 2 "
        "--final-episodes 4 --log-dir {tmp}/run",
        _check_04,
    ),
    "05_plot_unit_activity.py": ("--timesteps 512 --n-envs 2 --out {tmp}/unit_activity.png", _check_05),
}


@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("[0-9]*.py")), ids=lambda p: p.name)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    if script.name not in CASES:
        pytest.fail(f"examples/{script.name} has no entry in CASES of {Path(__file__).name}: add its tiny-budget run")
    args, check = CASES[script.name]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, str(script), *(a.format(tmp=tmp_path) for a in args.split())]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert result.returncode == 0, f"{script.name} exited with {result.returncode}:\n{result.stderr[-3000:]}"
    check(result.stdout, tmp_path)
