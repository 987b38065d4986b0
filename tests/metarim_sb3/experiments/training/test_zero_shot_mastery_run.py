"""The zero-shot evaluation at mastery inside ``metarim train`` runs: its files, and a resumed run that neither
loses nor duplicates it (nor keeps one the checkpoint never saw)."""

from __future__ import annotations

import copy
import csv
import shutil
from pathlib import Path

import pytest
from cli_helpers import ENV_ID, TINY
from sb3_contrib import RecurrentPPO

from metarim_sb3.experiments.training.config import resolve_config
from metarim_sb3.experiments.training.run_config import RunConfig
from metarim_sb3.experiments.training.runner import run

pytestmark = pytest.mark.slow  # four short trainings

HEADER = "timesteps,stage,episodes,successes,success_rate,mean_return"


def _config(timesteps: int, threshold: float, window: int) -> RunConfig:
    overrides = {**copy.deepcopy(TINY), "curriculum": {"window": window, "threshold": threshold}}
    return resolve_config("lstm", ENV_ID, overrides=overrides, timesteps=timesteps)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_mastered_run_keeps_its_row_and_model_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(_config(768, 0.01, 1), 0, out)  # any success masters a stage: the last one is reached within 768 steps
    rows = _rows(out / "zero_shot_mastery.csv")
    assert (
        len(rows) == 1 and int(rows[0]["stage"]) == 2 and int(rows[0]["episodes"]) == TINY["heldout_eval"]["episodes"]
    )
    at = int(rows[0]["timesteps"])
    assert RecurrentPPO.load(out / "mastery.zip").num_timesteps == at
    before = (out / "zero_shot_mastery.csv").read_bytes(), (out / "mastery.zip").read_bytes()
    run(_config(1024, 0.01, 1), 0, out, resume=True)
    assert ((out / "zero_shot_mastery.csv").read_bytes(), (out / "mastery.zip").read_bytes()) == before


def test_resume_drops_a_mastery_after_the_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(_config(256, 1.0, 50), 0, out)  # never mastered: the header alone
    assert (out / "zero_shot_mastery.csv").read_text().splitlines() == [HEADER]
    assert not (out / "mastery.zip").exists()
    # as left by a session interrupted after its checkpoint at 256 steps: a row and a model from later steps
    with open(out / "zero_shot_mastery.csv", "a") as file:
        file.write("300,2,2,1,0.5,0.1\n")
    shutil.copy(out / "model.zip", out / "mastery.zip")
    run(_config(512, 1.0, 50), 0, out, resume=True)
    assert (out / "zero_shot_mastery.csv").read_text().splitlines() == [HEADER]  # replayed: not reached this time
    assert not (out / "mastery.zip").exists()
