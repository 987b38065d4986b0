"""Run folders never lose data: what ``--force`` may clear, one writer per folder, damaged files, torn CSVs, resume
overrides; and bad values that must exit 2 with one line before anything is written."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import ENV_ID, metarim, popen_metarim

from metarim_sb3.experiments import cli
from metarim_sb3.experiments.training.folder import LOCK, RunError
from metarim_sb3.experiments.training.ownership import RunLock


def _main(args: list[str | Path], capsys: pytest.CaptureFixture) -> subprocess.CompletedProcess:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, exit_info.value.code, captured.out, captured.err)


def _one_line_error(result: subprocess.CompletedProcess, *needles: str, code: int = 2) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under a folder and its content (the lock file, rewritten by each writer, left out)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != LOCK}


def _train(out: Path, tiny_config: Path, *extra: str | Path) -> list[str | Path]:
    return ["train", "--agent", "lstm", "--env", ENV_ID, "--out", out, "--config", tiny_config, *extra]


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "thesis"
    (folder / "sub").mkdir(parents=True)
    (folder / "thesis.tex").write_text("years of work")
    (folder / "sub" / "notes.txt").write_text("more")
    (folder / "tensorboard").mkdir()
    (folder / "tensorboard" / "events").write_text("someone else's logs")
    return folder


def test_force_never_clears_a_folder_without_a_run(user_folder: Path, tiny_config: Path) -> None:
    before = _tree(user_folder)
    result = metarim(*_train(user_folder, tiny_config, "--timesteps", "64", "--force"))
    _one_line_error(result, "holds no metarim run")
    assert _tree(user_folder) == before


def test_a_non_empty_folder_without_a_run_is_refused(
    user_folder: Path, tiny_config: Path, capsys: pytest.CaptureFixture
) -> None:
    before = _tree(user_folder)
    _one_line_error(_main(_train(user_folder, tiny_config, "--timesteps", "64"), capsys), "holds no metarim run")
    assert _tree(user_folder) == before


def test_force_with_a_bad_config_deletes_nothing(finished_run: Path, capsys: pytest.CaptureFixture) -> None:
    before = _tree(finished_run)
    args = ["train", "--agent", "rim", "--env", ENV_ID, "--out", finished_run, "--force"]
    _one_line_error(_main([*args, "--seed", "4294967296"], capsys), "seed", "4294967295")
    _one_line_error(_main([*args, "--set", "ppo.n_steps=0"], capsys), "ppo.n_steps", ">= 1")
    # refused by a callback at training start: checked before the old run is cleared
    lstm = ["train", "--agent", "lstm", "--env", ENV_ID, "--out", finished_run, "--force", "--timesteps", "64"]
    _one_line_error(_main([*lstm, "--set", "activity=true"], capsys), "RIM core")
    assert _tree(finished_run) == before


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        (["--seed", "-1"], ["seed", "0 to"]),
        (["--set", "ppo.n_steps=0"], ["ppo.n_steps", ">= 1"]),
        (["--set", "ppo.batch_size=-1"], ["ppo.batch_size", ">= 2"]),
        (["--set", "ppo.batch_size=100000"], ["ppo.batch_size", "n_envs * ppo.n_steps"]),
        (["--set", "log_interval=0"], ["log_interval", ">= 1"]),
        (["--set", "device=tpu"], ["device", "cpu"]),
        (["--set", "final_eval.episodes=0"], ["final_eval.episodes", ">= 1"]),
        (["--set", "ppo.gamma=1.5"], ["ppo.gamma", "<= 1"]),
        (["--set", "fast_slow.slow_every=0"], ["fast_slow.slow_every"]),
        (["--set", "env_kwargs.shift_every=.inf"], ["shift_every"]),
    ],
    ids=lambda v: v[-1] if isinstance(v, list) and v and "=" in v[-1] else None,
)
def test_bad_values_exit_2_before_anything_is_written(
    override: list[str],
    needles: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["train", "--agent", "meta-rim", "--env", ENV_ID, "--timesteps", "64", "--out", "run", *override]
    _one_line_error(_main(args, capsys), *needles)
    assert list(tmp_path.iterdir()) == []


def test_outputs_of_the_wrong_kind(tmp_path: Path, finished_run: Path, capsys: pytest.CaptureFixture) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    _one_line_error(_main(["train", "--agent", "rim", "--timesteps", "64", "--out", a_file], capsys), "is a file")
    args = ["train", "--agent", "rim", "--timesteps", "64", "--out", a_file / "run"]
    _one_line_error(_main(args, capsys), "is a file")
    _one_line_error(_main(["report", finished_run, "--out", a_file], capsys), "is a file")
    _one_line_error(_main(["compare", "--preset", "quick", "--out", a_file], capsys), "is a file")
    _one_line_error(_main(["render", "--env", ENV_ID, "--out", tmp_path], capsys), "is a folder")
    _one_line_error(_main(["evaluate", finished_run, "--n-envs", "0"], capsys), "--n-envs")
    assert a_file.read_text() == "x"


def test_damaged_files_exit_2_naming_the_file(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    (run / "model.zip").write_bytes((run / "model.zip").read_bytes()[:300])  # truncated
    _one_line_error(_main(["evaluate", run, "--episodes", "1"], capsys), "model.zip", "damaged", "checkpoint.zip")
    (run / "checkpoint.zip").write_bytes(b"PK\x03\x04 not really a zip")
    args = ["train", "--resume", "--out", run, "--timesteps", "1024"]
    _one_line_error(_main(args, capsys), "checkpoint.zip", "damaged")
    shutil.copy(finished_run / "checkpoint.zip", run / "checkpoint.zip")
    (run / "versions.json").write_text('{"started": ')
    _one_line_error(_main(args, capsys), "versions.json", "damaged")
    (run / "done.json").write_text("{")
    _one_line_error(_main(["report", run, "--out", tmp_path / "report"], capsys), "done.json")
    assert not (tmp_path / "report").exists()


def test_one_writer_per_run_folder(tmp_path: Path, tiny_config: Path) -> None:
    out = tmp_path / "run"
    first = popen_metarim(*_train(out, tiny_config, "--timesteps", "100000"))
    try:
        deadline = time.time() + 120
        lock = out / LOCK
        while time.time() < deadline and first.poll() is None and not (lock.exists() and lock.read_text()):
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()
        for extra in (["--resume"], ["--force", "--timesteps", "64"]):
            args = ["train", "--out", out, *extra] if extra == ["--resume"] else _train(out, tiny_config, *extra)
            _one_line_error(metarim(*args), "being written by process", str(first.pid))
        assert first.poll() is None  # the first writer goes on
        first.send_signal(signal.SIGKILL)  # dies holding the lock: the lock is free again
        first.wait(timeout=60)
        with RunLock(out), pytest.raises(RunError, match="being written"):
            RunLock(out).acquire()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def _curve(path: Path) -> list[list[str]]:
    with open(path, newline="") as file:
        return list(csv.reader(file))


def test_torn_csv_stale_temp_files_resume_overrides_then_force(tmp_path: Path, tiny_config: Path) -> None:
    out = tmp_path / "run"
    assert metarim(*_train(out, tiny_config, "--timesteps", "128")).returncode == 0
    with open(out / "curve.csv", "a") as file:
        file.write("192,1.5,0,")  # a row torn by a power loss
    stale = out / ".checkpoint.tmp-999999.zip"
    stale.write_bytes(b"half a checkpoint")
    # overrides the checkpoint fixes are refused; nothing changes
    before = _tree(out)
    refused = metarim("train", "--resume", "--out", out, "--timesteps", "192", "--set", "ppo.n_steps=64")
    _one_line_error(refused, "ppo.n_steps", "fixed by the checkpoint")
    assert _tree(out) == before
    # allowed overrides are applied to the loaded model, and config.yaml says so
    resumed = metarim(
        "train", "--resume", "--out", out, "--timesteps", "192", "--set", "ppo.learning_rate=0.0005",
        "--set", "ppo.ent_coef=0.02",
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert not stale.exists()
    rows = _curve(out / "curve.csv")
    assert all(len(r) == len(rows[0]) for r in rows)
    assert [int(r[0]) for r in rows[1:]] == list(range(64, 193, 64))
    check = (
        "import sys; from sb3_contrib import RecurrentPPO; m = RecurrentPPO.load(sys.argv[1]); "
        "print(m.learning_rate, m.ent_coef, m.policy.optimizer.param_groups[0]['lr'])"
    )
    shown = subprocess.run([sys.executable, "-c", check, str(out / "model.zip")], capture_output=True, text=True)
    assert shown.stdout.split() == ["0.0005", "0.02", "0.0005"], shown.stderr
    assert "learning_rate: 0.0005" in (out / "config.yaml").read_text()
    assert json.loads((out / "done.json").read_text())["timesteps"] == 192
    # --force replaces the run's files and leaves the user's
    (out / "my_notes.txt").write_text("mine")
    forced = metarim(*_train(out, tiny_config, "--timesteps", "64", "--force"))
    assert forced.returncode == 0, forced.stderr
    assert (out / "my_notes.txt").read_text() == "mine"
    assert json.loads((out / "done.json").read_text())["timesteps"] == 64
    assert not (out / "progress_from_128.csv").exists()


def test_missing_experiments_extra_is_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None if name == "matplotlib" else real(name))
    _one_line_error(_main(["--help"], capsys), "matplotlib", "pip install metarim[experiments]", code=1)
