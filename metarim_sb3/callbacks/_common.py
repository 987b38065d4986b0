"""Helpers shared by the callbacks: argument checks, the log folder, and CSV files (appended row by row, or written
whole and atomically by the one CSV writer, :func:`write_csv`; standard library)."""

from __future__ import annotations

import contextlib
import csv
import errno
import math
import numbers
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "TMP_TAG",
    "append_csv_row",
    "check_int",
    "check_real",
    "log_path",
    "repair_csv_tail",
    "sync_eval_env",
    "write_csv",
]


def check_int(owner: str, name: str, value: Any, minimum: int = 1) -> int:
    """
    :param owner: the class named in the message.
    :param name: the parameter named in the message.
    :param value: an integer (Python or numpy; ``bool`` is refused).
    :param minimum: the smallest allowed value.
    :return: ``value`` as a Python ``int``.
    :raises ValueError: naming the parameter and what is allowed.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_real(
    owner: str, name: str, value: Any, low: float = -math.inf, high: float = math.inf, low_open: bool = False
) -> float:
    """
    :param owner: the class named in the message.
    :param name: the parameter named in the message.
    :param value: a finite real number (Python or numpy; ``bool``, NaN and infinities are refused).
    :param low: the smallest allowed value.
    :param high: the largest allowed value.
    :param low_open: ``low`` itself is not allowed.
    :return: ``value`` as a Python ``float``.
    :raises ValueError: naming the parameter and what is allowed.
    """
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(float(value))
    if ok:
        number = float(value)
        ok = (number > low if low_open else number >= low) and number <= high
    if not ok:
        if high == math.inf:
            allowed = f"{'>' if low_open else '>='} {low:g}" if low > -math.inf else "finite"
        else:
            allowed = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{owner}: {name} must be a finite number {allowed}, got {value!r}")
    return float(value)


def log_path(log_dir: str | None, logger: Any, file_name: str) -> str | None:
    """
    :param log_dir: a folder, or ``None`` for the logger's folder.
    :param logger: the model's SB3 logger.
    :param file_name: a file name.
    :return: ``folder/file_name`` (the folder created), or ``None`` if there is no folder.
    """
    folder = log_dir if log_dir is not None else logger.get_dir()
    if folder is None:
        return None
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, file_name)


def _open_regular(path: str | Path, flags: int, mode: str) -> Any:
    """
    Open a file that must be a regular file, never through a symbolic link (``O_NOFOLLOW``; a FIFO or device is
    refused before anything is read, written or truncated).

    :param path: the file.
    :param flags: ``os.open`` flags (``O_TRUNC`` is applied only after the check).
    :param mode: the ``open`` mode of the returned file object.
    :return: the open file object.
    :raises ValueError: naming the file if it is a link or not a regular file.
    """
    truncate = bool(flags & os.O_TRUNC)
    flags = (flags & ~os.O_TRUNC) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ValueError(f"{path} is a symbolic link; refusing to write through it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError(f"{path} is not a regular file; refusing to write to it")
    if truncate:
        os.ftruncate(fd, 0)
    return os.fdopen(fd, mode) if "b" in mode else os.fdopen(fd, mode, newline="")


def repair_csv_tail(path: str | Path) -> None:
    """
    Cut a torn last line (a row whose write was interrupted, e.g. by a power loss) from a CSV file: everything
    after the last newline goes. A file holding only part of its header is emptied.

    :param path: the CSV file (nothing happens if it does not exist).
    :raises ValueError: if ``path`` is a symbolic link or not a regular file.
    """
    if not os.path.lexists(path):
        return
    with _open_regular(path, os.O_RDWR, "rb+") as file:
        size = file.seek(0, os.SEEK_END)
        if size == 0:
            return
        file.seek(size - 1)
        if file.read(1) == b"\n":
            return
        block = min(size, 1 << 16)
        while True:
            file.seek(size - block)
            cut = file.read(block).rfind(b"\n")
            if cut >= 0 or block == size:
                break
            block = min(size, block * 2)
        file.truncate(size - block + cut + 1 if cut >= 0 else 0)


def append_csv_row(path: str | Path, header: Sequence[str], row: Sequence[Any]) -> None:
    """
    Append one row to a CSV file (after the header if the file is new or empty), then close it, so that an
    interrupted run keeps every row written so far. A torn last line left by an earlier interruption is cut
    first (:func:`repair_csv_tail`).

    :param path: the CSV file.
    :param header: column names.
    :param row: values, in the order of ``header``.
    :raises ValueError: if ``path`` is a symbolic link or not a regular file.
    """
    repair_csv_tail(path)
    with _open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, "a") as file:
        writer = csv.writer(file)
        if os.fstat(file.fileno()).st_size == 0:
            writer.writerow(header)
        writer.writerow(row)


#: Tag of the temporary files of atomic writes: ``.<stem>.tmp-<pid><suffix>`` next to the file written.
TMP_TAG = ".tmp-"


def write_csv(path: str | Path, rows: Sequence[Sequence[Any]]) -> None:
    """
    Write a whole CSV file atomically: the one CSV writer of metarim_sb3 (every file written whole goes through it;
    files that grow row by row go through :func:`append_csv_row`). The rows go to a temporary file next to
    ``path`` (``.<stem>.tmp-<pid><suffix>``), which is fsynced and renamed over ``path``, then the folder is
    fsynced: a reader (or an interrupted run) sees the old file or the new one, never a part. ``csv.writer``'s
    dialect (``excel``: ``\\r\\n`` line ends, minimal quoting), UTF-8.

    :param path: the file (replaced).
    :param rows: the rows, header first (values as ``csv.writer`` writes them: ``str()`` of each, ``None`` empty).
    :raises ValueError: if ``path`` is a symbolic link or exists and is not a regular file (nothing is written).
    """
    path = Path(path)
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link; refusing to write through it")
    if path.exists() and not path.is_file():
        raise ValueError(f"{path} is not a regular file; refusing to write to it")
    tmp = path.with_name(f".{path.stem}{TMP_TAG}{os.getpid()}{path.suffix}")
    try:
        tmp.unlink(missing_ok=True)  # never write through a link planted at the temporary name
        with open(tmp, "w", newline="", encoding="utf-8") as file:
            csv.writer(file).writerows(rows)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # fsync of a folder is not supported everywhere (e.g. Windows)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sync_eval_env(owner: str, training_env: Any, eval_env: Any) -> None:
    """
    Copy the training envs' ``VecNormalize`` statistics to the evaluation envs (SB3's ``sync_envs_normalization``).

    :param owner: the callback's name, for the message.
    :param training_env: the model's training ``VecEnv``.
    :param eval_env: the evaluation ``VecEnv``.
    :raises ValueError: if the two are not wrapped alike.
    """
    from stable_baselines3.common.vec_env import sync_envs_normalization

    try:
        sync_envs_normalization(training_env, eval_env)
    except AttributeError as err:
        raise ValueError(
            f"{owner}: the training and evaluation envs must be wrapped alike (VecNormalize): {err}"
        ) from err
