"""GIF and MP4 output of :mod:`metarim_gym.rendering`: one frame per step, identical steps included."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from metarim_gym.rendering import record_frames, save_animation, save_gif, save_mp4


def _gif_frames(path: Path) -> list[np.ndarray]:
    frames = []
    with Image.open(path) as gif:
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
    return frames


def test_gif_keeps_identical_frames_and_their_pixels(tmp_path: Path) -> None:
    """Turning in place against a wall, or a step that changes nothing, still is one GIF frame per step."""
    frames = record_frames("MetaRIM-DoorKey-v0", steps=12, seed=0)
    repeated = [frames[0], frames[0], frames[0], frames[1], frames[1], *frames[2:]]
    path = save_gif(repeated, tmp_path / "steps.gif", fps=8)
    read = _gif_frames(path)
    assert len(read) == len(repeated)
    for got, want in zip(read, repeated, strict=True):
        np.testing.assert_array_equal(got, want)  # MiniGrid frames have few colours: kept exactly
    with Image.open(path) as gif:
        assert gif.info["loop"] == 0 and gif.info["duration"] == 120  # 8 fps in GIF's hundredths of a second


def test_gif_of_random_actions_has_every_step(tmp_path: Path) -> None:
    env = gym.make("MetaRIM-GoTo-v0", render_mode="rgb_array")
    frames = record_frames(env, steps=40, seed=1)
    unique = len({f.tobytes() for f in frames})
    assert len(_gif_frames(save_gif(frames, tmp_path / "goto.gif"))) == len(frames) >= unique


def test_mp4_has_every_frame(tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as imageio

    frames = record_frames("MetaRIM-GoTo-v0", steps=15, seed=0)
    frames = [frames[0], frames[0], *frames[1:]]
    path = save_animation(frames, tmp_path / "sub" / "goto.mp4", fps=10)
    assert path.stat().st_size > 0
    with imageio.get_reader(path, format="FFMPEG") as reader:
        read = [frame for frame in reader.iter_data()]  # list(reader) would take its length, inf
        assert reader.get_meta_data()["fps"] == 10
    assert len(read) == len(frames)
    height, width = frames[0].shape[:2]
    assert read[0].shape == (height + -height % 16, width + -width % 16, 3)
    diff = np.abs(read[3][:height, :width].astype(int) - frames[3].astype(int))
    assert diff.mean() < 8  # lossy, but the same picture


def test_mp4_without_ffmpeg_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "imageio_ffmpeg" else real(name))
    with pytest.raises(ImportError, match=r"\[video\]"):
        save_mp4([np.zeros((16, 16, 3), np.uint8)], tmp_path / "x.mp4")


def test_animation_suffixes_and_bad_input(tmp_path: Path) -> None:
    frame = np.zeros((16, 16, 3), np.uint8)
    assert save_animation([frame], tmp_path / "one.GIF").is_file()
    with pytest.raises(ValueError, match=r"\.gif, \.mp4"):
        save_animation([frame], tmp_path / "x.avi")
    with pytest.raises(ValueError, match="empty"):
        save_gif([], tmp_path / "empty.gif")
    with pytest.raises(ValueError, match="fps"):
        save_gif([frame], tmp_path / "zero.gif", fps=0)


def test_render_command_writes_an_mp4(tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    from metarim_sb3.experiments.cli import main

    out = tmp_path / "random.mp4"
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "--env", "MetaRIM-DoorKey-v0", "--steps", "5", "--out", str(out)])
    assert exit_info.value.code == 0
    assert out.stat().st_size > 0 and out.read_bytes()[4:8] == b"ftyp"  # an MP4 container
