"""Synthetic run folders for the report tests (``metarim_sb3.experiments.reporting``, ``grid.cost``): the files of a
finished run, no training. Imported by bare name from any test folder (``tests/`` is on pytest's ``pythonpath``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

from metarim_sb3.experiments.training.config import AGENTS, resolve_config

ENV = "MiniGrid-Synthetic-v0"


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


def make_run(root: Path, agent: str, seed: int, final_stage: int, success: float, sha: str = "abc123") -> Path:
    run = root / agent / f"seed{seed}"
    run.mkdir(parents=True)
    base = resolve_config(agent if agent in AGENTS else "lstm", "MetaRIM-GoTo-v0", timesteps=1000)
    config = base.with_changes(agent=agent, env=ENV, seed=seed, curriculum={"threshold": 0.8}).to_dict()
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "versions.json").write_text(json.dumps({"started": {"git_sha": sha}}))
    (run / "done.json").write_text(json.dumps({"timesteps": 1000, "wall_time_s": 10.0, "fps": 100.0}))
    (run / "final_eval.json").write_text(json.dumps({"success_rate": success, "success_ci": [0.0, 1.0]}))
    header = ["timesteps", "time_s", "stage", "success_rate", "episodes"]
    write_csv(run / "curve.csv", header, [[500, 5.0, 0, 0.5, 10], [1000, 10.0, final_stage, 0.9, 10]])
    mastery = [[0, 0, 400, 500]] + ([[final_stage, 500, "", 1000]] if final_stage else [])
    write_csv(run / "mastery.csv", ["stage", "entered_at", "mastered_at", "left_at"], mastery)
    write_csv(run / "curriculum.csv", ["timestep", "to_stage"], [[500, final_stage]] if final_stage else [])
    return run
