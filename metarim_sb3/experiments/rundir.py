"""The layout of a run folder, and atomic writes into it.

::

    RUN/
      config.yaml          the full resolved config (+ seed): enough to re-run it
      versions.json        python, torch, SB3, sb3-contrib, gymnasium, minigrid, numpy, metarim, git sha
      checkpoint.zip       the latest checkpoint (RecurrentPPO.save: parameters, optimizer state, run state)
      checkpoint.json      a readable copy of the run state stored inside checkpoint.zip
      model.zip            the final model (complete runs)
      done.json            written last: the run's summary; its presence means "complete"
      curve.csv            one row per rollout (success, return, stage, wall time)
      mastery.csv          one row per stage visit (frames to reach the success threshold)
      curriculum.csv       one row per curriculum shift
      heldout_eval.csv     periodic zero-shot evaluations on the held-out stage
      final_eval.json      the held-out evaluation after training (with CIs)
      rim_activity.csv/.npz  unit x task activity (RIM agents; after a resume: the last segment only)
      progress*.csv, tensorboard/   SB3's logger (one progress file per resumed segment)
      eval_<stage>.json/_episodes.csv  written by ``metarim evaluate``
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from metarim_sb3.callbacks._common import append_csv_row

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_META",
    "CONFIG",
    "DONE",
    "FINAL_EVAL",
    "MODEL",
    "VERSIONS",
    "RunError",
    "append_csv_row",
    "find_model",
    "read_json",
    "read_run_config",
    "write_json",
    "write_yaml",
]

CONFIG = "config.yaml"
VERSIONS = "versions.json"
CHECKPOINT = "checkpoint.zip"
CHECKPOINT_META = "checkpoint.json"
MODEL = "model.zip"
DONE = "done.json"
FINAL_EVAL = "final_eval.json"


class RunError(ValueError):
    """A run folder that cannot be used as asked (no checkpoint to resume, would overwrite a finished run...)."""


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


def write_json(path: str | Path, data: Any) -> None:
    """
    Write JSON atomically (temporary file, then ``os.replace``).

    :param path: the file.
    :param data: JSON-serialisable data (NaN is written as ``NaN``).
    """
    _atomic_write(Path(path), json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_yaml(path: str | Path, data: Any) -> None:
    """
    Write YAML atomically, keys in insertion order.

    :param path: the file.
    :param data: YAML-serialisable data.
    """
    _atomic_write(Path(path), yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


def read_json(path: str | Path) -> Any:
    """
    :param path: a JSON file.
    :return: its content.
    """
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """
    :param run_dir: a run folder.
    :return: its ``config.yaml``.
    :raises RunError: if the folder has no readable config.
    """
    path = Path(run_dir) / CONFIG
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise RunError(f"{run_dir} is not a run folder: cannot read {CONFIG} ({type(err).__name__})") from err
    if not isinstance(config, dict) or "env" not in config or "agent" not in config:
        raise RunError(f"{run_dir} is not a run folder: {CONFIG} has no agent/env")
    return config


def find_model(run_dir: str | Path) -> Path:
    """
    :param run_dir: a run folder.
    :return: its final model, or else its latest checkpoint.
    :raises RunError: if it has neither.
    """
    for name in (MODEL, CHECKPOINT):
        path = Path(run_dir) / name
        if path.is_file():
            return path
    raise RunError(f"{run_dir} has no {MODEL} or {CHECKPOINT}: train it first (metarim train --out {run_dir})")
