"""Bad input exits with code 2 and one line on stderr that names the problem and the allowed values; nothing is
written or overwritten.

The argument cases run ``cli.main(argv)`` in-process (what the console script calls; a subprocess per case would
spend most of the suite's time importing torch); the run-folder cases and a sample of the argument cases run
the real command in a subprocess.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import ENV_ID, assert_one_line_error, main_in_process, metarim

from metarim_sb3.experiments.training.folder import LOCK


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


# ------------------------------------------------------------------------------------- bounds and crafted input
def _deep_yaml(folder: Path) -> Path:
    path = folder / "deep.yaml"
    path.write_text("a: " + "[" * 20_000 + "]" * 20_000 + "\n")
    return path


def _alias_bomb(folder: Path) -> Path:
    """A billion-laughs file under env_kwargs: 9 levels of 9 aliases expand to 9**9 values."""
    lines = ["env_kwargs:", '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"  l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    path = folder / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _big_yaml(folder: Path) -> Path:
    path = folder / "big.yaml"
    path.write_text("# padding\n" * 200_000)
    return path


def _fifo(folder: Path) -> Path:
    path = folder / "pipe.yaml"
    os.mkfifo(path)
    return path


def _seeds_preset(folder: Path) -> Path:
    path = folder / "many.yaml"
    path.write_text(f"agents: [lstm]\nenvs: [{ENV_ID}]\nseeds: 1000000000\ntimesteps: 64\n")
    return path


def _run_of_unknown_env(folder: Path, finished_run: Path) -> Path:
    run = folder / "run"
    shutil.copytree(finished_run, run)
    config = (run / "config.yaml").read_text().replace(f"env: {ENV_ID}", "env: MetaRIM-Nowhere-v9")
    (run / "config.yaml").write_text(config)
    return run


_NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
_NO_MPS = pytest.mark.skipif(
    hasattr(torch.backends, "mps") and torch.backends.mps.is_available(), reason="this machine has MPS"
)
_BOMB = "{a: &a [x,x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]}"  # noqa: E501

#: ``(args, needles)``: ``{IN}`` in an argument is replaced by the file a setup function named after it makes.
BOUNDS_CASES = [
    pytest.param(["train", "--agent", "rim", "--threads", "100000"], ["--threads", "1 to"], id="threads"),
    pytest.param(
        ["train", "--agent", "rim", "--set", "ppo.n_steps=1000000000000"], ["ppo.n_steps", "65536"], id="n_steps"
    ),
    pytest.param(["train", "--agent", "rim", "--set", "n_envs=100000"], ["n_envs", "256"], id="n_envs"),
    pytest.param(
        ["train", "--agent", "rim", "--set", "n_envs=256", "--set", "ppo.n_steps=65536"],
        ["n_envs * ppo.n_steps", "262144"],
        id="rollout",
    ),
    pytest.param(
        ["train", "--agent", "rim", "--set", "policy_kwargs.unit_size=100000"],
        ["policy_kwargs.unit_size", "1 to 1024"],
        id="unit_size",
    ),
    pytest.param(
        ["train", "--agent", "meta-rim", "--set", "policy_kwargs.n_units=100000"],
        ["policy_kwargs.n_units", "1 to 64"],
        id="n_units",
    ),
    pytest.param(
        ["train", "--agent", "rim", "--set", "policy_kwargs.n_units=64", "--set", "policy_kwargs.unit_size=1024"],
        ["n_units * policy_kwargs.unit_size", "4096"],
        id="rim_state",
    ),
    pytest.param(
        ["train", "--agent", "rim", "--set", "device=cuda"], ["device cuda", "not available"], id="cuda", marks=_NO_CUDA
    ),
    pytest.param(["train", "--agent", "rim", "--set", "device=cuda:9"], ["device cuda:9", "not available"], id="cuda9"),
    pytest.param(
        ["train", "--agent", "rim", "--set", "device=mps"], ["device mps", "not available"], id="mps", marks=_NO_MPS
    ),
    pytest.param(["compare", "--seeds", "1000000000", "--dry-run"], ["--seeds", "1 to 1000"], id="compare_seeds"),
    pytest.param(["compare", "--preset", "{many}", "--dry-run"], ["seeds", "1 to 1000"], id="preset_seeds"),
    pytest.param(["train", "--agent", "rim", "--config", "{deep}"], ["deep.yaml", "deeper than 64"], id="deep_yaml"),
    pytest.param(["train", "--agent", "rim", "--config", "{bomb}"], ["bomb.yaml", "more than 100000"], id="alias_bomb"),
    pytest.param(
        ["train", "--agent", "rim", "--set", f"env_kwargs.x={_BOMB}"],
        ["--set env_kwargs.x", "more than"],
        id="set_bomb",
    ),
    pytest.param(["train", "--agent", "rim", "--config", "{big}"], ["big.yaml", "larger than"], id="big_yaml"),
    pytest.param(
        ["train", "--agent", "rim", "--config", "/dev/zero"], ["/dev/zero", "not a regular file"], id="dev_zero"
    ),
    pytest.param(
        ["train", "--agent", "rim", "--config", "{pipe}"], ["pipe.yaml", "not a regular file"], id="fifo_config"
    ),
    pytest.param(["compare", "--preset", "{pipe}", "--dry-run"], ["pipe.yaml", "not a regular file"], id="fifo_preset"),
    pytest.param(["evaluate", "{run}", "--stage", "²"], ["--stage", "heldout"], id="stage_superscript"),
    pytest.param(["evaluate", "{run}", "--seed", "-1"], ["seed", "0 to"], id="evaluate_seed"),
    pytest.param(["render", "--env", ENV_ID, "--seed", "-1", "--out", "x.gif"], ["seed", "0 to"], id="render_seed"),
    pytest.param(["render", "--env", ENV_ID, "--out", "x.txt"], ["x.txt", ".gif"], id="render_suffix"),
    pytest.param(["evaluate", "{unknown_env}"], ["MetaRIM-Nowhere-v9", "unknown env"], id="evaluate_unknown_env"),
    pytest.param(["render", "--model", "{unknown_env}", "--out", "x.gif"], ["unknown env"], id="render_unknown_env"),
]


@pytest.mark.parametrize(("args", "needles"), BOUNDS_CASES)
def test_bounds_and_crafted_input(
    args: list[str],
    needles: list[str],
    tmp_path: Path,
    finished_run: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    inputs, cwd = tmp_path / "in", tmp_path / "cwd"
    inputs.mkdir()
    cwd.mkdir()
    makers = {
        "deep": _deep_yaml,
        "bomb": _alias_bomb,
        "big": _big_yaml,
        "pipe": _fifo,
        "many": _seeds_preset,
        "run": lambda folder: finished_run,
        "unknown_env": lambda folder: _run_of_unknown_env(folder, finished_run),
    }
    resolved = []
    for arg in args:
        name = arg[1:-1] if arg.startswith("{") and arg.endswith("}") else None
        resolved.append(str(makers[name](inputs)) if name in makers else arg)
    monkeypatch.chdir(cwd)
    start = time.perf_counter()
    result = main_in_process(resolved, capsys)
    assert_one_line_error(result, *needles)
    assert len(result.stderr) < 400  # never an expanded value in the message
    assert time.perf_counter() - start < 30
    assert list(cwd.iterdir()) == []  # nothing written
