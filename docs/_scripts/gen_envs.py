"""Generate the environment gallery: one MyST page per registered MetaRIM id, an index, and one GIF per id.

Everything comes from the code: the ids from :data:`metarim_gym.ENV_IDS`, the stages from
:data:`metarim_gym.FAMILIES`, the text from each family class's Markdown docstring, the spaces from a made
environment, grid sizes / step limits / missions from the task environments, and the frames from
:func:`metarim_gym.rendering.record_frames` (random actions, fixed seed).

Run by ``docs/conf.py`` at every build; by hand::

    python docs/_scripts/gen_envs.py OUT_DIR [--gif-dir DIR]   # without --gif-dir no GIFs are made
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import metarim_gym
from metarim_gym.tasks import Family, Stage, Task

try:
    from _common import remove_stale, write_if_changed
except ImportError:  # imported as docs._scripts.gen_envs
    from ._common import remove_stale, write_if_changed  # type: ignore[no-redef]

#: Frames per GIF in total (split evenly over the stages, held-out stage included).
GIF_FRAMES = 40
#: Side of the square GIF canvas, in pixels (every task's frame is scaled to fit).
GIF_SIZE = 224
#: Height of the stage bar drawn under each frame.
BAR_HEIGHT = 10
GIF_FPS = 4
GIF_SEED = 0
_BAR_DONE, _BAR_TODO, _BAR_HELDOUT, _BG = (240, 160, 75), (70, 70, 70), (220, 60, 60), (30, 30, 30)


def env_id_of(family_key: str) -> str:
    """The registered id of a family.

    :param family_key: key in :data:`metarim_gym.FAMILIES`.
    :return: its ``MetaRIM-*`` id.
    """
    return next(env_id for env_id, (_, key) in metarim_gym.ENV_IDS.items() if key == family_key)


def family_class(env_id: str) -> type:
    """The class behind a registered id (from its entry point string).

    :param env_id: a ``MetaRIM-*`` id.
    :return: the environment class.
    """
    module, name = metarim_gym.ENV_IDS[env_id][0].split(":")
    return getattr(importlib.import_module(module), name)


def _fmt_space(space: gym.Space) -> str:
    """A short, exact description of a space (Box bounds collapsed when they are constant along axes)."""
    if isinstance(space, gym.spaces.Dict):
        return "Dict(" + ", ".join(f"{k}={_fmt_space(s)}" for k, s in space.spaces.items()) + ")"
    if isinstance(space, gym.spaces.Box):

        def bound(a: np.ndarray) -> str:
            if np.all(a == a.flat[0]):
                return str(a.flat[0].item())
            last = a.reshape(-1, a.shape[-1])
            if np.all(last == last[0]):  # constant except along the last axis (e.g. image channels)
                return "[" + ", ".join(str(v.item()) for v in last[0]) + "]"
            return "array"

        return f"Box({bound(space.low)}, {bound(space.high)}, {space.shape}, {space.dtype})"
    return str(space)


def _task_facts(task: Task) -> dict[str, Any]:
    """Grid size, step limit and the first mission (seed 0) of one task environment."""
    import minigrid  # noqa: F401  (registers the MiniGrid and BabyAI ids)

    env = gym.make(task.env_id, **task.kwargs).unwrapped
    obs, _ = env.reset(seed=0)
    facts = {"grid": f"{env.width}×{env.height}", "max_steps": env.max_steps, "mission": obs["mission"]}
    env.close()
    return facts


def _stage_label(i: int, family: Family) -> str:
    return f"{i} (held out)" if i == len(family.stages) else str(i)


def _all_stages(family: Family) -> list[Stage]:
    return [*family.stages, family.heldout]


def _split_sections(markdown: str) -> list[tuple[str, str]]:
    """Split a Markdown docstring into ``(heading, body)`` pairs at its ``## `` headings."""
    sections: list[tuple[str, str]] = []
    heading, body = "", []
    for line in markdown.strip("\n").splitlines():
        if line.startswith("## "):
            if heading or any(b.strip() for b in body):
                sections.append((heading, "\n".join(body).strip("\n")))
            heading, body = line[3:].strip(), []
        else:
            body.append(line)
    sections.append((heading, "\n".join(body).strip("\n")))
    return sections


def _stage_details(family: Family) -> str:
    rows = [
        "| stage | task | probability | grid | step limit | mission (seed 0) |",
        "|---|---|---|---|---|---|",
    ]
    for i, stage in enumerate(_all_stages(family)):
        for task, p in zip(stage.tasks, stage.probabilities, strict=True):
            f = _task_facts(task)
            rows.append(
                f"| {_stage_label(i, family)} | {task.name} | {p:.2f} | {f['grid']} | {f['max_steps']} | "
                f"*{f['mission']}* |"
            )
    return "\n".join(rows)


def content_box(frames: list[np.ndarray], block: int = 32, threshold: float = 40.0) -> tuple[int, int, int, int]:
    """The pixel box around what is drawn in any of ``frames``, with one block of margin.

    A MiniGrid frame of a large, sparse grid (MultiRoom: 25×25 cells around a few small rooms) is mostly empty
    cells: black with thin grid lines. A ``block``×``block`` square counts as drawn when its mean brightness is above
    ``threshold`` (walls, doors, objects, the agent's highlighted view; empty cells stay near 6).

    :param frames: frames of one size.
    :param block: side of the squares, in pixels (MiniGrid's cell size at the default tile size).
    :param threshold: mean brightness (0..255) above which a square is drawn.
    :return: ``(top, bottom, left, right)`` pixel bounds; the whole frame when nothing is drawn.
    """
    height, width = frames[0].shape[:2]
    rows, cols = height // block, width // block
    drawn = np.zeros((rows, cols), dtype=bool)
    for frame in frames:
        blocks = frame[: rows * block, : cols * block].reshape(rows, block, cols, block, 3)
        drawn |= blocks.mean(axis=(1, 3, 4)) > threshold
    if not drawn.any():
        return 0, height, 0, width
    ys, xs = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    top, left = max(0, (ys[0] - 1) * block), max(0, (xs[0] - 1) * block)
    bottom, right = min(height, (ys[-1] + 2) * block), min(width, (xs[-1] + 2) * block)
    return int(top), int(bottom), int(left), int(right)


def _frame_on_canvas(frame: np.ndarray, stage: int, n_total: int) -> np.ndarray:
    """Scale a frame into the square canvas and draw the stage bar under it."""
    from PIL import Image

    h, w = frame.shape[:2]
    scale = GIF_SIZE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.NEAREST
    img = np.asarray(Image.fromarray(frame).resize(size, resample))
    canvas = np.empty((GIF_SIZE + BAR_HEIGHT, GIF_SIZE, 3), dtype=np.uint8)
    canvas[:] = _BG
    y, x = (GIF_SIZE - img.shape[0]) // 2, (GIF_SIZE - img.shape[1]) // 2
    canvas[y : y + img.shape[0], x : x + img.shape[1]] = img
    edges = np.linspace(0, GIF_SIZE, n_total + 1).round().astype(int)
    for s in range(n_total):
        colour = _BAR_TODO if s > stage else (_BAR_HELDOUT if s == n_total - 1 else _BAR_DONE)
        canvas[GIF_SIZE + 3 :, edges[s] + 1 : edges[s + 1] - 1] = colour
    return canvas


def make_gif(env_id: str, path: Path) -> Path:
    """Record every stage of an id (random actions) into one GIF with a stage bar, each stage cropped to what is
    drawn (:func:`content_box`).

    :param env_id: a ``MetaRIM-*`` id.
    :param path: the GIF to write.
    :return: the path.
    """
    from metarim_gym.rendering import record_frames, save_gif

    family = metarim_gym.FAMILIES[metarim_gym.ENV_IDS[env_id][1]]
    n_total = len(family.stages) + 1
    per_stage = max(4, GIF_FRAMES // n_total)
    frames = []
    for s in range(n_total):
        stage: int | str = "heldout" if s == len(family.stages) else s
        raw = record_frames(env_id, steps=per_stage - 1, seed=GIF_SEED, stage=stage)
        top, bottom, left, right = content_box(raw)  # one crop per stage: no zoom jumps inside a stage
        frames += [_frame_on_canvas(f[top:bottom, left:right], s, n_total) for f in raw]
    tmp = path.with_suffix(".tmp.gif")
    save_gif(frames, tmp, fps=GIF_FPS)
    write_if_changed(path, tmp.read_bytes())
    tmp.unlink()
    return path


def family_page(env_id: str, gif: Path | None, out_dir: Path) -> str:
    """The MyST page of one id.

    :param env_id: a ``MetaRIM-*`` id.
    :param gif: the GIF to show (``None``: no figure).
    :param out_dir: the folder the page is written to (GIF paths are made relative to it).
    :return: the page's Markdown.
    """
    entry_point, key = metarim_gym.ENV_IDS[env_id]
    family = metarim_gym.FAMILIES[key]
    cls = family_class(env_id)
    env = gym.make(env_id)
    obs_space, act_space = _fmt_space(env.observation_space), _fmt_space(env.action_space)
    env.close()
    n = len(family.stages)
    qual = f"{cls.__module__}.{cls.__name__}"
    lines = [
        "<!-- Generated by docs/_scripts/gen_envs.py from metarim_gym's registry and docstrings; do not edit. -->",
        "",
        f"(env-{key})=",
        f"# {family.name}",
        "",
        f"`{env_id}` · {{py:class}}`~{qual}` · {n} training stages and a held-out stage",
        "",
    ]
    if gif is not None:
        rel = Path(os.path.relpath(gif, out_dir)).as_posix()
        lines += [
            f"```{{figure}} {rel}",
            f":alt: {env_id}: random actions in every stage",
            f":width: {GIF_SIZE}px",
            "",
            f"Random actions, {max(4, GIF_FRAMES // (n + 1))} frames per stage, seed {GIF_SEED}: stage "
            + " → ".join(str(i) for i in range(n))
            + f" → held out ({n}). The bar under the grid marks the stage; its last, red segment is the held-out "
            "stage.",
            "```",
            "",
        ]
    lines += [
        "## At a glance",
        "",
        "| | |",
        "|---|---|",
        f"| id | `{env_id}` |",
        f"| entry point | `{entry_point}` |",
        f"| training stages | {n}: " + " → ".join(s.name for s in family.stages) + " |",
        f"| held-out stage | {n}: {family.heldout.name} |",
        f"| observation space | `{obs_space}` |",
        f"| action space | `{act_space}` |",
        "",
        "```python",
        "import gymnasium as gym",
        "import metarim_gym  # registers the MetaRIM-* ids",
        "",
        "# stage 0; the manual schedule keeps it there until set_stage(i)",
        f'env = gym.make("{env_id}")',
        f"# stage {n}, held out: for zero-shot evaluation",
        f'heldout = gym.make("{env_id}", stage="heldout")',
        "# every training stage in turn, a shift every 50_000 steps of this copy",
        f'shifting = gym.make("{env_id}", schedule="steps", shift_every=50_000)',
        "```",
        "",
    ]
    doc = cls.__doc__ or ""
    for heading, body in _split_sections(doc):
        if heading:
            lines += [f"## {heading}", ""]
        lines += [body, ""]
        if heading == "Tasks":
            lines += [
                "### Stage details",
                "",
                "Read from the task environments themselves (grid size, MiniGrid's step limit `max_steps`, the "
                "mission after `reset(seed=0)`).",
                "",
                _stage_details(family),
                "",
            ]
    return "\n".join(lines).rstrip("\n") + "\n"


def index_page(gifs: dict[str, Path], out_dir: Path) -> str:
    """The gallery index: a table of every registered id.

    :param gifs: id -> GIF (may be empty).
    :param out_dir: the folder the page is written to.
    :return: the page's Markdown.
    """
    lines = [
        "<!-- Generated by docs/_scripts/gen_envs.py; do not edit. -->",
        "",
        "# Environment gallery",
        "",
        f"`import metarim_gym` registers {len(metarim_gym.ENV_IDS)} ids. Each is one family of MiniGrid/BabyAI "
        "tasks grouped into training stages of rising difficulty plus a held-out stage, all with the same "
        "observation and action spaces (see {doc}`/concepts`). The pages below are generated at every docs build "
        "from `metarim_gym.ENV_IDS`, `metarim_gym.FAMILIES` and the family docstrings.",
        "",
    ]
    if gifs:
        lines += ["::::{container} gallery-grid", ""]
        for env_id, (_, key) in metarim_gym.ENV_IDS.items():
            family = metarim_gym.FAMILIES[key]
            rel = Path(os.path.relpath(gifs[env_id], out_dir)).as_posix()
            lines += [
                ":::{container} gallery-card",
                f"```{{image}} {rel}",
                f":alt: {env_id}",
                f":width: {GIF_SIZE * 3 // 4}px",
                "```",
                f"**[{family.name}]({key}.md)**",
                "",
                f"`{env_id}`",
                ":::",
                "",
            ]
        lines += ["::::", ""]
    lines += [
        "{.gallery-table}",
        "| id | training stages | held-out stage |",
        "|---|---|---|",
    ]
    for env_id, (_, key) in metarim_gym.ENV_IDS.items():
        family = metarim_gym.FAMILIES[key]
        stages = " → ".join(s.name for s in family.stages)
        lines.append(f"| [`{env_id}`]({key}.md) | {stages} | {family.heldout.name} |")
    lines += ["", "```{toctree}", ":hidden:", "", *(key for _, key in metarim_gym.ENV_IDS.values()), "```", ""]
    return "\n".join(lines)


def generate(out_dir: Path, gif_dir: Path | None = None) -> list[Path]:
    """Write the gallery pages (and, with ``gif_dir``, the GIFs).

    :param out_dir: folder of the generated pages (``index.md`` and one ``<family>.md`` per id).
    :param gif_dir: folder of the GIFs; ``None`` skips them (fast, for tests).
    :return: the pages written or confirmed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gifs: dict[str, Path] = {}
    if gif_dir is not None:
        gif_dir = Path(gif_dir)
        for env_id in metarim_gym.ENV_IDS:
            gifs[env_id] = make_gif(env_id, gif_dir / f"{env_id}.gif")
        remove_stale(gif_dir, set(gifs.values()), "MetaRIM-*.gif")
    pages = []
    for env_id, (_, key) in metarim_gym.ENV_IDS.items():
        page = out_dir / f"{key}.md"
        write_if_changed(page, family_page(env_id, gifs.get(env_id), out_dir))
        pages.append(page)
    index = out_dir / "index.md"
    write_if_changed(index, index_page(gifs, out_dir))
    pages.append(index)
    remove_stale(out_dir, set(pages), "*.md")
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--gif-dir", type=Path, default=None, help="write GIFs here (default: no GIFs)")
    args = parser.parse_args()
    for page in generate(args.out_dir, args.gif_dir):
        print(page)


if __name__ == "__main__":
    main()
