"""Damaged run files, a diverged run, a full disk, and which layer of the config wins: one line and the documented
exit code, never a traceback, never a silently shorter log."""

from __future__ import annotations

import errno
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cli_helpers import ENV_ID, TINY, assert_one_line_error, main_in_process, metarim

from metarim_sb3.experiments.training import runner
from metarim_sb3.experiments.training.folder import CHECKPOINT, CHECKPOINT_META, LOCK


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != LOCK}


def _garbage(path: Path) -> None:
    """Bytes that are not UTF-8 in the middle of a log (e.g. a disk error)."""
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], b"\xff\xfe\x00\x9cgarbage\n", *lines[1:]]))


def _cut(path: Path) -> None:
    """Keep the header and the first row only."""
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:2]))


DAMAGE: list[tuple[str, Callable[[Path], None], list[str]]] = [
    ("curve.csv", _garbage, ["curve.csv", "not UTF-8"]),
    ("heldout_eval.csv", _garbage, ["heldout_eval.csv", "not UTF-8"]),
    ("stage_eval.csv", _garbage, ["stage_eval.csv", "not UTF-8"]),
    ("drift.csv", _garbage, ["drift.csv", "not UTF-8"]),
    ("drift.csv", lambda p: p.write_text("timesteps,a\n64,1\nrubbish\n128,2\n"), ["drift.csv", "line 3"]),
    ("drift_reference.pt", lambda p: p.write_bytes(p.read_bytes()[:100]), ["drift_reference.pt", "damaged"]),
    ("curve.csv", _cut, ["curve.csv", "rows are missing"]),
    ("curve.csv", lambda p: p.write_bytes(b""), ["curve.csv", "has no rows"]),
    ("curve.csv", lambda p: p.unlink(), ["curve.csv", "has no rows"]),
]


@pytest.mark.parametrize(
    ("name", "damage", "needles"),
    DAMAGE,
    ids=[f"{n}-{d.__name__.strip('_<>')}-{i}" for i, (n, d, _) in enumerate(DAMAGE)],
)
def test_a_damaged_log_stops_a_resume(
    name: str,
    damage: Callable[[Path], None],
    needles: list[str],
    finished_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    damage(run / name)
    before = _tree(run)
    result = main_in_process(["train", "--resume", "--out", run, "--timesteps", "1024"], capsys)
    assert_one_line_error(result, *needles)
    assert _tree(run) == before  # nothing repaired half-way, nothing appended


@pytest.mark.parametrize(
    ("name", "damage", "needles"),
    [
        ("heldout_eval.csv", lambda p: p.write_bytes(p.read_bytes()[:20]), ["heldout_eval.csv", "truncated"]),
        ("heldout_eval.csv", lambda p: p.write_bytes(p.read_bytes()[:66]), ["heldout_eval.csv", "truncated"]),
        ("heldout_eval.csv", lambda p: p.write_text("timesteps,mean_reward\n256,0\n"), ["success_rate column"]),
        ("heldout_eval.csv", lambda p: p.write_text("timesteps,success_rate\n256\n"), ["heldout_eval.csv", "line 2"]),
        ("rim_activity.npz", lambda p: p.write_bytes(b""), ["rim_activity.npz", "damaged"]),
    ],
    ids=["header_cut", "row_cut", "no_column", "short_row", "empty_npz"],
)
def test_report_on_a_damaged_run_file(
    name: str,
    damage: Callable[[Path], None],
    needles: list[str],
    finished_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    damage(run / name)
    assert_one_line_error(main_in_process(["report", run, "--out", tmp_path / "report"], capsys), *needles)
    assert not (tmp_path / "report").exists()


def test_a_diverged_run_exits_3(tmp_path: Path, tiny_config: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["train", "--agent", "lstm", "--env", ENV_ID, "--timesteps", "512", "--out", tmp_path / "run"]
    result = main_in_process([*args, "--config", tiny_config, "--set", "ppo.learning_rate=1e30"], capsys)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "diverged" in lines[0] and "NaN" in lines[0], result.stderr


def test_overflowing_probabilities_also_exit_3(
    tmp_path: Path, tiny_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Finite parameters whose logits overflow to inf give NaN probabilities: torch's sampler raises a RuntimeError
    (not the distribution's ValueError); the run still reports divergence (exit 3), not a traceback."""
    import torch

    def multinomial(*args: object, **kwargs: object) -> None:
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")

    monkeypatch.setattr(torch, "multinomial", multinomial)
    args = ["train", "--agent", "lstm", "--env", ENV_ID, "--timesteps", "512", "--out", tmp_path / "run"]
    result = main_in_process([*args, "--config", tiny_config], capsys)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "diverged" in lines[0] and "NaN" in lines[0], result.stderr


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(
    tmp_path: Path, tiny_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    real = runner.save_model
    calls: list[Path] = []

    def save_model(model: object, path: Path) -> None:
        calls.append(Path(path))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(model, path)

    monkeypatch.setattr(runner, "save_model", save_model)
    out = tmp_path / "run"
    args = ["train", "--agent", "lstm", "--env", ENV_ID, "--timesteps", "1024", "--out", out, "--config", tiny_config]
    result = main_in_process(args, capsys)
    assert_one_line_error(result, str(out), "No space left on device", f"previous {CHECKPOINT} is kept")
    assert json.loads((out / CHECKPOINT_META).read_text())["timesteps"] == 128
    assert (out / CHECKPOINT).stat().st_size > 0
    assert not list(out.glob(".*.tmp-*"))


def test_train_precedence_set_over_config_over_preset_and_the_device_that_ran(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**TINY, "ppo": {**TINY["ppo"], "learning_rate": 0.001, "ent_coef": 0.05}}))
    out = tmp_path / "run"
    result = metarim(
        "train", "--agent", "lstm", "--env", ENV_ID, "--timesteps", "128", "--out", out, "--config", config,
        "--set", "ppo.learning_rate=0.002", "--set", "device=auto", "--set", "final_eval.episodes=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["ppo"]["learning_rate"] == 0.002  # --set over --config
    assert saved["ppo"]["ent_coef"] == 0.05  # --config over the preset
    assert saved["ppo"]["gamma"] == 0.99  # the preset's where nothing overrides it
    import torch

    assert saved["device"] == ("cuda" if torch.cuda.is_available() else "cpu")  # what ran, not "auto"


def test_compare_precedence_set_over_the_preset(tmp_path: Path) -> None:
    preset = tmp_path / "grid.yaml"
    overrides = {**TINY, "ppo": {**TINY["ppo"], "learning_rate": 0.001}, "final_eval": {"episodes": 2, "n_envs": 1}}
    preset.write_text(
        yaml.safe_dump({"agents": ["lstm"], "envs": [ENV_ID], "seeds": 1, "timesteps": 100_000, "overrides": overrides})
    )
    sets = ["--set", "timesteps=128", "--set", "ppo.learning_rate=0.002"]
    dry = metarim("compare", "--preset", preset, "--out", tmp_path / "out", "--dry-run", *sets)
    assert dry.returncode == 0, dry.stderr
    assert " 128 " in dry.stdout and "100,000" not in dry.stdout, dry.stdout
    done = metarim("compare", "--preset", preset, "--out", tmp_path / "out", "--no-report", "--workers", "1", *sets)
    assert done.returncode == 0, done.stdout + done.stderr
    run = tmp_path / "out" / "runs" / ENV_ID / "lstm" / "seed_0"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["timesteps"] == 128 and saved["ppo"]["learning_rate"] == 0.002
    assert saved["n_envs"] == TINY["n_envs"]  # the preset's overrides where --set says nothing
    assert json.loads((run / "done.json").read_text())["timesteps"] == 128
