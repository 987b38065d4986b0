"""Where committed results may come from: a ``compare`` into the repository's ``results/`` needs a clean git tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

from metarim_sb3.experiments.config import ConfigError

__all__ = ["RESULTS_DIR", "check_results_tree", "git_root", "git_sha"]

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


def _changes_outside_results(root: Path) -> str | None:
    """:return: ``git status --porcelain`` of the work tree at ``root`` outside ``results/``, or ``None`` on failure."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", f":(exclude){RESULTS_DIR}"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return status.stdout.strip() if status.returncode == 0 else None


def git_sha(path: Path) -> str | None:
    """
    The commit a result is made from, as runs record it (``versions.json``).

    :param path: a file or folder in the work tree.
    :return: the commit of ``HEAD``, with ``-dirty`` appended when files outside ``results/`` differ from it
        (results themselves, e.g. the summaries of finished runs of the same study, do not count); ``None`` outside
        a git repository.
    """
    root = git_root(path)
    if root is None:
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0 or not head.stdout.strip():
        return None
    return head.stdout.strip() + ("-dirty" if _changes_outside_results(root) else "")


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
    changes = _changes_outside_results(root)
    if changes:
        changed = len(changes.splitlines())
        raise ConfigError(
            f"refusing to write {out} under {root / RESULTS_DIR}: the git tree has {changed} uncommitted change(s) "
            "and committed results must come from a clean tree; commit first or pass --allow-dirty"
        )
