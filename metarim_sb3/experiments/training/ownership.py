"""Who may write a run folder: the marker that says ``metarim train`` made it, the lock of its one writer, the
checks made before anything is written, and what ``--force`` may clear.

Only run files are ever deleted or replaced (:func:`clear_run`), and only in a folder holding the marker: a folder
that is not empty and holds no marker (another's files, or a run of an earlier version) is never taken over. No run
file is written or read through a symbolic link, and none may be a FIFO or device (:func:`check_run_entries`).
Folders to be written that are not run folders (a report, a GIF) are checked by :func:`check_out_folder` and
:func:`check_writable_file`. The file names are those of :mod:`~metarim_sb3.experiments.training.folder`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import stat
from pathlib import Path

from metarim_sb3.experiments.training.folder import (
    ACTIVITY,
    CHECKPOINT,
    CHECKPOINT_META,
    DONE,
    DRIFT_REFERENCE,
    FINAL_EVAL,
    LOCK,
    MARKER,
    MASTERY_MODEL,
    MODEL,
    STEP_COLUMNS,
    TENSORBOARD,
    VERSIONS,
    RunError,
    _is_run_file,
    _write_text,
    read_config_data,
)

__all__ = [
    "RunLock",
    "check_out_dir",
    "check_out_folder",
    "check_run_entries",
    "check_writable_file",
    "clear_run",
    "is_run_dir",
    "mark_run_dir",
    "start_fresh",
]


# ---------------------------------------------------------------------------------------------- ownership
def is_run_dir(path: str | Path) -> bool:
    """
    :param path: a folder.
    :return: whether ``metarim train`` made it: it holds the marker, or (folders of earlier versions) a
        ``config.yaml`` with agent and env next to a ``versions.json``.
    """
    path = Path(path)
    if (path / MARKER).is_file():
        return True
    if not (path / VERSIONS).is_file():
        return False
    try:
        read_config_data(path)
    except RunError:
        return False
    return True


def _entry_problem(entry: os.DirEntry[str], want_dir: bool = False) -> str | None:
    """:return: why a run folder's entry cannot be written (a link, not a regular file / folder), or ``None``."""
    if entry.is_symlink():
        return "is a symbolic link"
    if want_dir:
        return None if entry.is_dir(follow_symlinks=False) else "is not a folder"
    return None if entry.is_file(follow_symlinks=False) else "is not a regular file"


def check_run_entries(run_dir: str | Path) -> None:
    """
    Refuse a run folder in which a file the run may write or read (the lock, ``curve.csv``, any run file, a
    temporary file, ``tensorboard/`` and what it holds) is a symbolic link or not a regular file: writing through
    it would change files outside the folder.

    :param run_dir: the run folder (nothing happens if it does not exist).
    :raises RunError: naming the first such entry.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for entry in os.scandir(run_dir):
        name = entry.name
        if name == TENSORBOARD:
            problem = _entry_problem(entry, want_dir=True)
            if problem is None:
                problem, name = _tree_problem(Path(entry.path), TENSORBOARD)
        elif name == LOCK or _is_run_file(name):
            problem = _entry_problem(entry)
        else:
            continue
        if problem is not None:
            raise RunError(
                f"{run_dir}: {name} {problem}; metarim writes run files only as regular files inside the run "
                "folder: remove it or choose another folder"
            )


def _tree_problem(folder: Path, shown: str, depth: int = 0) -> tuple[str | None, str]:
    """The first entry under ``folder`` that is a link or neither a file nor a folder (``shown``: its name)."""
    if depth > 8:
        return "is nested too deep", shown
    for entry in os.scandir(folder):
        name = f"{shown}/{entry.name}"
        if entry.is_symlink():
            return "is a symbolic link", name
        if entry.is_dir(follow_symlinks=False):
            problem, where = _tree_problem(Path(entry.path), name, depth + 1)
            if problem is not None:
                return problem, where
        elif not entry.is_file(follow_symlinks=False):
            return "is not a regular file", name
    return None, shown


def check_out_dir(out_dir: str | Path, *, resume: bool, force: bool, locked: bool = False) -> None:
    """
    Check that a run may write to ``out_dir`` (before anything is written; again under the lock).

    :param out_dir: the run folder.
    :param resume: the run continues the one in the folder.
    :param force: the run replaces the one in the folder.
    :param locked: this process holds the folder's :class:`RunLock` (else a lock held by another is reported).
    :raises RunError: if ``out_dir`` is a file; is being written by another process; is a non-empty folder
        without a run; holds a run that is neither resumed nor replaced; or, with ``resume``, has no checkpoint.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunError(f"--out {out_dir} is a file, not a folder; choose a folder for the run")
    check_run_entries(out_dir)
    if not locked and (out_dir / LOCK).is_file():
        RunLock(out_dir).acquire().release()  # raises, naming the holder, if another process writes the folder
    exists = out_dir.is_dir() and any(p.name != LOCK for p in out_dir.iterdir())
    if resume:
        if not (out_dir / CHECKPOINT).is_file():
            raise RunError(f"cannot resume {out_dir}: it has no {CHECKPOINT} (start it without --resume)")
        return
    if not exists:
        _check_creatable(out_dir)
        return
    if not is_run_dir(out_dir):
        raise RunError(
            f"--out {out_dir} is a non-empty folder that holds no metarim run; metarim never takes over other "
            "files: choose a new or empty folder"
        )
    if not (out_dir / MARKER).is_file():
        raise RunError(
            f"--out {out_dir} holds a run without the {MARKER} marker (an earlier metarim's, or copied): metarim "
            "takes over only folders it marked, so nothing was deleted; continue it with --resume if it has a "
            f"{CHECKPOINT}, or choose another --out"
        )
    if force:
        return
    if (out_dir / DONE).exists():
        raise RunError(f"--out {out_dir} holds a finished run; pass --force to overwrite it or choose another --out")
    if (out_dir / CHECKPOINT).exists():
        raise RunError(f"--out {out_dir} holds an unfinished run; pass --resume to continue it or --force to restart")


def _check_creatable(folder: Path) -> None:
    """The nearest existing parent of ``folder`` must be a writable folder."""
    parent = folder
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise RunError(f"--out {folder}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunError(f"--out {folder}: {parent} is not writable")


def check_writable_file(path: str | Path, option: str = "--out") -> None:
    """
    :param path: a file to be written (e.g. a GIF).
    :param option: the option named in the message.
    :raises RunError: if ``path`` is a folder or its folder cannot be created or written.
    """
    path = Path(path)
    if path.is_dir():
        raise RunError(f"{option} {path} is a folder; give a file name")
    _check_creatable(path.parent if str(path.parent) else Path("."))


def check_out_folder(path: str | Path, option: str = "--out") -> None:
    """
    :param path: a folder to be written (e.g. a report).
    :param option: the option named in the message.
    :raises RunError: if ``path`` is a file or cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"{option} {path} is a file, not a folder")
    _check_creatable(path)


def clear_run(run_dir: str | Path) -> None:
    """
    Delete the files of the run in ``run_dir`` (for ``--force``; call while holding its :class:`RunLock`). Other
    files stay.

    :param run_dir: a folder that holds the run marker (:data:`MARKER`).
    :raises RunError: if it holds no marker (a folder of an earlier version is never cleared), or an entry that is
        a link or not a regular file (:func:`check_run_entries`).
    """
    run_dir = Path(run_dir)
    if not (run_dir / MARKER).is_file():
        raise RunError(f"{run_dir} holds no metarim run (no {MARKER} marker); refusing to clear it")
    check_run_entries(run_dir)
    for path in run_dir.iterdir():
        if path.name == LOCK:
            continue
        if path.is_dir() and path.name == TENSORBOARD:
            shutil.rmtree(path)
        elif path.is_file() and _is_run_file(path.name):
            path.unlink()


def mark_run_dir(run_dir: str | Path) -> None:
    """
    Create the folder if needed and write the run marker (call while holding its :class:`RunLock`).

    :param run_dir: the run folder.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / MARKER).is_file():
        _write_text(run_dir / MARKER, "made by metarim train: --force may clear the run files in this folder\n")


def start_fresh(run_dir: str | Path, *, force: bool) -> None:
    """
    Prepare a run folder for a run from step 0 (call while holding its :class:`RunLock`): with ``force`` clear
    the old run (:func:`clear_run`); else drop the outputs a run that never checkpointed may have left. Then mark
    the folder.

    :param run_dir: the run folder.
    :param force: replace a run.
    """
    run_dir = Path(run_dir)
    if force and run_dir.is_dir() and (run_dir / MARKER).is_file():
        clear_run(run_dir)
    elif run_dir.is_dir():
        for name in (*STEP_COLUMNS, DRIFT_REFERENCE, f"{ACTIVITY}.csv", f"{ACTIVITY}.npz", FINAL_EVAL, MODEL, DONE,
                     CHECKPOINT_META, MASTERY_MODEL):  # fmt: skip
            (run_dir / name).unlink(missing_ok=True)
        for path in run_dir.glob("progress*.csv"):
            path.unlink()
        shutil.rmtree(run_dir / TENSORBOARD, ignore_errors=True)
    mark_run_dir(run_dir)


class RunLock:
    """
    The exclusive right to write a run folder, held from :meth:`acquire` to :meth:`release` (or as a context
    manager). Backed by an advisory ``flock`` on ``.metarim.lock`` where available, so a lock of a process that died
    is free again; the file records the holder's pid and host for the message of the next one.

    :param run_dir: the run folder (created if missing).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """
        :return: ``self``.
        :raises RunError: naming the holder, if another process holds the lock.
        """
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o644)  # never through a link; a FIFO does not block the open
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise RunError(f"{self.path} is a symbolic link; remove it or choose another folder") from None
            raise RunError(f"cannot write to {self.path.parent}: {err.strerror or err}") from err
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RunError(f"{self.path} is not a regular file; remove it or choose another folder")
        try:
            _lock_fd(fd)
        except OSError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunError(
                f"{self.path.parent} is being written by {holder}; wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now (from :meth:`acquire` to :meth:`release`)."""
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (the file stays; an unlocked file means a free folder)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_fd(fd: int) -> None:
    """Take an exclusive, non-blocking lock on ``fd``; ``OSError`` if another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
