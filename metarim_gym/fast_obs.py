"""
A faster ``MiniGridEnv.gen_obs`` that returns the same observation, installed on the task envs of our families.

MiniGrid builds each partial view by copying the 7x7 cells around the agent into a new ``Grid``, rotating that grid
object ``agent_dir + 1`` times (a new ``Grid`` per quarter turn), walking it for visibility and encoding it cell by
cell: several hundred Python calls per step, most of the env step, which is 15-20 % of a training run
(``results/bench/profile_run_*.txt``).
:func:`view_image` reads each cell of the view once (its encoding and whether it blocks sight), turns the arrays
with ``numpy.rot90`` and runs MiniGrid's visibility walk on plain lists. The result is the same array, bit for bit;
``tests/metarim_gym/test_fast_obs.py`` checks it against MiniGrid's own ``gen_obs`` on every family and stage.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.minigrid_env import MiniGridEnv

__all__ = ["install_fast_obs", "view_image"]

_EMPTY = (OBJECT_TO_IDX["empty"], 0, 0)
_WALL = (OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0)  # what MiniGrid's slice puts outside the grid


def _visible(blocks: list[list[bool]], size: int) -> list[list[bool]]:
    """MiniGrid's ``Grid.process_vis`` on a ``size`` x ``size`` view (``blocks[i][j]``: cell blocks sight)."""
    mask = [[False] * size for _ in range(size)]
    mask[size // 2][size - 1] = True
    for j in reversed(range(size)):
        for i in range(size - 1):
            if not mask[i][j] or blocks[i][j]:
                continue
            mask[i + 1][j] = True
            if j > 0:
                mask[i + 1][j - 1] = True
                mask[i][j - 1] = True
        for i in reversed(range(1, size)):
            if not mask[i][j] or blocks[i][j]:
                continue
            mask[i - 1][j] = True
            if j > 0:
                mask[i - 1][j - 1] = True
                mask[i][j - 1] = True
    return mask


def view_image(env: MiniGridEnv) -> np.ndarray:
    """
    The agent's encoded partial view, as ``MiniGridEnv.gen_obs()["image"]`` computes it.

    :param env: an unwrapped MiniGrid environment after ``reset``.
    :return: a ``(view, view, 3)`` uint8 array.
    """
    size = env.agent_view_size
    top_x, top_y, _, _ = env.get_view_exts(size)
    grid = env.grid
    width, height, cells = grid.width, grid.height, grid.grid
    codes = np.zeros((size, size, 3), dtype=np.uint8)
    blocks = np.zeros((size, size), dtype=bool)
    for j in range(size):
        y = top_y + j
        for i in range(size):
            x = top_x + i
            if 0 <= x < width and 0 <= y < height:
                cell = cells[y * width + x]
                if cell is None:
                    codes[i, j] = _EMPTY
                else:
                    codes[i, j] = cell.encode()
                    blocks[i, j] = not cell.see_behind()
            else:
                codes[i, j] = _WALL
                blocks[i, j] = True
    turns = -(env.agent_dir + 1)  # Grid.rotate_left, agent_dir + 1 times, on [x, y] arrays
    codes = np.rot90(codes, turns, axes=(0, 1))
    if env.see_through_walls:
        mask = np.ones((size, size), dtype=bool)
    else:
        mask = np.array(_visible(np.rot90(blocks, turns).tolist(), size), dtype=bool)
    image = codes * mask[:, :, None]
    image[size // 2, size - 1] = env.carrying.encode() if env.carrying else _EMPTY
    return np.ascontiguousarray(image, dtype=np.uint8)


class _FastGenObs:
    """``env.gen_obs`` with :func:`view_image` (a plain object, not a bound method, so the env still pickles)."""

    def __init__(self, env: MiniGridEnv) -> None:
        self.env = env

    def __call__(self) -> dict[str, Any]:
        env = self.env
        return {"image": view_image(env), "direction": env.agent_dir, "mission": env.mission}


def install_fast_obs(env: Any) -> bool:
    """
    Make ``env.gen_obs`` use :func:`view_image`, on this instance only, if it is MiniGrid's own ``gen_obs``.

    :param env: an unwrapped environment.
    :return: whether it was installed (``False`` for envs that are not MiniGrid or define their own ``gen_obs``).
    """
    if not isinstance(env, MiniGridEnv) or type(env).gen_obs is not MiniGridEnv.gen_obs:
        return False
    env.gen_obs = _FastGenObs(env)  # type: ignore[method-assign]
    return True
