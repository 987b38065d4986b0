"""Helpers for the ``metarim`` command tests: run it in a subprocess, with tiny budgets."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from repo_paths import ROOT

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


def main_in_process(args: list[str | os.PathLike], capsys: Any) -> subprocess.CompletedProcess:
    """``cli.main(args)`` in this process (what the console script calls), as a CompletedProcess.

    :param args: the command's arguments.
    :param capsys: pytest's ``capsys`` fixture.
    """
    import pytest

    from metarim_sb3.experiments import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, exit_info.value.code, captured.out, captured.err)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit code 2, one line on stderr (no traceback), containing every one of ``needles``."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/NAME.py`` (the benchmarks are scripts, not a package)."""
    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
