"""The run's own callbacks: learning-curve and stage-mastery records, checkpoints, a NaN guard, a stop flag.

All of them work at rollout boundaries, where the model is consistent: at ``on_rollout_start`` the parameters are
those after the last ``train()`` and ``num_timesteps`` counts every step they were trained on. Checkpoints are
taken there, and an interrupted run is rolled back there (the steps of a half-collected rollout were never
trained on).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from metarim_sb3.evaluation import episode_success
from metarim_sb3.experiments.training.folder import CURVE, MASTERY, append_csv_row

__all__ = [
    "NonFiniteError",
    "RecorderState",
    "RunControl",
    "RunRecorder",
    "VisitState",
    "check_finite",
    "episode_progress",
]


class VisitState(TypedDict, total=False):
    """The stage visit a :class:`RunRecorder` is in (a row of ``mastery.csv`` once it ends)."""

    #: The stage the environments were moved to.
    stage: int
    #: The step of the visit's first counted episode end.
    entered_at: int
    #: The step the visit's success window first reached the threshold (``None``: not yet).
    mastered_at: int | None
    #: The visit's last ``window`` episode successes (only in a checkpoint's copy).
    results: list[bool]


class RecorderState(TypedDict):
    """What a checkpoint keeps of a :class:`RunRecorder` (JSON-serialisable)."""

    #: Training wall time of all segments so far, seconds.
    elapsed: float
    #: The open stage visit (``None``: none).
    visit: VisitState | None


class NonFiniteError(RuntimeError):
    """The model's parameters (or a loss) became NaN or infinite: training stopped, no checkpoint was written."""


def episode_progress(total: int, description: str, enabled: bool) -> Any:
    """
    A progress bar on stderr counting episodes, with rate and ETA (tqdm, from the ``experiments`` extra).

    :param total: episodes expected.
    :param description: what is counted, shown before the bar.
    :param enabled: show it; off (a bar that prints nothing) when false or when tqdm is not installed.
    :return: an object with ``update(n)`` and ``close()``.
    """
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - the experiments extra is missing
        from types import SimpleNamespace

        return SimpleNamespace(update=lambda n=1: None, close=lambda: None)
    return tqdm(total=total, desc=description, unit="ep", file=sys.stderr, disable=not enabled, leave=False)


def check_finite(model: Any) -> None:
    """
    :param model: an SB3 model.
    :raises NonFiniteError: naming the first policy parameter that holds a NaN or an infinity.
    """
    with th.no_grad():
        for name, param in model.policy.named_parameters():
            if not bool(th.isfinite(param).all()):
                raise NonFiniteError(
                    f"parameter {name} became NaN/inf at {model.num_timesteps} steps (lower ppo.learning_rate or "
                    "ppo.max_grad_norm); the last good checkpoint is kept"
                )


class RunRecorder(BaseCallback):
    """
    Records the training curve and how fast each stage is mastered.

    * ``curve.csv``, one row per rollout: ``timesteps, time_s`` (training wall time, summed over resumed
      segments), ``stage``, ``episodes`` (finished in the rollout), ``success_rate``, ``mean_return``,
      ``mean_length`` (empty when no episode finished), ``fps``.
    * ``mastery.csv``, one row per stage visit when it ends: ``stage, entered_at, mastered_at, left_at`` with
      ``mastered_at`` the first step at which the last ``window`` episodes of the visit reached ``threshold``
      success (empty if never: the visit is censored at ``left_at``). Same rule as the curriculum, so with the
      curriculum on, ``mastered_at - entered_at`` is the number of frames needed to adapt after a shift. A visit
      begins at the first episode end after the environments were moved to the stage; episodes that began
      before the move are not counted in it.

    :param out_dir: the run folder.
    :param threshold: success rate that counts as mastered.
    :param window: number of episodes of the visit the rate is computed over.
    :param state: the state saved in a checkpoint (:meth:`snapshot`), to resume from.
    """

    def __init__(self, out_dir: Path, threshold: float, window: int, state: RecorderState | None = None) -> None:
        super().__init__()
        self.curve_path, self.mastery_path = out_dir / CURVE, out_dir / MASTERY
        self.threshold, self.window = threshold, window
        self.elapsed = float(state["elapsed"]) if state else 0.0
        self.visit: VisitState | None = copy.deepcopy(state["visit"]) if state else None
        self._results: deque[bool] = deque(self.visit.pop("results", []) if self.visit else [], maxlen=window)
        self._segment_start = time.perf_counter()  # reset at training start
        self._segment_elapsed = self.elapsed
        self._last_row = (0.0, 0)  # (wall time, timesteps) of the previous curve row
        self._episodes: list[tuple[bool, float, float]] = []
        self._snapshot: RecorderState = self.snapshot()

    def wall_time(self) -> float:
        """:return: training wall time so far, seconds (all segments of a resumed run)."""
        return self._segment_elapsed + time.perf_counter() - self._segment_start

    def snapshot(self) -> RecorderState:
        """:return: the state to store in a checkpoint (JSON-serialisable)."""
        visit: VisitState | None = None if self.visit is None else {**self.visit, "results": list(self._results)}
        return {"elapsed": self.wall_time(), "visit": visit}

    @property
    def rollout_start_state(self) -> RecorderState:
        """The state at the start of the current rollout (what an interrupted run is rolled back to)."""
        return copy.deepcopy(self._snapshot)

    def _on_training_start(self) -> None:
        self._segment_start = time.perf_counter()
        self._last_row = (self.wall_time(), self.num_timesteps)

    def _on_rollout_start(self) -> None:
        self._snapshot = self.snapshot()

    def _on_step(self) -> bool:
        dones = self.locals["dones"]
        infos = self.locals["infos"]
        for i in np.flatnonzero(dones):
            info = infos[i]
            success = episode_success(info, self.training_env, int(i), "metarim train")
            episode = info.get("episode", {})
            self._episodes.append((success, float(episode.get("r", math.nan)), float(episode.get("l", math.nan))))
            # the stage this env is in now: after a shift, an episode that started before it is not counted
            requested = int(self.training_env.env_method("get_stage", indices=[int(i)])[0])
            self._track(requested, int(info.get("stage", requested)), success)
        return True

    def _track(self, requested: int, stage: int, success: bool) -> None:
        if self.visit is None or self.visit["stage"] != requested:
            self._close_visit()
            self.visit = {"stage": requested, "entered_at": self.num_timesteps, "mastered_at": None}
            self._results.clear()
        if stage != requested:
            return
        self._results.append(success)
        if (
            self.visit["mastered_at"] is None
            and len(self._results) == self.window
            and sum(self._results) >= self.threshold * self.window - 1e-9
        ):
            self.visit["mastered_at"] = self.num_timesteps

    def _close_visit(self) -> None:
        if self.visit is None:
            return
        row = [self.visit["stage"], self.visit["entered_at"], self.visit["mastered_at"], self.num_timesteps]
        append_csv_row(str(self.mastery_path), ("stage", "entered_at", "mastered_at", "left_at"), row)
        self.visit = None

    def _on_rollout_end(self) -> None:
        episodes, self._episodes = self._episodes, []
        n = len(episodes)
        success, ret, length = np.mean(np.array(episodes, dtype=float), axis=0) if n else (math.nan,) * 3
        now = self.wall_time()
        fps = (self.num_timesteps - self._last_row[1]) / max(now - self._last_row[0], 1e-9)
        self._last_row = (now, self.num_timesteps)
        stage = self.visit["stage"] if self.visit is not None else ""
        row = [self.num_timesteps, f"{now:.2f}", stage, n]
        row += ["" if math.isnan(v) else f"{v:.4f}" for v in (success, ret, length)]
        row.append(f"{fps:.1f}")
        header = ("timesteps", "time_s", "stage", "episodes", "success_rate", "mean_return", "mean_length", "fps")
        append_csv_row(str(self.curve_path), header, row)

    def finish(self) -> None:
        """Write the open stage visit (call once, after the last ``learn()`` of a completed run)."""
        self._close_visit()


class RunControl(BaseCallback):
    """
    Stops on request (e.g. from a SIGINT handler), checks the parameters for NaN at every rollout boundary, and
    saves a checkpoint every ``every`` steps — never a non-finite one.

    :param every: steps between checkpoints.
    :param save: writes a checkpoint (called with the model consistent, at a rollout start).
    :param last_checkpoint: the step count of the checkpoint the run started from (``0`` for a new run).
    :param curriculum: the run's curriculum callback, whose state is kept at each rollout start (``None``: none).
    """

    def __init__(
        self, every: int, save: Callable[[], None], last_checkpoint: int = 0, curriculum: Any | None = None
    ) -> None:
        super().__init__()
        self.every, self.save, self.curriculum = every, save, curriculum
        #: The curriculum's :meth:`state_dict` at the start of the current rollout (``None`` without one).
        self.rollout_curriculum: dict[str, Any] | None = None
        #: Every env's stage at the start of the current rollout.
        self.rollout_stages: list[int] = []
        self.last_checkpoint = last_checkpoint
        #: Set to ``True`` (e.g. by a signal handler) to stop at the next environment step.
        self.stop_requested = False
        #: ``num_timesteps`` at the start of the current rollout.
        self.rollout_start = last_checkpoint

    def _mark_rollout_start(self) -> None:
        self.rollout_start = self.num_timesteps
        self.rollout_stages = [int(s) for s in self.training_env.env_method("get_stage")]
        self.rollout_curriculum = self.curriculum.state_dict() if self.curriculum is not None else None

    def _on_training_start(self) -> None:
        self._mark_rollout_start()

    def _on_rollout_start(self) -> None:
        self._mark_rollout_start()
        check_finite(self.model)
        if self.num_timesteps - self.last_checkpoint >= self.every:
            self.save()
            self.last_checkpoint = self.num_timesteps

    def _on_step(self) -> bool:
        return not self.stop_requested

    def _on_rollout_end(self) -> None:
        check_finite(self.model)
