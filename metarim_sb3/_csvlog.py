"""Append-only CSV logging shared by the callbacks and the run folders (standard library only)."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["append_csv_row"]


def append_csv_row(path: str | Path, header: Sequence[str], row: Sequence[Any]) -> None:
    """
    Append one row to a CSV file (after the header if the file is new or empty), then close it, so that an
    interrupted run keeps every row written so far.

    :param path: the CSV file.
    :param header: column names.
    :param row: values, in the order of ``header``.
    """
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a", newline="") as file:
        writer = csv.writer(file)
        if new:
            writer.writerow(header)
        writer.writerow(row)
