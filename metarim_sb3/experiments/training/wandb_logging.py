"""Optional Weights & Biases logging of a training run (``metarim train --wandb``).

wandb is not a dependency: it is the ``wandb`` extra (``pip install -e ".[wandb]"``). With ``--wandb`` the run's
SB3 logger gets one more output, :class:`WandbOutputFormat`, which mirrors every numeric scalar that goes to
``progress.csv`` and TensorBoard (x axis: ``global_step``, the run's env steps), and the final summary
(held-out success and return, steps, wall time) lands in the W&B run's summary. The W&B run's files are written
under the run folder (``RUN/wandb/``); its id is kept in ``RUN/wandb_run_id.txt``, so that ``--resume`` continues
the same W&B run. The usual wandb variables apply: ``WANDB_MODE=offline`` (nothing leaves the machine; upload later
with ``wandb sync RUN/wandb/offline-run-*``), ``WANDB_PROJECT`` (default ``metarim``), ``WANDB_ENTITY``.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from numbers import Real
from pathlib import Path
from typing import Any

from stable_baselines3.common.logger import KVWriter

from metarim_sb3.experiments.training.folder import RunError
from metarim_sb3.experiments.training.result import RunResult
from metarim_sb3.experiments.training.run_config import RunConfig

__all__ = ["RUN_ID_FILE", "WANDB_INSTALL", "WandbOutputFormat", "WandbRun", "require_wandb"]

#: How to install the extra (named in the one-line error when wandb is missing).
WANDB_INSTALL = 'pip install -e ".[wandb]"'
#: The file in the run folder that keeps the W&B run id (``--resume`` logs into the same W&B run).
RUN_ID_FILE = "wandb_run_id.txt"
#: The summary keys of ``done.json`` copied into the W&B run's summary.
SUMMARY_KEYS = ("heldout_success", "heldout_return", "timesteps", "wall_time_s", "fps", "final_stage")


def require_wandb() -> None:
    """
    :raises ModuleNotFoundError: when wandb is not installed, with a message naming the extra to install.
    """
    if importlib.util.find_spec("wandb") is None:
        raise ModuleNotFoundError(f"--wandb needs the wandb package, not installed here: {WANDB_INSTALL}")


class WandbOutputFormat(KVWriter):
    """
    An SB3 logger output that sends the numeric scalars of each ``logger.dump`` to a W&B run.

    Strings, images, figures, videos and keys excluded for ``"wandb"`` are skipped. Each dump is logged with
    ``global_step`` (the ``step`` SB3 passes: the model's timestep count), the run's x axis.

    :param run: a W&B run (``wandb.init``'s result) or any object with ``log(dict)``.
    """

    def __init__(self, run: Any) -> None:
        self.run = run

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        """
        :param key_values: the logger's values of this dump.
        :param key_excluded: per key, the output formats it is excluded from.
        :param step: the model's timestep count.
        """
        data: dict[str, float | int] = {}
        for key, value in key_values.items():
            if "wandb" in (key_excluded.get(key) or ()):
                continue
            if isinstance(value, Real) or (hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0):
                try:
                    data[key] = value.item() if hasattr(value, "item") else value
                except (TypeError, ValueError):
                    continue
        if data:
            self.run.log({**data, "global_step": int(step)})

    def close(self) -> None:
        """Nothing to close here: :meth:`WandbRun.finish` ends the W&B run."""


class WandbRun:
    """
    The W&B run of one training run: started once the run folder is taken, finished when training ends.

    :param config: the run's resolved config (logged as the W&B run's config, with the seed).
    :param seed: the run's seed.
    :param out_dir: the run folder; the W&B files go to ``out_dir/wandb/``.
    :param resume: continue the W&B run whose id is in ``out_dir/`` :data:`RUN_ID_FILE` (a new one if none).
    """

    def __init__(self, config: RunConfig, seed: int, out_dir: Path, resume: bool) -> None:
        require_wandb()
        self.config = config.with_changes(seed=seed).to_dict()
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.run: Any = None

    def start(self) -> WandbOutputFormat:
        """
        Start (or, on resume, continue) the W&B run; call it after the run folder has been taken.

        :return: the SB3 logger output that mirrors the run's scalars to it.
        :raises RunError: when wandb cannot start the run (e.g. online mode without an account).
        """
        import wandb

        id_file = self.out_dir / RUN_ID_FILE
        run_id = id_file.read_text().strip() if self.resume and id_file.exists() else secrets.token_hex(6)
        id_file.write_text(run_id + "\n")
        try:
            self.run = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "metarim"),
                name=self.out_dir.name,
                id=run_id,
                resume="allow",
                dir=str(self.out_dir),
                config=self.config,
                reinit="create_new",
            )
        except Exception as err:  # no account configured, no network, a bad WANDB_* setting
            message = " ".join(str(err).split())[:300]
            raise RunError(
                f"--wandb: wandb could not start a run ({type(err).__name__}: {message}); log in (wandb login) or "
                "set WANDB_MODE=offline, then run the command again (nothing was trained; a new run needs --force now)"
            ) from None
        self.run.define_metric("global_step")
        self.run.define_metric("*", step_metric="global_step")
        return WandbOutputFormat(self.run)

    def finish(self, summary: RunResult | None) -> None:
        """
        Finish the W&B run (a no-op if it never started).

        :param summary: the training run's result (:func:`~metarim_sb3.experiments.training.runner.run`), or none when
            training raised: then the W&B run is marked failed.
        """
        if self.run is None:
            return
        status = None if summary is None else summary.get("status")
        if summary is not None and status == "done":
            self.run.summary.update({k: v for k, v in summary.items() if k in SUMMARY_KEYS})
        self.run.finish(exit_code=0 if status in ("done", "interrupted") else 1)
        self.run = None
