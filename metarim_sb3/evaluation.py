"""The one evaluation loop: every evaluation of a model in metarim_sb3 runs its episodes through :func:`run_episodes`.

Its callers: :class:`~metarim_sb3.callbacks.StageEvalCallback`, :class:`~metarim_sb3.callbacks.HeldOutEvalCallback`,
:class:`~metarim_sb3.callbacks.ZeroShotAtMasteryCallback` and ``metarim evaluate`` (with the tests after training
of ``generalization``, which call it). The loop is SB3's ``evaluate_policy``, step for step (the same ``predict``
calls, so the same episodes and, with sampled actions, the same random draws), which also collects each
episode's ``info["is_success"]`` under one rule (:func:`run_episodes`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv

__all__ = ["SUCCESS_KEY", "EpisodeResults", "episode_success", "run_episodes"]

#: The ``info`` key every episode end must carry: whether the episode succeeded.
SUCCESS_KEY = "is_success"


class EpisodeResults(NamedTuple):
    """Outcome of the episodes of one evaluation: one entry per episode in each list, in the order they ended."""

    #: ``info["is_success"]`` of each episode.
    successes: list[bool]
    #: Return of each episode (``Monitor``'s ``info["episode"]["r"]`` when the envs are wrapped in it).
    returns: list[float]
    #: Length of each episode, in steps.
    lengths: list[int]


def _env_name(env: VecEnv, index: int) -> str:
    """The id (or class) of env ``index`` of ``env``, for a message."""
    try:
        spec = env.get_attr("spec", indices=[index])[0]
        if spec is not None and getattr(spec, "id", None):
            return str(spec.id)
    except Exception:  # an env without the attribute: fall back to its class
        pass
    try:
        return type(env.get_attr("unwrapped", indices=[index])[0]).__name__
    except Exception:
        return f"env {index} of {type(env).__name__}"


def episode_success(info: dict[str, Any], env: VecEnv, index: int, where: str) -> bool:
    """
    The success of an episode that just ended, under the one rule of every evaluation and training tracker: its final
    ``info`` must carry ``info["is_success"]`` (every MetaRIM env sets it when an episode is terminated or truncated);
    an episode end without it is refused, neither skipped (which would drop failures) nor counted as a failure (which
    would invent one).

    :param info: the episode's final ``info``.
    :param env: the vectorised env it came from (for the message).
    :param index: the env's index in ``env``.
    :param where: who asks (the class or function named in the message).
    :return: ``bool(info["is_success"])``.
    :raises ValueError: if ``info`` has no ``"is_success"``, naming the env.
    """
    if SUCCESS_KEY not in info:
        raise ValueError(
            f"{where}: an episode of {_env_name(env, index)} ended without info[{SUCCESS_KEY!r}]; every "
            f"episode end must say whether it succeeded (MetaRIM envs always do)"
        )
    return bool(info[SUCCESS_KEY])


def run_episodes(
    model: Any,
    env: VecEnv,
    n_episodes: int,
    deterministic: bool,
    *,
    on_episode: Callable[[], None] | None = None,
    warn: bool = False,
) -> EpisodeResults:
    """
    Run ``n_episodes`` episodes of ``model`` on ``env``: ``env`` is reset first and the episodes are spread evenly
    over its envs (env ``i`` plays ``(n_episodes + i) // num_envs``), the recurrent state is carried between steps
    and reset at each episode start: SB3's ``evaluate_policy``, whose per-step hook reads each episode's success.

    **The rule for success**: every episode end must carry ``info["is_success"]``. Every MetaRIM env sets it on the
    last step of each episode, terminated or truncated (``True`` iff it terminated with a positive reward), so an
    episode end without it comes from another env (or a wrapper that ends episodes on its own, such as a
    ``TimeLimit`` shorter than the task's): it is refused with a :class:`ValueError` naming the env and the key.
    It is neither skipped (that would drop failures and inflate the success rate) nor counted as a failure (that
    would report a made-up number).

    :param model: an SB3 model (anything with ``predict(obs, state, episode_start, deterministic)``).
    :param env: the evaluation ``VecEnv`` (wrap its envs in ``Monitor`` for exact returns and lengths: then an
        episode ends where ``Monitor`` says it does).
    :param n_episodes: episodes in all, >= 1.
    :param deterministic: greedy actions (``False``: sampled ones).
    :param on_episode: called after each episode ends (e.g. to advance a progress bar).
    :param warn: warn if ``env`` is not wrapped in ``Monitor`` (as ``evaluate_policy`` does).
    :return: success, return and length of each episode.
    :raises ValueError: if an episode ends without ``info["is_success"]`` (naming the env), or ``n_episodes < 1``.
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes < 1:
        raise ValueError(f"run_episodes: n_episodes must be an integer >= 1, got {n_episodes!r}")
    successes: list[bool] = []

    def collect(locals_: dict[str, Any], _globals: dict[str, Any]) -> None:
        """``evaluate_policy``'s per-env hook: the success of each episode it counts, in its order."""
        info = locals_["info"]
        if not locals_["done"] or (locals_["is_monitor_wrapped"] and "episode" not in info):
            return  # mid-episode, or a "done" that is no episode end (e.g. a lost life)
        successes.append(episode_success(info, env, int(locals_["i"]), "run_episodes"))
        if on_episode is not None:
            on_episode()

    rewards, lengths = evaluate_policy(
        model,
        env,
        n_eval_episodes=int(n_episodes),
        deterministic=deterministic,
        return_episode_rewards=True,
        warn=warn,
        callback=collect,
    )
    returns = [float(r) for r in rewards]  # type: ignore[union-attr]
    lengths = [int(n) for n in lengths]  # type: ignore[union-attr]
    return EpisodeResults(successes, returns, lengths)
