"""The append-only CSV files of the callbacks and run folders: a torn last line is cut before the next row."""

from __future__ import annotations

import csv
from pathlib import Path

from metarim_sb3.callbacks._common import append_csv_row, repair_csv_tail

HEADER = ("timestep", "value")


def read(path: Path) -> list[list[str]]:
    with open(path, newline="") as file:
        return list(csv.reader(file))


def test_append_writes_the_header_once(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    append_csv_row(path, HEADER, [1, 0.5])
    append_csv_row(path, HEADER, [2, 0.25])
    assert read(path) == [["timestep", "value"], ["1", "0.5"], ["2", "0.25"]]


def test_a_torn_last_line_is_cut_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    append_csv_row(path, HEADER, [1, 0.5])
    with open(path, "a") as file:
        file.write("2,0.2")  # a row cut short by a power loss: no line end
    append_csv_row(path, HEADER, [3, 0.75])
    assert read(path) == [["timestep", "value"], ["1", "0.5"], ["3", "0.75"]]


def test_a_torn_header_empties_the_file(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("times")
    repair_csv_tail(path)
    assert path.read_text() == ""
    append_csv_row(path, HEADER, [1, 0.5])
    assert read(path) == [["timestep", "value"], ["1", "0.5"]]


def test_repair_leaves_whole_files_and_missing_files_alone(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    repair_csv_tail(path)
    assert not path.exists()
    append_csv_row(path, HEADER, [1, 0.5])
    before = path.read_bytes()
    repair_csv_tail(path)
    assert path.read_bytes() == before
