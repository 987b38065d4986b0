"""What ``metarim train`` shows while it runs and when it ends, and what a finished run folder keeps."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from cli_helpers import ENV_ID, metarim

CLOSING = re.compile(
    r"^done: (\d+) steps in ([\d.]+) s training \((\d+) fps\) \+ ([\d.]+) s evaluation; (\d+) steps in all; ",
    re.MULTILINE,
)


def _train(out: Path, config: Path, timesteps: int, *extra: str) -> tuple[str, str]:
    result = metarim(
        "train", "--agent", "rim", "--env", ENV_ID, "--timesteps", str(timesteps), "--seed", "2", "--out", out,
        "--config", config, *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


def test_closing_line_no_progress_off_a_terminal_and_one_model_copy(tmp_path: Path, tiny_config: Path) -> None:
    out = tmp_path / "run"
    stdout, stderr = _train(out, tiny_config, 256)
    match = CLOSING.search(stdout)
    assert match, stdout
    steps, train_s, fps, eval_s, total = match.groups()
    done = json.loads((out / "done.json").read_text())
    assert int(steps) == int(total) == done["timesteps"] == 256
    assert float(train_s) == round(done["this_segment_s"], 1) and float(eval_s) == round(done["final_eval_s"], 1)
    assert int(fps) == round(256 / max(done["this_segment_s"], 1e-9))
    assert "%" not in stderr and "\r" not in stderr  # no progress bar when stderr is not a terminal
    # the finished run keeps one copy of the model: model.zip is the final checkpoint, hard-linked
    assert os.path.samefile(out / "model.zip", out / "checkpoint.zip")

    # a finished run still resumes; the new checkpoints never change the model.zip linked before
    old_model = (out / "model.zip").read_bytes()
    (out / "model.zip").rename(tmp_path / "model-256.zip")
    stdout, _ = _train(out, tiny_config, 320, "--resume")
    match = CLOSING.search(stdout)
    assert match and int(match.group(1)) == 64 and int(match.group(5)) == 320, stdout
    assert (tmp_path / "model-256.zip").read_bytes() == old_model
    assert os.path.samefile(out / "model.zip", out / "checkpoint.zip")


def test_evaluate_progress_only_when_asked_off_a_terminal(finished_run: Path) -> None:
    quiet = metarim("evaluate", finished_run, "--stage", "0", "--episodes", "3", "--n-envs", "1")
    assert quiet.returncode == 0, quiet.stderr
    assert "evaluating" not in quiet.stderr
    shown = metarim("evaluate", finished_run, "--stage", "0", "--episodes", "3", "--n-envs", "1", "--progress")
    assert shown.returncode == 0, shown.stderr
    assert "evaluating (0)" in shown.stderr and "/3 " in shown.stderr  # episodes done / total


def test_compare_eta_counts_parallel_workers() -> None:
    from metarim_sb3.experiments.grid.progress import eta_text

    assert eta_text(10.0, 4, 4, 4) == ", ETA 10s"  # four ran side by side in 10 s: four more take 10 s
    assert eta_text(10.0, 2, 2, 1) == ", ETA 10s"  # one at a time, 5 s each
    assert eta_text(10.0, 3, 0, 2) == ""  # nothing left


def test_progress_default_follows_the_flag_then_terminal_and_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from metarim_sb3.experiments.cli import _show_progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert _show_progress(None) is True
    assert _show_progress(False) is False
    monkeypatch.setenv("CI", "true")
    assert _show_progress(None) is False
    assert _show_progress(True) is True


def test_render_progress_only_when_asked(tmp_path: Path) -> None:
    quiet = metarim("render", "--env", ENV_ID, "--steps", "5", "--out", tmp_path / "a.gif")
    assert quiet.returncode == 0, quiet.stderr
    assert "frames" not in quiet.stderr
    shown = metarim("render", "--env", ENV_ID, "--steps", "5", "--out", tmp_path / "b.gif", "--progress")
    assert shown.returncode == 0, shown.stderr
    assert "frames" in shown.stderr and "/5 " in shown.stderr  # frames done / total
