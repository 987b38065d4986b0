"""Frames to GIF: record an environment (and optionally a policy) to an animated GIF."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np


def record_frames(
    env: gym.Env | str,
    steps: int = 100,
    seed: int = 0,
    policy: Callable[[Any], int] | None = None,
    **make_kwargs: Any,
) -> list[np.ndarray]:
    """Roll an environment out and collect its ``rgb_array`` frames.

    :param env: an environment made with ``render_mode="rgb_array"``, or an id to make with it.
    :param steps: number of steps to record (episodes restart when they end).
    :param seed: seed of the first reset and of the random policy.
    :param policy: maps an observation to an action; uniformly random actions if ``None``.
    :param make_kwargs: keyword arguments for ``gym.make`` when ``env`` is an id.
    :return: the frames, one per step plus the first.
    """
    if steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    owned = isinstance(env, str)
    if isinstance(env, str):
        env = gym.make(env, render_mode="rgb_array", **make_kwargs)
    if env.render_mode != "rgb_array":
        raise ValueError(f"env must use render_mode='rgb_array', got {env.render_mode!r}")
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    frames: list[np.ndarray] = [np.asarray(env.render())]
    for _ in range(steps):
        action = policy(obs) if policy is not None else int(rng.integers(env.action_space.n))  # type: ignore[attr-defined]
        obs, _, terminated, truncated, _ = env.step(action)
        frames.append(np.asarray(env.render()))
        if terminated or truncated:
            obs, _ = env.reset()
    if owned:
        env.close()
    return frames


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Write frames to an animated GIF (looping).

    :param frames: ``(H, W, 3)`` uint8 frames of equal size.
    :param path: output file; parent folders are created.
    :param fps: frames per second.
    :return: the path written.
    """
    import imageio.v2 as imageio

    if not frames:
        raise ValueError("frames must not be empty")
    if fps < 1:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)  # type: ignore[arg-type]
    return path
