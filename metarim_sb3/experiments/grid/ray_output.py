"""What a Ray grid prints and records: each attempt's console output appended to its cell's log file, the
one-line result of a trial, and why a failed attempt failed (read from the files Tune writes), for
:mod:`~metarim_sb3.experiments.grid.ray_backend`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metarim_sb3.experiments.training.result import RunResult

__all__: list[str] = []


#: Exceptions by which Ray says that a trial's process (or its machine) died rather than that the trial raised.
_PROCESS_DIED = ("ActorDiedError", "RayActorError", "WorkerCrashedError", "NodeDiedError", "ActorUnavailableError")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes in Ray's error text
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)  # never through a link


def _append(path: Path | None, text: str) -> None:
    """Append ``text`` to ``path`` (never through a symbolic link); nothing when ``path`` is ``None`` or cannot be
    opened (the run reports a folder it cannot write itself)."""
    if path is None:
        return
    try:
        fd = os.open(path, _APPEND_FLAGS, 0o644)
    except OSError:
        return
    with os.fdopen(fd, "a") as file:
        file.write(text)


@contextlib.contextmanager
def _output_to(path: Path | None, header: str) -> Iterator[None]:
    """
    For the block, this process's stdout and stderr (the file descriptors, so that output of native code and of
    child processes is caught too) are appended to ``path``, after ``header``; nothing is redirected when ``path``
    is ``None`` or cannot be opened for appending (e.g. it is a symbolic link).
    """
    try:
        fd = None if path is None else os.open(path, _APPEND_FLAGS, 0o644)
    except OSError:
        fd = None
    if fd is None:
        yield
        return
    os.write(fd, header.encode())
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for descriptor in (*saved, fd):
            os.close(descriptor)


def _describe(result: RunResult) -> str:
    """
    :param result: a cell's result.
    :return: the result in one line, for the progress line of its trial.
    """
    status = result.get("status")
    if status == "done":
        parts = [f"done, {result.get('timesteps', '?')} steps"]
        if isinstance(result.get("wall_time_s"), int | float):
            parts.append(f"in {result['wall_time_s']:.0f} s")
        if isinstance(result.get("heldout_success"), int | float):
            parts.append(f"held-out success {result['heldout_success']:.2f}")
        return ", ".join(parts)
    if status == "interrupted":
        return f"interrupted at {result.get('timesteps')} steps (checkpoint saved)"
    return f"FAILED: {result.get('error', '?')}"


def _resumes(step: int | None) -> str:
    """:return: where the next attempt of a cell starts, from the step of its checkpoint (``None``: none; negative:
    a checkpoint whose step could not be read)."""
    if step is None or step == 0:
        return "restarts from step 0 (no checkpoint yet)"
    if step < 0:
        return "resumes from its checkpoint (whose step could not be read)"
    return f"resumes from step {step} (its checkpoint)"


def _trial_error(trial: Any, limit: int = 160) -> str:
    """The last line of a trial's latest exception, read from the file Tune just wrote on the driver (its copy in
    the storage folder comes later), cut to ``limit`` characters, or ``"?"`` when there is none."""
    text = "?"
    try:
        if trial.pickled_error_file and os.path.exists(trial.pickled_error_file):
            from ray import cloudpickle

            with open(trial.pickled_error_file, "rb") as file:
                text = _error_text(cloudpickle.load(file))
        elif trial.error_file and os.path.exists(trial.error_file):
            with open(trial.error_file) as file:
                text = ([line.strip() for line in file if line.strip()] or ["?"])[-1]
    except Exception:  # pragma: no cover - an error file Tune could not read back
        pass
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _trial_error_file(trial: Any) -> str:
    """:return: the text of the error file Tune wrote for a trial's latest failure (the traceback), or ``""``."""
    try:
        if trial.error_file and os.path.exists(trial.error_file):
            with open(trial.error_file) as file:
                return file.read()
    except OSError:  # pragma: no cover - an error file Tune could not write
        pass
    return ""


def _why(trial: Any) -> str:
    """
    :return: why a trial's latest attempt failed, in a few words: ``"its process died: <Ray's reason>"`` when Ray
        lost the process (killed, out of memory, crashed, machine lost), else the exception's last line.
    """
    text = _trial_error(trial, limit=10_000)
    name = text.split(":", 1)[0]
    if name in _PROCESS_DIED:
        detail = text.split("Worker exit detail:", 1)[1] if "Worker exit detail:" in text else ""
        reason = detail.strip().split(". ")[0].rstrip(".")
        text = f"its process died: {reason}" if reason else "its process died (killed, out of memory or crashed)"
    return text if len(text) <= 160 else text[:157] + "..."


def _error_text(error: BaseException | None) -> str:
    if error is None:
        return "no result (the trial did not finish)"
    cause = getattr(error, "cause", None) or error  # Tune wraps the trial's exception
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}".strip()
