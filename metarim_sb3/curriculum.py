"""Callbacks for shifting-task training: a success-threshold curriculum, and evaluation on a held-out stage.

Both work with any environment that follows the MetaRIM stage protocol (:class:`metarim_gym.MultiTaskEnv`):
``get_stage()``, ``set_stage(i)`` (effective at the next reset), ``n_stages``, and ``info["stage"]`` /
``info["is_success"]``.
"""

from __future__ import annotations

import math
import os
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, sync_envs_normalization

from metarim_sb3._csvlog import append_csv_row

__all__ = ["CurriculumCallback", "HeldOutEvalCallback"]


def _log_path(log_dir: str | None, logger: Logger, file_name: str) -> str | None:
    """``log_dir/file_name``, ``log_dir`` defaulting to the logger's folder; ``None`` if there is neither."""
    folder = log_dir if log_dir is not None else logger.get_dir()
    if folder is None:
        return None
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, file_name)


def _positive_int(owner: str, name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")


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
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
            raise ValueError(f"{name}: threshold must be in (0, 1], got {threshold!r}")
        _positive_int(name, "window", window)
        _positive_int(name, "min_steps", min_steps, minimum=0)
        if start_stage is not None:
            _positive_int(name, "start_stage", start_stage, minimum=0)
        if not isinstance(csv_name, str) or not csv_name:
            raise ValueError(f"{name}: csv_name must be a non-empty file name, got {csv_name!r}")
        self.threshold, self.window, self.min_steps = float(threshold), int(window), int(min_steps)
        self.cycle, self.start_stage, self.log_dir, self.csv_name = cycle, start_stage, log_dir, csv_name
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
    def success_rate(self) -> float:
        """Success rate over the current window (``nan`` while it is empty)."""
        return self._n_success / len(self._results) if self._results else math.nan

    @property
    def steps_in_stage(self) -> int:
        """Environment steps (all envs) since the current stage began."""
        return self.model.num_timesteps - self._stage_start

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
        self.csv_path = _log_path(self.log_dir, self.logger, self.csv_name)

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


class HeldOutEvalCallback(BaseCallback):
    """
    Zero-shot evaluation on a separate environment, typically the held-out stage of a MetaRIM family, every
    ``eval_freq`` environment steps: like SB3's ``EvalCallback`` but counted in timesteps, for the success rate,
    and without saving models. Recurrent states are handled by SB3's ``evaluate_policy`` (it carries the
    ``RecurrentPPO`` state between steps and resets it at episode starts).

    Logs ``<log_prefix>/success_rate``, ``<log_prefix>/mean_reward``, ``<log_prefix>/mean_ep_length`` and
    ``<log_prefix>/n_episodes`` (shown at the next log dump) and appends a row ``timesteps, success_rate,
    mean_reward, n_episodes, mean_ep_length`` to ``<log_dir>/<csv_name>`` after each evaluation (the file closed
    after every row). :attr:`evaluations` holds the same rows.

    :param eval_env: the evaluation environment: a ``VecEnv``, a ``gym.Env`` (wrapped in ``Monitor`` if it is not),
        or an env id, made as ``gym.make(eval_env, stage="heldout")``.
    :param eval_freq: evaluate when the model's timestep count passes a multiple of this, ``>= 1``.
    :param n_eval_episodes: episodes per evaluation, ``>= 1``.
    :param deterministic: greedy actions.
    :param log_dir: folder of the CSV; ``None``: the model logger's folder (no CSV if it has none).
    :param csv_name: file name of the CSV.
    :param log_prefix: prefix of the logged keys.
    :param verbose: ``1`` prints each evaluation.
    """

    CSV_HEADER = ("timesteps", "success_rate", "mean_reward", "n_episodes", "mean_ep_length")

    def __init__(
        self,
        eval_env: gym.Env | VecEnv | str,
        eval_freq: int = 10_000,
        n_eval_episodes: int = 10,
        deterministic: bool = True,
        log_dir: str | None = None,
        csv_name: str = "heldout_eval.csv",
        log_prefix: str = "eval_heldout",
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        name = "HeldOutEvalCallback"
        _positive_int(name, "eval_freq", eval_freq)
        _positive_int(name, "n_eval_episodes", n_eval_episodes)
        if isinstance(eval_env, str):
            import metarim_gym  # noqa: F401  (registers the MetaRIM ids)

            eval_env = gym.make(eval_env, stage="heldout")
        if isinstance(eval_env, gym.Env):
            env = eval_env if is_wrapped(eval_env, Monitor) else Monitor(eval_env)
            eval_env = DummyVecEnv([lambda: env])
        if not isinstance(eval_env, VecEnv):
            raise ValueError(f"{name}: eval_env must be a VecEnv, a gym.Env or an env id, got {type(eval_env)}")
        self.eval_env = eval_env
        self.eval_freq, self.n_eval_episodes, self.deterministic = int(eval_freq), int(n_eval_episodes), deterministic
        self.log_dir, self.csv_name, self.log_prefix = log_dir, csv_name, log_prefix
        #: One dict per evaluation, with the CSV's columns.
        self.evaluations: list[dict[str, Any]] = []
        #: Path of the CSV (``None`` if there is no log folder).
        self.csv_path: str | None = None
        self._next_eval = 0
        self._successes: list[bool] = []

    def _on_training_start(self) -> None:
        self.csv_path = _log_path(self.log_dir, self.logger, self.csv_name)
        self._next_eval = (self.model.num_timesteps // self.eval_freq + 1) * self.eval_freq

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self._next_eval:
            self.evaluate()
            self._next_eval = (self.model.num_timesteps // self.eval_freq + 1) * self.eval_freq
        return True

    def _collect_success(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        if locals_["done"]:
            success = locals_["info"].get("is_success")
            if success is not None:
                self._successes.append(bool(success))

    def evaluate(self) -> dict[str, Any]:
        """
        Run one evaluation now (also usable after ``learn()``), log it and append it to the CSV.

        :return: the row: ``timesteps``, ``success_rate`` (``nan`` if the env reports none), ``mean_reward``,
            ``n_episodes``, ``mean_ep_length``.
        """
        try:
            sync_envs_normalization(self.training_env, self.eval_env)
        except AttributeError as err:
            raise ValueError(
                "HeldOutEvalCallback: the training and evaluation environments must be wrapped alike "
                f"(VecNormalize): {err}"
            ) from err
        self._successes = []
        rewards, lengths = evaluate_policy(
            self.model,
            self.eval_env,
            n_eval_episodes=self.n_eval_episodes,
            deterministic=self.deterministic,
            callback=self._collect_success,
            return_episode_rewards=True,
        )
        row = dict(
            timesteps=self.model.num_timesteps,
            success_rate=float(np.mean(self._successes)) if self._successes else math.nan,
            mean_reward=float(np.mean(rewards)),  # type: ignore[arg-type]
            n_episodes=len(rewards),  # type: ignore[arg-type]
            mean_ep_length=float(np.mean(lengths)),
        )
        self.evaluations.append(row)
        for key in ("success_rate", "mean_reward", "mean_ep_length", "n_episodes"):
            self.logger.record(f"{self.log_prefix}/{key}", row[key])
        if self.csv_path is not None:
            append_csv_row(self.csv_path, self.CSV_HEADER, [row[k] for k in self.CSV_HEADER])
        if self.verbose >= 1:
            print(
                f"{self.log_prefix} at {row['timesteps']} steps: success {row['success_rate']:.2f}, "
                f"reward {row['mean_reward']:.3f} over {row['n_episodes']} episodes"
            )
        return row
