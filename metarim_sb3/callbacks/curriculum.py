"""A success-threshold curriculum (move the training environments to the next stage once the agent masters one),
or a fixed schedule (move them every so many frames, whatever the success).

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
from metarim_sb3.evaluation import episode_success

__all__ = ["CurriculumCallback"]


class CurriculumCallback(BaseCallback):
    """
    Moves every environment of the training ``VecEnv`` to the next stage when the agent masters the current one.

    After each step, the finished episodes of the *current* stage (by ``info["stage"]``; episodes that started
    before a shift are ignored) feed a window of the last ``window`` ``info["is_success"]`` values (an episode end
    without it is refused: :func:`metarim_sb3.evaluation.episode_success`). When the
    window is full, its success rate is ``>= threshold`` and at least ``min_steps`` environment steps were spent
    in the stage, the callback calls ``env_method("set_stage", next)`` on every environment (effective at each
    one's next reset), empties the window and restarts the step count. After the last stage it stops, or with
    ``cycle=True`` goes back to stage 0 (to measure forgetting).

    With ``every`` set the schedule is fixed instead: the environments move to the next stage after ``every``
    environment steps in a stage (``first`` steps for the first stage of the run), whatever the success, so every
    visit lasts the same number of frames and none ends early because it was mastered (a design that never
    censors a visit by its outcome). ``threshold`` and ``window`` then only fill the ``success_rate`` column.
    Make ``every`` and ``first`` multiples of the rollout size (``n_envs * n_steps``): a shift then falls on the
    last step of a rollout, and an evaluation at the rollout end sees the policy at the shift. A visit that would
    begin on the last step of training (a budget of whole visits) does not: it would have no frames.

    Logs ``curriculum/stage``, ``curriculum/steps_in_stage``, ``curriculum/success_rate`` (current window,
    once it holds an episode) and ``curriculum/shifts`` at each rollout end. Each shift is kept in
    :attr:`shifts` and appended to ``<log_dir>/<csv_name>`` (columns ``timestep, from_stage, to_stage,
    success_rate``), the file closed after every row. A callback reused for several ``learn()`` calls keeps its
    window if the environments are still in its stage.

    :param threshold: success rate that triggers a shift, in ``(0, 1]``.
    :param window: number of finished episodes of the stage the rate is computed over, ``>= 1``.
    :param min_steps: environment steps (all envs together) to spend in a stage before it may shift, ``>= 0``.
    :param cycle: after the last stage, go back to stage 0 instead of staying.
    :param every: fixed schedule: environment steps (all envs together) per visit, ``>= 1``; ``None``: shift on
        mastery.
    :param first: with ``every``, the steps of the run's first visit (a longer first stage, learnt from scratch);
        ``None``: ``every``.
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
        every: int | None = None,
        first: int | None = None,
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
        if every is not None:
            every = check_int(name, "every", every)
        if first is not None:
            if every is None:
                raise ValueError(f"{name}: first needs every (a fixed schedule), got first={first!r} and every=None")
            first = check_int(name, "first", first)
        self.every, self.first = every, first
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
        """Whether the last stage reached the threshold (without ``cycle``: training stays in it from then on).

        Always ``False`` under a fixed schedule (``every``), which does not judge mastery."""
        return self._done and self.every is None

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
                success = episode_success(info, self.training_env, int(i), "CurriculumCallback")
                if info.get("stage", self.stage) != self.stage:
                    continue
                if len(self._results) == self.window:
                    self._n_success -= self._results[0]
                self._results.append(bool(success))
                self._n_success += bool(success)
                if self._ready():
                    self._shift()
        if (self.min_steps or self.every) and self._ready():  # a step count may be passed between episode ends
            self._shift()
        return True

    @property
    def visit_length(self) -> int | None:
        """Steps the current visit lasts under the fixed schedule (``None``: shift on mastery)."""
        if self.every is None:
            return None
        return self.first if self.first is not None and not self.shifts else self.every

    def _ready(self) -> bool:
        length = self.visit_length
        if length is not None:  # no shift on the last step of training: it would open a visit of no frames
            end = getattr(self.model, "_total_timesteps", math.inf)
            return not self._done and self.steps_in_stage >= length and self.model.num_timesteps < end
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
                    what = "mastered" if self.every is None else "ends (fixed schedule)"
                    print(f"CurriculumCallback: last stage {old} {what} at {self.model.num_timesteps} steps")
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
