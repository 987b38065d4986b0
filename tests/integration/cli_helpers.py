"""Helpers for the ``metarim`` command tests: run it in a subprocess, with tiny budgets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENV_ID = "MetaRIM-GoTo-v0"  # short episodes: the curriculum shifts within a few hundred steps

#: Config overrides that make a run take seconds: 2 envs x 32 steps per rollout, one epoch, few evaluations.
TINY = {
    "n_envs": 2,
    "ppo": {"n_steps": 32, "batch_size": 64, "n_epochs": 1},
    "curriculum": {"window": 5, "threshold": 0.4},
    "heldout_eval": {"every": 256, "episodes": 2, "n_envs": 1},
    "final_eval": {"episodes": 4, "n_envs": 2},
    "checkpoint": {"every": 128},
}


def metarim(*args: str | os.PathLike, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``python -m metarim_sb3.experiments.cli ARGS`` and capture its output."""
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "metarim_sb3.experiments.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def popen_metarim(*args: str | os.PathLike) -> subprocess.Popen:
    """Start ``metarim ARGS`` without waiting (for interrupt tests)."""
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "metarim_sb3.experiments.cli", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
