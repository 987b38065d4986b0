"""The model and callbacks of a run, built from its resolved config: the policy class, the algorithm
(sb3-contrib's ``RecurrentPPO`` or :class:`~metarim_sb3.ppo.chunked.ChunkedRecurrentPPO`) and the training
callbacks in the order they must run. Used by :func:`~metarim_sb3.experiments.training.runner.run` and by
:func:`~metarim_sb3.experiments.training.evaluate.load_policy_weights` (which rebuilds a network to load weights
into).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from metarim_sb3.experiments.training.envs import make_env
from metarim_sb3.experiments.training.folder import (
    ACTIVITY,
    CURRICULUM,
    DRIFT_BASE,
    HELDOUT_EVAL,
    MASTERY_MODEL,
    STAGE_EVAL,
    ZERO_SHOT_MASTERY,
    save_model,
    write_csv,
)
from metarim_sb3.experiments.training.run_config import RunConfig, policy_classes
from metarim_sb3.experiments.training.yaml_io import ConfigError

__all__ = ["build_callbacks", "build_model", "policy_class"]


def policy_class(name: str) -> type:
    """
    :param name: a config's ``policy``: a policy class exported by :mod:`metarim_sb3`.
    :return: the class.
    :raises ConfigError: naming the allowed policies if there is no such class.
    """
    classes = policy_classes()
    if name not in classes:
        raise ConfigError(f"unknown policy {name!r}; allowed: {', '.join(classes)}")
    return classes[name]


def build_model(config: RunConfig, env: Any, seed: int) -> Any:
    """
    The algorithm of the config: sb3-contrib's ``RecurrentPPO`` (``ppo.chunk_len: null``, padded whole sequences)
    or :class:`~metarim_sb3.ppo.chunked.ChunkedRecurrentPPO` (``ppo.chunk_len`` an integer: fixed-length chunks).

    :param config: a resolved config.
    :param env: the vectorised training environments.
    :param seed: the model's seed.
    :return: the new model.
    :raises ConfigError: if the policy or the algorithm refuses the config's settings.
    """
    from sb3_contrib import RecurrentPPO

    from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO

    ppo = config.ppo
    algorithm: type[RecurrentPPO] = RecurrentPPO
    if ppo.chunk_len is not None:
        algorithm = functools.partial(ChunkedRecurrentPPO, chunk_len=ppo.chunk_len)  # type: ignore[assignment]
    try:
        return algorithm(
            policy_class(config.policy),
            env,
            learning_rate=ppo.learning_rate,
            n_steps=ppo.n_steps,
            batch_size=ppo.batch_size,
            n_epochs=ppo.n_epochs,
            gamma=ppo.gamma,
            gae_lambda=ppo.gae_lambda,
            clip_range=ppo.clip_range,
            ent_coef=ppo.ent_coef,
            vf_coef=ppo.vf_coef,
            max_grad_norm=ppo.max_grad_norm,
            seed=seed,
            policy_kwargs=copy.deepcopy(config.policy_kwargs),
            device=config.device,
            verbose=0,
        )
    except (TypeError, ValueError, AssertionError) as err:
        name = "RecurrentPPO" if ppo.chunk_len is None else "ChunkedRecurrentPPO"
        raise ConfigError(f"cannot build {config.policy} / {name} from the config: {err}") from err


def build_callbacks(config: RunConfig, out_dir: Path, seed: int, progress: bool = False) -> list[Any]:
    """
    The algorithm's callbacks, in the order they must run (fast/slow first: its slow step ends a train()).

    :param config: a resolved config.
    :param out_dir: the run folder (the callbacks' logs go there).
    :param seed: the run seed (the evaluation environments are seeded from it).
    :param progress: the periodic held-out evaluations show a bar on stderr (as the training bar does).
    :return: the callbacks.
    :raises ConfigError: if a callback refuses its settings.
    """
    from metarim_sb3.callbacks import (
        CurriculumCallback,
        FastSlowCallback,
        HeldOutEvalCallback,
        ParameterDriftCallback,
        StageEvalCallback,
        UnitActivityCallback,
        ZeroShotAtMasteryCallback,
    )

    callbacks: list[Any] = []
    log_dir = str(out_dir)
    try:
        if config.fast_slow is not None:
            callbacks.append(FastSlowCallback(**config.fast_slow.callback_kwargs()))  # type: ignore[arg-type]
        # after fast/slow: its slow steps are in the record
        callbacks.append(ParameterDriftCallback(log_dir=log_dir, file_name=DRIFT_BASE))
        cur = config.curriculum
        curriculum = None
        if cur.enabled:
            kwargs = cur.callback_kwargs()
            curriculum = CurriculumCallback(**kwargs, log_dir=log_dir, csv_name=CURRICULUM)  # type: ignore[arg-type]
            callbacks.append(curriculum)
        held = config.heldout_eval
        if held.enabled:
            eval_env = make_env(config.env, held.n_envs, seed + 10_000, config.env_kwargs, stage="heldout")
            callbacks.append(
                HeldOutEvalCallback(
                    eval_env,
                    eval_freq=held.every,
                    n_eval_episodes=held.episodes,
                    deterministic=config.deterministic_eval,
                    log_dir=log_dir,
                    csv_name=HELDOUT_EVAL,
                    progress=progress,
                )
            )
            # after the curriculum: it sees the step on which the curriculum marks the last training stage mastered
            callbacks.append(
                ZeroShotAtMasteryCallback(
                    make_env(config.env, held.n_envs, seed + 10_000, config.env_kwargs, stage="heldout"),
                    n_eval_episodes=held.episodes,
                    # a fixed schedule does not judge mastery: the callback applies the threshold rule itself
                    curriculum=curriculum if curriculum is not None and curriculum.every is None else None,
                    threshold=cur.threshold,
                    window=cur.window,
                    deterministic=config.deterministic_eval,
                    seed=seed + 10_000,
                    log_dir=log_dir,
                    csv_name=ZERO_SHOT_MASTERY,
                    model_name=MASTERY_MODEL,
                    write_rows=write_csv,
                    save_model=save_model,
                )
            )
        stage_eval = config.stage_eval
        if stage_eval.enabled:
            callbacks.append(
                StageEvalCallback(
                    config.env,
                    every=stage_eval.every,
                    episodes=stage_eval.episodes,
                    n_envs=stage_eval.n_envs,
                    deterministic=config.deterministic_eval,
                    others=stage_eval.others,
                    log_dir=log_dir,
                    env_kwargs=config.env_kwargs,
                    seed=seed + 20_000,
                    csv_name=STAGE_EVAL,
                )
            )
        if config.activity:
            callbacks.append(UnitActivityCallback(log_dir=log_dir, file_name=ACTIVITY))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad callback settings in the config: {err}") from err
    return callbacks
