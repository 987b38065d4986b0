"""``metarim train --wandb``: the optional Weights & Biases logger (offline mode; wandb is an optional extra)."""

from __future__ import annotations

import csv
import json
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import ENV_ID, assert_one_line_error, main_in_process, metarim

from metarim_sb3.experiments.training.wandb_logging import RUN_ID_FILE, WandbOutputFormat


class _FakeRun:
    """Records what :class:`WandbOutputFormat` logs."""

    def __init__(self) -> None:
        self.logged: list[dict[str, Any]] = []

    def log(self, data: dict[str, Any]) -> None:
        self.logged.append(data)


def _key(item: Any) -> str:
    """:return: a history or summary item's key (wandb stores some keys as ``nested_key`` parts)."""
    return str(item.key or "/".join(item.nested_key))


def _wandb_records(path: Path) -> dict[str, list[dict[str, Any]]]:
    """
    The history rows and summary updates of a W&B run file (``run-ID.wandb``: a LevelDB-style log of protobuf
    records in 32 KiB blocks after a 7-byte header; wandb ships no reader for it).

    :param path: the ``.wandb`` file.
    :return: ``{"history": [row, ...], "summary": [update, ...], "exit": [{"code": ...}]}``, values JSON-decoded.
    """
    from wandb.proto import wandb_internal_pb2

    raw, pos, chunk = path.read_bytes(), 7, b""
    found: dict[str, list[dict[str, Any]]] = {"history": [], "summary": [], "exit": []}
    while pos + 7 <= len(raw):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a record header is padding
            pos += 32768 - pos % 32768
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        chunk, pos = chunk + raw[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind not in (1, 4):  # FIRST or MIDDLE piece of a record split over blocks
            continue
        record = wandb_internal_pb2.Record()
        record.ParseFromString(chunk)
        chunk = b""
        which = record.WhichOneof("record_type")
        if which == "history":
            found["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif which == "summary":
            found["summary"].append({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif which == "exit":
            found["exit"].append({"code": record.exit.exit_code})
    return found


def test_output_format_mirrors_numeric_scalars_with_the_step() -> None:
    run = _FakeRun()
    writer = WandbOutputFormat(run)
    values = {"train/loss": np.float32(0.5), "time/fps": 10, "rollout/note": "text", "custom/skip": 1.0}
    excluded: dict[str, tuple[str, ...]] = {
        "train/loss": (),
        "time/fps": ("tensorboard",),  # SB3 keeps time/* out of TensorBoard only
        "rollout/note": (),
        "custom/skip": ("wandb",),
    }
    writer.write(values, excluded, step=64)
    writer.write({"rollout/note": "only text"}, {"rollout/note": ()}, step=128)  # nothing numeric: no log call
    assert run.logged == [{"train/loss": 0.5, "time/fps": 10, "global_step": 64}]
    assert isinstance(run.logged[0]["train/loss"], float)


def test_wandb_flag_without_wandb_is_one_line_naming_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb fails, find_spec finds nothing
    out = tmp_path / "run"
    result = main_in_process(
        ["train", "--agent", "lstm", "--env", ENV_ID, "--timesteps", "64", "--out", out, "--wandb"], capsys
    )
    assert_one_line_error(result, "--wandb", 'pip install -e ".[wandb]"')
    assert result.stdout == ""
    assert not out.exists()


def test_wandb_offline_run_mirrors_the_scalars_and_resumes_the_same_run(
    tmp_path: Path, tiny_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    for name, value in (("WANDB_MODE", "offline"), ("WANDB_SILENT", "true"), ("WANDB_PROJECT", "metarim-test")):
        monkeypatch.setenv(name, value)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # nothing written outside tmp_path
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    out = tmp_path / "run"
    common = ["--config", tiny_config, "--wandb"]
    first = metarim("train", "--agent", "lstm", "--env", ENV_ID, "--timesteps", "256", "--out", out, *common)
    assert first.returncode == 0, first.stderr
    run_id = (out / RUN_ID_FILE).read_text().strip()
    (offline,) = sorted((out / "wandb").glob("offline-run-*"))
    assert offline.name.endswith(f"-{run_id}")
    records = _wandb_records(offline / f"run-{run_id}.wandb")
    with (out / "progress.csv").open() as f:
        progress = list(csv.DictReader(f))
    rows = records["history"]
    assert len(rows) == len(progress) > 0  # one W&B history row per progress.csv row (per logger dump)
    steps = [int(row["time/total_timesteps"]) for row in progress]
    assert [row["global_step"] for row in rows] == steps  # the x axis: the run's env steps
    assert set(progress[0]) <= {key for row in rows for key in row}  # every progress.csv column is mirrored
    assert rows[-1]["train/value_loss"] == pytest.approx(float(progress[-1]["train/value_loss"]))
    done = json.loads((out / "done.json").read_text())
    summary = {k: v for update in records["summary"] for k, v in update.items()}
    assert summary["heldout_success"] == done["heldout_success"]
    assert summary["timesteps"] == done["timesteps"] == 256
    assert records["exit"] == [{"code": 0}]

    second = metarim("train", "--resume", "--out", out, "--timesteps", "384", *common)
    assert second.returncode == 0, second.stderr
    assert (out / RUN_ID_FILE).read_text().strip() == run_id
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(p.name.endswith(f"-{run_id}") for p in runs)


def test_wandb_that_cannot_start_a_run_is_one_line(
    tmp_path: Path, tiny_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_SILENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: online mode without an account
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    out = tmp_path / "run"
    result = metarim("train", "--agent", "lstm", "--env", ENV_ID, "--timesteps", "64", "--out", out,
                     "--config", tiny_config, "--wandb")  # fmt: skip
    assert_one_line_error(result, "--wandb: wandb could not start a run", "WANDB_MODE=offline", "--force")
    assert not (out / "checkpoint.zip").exists()  # nothing was trained
