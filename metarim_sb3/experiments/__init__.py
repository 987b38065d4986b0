"""The ``metarim`` command and the pieces behind it, usable from Python too.

- :func:`resolve_config`: agent + env presets (YAML in ``presets/``) + overrides -> one plain ``dict``;
- :func:`run`: one training run, a pure function ``run(config, seed, out_dir) -> summary`` (checkpoints, resume,
  curriculum, held-out evaluation, unit activity, logs: see :mod:`metarim_sb3.experiments.training.runner`);
- :func:`plan` / :func:`run_grid`: a preset's agent x env x seed grid in worker processes;
- :func:`build_report`: ``summary.csv``, plots and ``report.md`` from run folders;
- :func:`evaluate_run`: success rate and return with 95 % CIs on one stage.

Files: ``config.py`` (presets, overrides, value checks), ``runner.py`` (one run), ``monitoring.py`` (the run's
callbacks), ``rundir.py`` (run-folder file names, atomic writes, lock, what may be cleared), ``envs.py`` (the
vectorised environments), ``signals.py`` (SIGINT/SIGTERM), ``evaluate.py`` (evaluate, render), ``compare.py``
(grid), ``report.py`` and ``plots.py`` (report), ``stats.py`` (IQM, bootstrap, Wilson), ``cli.py`` (argparse).

Needs the ``experiments`` extra (``pip install "metarim[experiments]"``: matplotlib, tensorboard, rich, tqdm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metarim_sb3._lazy import lazy_exports

if TYPE_CHECKING:
    from metarim_sb3.experiments.grid.compare import plan, run_grid
    from metarim_sb3.experiments.reporting.report import build_report
    from metarim_sb3.experiments.training.config import AGENTS, ConfigError, compare_preset, resolve_config
    from metarim_sb3.experiments.training.evaluate import evaluate_model, evaluate_run
    from metarim_sb3.experiments.training.folder import RunError
    from metarim_sb3.experiments.training.monitoring import NonFiniteError
    from metarim_sb3.experiments.training.runner import run

__all__ = [
    "AGENTS",
    "ConfigError",
    "NonFiniteError",
    "RunError",
    "build_report",
    "compare_preset",
    "evaluate_model",
    "evaluate_run",
    "plan",
    "resolve_config",
    "run",
    "run_grid",
]

#: The module that defines each public name; names are imported on first use (PEP 562), so ``metarim --help``
#: and the commands' argument checks run without importing torch and Stable-Baselines3.
_HOMES = {
    "plan": "metarim_sb3.experiments.grid.compare",
    "run_grid": "metarim_sb3.experiments.grid.compare",
    "AGENTS": "metarim_sb3.experiments.training.config",
    "ConfigError": "metarim_sb3.experiments.training.config",
    "compare_preset": "metarim_sb3.experiments.training.config",
    "resolve_config": "metarim_sb3.experiments.training.config",
    "evaluate_model": "metarim_sb3.experiments.training.evaluate",
    "evaluate_run": "metarim_sb3.experiments.training.evaluate",
    "NonFiniteError": "metarim_sb3.experiments.training.monitoring",
    "build_report": "metarim_sb3.experiments.reporting.report",
    "RunError": "metarim_sb3.experiments.training.folder",
    "run": "metarim_sb3.experiments.training.runner",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
