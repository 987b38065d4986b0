"""Which code a result comes from, and where committed results may come from.

A work tree is *dirty* when the code that runs differs from the commit ``HEAD``:

- a tracked file outside ``results/`` is modified, added, deleted or renamed (staged or not);
- an untracked file lies inside one of the packages, :data:`CODE_DIRS` (``metarim_gym/``, ``metarim_sb3/``): a new
  module there can be imported by the code that runs.

Untracked files elsewhere do not count: a user's ``quickstart.py`` or ``smoke.yaml`` saved in the clone as the docs
say, run folders, GIFs. A config file is recorded anyway: each run writes its resolved configuration to its
``config.yaml``. Files git ignores (``.gitignore``) never count.

Runs record ``<sha>`` or ``<sha>-dirty`` (:func:`git_sha`), and ``metarim compare --out results/...`` refuses a dirty
tree unless ``--allow-dirty`` (:func:`check_results_tree`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from metarim_sb3.experiments.training.yaml_io import ConfigError

__all__ = ["CODE_DIRS", "RESULTS_DIR", "check_results_tree", "code_changes", "git_root", "git_sha"]

#: The repository folder whose contents are committed results.
RESULTS_DIR = "results"
#: The repository's package folders: an untracked file inside one makes the tree dirty (elsewhere it does not).
CODE_DIRS = ("metarim_gym", "metarim_sb3")


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


def _status(root: Path, untracked: str, pathspec: list[str]) -> list[str] | None:
    """
    :param root: the top folder of a git work tree.
    :param untracked: ``git status --untracked-files`` mode: ``no`` or ``all``.
    :param pathspec: the paths to look at.
    :return: the paths ``git status`` lists (relative to ``root``; a rename's new path), ``None`` when git fails.
    """
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain=v1", "-z", f"--untracked-files={untracked}", "--", *pathspec],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if status.returncode != 0:
        return None
    paths = []
    entries = iter(status.stdout.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        if "R" in entry[:2] or "C" in entry[:2]:
            next(entries, None)  # with -z a rename's or copy's source path is the next entry
        paths.append(entry[3:])
    return paths


def code_changes(root: Path) -> list[str] | None:
    """
    What makes the work tree at ``root`` dirty (see the module's docstring).

    :param root: the top folder of a git work tree.
    :return: the paths, relative to ``root``, of tracked files outside ``results/`` that differ from ``HEAD``, then
        of untracked files inside :data:`CODE_DIRS`; empty for a clean tree; ``None`` when git fails.
    """
    tracked = _status(root, "no", [".", f":(exclude){RESULTS_DIR}"])
    packages = [name for name in CODE_DIRS if (root / name).is_dir()]
    untracked = _status(root, "all", packages) if packages else []
    if tracked is None or untracked is None:
        return None
    return tracked + [path for path in untracked if path not in tracked]


def git_sha(path: Path) -> str | None:
    """
    The commit a result is made from, as runs record it (``versions.json``).

    :param path: a file or folder in the work tree.
    :return: the commit of ``HEAD``, with ``-dirty`` appended when the tree is dirty (:func:`code_changes`: tracked
        files outside ``results/`` that differ from it, untracked files inside the packages; results themselves, e.g.
        the summaries of finished runs of the same study, and a user's scratch files do not count); ``None`` outside
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
    return head.stdout.strip() + ("-dirty" if code_changes(root) else "")


def check_results_tree(out: Path, *, allow_dirty: bool) -> None:
    """
    Refuse to write ``out`` when it lies under ``results/`` of a git repository whose tree is dirty
    (:func:`code_changes`), unless ``allow_dirty``: committed results must come from a clean tree (the run folders
    then record the commit, or ``<sha>-dirty`` when allowed).

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
    changes = code_changes(root)
    if changes:
        shown = ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
        raise ConfigError(
            f"refusing to write {out} under {root / RESULTS_DIR}: the git tree has {len(changes)} uncommitted "
            f"change(s) to code ({shown}) and committed results must come from a clean tree; commit first or pass "
            "--allow-dirty"
        )
