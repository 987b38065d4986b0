"""Resuming a run from its checkpoint: which config keys a resume may change, the checks of the run's logs
before anything is changed, and the settings applied to the loaded model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metarim_sb3.experiments.training.folder import (
    CHECKPOINT,
    CURVE,
    DRIFT_REFERENCE,
    STEP_COLUMNS,
    RunError,
    check_csv,
)
from metarim_sb3.experiments.training.run_config import RunConfig
from metarim_sb3.experiments.training.yaml_io import ConfigError, YamlTree, YamlValue

__all__ = [
    "RESUME_APPLIED_PPO_KEYS",
    "RESUME_FIXED_KEYS",
    "apply_ppo",
    "check_resume_files",
    "has_rows",
    "resume_changes",
]


#: Config keys a resumed run cannot change: the checkpoint's network, rollout buffer and env count depend on them.
RESUME_FIXED_KEYS = (
    "policy",
    "policy_kwargs",
    "n_envs",
    "ppo.n_steps",
    "ppo.batch_size",
    "ppo.chunk_len",
    "ppo.gamma",
    "ppo.gae_lambda",
)
#: ``ppo`` keys a resumed run applies to the loaded model (every other key is read anew from the config anyway).
RESUME_APPLIED_PPO_KEYS = ("learning_rate", "n_epochs", "clip_range", "ent_coef", "vf_coef", "max_grad_norm")


def check_resume_files(out_dir: Path, start: int) -> None:
    """
    Before a resume changes anything: every log with a timestep column is readable
    (:func:`~metarim_sb3.experiments.training.folder.check_csv`), the drift reference loads, and ``curve.csv``
    reaches the checkpoint (a row per rollout up to ``start``).

    :param out_dir: the run folder.
    :param start: the checkpoint's step count.
    :raises RunError: naming the damaged file.
    """
    import csv

    import torch

    for name, column in STEP_COLUMNS.items():
        check_csv(out_dir / name, column)
    reference = out_dir / DRIFT_REFERENCE
    if reference.exists():
        try:
            torch.load(reference, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated or foreign file: zip, pickle or torch errors
            raise RunError(
                f"{reference} is damaged ({type(err).__name__}); restore it, or delete it to measure drift from "
                "this checkpoint on"
            ) from None
    if start <= 0:
        return
    last = -1.0
    if (out_dir / CURVE).exists():
        with open(out_dir / CURVE, newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
        if rows and "timesteps" in rows[0]:
            index = rows[0].index("timesteps")
            for row in rows[1:]:
                try:
                    if len(row) == len(rows[0]) and start >= float(row[index]) > last:
                        last = float(row[index])
                except ValueError:
                    continue
    if last != start:
        shown = "has no rows" if last < 0 else f"ends at {last:.0f} steps"
        raise RunError(
            f"{out_dir / CURVE} {shown} but {CHECKPOINT} is at {start} steps: rows are missing (the file was "
            "truncated or emptied); restore it, or start the run over with --force"
        )


def has_rows(path: Path) -> bool:
    """
    :param path: a CSV file.
    :return: whether it exists and holds a row below its header.
    """
    if not path.exists():
        return False
    with open(path, encoding="utf-8") as file:
        return sum(1 for line in file if line.strip()) > 1


def _flat(tree: YamlTree, prefix: str = "") -> dict[str, YamlValue]:
    out: dict[str, YamlValue] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and f"{prefix}{key}" not in RESUME_FIXED_KEYS:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def resume_changes(saved: RunConfig, config: RunConfig) -> dict[str, float | int]:
    """
    :param saved: the config the checkpoint was written with (its ``config.yaml``; its ``seed`` is not compared).
    :param config: the config the run resumes with.
    :return: the ``ppo`` settings to apply to the loaded model.
    :raises ConfigError: if ``config`` changes a key the checkpoint fixes.
    """
    old, new = _flat(saved.to_dict()), _flat(config.to_dict())
    fixed = [k for k in RESUME_FIXED_KEYS if k in old and old.get(k) != new.get(k)]
    if fixed:
        raise ConfigError(
            f"--resume cannot change {', '.join(fixed)} (fixed by the checkpoint); keys a resume may change: "
            f"ppo.{', ppo.'.join(RESUME_APPLIED_PPO_KEYS)}, timesteps and the evaluation, curriculum, checkpoint, "
            "fast_slow and env_kwargs settings"
        )
    return {k: getattr(config.ppo, k) for k in RESUME_APPLIED_PPO_KEYS}


def apply_ppo(model: Any, settings: Mapping[str, float | int]) -> None:
    """
    Set the resumable ``ppo`` settings on a loaded model (schedules rebuilt as SB3 builds them).

    :param model: the model loaded from the checkpoint.
    :param settings: from :func:`resume_changes`.
    """
    from stable_baselines3.common import utils

    schedule = getattr(utils, "FloatSchedule", None) or utils.get_schedule_fn  # FloatSchedule: SB3 >= 2.6

    for key, value in settings.items():
        setattr(model, key, schedule(value) if key == "clip_range" else value)
    model._setup_lr_schedule()
