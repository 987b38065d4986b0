"""Zero-shot evaluation on the held-out stage at the moment the last training stage is first mastered."""

from __future__ import annotations

import csv
import math
import os
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from metarim_sb3.callbacks._common import check_int, check_real, log_path, repair_csv_tail, sync_eval_env, write_csv
from metarim_sb3.callbacks.curriculum import CurriculumCallback
from metarim_sb3.evaluation import episode_success, run_episodes

__all__ = ["ZeroShotAtMasteryCallback"]


def _save(model: Any, path: Path) -> None:
    model.save(path)


class ZeroShotAtMasteryCallback(BaseCallback):
    """
    Evaluates the policy on the held-out stage once, at the first step at which the last training stage is
    mastered: the zero-shot transfer of an agent that has just learnt everything it will be trained on, a point
    every run reaches at its own frame count (unlike a fixed frame count, which finds runs at different stages).

    Mastery is the curriculum's when ``curriculum`` is given (its first shift out of the last training stage, or
    the last stage marked mastered when it does not cycle); otherwise the same rule is applied here: the last
    ``window`` finished episodes of the stage (by ``info["stage"]``) reach ``threshold`` success. The
    parameters do not change inside a rollout, so the model evaluated is the one that mastered the stage. Put
    this callback after the curriculum in the callback list: it reads the curriculum's state of the same step.

    Writes ``<log_dir>/<csv_name>`` with the header ``timesteps, stage, episodes, successes, success_rate,
    mean_return`` at training start (a file with a header and no row: recorded, not reached so far) and its one
    row at mastery, and saves the model as ``<log_dir>/<model_name>`` (if given). Both files are written whole
    through ``write_rows`` (atomic by default) and ``save_model`` (pass an atomic one, as the ``metarim train``
    runner does). A run resumed with the row already in the CSV does not evaluate again; nor does one whose
    curriculum had already mastered the stage when it started (that moment is past: the CSV stays without a row).
    The episodes are reseeded with ``seed`` before the evaluation and drawn from a forked torch generator: training
    is the same with or without this callback. The episodes run through :func:`metarim_sb3.evaluation.run_episodes`
    (an episode end without ``info["is_success"]`` is refused).

    :param eval_env: the held-out evaluation ``VecEnv`` (episodes spread evenly over its envs).
    :param n_eval_episodes: episodes of the evaluation, ``>= 1``.
    :param curriculum: the run's curriculum (``None``: mastery by ``threshold`` and ``window`` here).
    :param threshold: success rate that counts as mastered, in ``(0, 1]`` (without a curriculum).
    :param window: finished episodes of the stage the rate is computed over, ``>= 1`` (without a curriculum).
    :param stage: the training stage whose mastery triggers the evaluation; ``None``: the last one
        (``n_stages - 1`` of the training envs).
    :param deterministic: greedy actions.
    :param seed: seed of the evaluation episodes (``None``: the env is not reseeded).
    :param log_dir: folder of the files; ``None``: the model logger's folder (no files if it has none).
    :param csv_name: file name of the CSV.
    :param model_name: file name of the saved model (``None``: not saved).
    :param write_rows: writes a whole CSV: ``write_rows(path, rows)``, header first (default: the one CSV writer,
        :func:`metarim_sb3.callbacks._common.write_csv`, atomic).
    :param save_model: saves the model: ``save_model(model, path)``.
    :param verbose: ``1`` prints the evaluation.
    """

    CSV_HEADER = ("timesteps", "stage", "episodes", "successes", "success_rate", "mean_return")

    def __init__(
        self,
        eval_env: VecEnv,
        n_eval_episodes: int = 10,
        curriculum: CurriculumCallback | None = None,
        threshold: float = 0.8,
        window: int = 100,
        stage: int | None = None,
        deterministic: bool = False,
        seed: int | None = 0,
        log_dir: str | None = None,
        csv_name: str = "zero_shot_mastery.csv",
        model_name: str | None = "mastery.zip",
        write_rows: Callable[[Path, list[list[Any]]], None] = write_csv,
        save_model: Callable[[Any, Path], None] = _save,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        name = "ZeroShotAtMasteryCallback"
        if not isinstance(eval_env, VecEnv):
            raise ValueError(f"{name}: eval_env must be a VecEnv, got {type(eval_env).__name__}")
        if curriculum is not None and not isinstance(curriculum, CurriculumCallback):
            raise ValueError(f"{name}: curriculum must be a CurriculumCallback or None, got {type(curriculum)}")
        self.eval_env, self.curriculum = eval_env, curriculum
        self.n_eval_episodes = check_int(name, "n_eval_episodes", n_eval_episodes)
        self.threshold = check_real(name, "threshold", threshold, 0.0, 1.0, low_open=True)
        self.window = check_int(name, "window", window)
        self.stage = None if stage is None else check_int(name, "stage", stage, minimum=0)
        if seed is not None:
            seed = check_int(name, "seed", seed, minimum=0)
        for key, value, optional in (("csv_name", csv_name, False), ("model_name", model_name, True)):
            if not (optional and value is None) and (not isinstance(value, str) or not value):
                raise ValueError(f"{name}: {key} must be a non-empty file name, got {value!r}")
        self.deterministic, self.seed, self.log_dir = bool(deterministic), seed, log_dir
        self.csv_name, self.model_name = csv_name, model_name
        self._write_rows, self._save_model = write_rows, save_model
        #: The evaluation row once mastery was reached (this session or an earlier one), else ``None``.
        self.result: dict[str, Any] | None = None
        #: Path of the CSV (``None`` if there is no log folder).
        self.csv_path: str | None = None
        self._target = -1
        self._results: deque[bool] = deque(maxlen=self.window)
        self._n_shifts = 0
        self._missed = False

    # ------------------------------------------------------------------ hooks
    def _on_training_start(self) -> None:
        if self.stage is None:
            try:
                n_stages = int(self.training_env.get_attr("n_stages", indices=[0])[0])
            except AttributeError as err:
                raise ValueError(
                    f"ZeroShotAtMasteryCallback needs training envs with n_stages (e.g. MetaRIM-* ids): {err}"
                ) from err
            self._target = n_stages - 1
        else:
            self._target = self.stage
        self.csv_path = log_path(self.log_dir, self.logger, self.csv_name)
        if self.result is None and self.csv_path is not None:
            self.result = self._read_previous(self.csv_path)
            if not os.path.exists(self.csv_path):
                self._write_rows(Path(self.csv_path), [list(self.CSV_HEADER)])
        if self.curriculum is not None:
            self._n_shifts = len(self.curriculum.shifts)
        # mastered in an earlier session that kept no row: that moment cannot be evaluated any more
        self._missed = self.result is None and self.curriculum is not None and self._curriculum_mastered(True)

    def _on_step(self) -> bool:
        if self.result is not None or self._missed:
            return True
        if self._mastered():
            self.evaluate()
        return True

    def _on_rollout_end(self) -> None:
        if self.curriculum is None and self.result is None and not self._missed:
            stages = [int(s) for s in self.training_env.env_method("get_stage")]
            if self._target not in stages:  # the stage was left (fixed schedule): its window starts again
                self._results.clear()

    # ------------------------------------------------------------------ internals
    def _read_previous(self, path: str) -> dict[str, Any] | None:
        """The row of an earlier session of this run (a resumed run), if there is one."""
        if not os.path.exists(path):
            return None
        repair_csv_tail(path)
        with open(path, newline="") as file:
            for row in csv.DictReader(file):
                if row.get("timesteps"):
                    rate = float(row["success_rate"]) if row.get("success_rate") else math.nan
                    out: dict[str, Any] = {
                        k: int(float(row[k])) for k in ("timesteps", "stage", "episodes", "successes")
                    }
                    return {**out, "success_rate": rate, "mean_return": float(row["mean_return"])}
        return None

    def _curriculum_mastered(self, all_shifts: bool = False) -> bool:
        """Whether the curriculum mastered the target stage (in the shifts since the last call, or in all)."""
        assert self.curriculum is not None
        shifts: Sequence[dict[str, Any]] = self.curriculum.shifts
        new = shifts if all_shifts else shifts[self._n_shifts :]
        self._n_shifts = len(shifts)
        if any(int(s["from_stage"]) == self._target for s in new):
            return True
        return self.curriculum.stage == self._target and self.curriculum.last_stage_mastered

    def _mastered(self) -> bool:
        if self.curriculum is not None:
            if len(self.curriculum.shifts) == self._n_shifts and self.curriculum.stage != self._target:
                return False
            return self._curriculum_mastered()
        dones = self.locals["dones"]
        if not dones.any():
            return False
        infos = self.locals["infos"]
        for i in np.flatnonzero(dones):
            success = episode_success(infos[i], self.training_env, int(i), "ZeroShotAtMasteryCallback")
            if infos[i].get("stage") == self._target:
                self._results.append(bool(success))
        full = len(self._results) == self.window
        return full and sum(self._results) >= self.threshold * self.window - 1e-9

    def evaluate(self) -> dict[str, Any]:
        """
        Evaluate on the held-out stage now, write the row and save the model (called at mastery).

        :return: the row: ``timesteps``, ``stage`` (the mastered one), ``episodes``, ``successes``,
            ``success_rate``, ``mean_return``.
        :raises ValueError: if an episode ends without ``info["is_success"]`` (naming the env).
        """
        sync_eval_env("ZeroShotAtMasteryCallback", self.training_env, self.eval_env)
        device = getattr(self.model, "device", th.device("cpu"))
        cuda = [device] if th.device(device).type == "cuda" else []
        with th.random.fork_rng(devices=cuda):
            if self.seed is not None:
                self.eval_env.seed(self.seed)
            result = run_episodes(self.model, self.eval_env, self.n_eval_episodes, self.deterministic)
        n_success = sum(result.successes)
        row = dict(
            timesteps=int(self.model.num_timesteps),
            stage=self._target,
            episodes=len(result.returns),
            successes=n_success,
            success_rate=n_success / len(result.successes),
            mean_return=float(np.mean(result.returns)),
        )
        self.result = row
        if self.csv_path is not None:
            folder = Path(self.csv_path).parent
            if self.model_name is not None:
                self._save_model(self.model, folder / self.model_name)
            self._write_rows(Path(self.csv_path), [list(self.CSV_HEADER), [row[k] for k in self.CSV_HEADER]])
        self.logger.record("zero_shot_mastery/success_rate", row["success_rate"])
        self.logger.record("zero_shot_mastery/timesteps", row["timesteps"])
        if self.verbose >= 1:
            print(
                f"stage {self._target} mastered at {row['timesteps']} steps: held-out success "
                f"{row['success_rate']:.2f} over {row['episodes']} episodes"
            )
        return row
