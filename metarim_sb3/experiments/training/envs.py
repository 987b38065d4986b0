"""The vectorised MetaRIM environments of a run, its evaluations and its GIFs, made in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metarim_sb3.experiments.training.yaml_io import ConfigError, YamlValue

__all__ = ["make_env"]


def make_env(
    env_id: str, n_envs: int, seed: int, env_kwargs: Mapping[str, YamlValue] | None = None, **extra: Any
) -> Any:
    """
    :param env_id: a MetaRIM id.
    :param n_envs: parallel environments (``DummyVecEnv``, each wrapped in ``Monitor``).
    :param seed: seed of the first environment (the others get ``seed + i``).
    :param env_kwargs: the run's ``env_kwargs``.
    :param extra: further ``gymnasium.make`` arguments (``stage``, ``render_mode``), over ``env_kwargs``.
    :return: the ``VecEnv``.
    :raises ConfigError: if the environment rejects the arguments (its message names the bad one).
    """
    from stable_baselines3.common.env_util import make_vec_env

    import metarim_gym  # noqa: F401  (registers the MetaRIM ids)

    kwargs = {**(env_kwargs or {}), **extra}
    try:
        return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=kwargs)
    except (TypeError, ValueError, AssertionError, ArithmeticError) as err:
        shown = {k: v for k, v in kwargs.items() if k != "render_mode"}
        raise ConfigError(f"env {env_id} with {shown}: {' '.join(str(err).split())}") from err
