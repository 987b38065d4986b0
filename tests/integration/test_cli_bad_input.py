"""Bad input exits with code 2 and one line on stderr that names the problem and the allowed values; nothing is
written or overwritten.

The argument cases run ``cli.main(argv)`` in-process (what the console script calls; a subprocess per case would
spend most of the suite's time importing torch); the run-folder cases and a sample of the argument cases run
the real command in a subprocess.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import ENV_ID, assert_one_line_error, main_in_process, metarim

from metarim_sb3.experiments.rundir import LOCK


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["train", "--agent", "foo"], ["--agent", "meta-rim", "lstm"]),
        (["train", "--agent", "rim", "--env", "MiniGrid-Empty-5x5-v0"], ["--env", ENV_ID]),
        (["train", "--agent", "rim", "--set", "foo=1"], ["'foo'", "ppo", "timesteps"]),
        (["train", "--agent", "rim", "--set", "ppo.lerning_rate=1e-3"], ["'ppo.lerning_rate'", "learning_rate"]),
        (["train", "--agent", "rim", "--set", "ppo.learning_rate=fast"], ["ppo.learning_rate", "number"]),
        (["train", "--agent", "rim", "--set", "novalue"], ["key=value"]),
        (["train", "--agent", "rim", "--timesteps", "0"], ["timesteps"]),
        (["train", "--agent", "rim", "--set", "critic=both"], ["critic", "shared-detached", "separate"]),
        (["train", "--agent", "gru", "--set", "stage_eval.every=0"], ["stage_eval.every", ">= 1"]),
        (["train", "--agent", "gru", "--set", "stage_eval.enabled=maybe"], ["stage_eval.enabled", "true or false"]),
        (["train", "--agent", "gru", "--set", "adaptation.horizon=-5"], ["adaptation.horizon", ">= 1"]),
        (["train", "--agent", "gru", "--set", "env_kwargs.schedule=steps"], ["env_kwargs.schedule", "curriculum"]),
        (["train", "--agent", "rim", "--config", "/nonexistent/cfg.yaml"], ["cannot read", "cfg.yaml"]),
        (["compare", "--preset", "huge"], ["'huge'", "quick", "paper"]),
        (["compare", "--preset", "quick", "--workers", "0"], ["--workers"]),
        (["train"], ["--agent", "meta-rim"]),
        (["render", "--out", "x.gif"], ["--env", "--model"]),
        (["frobnicate"], ["invalid choice", "train"]),
    ],
    ids=lambda v: "_".join(v) if isinstance(v, list) else None,
)
def test_bad_argument(
    args: list[str], needles: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(main_in_process(args, capsys), *needles)
    assert list(tmp_path.iterdir()) == []  # nothing written (e.g. no runs/ folder)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["train", "--agent", "foo"], ["--agent", "meta-rim", "lstm"]),
        (["train", "--agent", "rim", "--set", "foo=1"], ["'foo'", "ppo", "timesteps"]),
        (["compare", "--preset", "huge"], ["'huge'", "quick", "paper"]),
    ],
    ids=["agent", "set", "preset"],
)
def test_bad_argument_subprocess(args: list[str], needles: list[str], tmp_path: Path) -> None:
    assert_one_line_error(metarim(*args, cwd=tmp_path), *needles)
    assert list(tmp_path.iterdir()) == []


def test_invalid_config_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("ppo: [unclosed\n")
    assert_one_line_error(main_in_process(["train", "--agent", "rim", "--config", bad_yaml], capsys), "not valid YAML")
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n- 2\n")
    assert_one_line_error(main_in_process(["train", "--agent", "rim", "--config", not_mapping], capsys), "mapping")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("ppo:\n  n_stepz: 8\n")
    assert_one_line_error(
        main_in_process(["train", "--agent", "rim", "--config", unknown], capsys), "ppo.n_stepz", "n_steps"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "list.yaml", "unknown.yaml"]


def test_resume_without_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        main_in_process(["train", "--resume", "--out", tmp_path / "empty"], capsys), "no checkpoint.zip"
    )
    assert_one_line_error(
        main_in_process(["train", "--resume", "--out", tmp_path / "missing"], capsys), "no checkpoint.zip"
    )
    assert not (tmp_path / "missing").exists()


def _files(folder: Path) -> dict[str, int]:
    """Every file of a folder and its modification time (the lock file, rewritten by each writer, left out)."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name != LOCK}


def test_finished_run_is_not_overwritten(finished_run: Path) -> None:
    before = _files(finished_run)
    result = metarim("train", "--agent", "rim", "--env", ENV_ID, "--out", finished_run, "--timesteps", "64")
    assert_one_line_error(result, "finished run", "--force")
    assert _files(finished_run) == before
    # a finished run can only be resumed to a larger budget
    assert_one_line_error(metarim("train", "--resume", "--out", finished_run), "complete at 512")
    assert _files(finished_run) == before


def test_bad_run_folders(finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert_one_line_error(main_in_process(["evaluate", tmp_path], capsys), "not a run folder")
    assert_one_line_error(main_in_process(["evaluate", finished_run, "--stage", "hard"], capsys), "heldout")
    assert_one_line_error(
        main_in_process(["evaluate", finished_run, "--stage", "7", "--episodes", "1"], capsys), "stage"
    )
    assert_one_line_error(main_in_process(["report", tmp_path, "--out", tmp_path / "rep"], capsys), "no run folders")
    assert not (tmp_path / "rep").exists()
