"""Frames to GIF or MP4: record an environment (and optionally a policy) to an animation.

Frames of one animation must have one size. MetaRIM environments render every task at one size already (see
:meth:`metarim_gym.MultiTaskEnv.render`); :func:`save_gif` and :func:`save_mp4` also fit frames of other sources to
the largest one with :func:`fit_frame`. A GIF holds one frame per frame given, identical ones included (Pillow's
own GIF writer merges identical consecutive frames into one longer frame), so frame ``i`` is step ``i``. MP4 needs
the ``video`` extra (``imageio-ffmpeg``); :func:`save_animation` picks the format from the file name.
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


#: File name suffixes :func:`save_animation` writes.
ANIMATION_SUFFIXES = (".gif", ".mp4")
#: Frames sampled to build a GIF's one palette (the colours of the others are mapped to it).
_PALETTE_SAMPLES = 64


def _fit_all(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    if not frames:
        raise ValueError("frames must not be empty")
    shape = (max(f.shape[0] for f in frames), max(f.shape[1] for f in frames))
    return [fit_frame(np.asarray(f), shape) for f in frames]


def _check_fps(fps: int) -> None:
    if isinstance(fps, bool) or not isinstance(fps, int) or fps < 1:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")


def _paletted(frames: list[np.ndarray]) -> list[Any]:
    """
    :param frames: ``(H, W, 3)`` frames of one size.
    :return: ``P``-mode Pillow images with one shared palette: every colour exactly when the frames have at most 256
        (MiniGrid's do), else 256 colours by median cut over up to :data:`_PALETTE_SAMPLES` evenly spaced frames.
    """
    from PIL import Image

    stack = np.stack(frames).astype(np.uint32)
    keys = (stack[..., 0] << 16) | (stack[..., 1] << 8) | stack[..., 2]
    colours, indices = np.unique(keys, return_inverse=True)
    if len(colours) <= 256:
        rgb = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], axis=1).astype(np.uint8)
        palette = rgb.tobytes() + bytes(3 * (256 - len(colours)))
        images = []
        for frame_indices in indices.reshape(keys.shape).astype(np.uint8):
            image = Image.frombytes("P", (frame_indices.shape[1], frame_indices.shape[0]), frame_indices.tobytes())
            image.putpalette(palette)
            images.append(image)
        return images
    step = max(1, len(frames) // _PALETTE_SAMPLES)
    reference = Image.fromarray(np.concatenate(frames[::step], axis=0).astype(np.uint8)).quantize(
        colors=256, dither=Image.Dither.NONE
    )
    return [Image.fromarray(f.astype(np.uint8)).quantize(palette=reference, dither=Image.Dither.NONE) for f in frames]


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Write frames to an animated GIF (looping), one GIF frame per frame given.

    All frames share one palette: every colour exactly when the frames have at most 256 (MiniGrid's have a few
    dozen), else 256 colours by median cut over up to 64 evenly spaced frames. GIF durations are whole hundredths
    of a second: ``fps`` is rounded to the nearest that GIF can hold (e.g. 8 fps plays at 1/0.12 s).

    :param frames: ``(H, W, 3)`` uint8 frames; frames of different sizes are fitted to the largest height and
        width with :func:`fit_frame`.
    :param path: output file; parent folders are created.
    :param fps: frames per second.
    :return: the path written.
    """
    from PIL import GifImagePlugin

    _check_fps(fps)
    fitted = _fit_all(frames)
    duration = max(10, round(1000 / fps / 10) * 10)  # milliseconds, in the GIF's hundredths of a second
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = _paletted(fitted)
    # Pillow's save(append_images=...) drops a frame identical to the one before (adding its duration to it);
    # writing each frame's data ourselves keeps one GIF frame per step.
    with path.open("wb") as file:
        header, _ = GifImagePlugin.getheader(images[0], None, {"loop": 0, "duration": duration})
        for chunk in header:
            file.write(chunk)
        for image in images:
            for chunk in GifImagePlugin.getdata(image, duration=duration):
                file.write(chunk)
        file.write(b";")  # GIF trailer
    return path


def save_mp4(frames: Sequence[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Write frames to an H.264 MP4 video, one video frame per frame given.

    Needs ``imageio-ffmpeg`` (the ``video`` extra: ``pip install -e ".[video]"`` in a clone). Frames are padded
    with black at the right and bottom to a multiple of 16 pixels (what the encoder needs).

    :param frames: ``(H, W, 3)`` uint8 frames; frames of different sizes are fitted to the largest height and
        width with :func:`fit_frame`.
    :param path: output file; parent folders are created.
    :param fps: frames per second.
    :return: the path written.
    :raises ImportError: without ``imageio-ffmpeg``, naming the extra that installs it.
    """
    import importlib.util

    import imageio.v2 as imageio

    _check_fps(fps)
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ImportError('writing MP4 needs imageio-ffmpeg: pip install imageio-ffmpeg (or the extra: ".[video]")')
    fitted = _fit_all(frames)
    height, width = fitted[0].shape[:2]
    pad = ((0, -height % 16), (0, -width % 16), (0, 0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", macro_block_size=16) as out:
        for frame in fitted:
            out.append_data(np.pad(frame.astype(np.uint8), pad))  # type: ignore[attr-defined]
    return path


def save_animation(frames: Sequence[np.ndarray], path: str | Path, fps: int = 10) -> Path:
    """Write frames to a GIF or an MP4, by the file name's suffix (:data:`ANIMATION_SUFFIXES`).

    :param frames: ``(H, W, 3)`` uint8 frames.
    :param path: output file ending in ``.gif`` or ``.mp4``.
    :param fps: frames per second.
    :return: the path written.
    :raises ValueError: for another suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        return save_gif(frames, path, fps)
    if suffix == ".mp4":
        return save_mp4(frames, path, fps)
    raise ValueError(f"{path}: give a file name ending in one of {', '.join(ANIMATION_SUFFIXES)}")
