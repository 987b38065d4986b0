"""Periodic evaluation on the current training stage and on every stage seen so far: the data of the adaptation
AUC (current stage) and of forgetting (earlier stages).

The episodes run through :func:`metarim_sb3.evaluation.run_episodes`, the one evaluation loop (re-exported here
with :class:`~metarim_sb3.evaluation.EpisodeResults`).
"""

from __future__ import annotations

import csv
import os
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

from metarim_sb3.callbacks._common import append_csv_row, sync_eval_env
from metarim_sb3.evaluation import EpisodeResults, run_episodes

__all__ = ["EpisodeResults", "StageEvalCallback", "run_episodes"]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"StageEvalCallback: {name} must be an integer >= 1, got {value!r}")
    return int(value)


class StageEvalCallback(BaseCallback):
    """
    Evaluates the policy on the current training stage and on every training stage seen so far.

    Evaluations run (1) at training start, (2) whenever the model's timestep count passes a multiple of
    ``every``, (3) at the first rollout end after the training stage changed (a shift by a curriculum or by the
    env's own ``steps`` / ``episodes`` schedule), and (4) at training end, each at most once per timestep count.
    The parameters do not change inside a rollout, so the evaluation at (3) is the policy at the shift, before any
    training on the new stage: the start value of the adaptation AUC
    (:func:`metarim_sb3.experiments.reporting.metrics.adaptation_auc`) and the reference of forgetting
    (:func:`metarim_sb3.experiments.reporting.metrics.forgetting`).

    With ``others="shifts"`` the periodic evaluations (2) cover the current stage only, and the other stages seen
    are evaluated at (1), (3) and (4): what forgetting needs (each stage's success when it is left and when it is
    entered again), at a fraction of the cost when evaluations are large.

    The training stage is read from the training envs (``get_stage()``; the most common value when they
    disagree, as after an ``episodes`` schedule shifted only some of them); every value any env reported joins the
    stages seen. Each stage gets ``episodes`` episodes on ``n_envs`` evaluation envs made from ``eval_env_id``
    with the ``manual`` schedule (``env_kwargs`` otherwise as in training), reseeded with ``seed`` before every
    stage, so every evaluation of a stage (and every agent evaluated with the same seed) plays the same episodes.
    The evaluation draws its random actions from a forked torch generator: training is the same with or without
    this callback.

    Appends one row per (evaluation, stage) to ``<log_dir>/<csv_name>`` (the file closed after every row)::

        timesteps, stage, current, episodes, successes, success_rate, mean_return, seconds

    ``current`` is 1 for the training stage at that time; ``seconds`` is the evaluation's wall time (what
    evaluation costs a run); an episode end without ``info["is_success"]`` is refused
    (:func:`~metarim_sb3.evaluation.run_episodes`). A run resumed with an existing CSV takes the stages seen from
    it. :attr:`evaluations` holds the rows of this session as dicts.

    :param eval_env_id: the training env id (e.g. ``"MetaRIM-DoorKey-v0"``).
    :param every: evaluate when the timestep count passes a multiple of this, >= 1.
    :param episodes: episodes per stage and evaluation, >= 1.
    :param n_envs: evaluation envs the episodes are spread over, >= 1.
    :param deterministic: greedy actions.
    :param others: when the stages seen other than the current one are evaluated: ``"every"`` evaluation, or only
        at training start, at shifts and at training end (``"shifts"``).
    :param log_dir: folder of the CSV; ``None``: the model logger's folder (no CSV if it has none).
    :param env_kwargs: the training ``env_kwargs`` (``schedule``, ``shift_every``, ``cycle`` and ``stage`` are
        replaced: the evaluation envs never shift on their own).
    :param seed: seed of the evaluation episodes.
    :param csv_name: file name of the CSV.
    :param verbose: ``1`` prints each evaluation.
    """

    CSV_HEADER = ("timesteps", "stage", "current", "episodes", "successes", "success_rate", "mean_return", "seconds")
    _OWN_KWARGS = ("schedule", "shift_every", "cycle", "stage")
    #: The values of ``others``.
    OTHERS = ("every", "shifts")

    def __init__(
        self,
        eval_env_id: str,
        every: int = 10_000,
        episodes: int = 10,
        n_envs: int = 1,
        deterministic: bool = False,
        others: str = "every",
        log_dir: str | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        seed: int = 0,
        csv_name: str = "stage_eval.csv",
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if not isinstance(eval_env_id, str) or not eval_env_id:
            raise ValueError(f"StageEvalCallback: eval_env_id must be an env id, got {eval_env_id!r}")
        self.every = _positive_int("every", every)
        self.episodes = _positive_int("episodes", episodes)
        n_envs = _positive_int("n_envs", n_envs)
        if others not in self.OTHERS:
            raise ValueError(f"StageEvalCallback: others must be one of {self.OTHERS}, got {others!r}")
        self.others = others
        if not isinstance(csv_name, str) or not csv_name:
            raise ValueError(f"StageEvalCallback: csv_name must be a non-empty file name, got {csv_name!r}")
        import metarim_gym  # noqa: F401  (registers the MetaRIM ids)

        kwargs = {k: v for k, v in (env_kwargs or {}).items() if k not in self._OWN_KWARGS}
        try:
            self.eval_env: VecEnv = make_vec_env(eval_env_id, n_envs=n_envs, seed=seed, env_kwargs=kwargs)
        except Exception as err:  # gymnasium raises several types for unknown ids and bad kwargs
            raise ValueError(f"StageEvalCallback: cannot make {eval_env_id!r} with {kwargs}: {err}") from err
        if not all(hasattr(self.eval_env.envs[0].unwrapped, a) for a in ("set_stage", "get_stage", "n_stages")):  # type: ignore[attr-defined]
            raise ValueError(
                f"StageEvalCallback: {eval_env_id} has no stages (set_stage/get_stage/n_stages); use a MetaRIM-* id"
            )
        self.deterministic, self.seed, self.log_dir, self.csv_name = deterministic, int(seed), log_dir, csv_name
        #: Path of the CSV (``None`` if there is no log folder).
        self.csv_path: str | None = None
        #: Training stages seen so far.
        self.seen: set[int] = set()
        #: The training stage at the last check (``None`` before training).
        self.current: int | None = None
        #: Rows written in this session, as dicts with the CSV's columns.
        self.evaluations: list[dict[str, Any]] = []
        self._last_eval_at = -1
        self._next_eval = 0

    # ------------------------------------------------------------------ hooks
    def _on_training_start(self) -> None:
        folder = self.log_dir if self.log_dir is not None else self.logger.get_dir()
        if folder is not None:
            os.makedirs(folder, exist_ok=True)
            self.csv_path = os.path.join(folder, self.csv_name)
            self._read_previous()
        self._next_eval = (self.model.num_timesteps // self.every + 1) * self.every
        self._check_stage()
        if self.model.num_timesteps > self._last_eval_at:
            self.evaluate()

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self._next_eval:
            changed = self._check_stage()
            self.evaluate(all_stages=changed or self.others == "every")
        return True

    def _on_rollout_end(self) -> None:
        if self._check_stage():
            self.evaluate()

    def _on_training_end(self) -> None:
        self._check_stage()
        if self.model.num_timesteps > self._last_eval_at:
            self.evaluate()

    # ------------------------------------------------------------------ internals
    def _read_previous(self) -> None:
        """Stages seen and the last evaluation of an earlier session (a resumed run), from the CSV."""
        if self.csv_path is None or not os.path.exists(self.csv_path):
            return
        with open(self.csv_path, newline="") as file:
            for row in csv.DictReader(file):
                if row.get("stage") and row.get("timesteps"):
                    self.seen.add(int(row["stage"]))
                    self._last_eval_at = max(self._last_eval_at, int(float(row["timesteps"])))

    def _check_stage(self) -> bool:
        """Read the training stage; return whether it changed since the last check."""
        try:
            stages = [int(s) for s in self.training_env.env_method("get_stage")]
        except AttributeError as err:
            raise ValueError(
                f"StageEvalCallback needs training envs with get_stage() (e.g. MetaRIM-* ids): {err}"
            ) from err
        n_stages = int(self.eval_env.get_attr("n_stages", indices=[0])[0])
        stages = [s for s in stages if s < n_stages]  # the held-out stage is never a training stage
        if not stages:
            return False
        counts = Counter(stages)
        current = max(counts, key=lambda s: (counts[s], s))
        self.seen.update(stages)
        changed = self.current is not None and current != self.current
        self.current = current
        return changed

    def evaluate(self, all_stages: bool = True) -> list[dict[str, Any]]:
        """
        Evaluate now on the current training stage and every stage seen (also usable after ``learn()``).

        :param all_stages: also the stages seen other than the current one (``False``: the current one only).
        :return: the rows written, current stage first.
        """
        sync_eval_env("StageEvalCallback", self.training_env, self.eval_env)
        if self.current is None:
            raise RuntimeError("StageEvalCallback.evaluate() needs a training stage: call it during or after learn()")
        order = [self.current, *(sorted(self.seen - {self.current}) if all_stages else [])]
        device = getattr(self.model, "device", th.device("cpu"))
        cuda = [device] if th.device(device).type == "cuda" else []
        rows = []
        with th.random.fork_rng(devices=cuda):
            for stage in order:
                started = time.perf_counter()
                self.eval_env.env_method("set_stage", stage)
                self.eval_env.seed(self.seed)
                result = run_episodes(self.model, self.eval_env, self.episodes, self.deterministic)
                n_success = sum(result.successes)
                rate = n_success / len(result.successes)
                row = dict(
                    timesteps=self.model.num_timesteps,
                    stage=stage,
                    current=int(stage == self.current),
                    episodes=len(result.returns),
                    successes=n_success,
                    success_rate=rate,
                    mean_return=float(np.mean(result.returns)),
                    seconds=round(time.perf_counter() - started, 3),
                )
                rows.append(row)
                if self.csv_path is not None:
                    append_csv_row(self.csv_path, self.CSV_HEADER, [row[k] for k in self.CSV_HEADER])
                self.logger.record(f"stage_eval/success_rate_{stage}", rate)
        self.logger.record("stage_eval/current_success_rate", rows[0]["success_rate"])
        self.evaluations.extend(rows)
        self._last_eval_at = self.model.num_timesteps
        self._next_eval = (self.model.num_timesteps // self.every + 1) * self.every
        if self.verbose >= 1:
            text = ", ".join(f"stage {r['stage']}: {r['success_rate']:.2f}" for r in rows)
            print(f"stage_eval at {self.model.num_timesteps} steps (training stage {self.current}): {text}")
        return rows

    def close(self) -> None:
        """Close the evaluation envs."""
        self.eval_env.close()
