"""Frames to GIF: record an environment (and optionally a policy) to an animated GIF.

Frames of one GIF must have one size. MetaRIM environments render every task at one size already (see
:meth:`metarim_gym.MultiTaskEnv.render`); :func:`save_gif` also fits frames of other sources to the largest one
with :func:`fit_frame`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np


def fit_frame(frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fit a frame into a ``shape`` (height, width) canvas: scaled by a whole factor (nearest neighbour, up to
    fill as much as it can, or down when larger) and centred on black.

    :param frame: an ``(H, W, 3)`` uint8 frame.
    :param shape: the canvas (height, width) in pixels.
    :return: a frame of shape ``(*shape, 3)`` (``frame`` itself when it already fits exactly).
    """
    height, width = (int(v) for v in shape)
    if height < 1 or width < 1:
        raise ValueError(f"shape must be two positive integers (height, width), got {shape!r}")
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be an (H, W, 3) array, got shape {frame.shape}")
    h, w = frame.shape[:2]
    if (h, w) == (height, width):
        return frame
    if h > height or w > width:
        step = max(-(-h // height), -(-w // width))
        frame = frame[::step, ::step]
    else:
        scale = min(height // h, width // w)
        if scale > 1:
            frame = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
    h, w = frame.shape[:2]
    out = np.zeros((height, width, 3), dtype=frame.dtype)
    y, x = (height - h) // 2, (width - w) // 2
    out[y : y + h, x : x + w] = frame
    return out


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
    :return: the frames, one per step plus the first, all of the size of the first.
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
    shape = frames[0].shape[:2]
    return [fit_frame(f, shape) for f in frames]


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Write frames to an animated GIF (looping).

    :param frames: ``(H, W, 3)`` uint8 frames; frames of different sizes are fitted to the largest height and
        width with :func:`fit_frame`.
    :param path: output file; parent folders are created.
    :param fps: frames per second.
    :return: the path written.
    """
    import imageio.v2 as imageio

    if not frames:
        raise ValueError("frames must not be empty")
    if fps < 1:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    shape = (max(f.shape[0] for f in frames), max(f.shape[1] for f in frames))
    frames = [fit_frame(np.asarray(f), shape) for f in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)  # type: ignore[arg-type]
    return path
