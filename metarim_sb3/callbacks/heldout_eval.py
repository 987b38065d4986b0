"""Zero-shot evaluation on a fixed (typically the held-out) stage during training, as a stable-baselines3 callback."""

from __future__ import annotations

import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from metarim_sb3.callbacks._common import append_csv_row, check_int, log_path, sync_eval_env
from metarim_sb3.evaluation import run_episodes

__all__ = ["HeldOutEvalCallback"]


class HeldOutEvalCallback(BaseCallback):
    """
    Zero-shot evaluation on a separate environment, typically the held-out stage of a MetaRIM family, every
    ``eval_freq`` environment steps: like SB3's ``EvalCallback`` but counted in timesteps, for the success rate,
    and without saving models. The episodes run through :func:`metarim_sb3.evaluation.run_episodes` (it carries the
    ``RecurrentPPO`` state between steps and resets it at episode starts; an episode end without
    ``info["is_success"]`` is refused).

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
    :param progress: show a bar on stderr counting each evaluation's episodes, with an ETA (needs ``tqdm``, part of
        the ``experiments`` extra; without it nothing is shown).
    """

    CSV_HEADER = ("timesteps", "success_rate", "mean_reward", "n_episodes", "mean_ep_length", "seconds")

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
        progress: bool = False,
    ) -> None:
        super().__init__(verbose)
        name = "HeldOutEvalCallback"
        if not isinstance(progress, bool):
            raise ValueError(f"{name}: progress must be True or False, got {progress!r}")
        self.progress = progress
        self._bar: Any = None
        eval_freq = check_int(name, "eval_freq", eval_freq)
        n_eval_episodes = check_int(name, "n_eval_episodes", n_eval_episodes)
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

    def _on_training_start(self) -> None:
        self.csv_path = log_path(self.log_dir, self.logger, self.csv_name)
        self._next_eval = (self.model.num_timesteps // self.eval_freq + 1) * self.eval_freq

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self._next_eval:
            self.evaluate()
            self._next_eval = (self.model.num_timesteps // self.eval_freq + 1) * self.eval_freq
        return True

    def _episode_done(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def _progress_bar(self) -> Any:
        if not self.progress:
            return None
        try:
            from tqdm import tqdm
        except ImportError:  # the experiments extra is not installed: no bar
            return None
        label = f"held-out evaluation at {self.model.num_timesteps} steps"
        return tqdm(total=self.n_eval_episodes, desc=label, unit="ep", file=sys.stderr, leave=False)

    def evaluate(self) -> dict[str, Any]:
        """
        Run one evaluation now (also usable after ``learn()``), log it and append it to the CSV.

        :return: the row: ``timesteps``, ``success_rate``, ``mean_reward``,
            ``n_episodes``, ``mean_ep_length``, ``seconds`` (wall time of the evaluation).
        :raises ValueError: if an episode ends without ``info["is_success"]`` (naming the env).
        """
        sync_eval_env("HeldOutEvalCallback", self.training_env, self.eval_env)
        started = time.perf_counter()
        self._bar = self._progress_bar()
        try:
            result = run_episodes(
                self.model,
                self.eval_env,
                self.n_eval_episodes,
                self.deterministic,
                on_episode=self._episode_done,
                warn=True,
            )
        finally:
            if self._bar is not None:
                self._bar.close()
            self._bar = None
        row = dict(
            timesteps=self.model.num_timesteps,
            success_rate=float(np.mean(result.successes)),
            mean_reward=float(np.mean(result.returns)),
            n_episodes=len(result.returns),
            mean_ep_length=float(np.mean(result.lengths)),
            seconds=round(time.perf_counter() - started, 3),
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
