"""The ``metarim`` command and the pieces behind it, usable from Python too.

- :func:`resolve_config`: agent + env presets (YAML in ``presets/``) + overrides -> one plain ``dict``;
- :func:`run`: one training run, a pure function ``run(config, seed, out_dir) -> summary`` (checkpoints, resume,
  curriculum, held-out evaluation, unit activity, logs: see :mod:`metarim_sb3.experiments.training.runner`);
- :func:`plan` / :func:`run_grid`: a preset's agent x env x seed grid in worker processes;
- :func:`build_report`: ``summary.csv``, plots and ``report.md`` from run folders;
- :func:`evaluate_run`: success rate and return with 95 % CIs on one stage.

The package follows the three stages of an experiment:

- :mod:`~metarim_sb3.experiments.training`: one run, from its config to its run folder (``config.py``, ``runner.py``,
  ``folder.py``, ``evaluate.py``, ...);
- :mod:`~metarim_sb3.experiments.grid`: a preset's grid of runs, in worker processes or on Ray (``presets.py``,
  ``compare.py``, ``ray_backend.py``, ``cost.py``);
- :mod:`~metarim_sb3.experiments.reporting`: the report of run folders (``runs.py``, ``metrics.py``, ``stats.py``,
  ``claims.py``, ``protocol.py``, ``plots.py``, ``sections/``, ``report.py``).

Grids and reports build on training (a grid runs :func:`run` per cell, a report reads the files a run writes); a
grid reads its preset's claims and the costs measured by finished runs with the reporting code, and a run's final
evaluation takes its intervals from :mod:`~metarim_sb3.experiments.reporting.stats`. No module imports another that
imports it back.

``cli.py`` is the command (argparse) and ``presets/`` the YAML files of agents, envs and grids. The modules' old
flat paths (``metarim_sb3.experiments.config``, ``.runner``, ``.report``, ...) still import, with a
:class:`DeprecationWarning`, until metarim 0.3.0.

Needs the ``experiments`` extra (``pip install "metarim[experiments]"``: matplotlib, tensorboard, rich, tqdm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metarim_sb3._lazy import lazy_exports

if TYPE_CHECKING:
    from metarim_sb3.experiments.grid.compare import plan, run_grid
    from metarim_sb3.experiments.grid.presets import compare_preset
    from metarim_sb3.experiments.reporting.report import build_report
    from metarim_sb3.experiments.training.config import AGENTS, resolve_config
    from metarim_sb3.experiments.training.evaluate import evaluate_model, evaluate_run
    from metarim_sb3.experiments.training.folder import RunError
    from metarim_sb3.experiments.training.monitoring import NonFiniteError
    from metarim_sb3.experiments.training.runner import run
    from metarim_sb3.experiments.training.yaml_io import ConfigError

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
    "compare_preset": "metarim_sb3.experiments.grid.presets",
    "resolve_config": "metarim_sb3.experiments.training.config",
    "evaluate_model": "metarim_sb3.experiments.training.evaluate",
    "evaluate_run": "metarim_sb3.experiments.training.evaluate",
    "NonFiniteError": "metarim_sb3.experiments.training.monitoring",
    "build_report": "metarim_sb3.experiments.reporting.report",
    "RunError": "metarim_sb3.experiments.training.folder",
    "run": "metarim_sb3.experiments.training.runner",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
