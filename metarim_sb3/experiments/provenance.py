"""Where committed results may come from: a ``compare`` into the repository's ``results/`` needs a clean git tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

from metarim_sb3.experiments.config import ConfigError

__all__ = ["RESULTS_DIR", "check_results_tree", "git_root"]

#: The repository folder whose contents are committed results.
RESULTS_DIR = "results"


def git_root(path: Path) -> Path | None:
    """
    :param path: a file or folder (need not exist yet: its nearest existing parent is asked).
    :return: the top folder of the git work tree holding ``path``, or ``None`` (no git, or not in a repository).
    """
    folder = path.resolve()
    while not folder.is_dir():
        folder = folder.parent
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(top.stdout.strip()).resolve() if top.returncode == 0 and top.stdout.strip() else None


def check_results_tree(out: Path, *, allow_dirty: bool) -> None:
    """
    Refuse to write ``out`` when it lies under ``results/`` of a git repository whose tree has changes outside
    ``results/`` (uncommitted or untracked files), unless ``allow_dirty``: committed results must come from a clean
    tree (the run folders then record the commit, or ``<sha>-dirty`` when allowed).

    :param out: the results folder about to be written.
    :param allow_dirty: accept a dirty tree.
    :raises ConfigError: when ``out`` is under a dirty repository's ``results/`` and ``allow_dirty`` is false.
    """
    if allow_dirty:
        return
    root = git_root(out)
    if root is None:
        return
    try:
        relative = out.resolve().relative_to(root)
    except ValueError:
        return
    if not relative.parts or relative.parts[0] != RESULTS_DIR:
        return
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", f":(exclude){RESULTS_DIR}"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return
    if status.returncode == 0 and status.stdout.strip():
        changed = len(status.stdout.strip().splitlines())
        raise ConfigError(
            f"refusing to write {out} under {root / RESULTS_DIR}: the git tree has {changed} uncommitted change(s) "
            "and committed results must come from a clean tree; commit first or pass --allow-dirty"
        )
