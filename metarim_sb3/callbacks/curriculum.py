"""A success-threshold curriculum: move the training environments to the next stage once the agent masters one.

Works with any environment that follows the MetaRIM stage protocol (:class:`metarim_gym.MultiTaskEnv`):
``get_stage()``, ``set_stage(i)`` (effective at the next reset), ``n_stages``, and ``info["stage"]`` /
``info["is_success"]``. Held-out evaluation lives in :mod:`metarim_sb3.callbacks.heldout_eval`.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from metarim_sb3.callbacks._common import append_csv_row, check_int, check_real, log_path

__all__ = ["CurriculumCallback"]


class CurriculumCallback(BaseCallback):
    """
    Moves every environment of the training ``VecEnv`` to the next stage when the agent masters the current one.

    After each step, the finished episodes of the *current* stage (by ``info["stage"]``; episodes that started
    before a shift are ignored) feed a window of the last ``window`` ``info["is_success"]`` values. When the
    window is full, its success rate is ``>= threshold`` and at least ``min_steps`` environment steps were spent
    in the stage, the callback calls ``env_method("set_stage", next)`` on every environment (effective at each
    one's next reset), empties the window and restarts the step count. After the last stage it stops, or with
    ``cycle=True`` goes back to stage 0 (to measure forgetting).

    Logs ``curriculum/stage``, ``curriculum/steps_in_stage``, ``curriculum/success_rate`` (current window,
    once it holds an episode) and ``curriculum/shifts`` at each rollout end. Each shift is kept in
    :attr:`shifts` and appended to ``<log_dir>/<csv_name>`` (columns ``timestep, from_stage, to_stage,
    success_rate``), the file closed after every row. A callback reused for several ``learn()`` calls keeps its
    window if the environments are still in its stage.

    :param threshold: success rate that triggers a shift, in ``(0, 1]``.
    :param window: number of finished episodes of the stage the rate is computed over, ``>= 1``.
    :param min_steps: environment steps (all envs together) to spend in a stage before it may shift, ``>= 0``.
    :param cycle: after the last stage, go back to stage 0 instead of staying.
    :param start_stage: move every environment to this stage at training start (effective at each one's next
        reset); ``None``: keep the stage the environments are in.
    :param log_dir: folder of the CSV; ``None``: the model logger's folder (no CSV if it has none).
    :param csv_name: file name of the CSV.
    :param verbose: ``1`` prints each shift.
    """

    CSV_HEADER = ("timestep", "from_stage", "to_stage", "success_rate")

    def __init__(
        self,
        threshold: float = 0.8,
        window: int = 100,
        min_steps: int = 0,
        cycle: bool = False,
        start_stage: int | None = None,
        log_dir: str | None = None,
        csv_name: str = "curriculum.csv",
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        name = "CurriculumCallback"
        self.threshold = check_real(name, "threshold", threshold, 0.0, 1.0, low_open=True)
        self.window = check_int(name, "window", window)
        self.min_steps = check_int(name, "min_steps", min_steps, minimum=0)
        if start_stage is not None:
            start_stage = check_int(name, "start_stage", start_stage, minimum=0)
        if not isinstance(cycle, (bool, np.bool_)):
            raise ValueError(f"{name}: cycle must be True or False, got {cycle!r}")
        if not isinstance(csv_name, str) or not csv_name:
            raise ValueError(f"{name}: csv_name must be a non-empty file name, got {csv_name!r}")
        self.cycle, self.start_stage, self.log_dir, self.csv_name = bool(cycle), start_stage, log_dir, csv_name
        #: The current stage (``None`` before training starts).
        self.stage: int | None = None
        self.n_stages = 0
        #: Every shift so far: dicts with the CSV's columns.
        self.shifts: list[dict[str, Any]] = []
        #: Path of the shift CSV (``None`` if there is no log folder).
        self.csv_path: str | None = None
        self._results: deque[bool] = deque(maxlen=self.window)
        self._n_success = 0
        self._stage_start = 0
        self._done = False  # last stage reached without cycle

    @property
    def last_stage_mastered(self) -> bool:
        """Whether the last stage reached the threshold (without ``cycle``: training stays in it from then on)."""
        return self._done

    @property
    def success_rate(self) -> float:
        """Success rate over the current window (``nan`` while it is empty)."""
        return self._n_success / len(self._results) if self._results else math.nan

    @property
    def steps_in_stage(self) -> int:
        """Environment steps (all envs) since the current stage began."""
        return self.model.num_timesteps - self._stage_start

    def state_dict(self) -> dict[str, Any]:
        """
        :return: the callback's progress (stage, window, step the stage began, shifts so far), JSON-serialisable:
            a checkpoint stores it so that a resumed run continues the same window.
        """
        return {
            "stage": self.stage,
            "results": [bool(r) for r in self._results],
            "stage_start": int(self._stage_start),
            "done": self._done,
            "shifts": [dict(row) for row in self.shifts],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """
        Continue from a :meth:`state_dict` (call before ``learn()``; the window is kept if the environments are
        still in its stage when training starts).

        :param state: a :meth:`state_dict`.
        """
        self.stage = None if state.get("stage") is None else int(state["stage"])
        self._results = deque((bool(r) for r in state.get("results", [])), maxlen=self.window)
        self._n_success = sum(self._results)
        self._stage_start = int(state.get("stage_start", 0))
        self._done = bool(state.get("done", False))
        self.shifts = [dict(row) for row in state.get("shifts", [])]

    def _on_training_start(self) -> None:
        env = self.training_env
        try:
            n_stages = set(env.get_attr("n_stages"))
            stages = env.env_method("get_stage")
        except AttributeError as err:
            raise ValueError(
                "CurriculumCallback needs environments with get_stage(), set_stage() and n_stages "
                f"(e.g. MetaRIM-* ids of metarim_gym): {err}"
            ) from err
        if len(n_stages) != 1:
            raise ValueError(f"CurriculumCallback: the environments disagree on n_stages: {sorted(n_stages)}")
        self.n_stages = int(n_stages.pop())
        first_time = self.stage is None
        target = self.start_stage if first_time and self.start_stage is not None else int(stages[0])
        if not 0 <= target < self.n_stages:
            raise ValueError(
                f"CurriculumCallback: stage {target} is not a training stage (0..{self.n_stages - 1}); "
                "train on training stages and evaluate the held-out one with HeldOutEvalCallback"
            )
        if any(int(s) != target for s in stages):
            env.env_method("set_stage", target)
        if target != self.stage:
            self.stage = target
            self._stage_start = self.model.num_timesteps
            self._results.clear()
            self._n_success = 0
            self._done = False
        self._stage_start = min(self._stage_start, self.model.num_timesteps)  # after reset_num_timesteps=True
        self.csv_path = log_path(self.log_dir, self.logger, self.csv_name)

    def _on_step(self) -> bool:
        dones = self.locals["dones"]
        if dones.any():
            infos = self.locals["infos"]
            for i in np.flatnonzero(dones):
                info = infos[i]
                success = info.get("is_success")
                if success is None or info.get("stage", self.stage) != self.stage:
                    continue
                if len(self._results) == self.window:
                    self._n_success -= self._results[0]
                self._results.append(bool(success))
                self._n_success += bool(success)
                if self._ready():
                    self._shift()
        if self.min_steps and self._ready():  # min_steps may be passed between episode ends
            self._shift()
        return True

    def _ready(self) -> bool:
        return (
            not self._done
            and len(self._results) == self.window
            and self._n_success >= self.threshold * self.window - 1e-9
            and self.steps_in_stage >= self.min_steps
        )

    def _shift(self) -> None:
        assert self.stage is not None
        old, new = self.stage, self.stage + 1
        if new >= self.n_stages:
            if not self.cycle:
                self._done = True
                if self.verbose >= 1:
                    print(f"CurriculumCallback: last stage {old} mastered at {self.model.num_timesteps} steps")
                return
            new = 0
        rate = self.success_rate
        self.training_env.env_method("set_stage", new)
        row = dict(timestep=self.model.num_timesteps, from_stage=old, to_stage=new, success_rate=rate)
        self.shifts.append(row)
        if self.csv_path is not None:
            append_csv_row(self.csv_path, self.CSV_HEADER, [row[k] for k in self.CSV_HEADER])
        if self.verbose >= 1:
            print(f"CurriculumCallback: stage {old} -> {new} at {row['timestep']} steps (success {rate:.2f})")
        self.stage = new
        self._stage_start = self.model.num_timesteps
        self._results.clear()
        self._n_success = 0

    def _on_rollout_end(self) -> None:
        self.logger.record("curriculum/stage", self.stage)
        self.logger.record("curriculum/steps_in_stage", self.steps_in_stage)
        self.logger.record("curriculum/shifts", len(self.shifts))
        if self._results:
            self.logger.record("curriculum/success_rate", self.success_rate)
