"""``run_seeds`` / ``metarim train --seeds``: several seeds in one process, each an ordinary run folder (issue 23)."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml
from cli_helpers import ENV_ID, TINY, assert_one_line_error, main_in_process
from sb3_contrib import RecurrentPPO

from metarim_sb3.experiments.training.config import resolve_config
from metarim_sb3.experiments.training.monitoring import RunControl
from metarim_sb3.experiments.training.run_config import RunConfig
from metarim_sb3.experiments.training.seed_runs import _check_runs, run_seeds
from metarim_sb3.experiments.training.yaml_io import ConfigError

STEPS = 128  # two rollouts of 2 envs x 32 steps
FILES = ("config.yaml", "versions.json", "checkpoint.zip", "model.zip", "done.json", "curve.csv", "final_eval.json")


def _config(tmp_path_factory: pytest.TempPathFactory, timesteps: int = STEPS) -> RunConfig:
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    # a held-out evaluation (sampled actions) after every rollout: the callbacks' draws must not depend on other seeds
    path.write_text(yaml.safe_dump({**TINY, "heldout_eval": {"every": 64, "episodes": 2, "n_envs": 1}}))
    return resolve_config("meta-rim", ENV_ID, config_file=path, overrides={}, timesteps=timesteps)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def _params(run: Path) -> dict[str, torch.Tensor]:
    return dict(RecurrentPPO.load(run / "model.zip", device="cpu").policy.state_dict())


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    """Seeds 0 and 1 of the tiny meta-rim config, trained together (shared by the tests that read them)."""
    out = tmp_path_factory.mktemp("seeds") / "meta-rim"
    return out, list(run_seeds(_config(tmp_path_factory), [0, 1], out))


def test_each_seed_is_an_ordinary_run_folder(seeds_run: tuple[Path, list[Any]], capsys: Any) -> None:
    out, results = seeds_run
    assert [r["status"] for r in results] == ["done", "done"]
    for seed, result in zip((0, 1), results, strict=True):
        run = out / f"seed_{seed}"
        for name in FILES:
            assert (run / name).is_file(), (seed, name)
        assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == seed
        done = json.loads((run / "done.json").read_text())
        assert done == result and (done["seed"], done["timesteps"], done["out_dir"]) == (seed, STEPS, str(run))
        assert [int(r["timesteps"]) for r in _rows(run / "curve.csv")] == [64, 128]
    assert _params(out / "seed_0").keys() == _params(out / "seed_1").keys()
    assert any(
        not torch.equal(a, b)
        for a, b in zip(_params(out / "seed_0").values(), _params(out / "seed_1").values(), strict=True)
    )
    # metarim evaluate reads a seed's folder as any run's
    evaluated = main_in_process(["evaluate", out / "seed_1", "--episodes", "2", "--n-envs", "1"], capsys)
    assert evaluated.returncode == 0, evaluated.stderr
    assert (out / "seed_1" / "eval_heldout.json").is_file()


def test_a_seed_equals_that_seed_trained_alone(
    seeds_run: tuple[Path, list[Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Seed 1 trained beside seed 0 equals ``run_seeds`` with seed 1 alone (learning curve, final weights, held-out
    evaluation), up to float rounding: the seeds share no state.

    Not guaranteed, and not tested: equality with the single runner ``run(config, 1, ...)``. Envs, initial weights and
    evaluation are seeded alike, but a single run samples its actions and minibatch order from the process-global
    streams as building the model left them, where each batched seed has its own generators seeded with its seed
    (:func:`~metarim_sb3.seed_batch.trainer.learn_seed_batch`)."""
    out, _ = seeds_run
    alone = tmp_path_factory.mktemp("alone") / "meta-rim"
    (result,) = run_seeds(_config(tmp_path_factory), [1], alone)
    batched, single = out / "seed_1", alone / "seed_1"
    drop = {"time_s", "fps", "seconds"}
    for name in ("curve.csv", "heldout_eval.csv"):
        assert [{k: v for k, v in r.items() if k not in drop} for r in _rows(batched / name)] == [
            {k: v for k, v in r.items() if k not in drop} for r in _rows(single / name)
        ], name
    for name, value in _params(batched).items():
        torch.testing.assert_close(value, _params(single)[name], rtol=1e-5, atol=1e-6, msg=name)
    done = json.loads((batched / "done.json").read_text())
    for key in ("timesteps", "final_stage", "heldout_success", "heldout_return"):
        assert done[key] == pytest.approx(result[key]), key


def test_refusals_name_the_option(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "seeds"
    train = ["train", "--agent", "meta-rim", "--env", ENV_ID, "--timesteps", "64", "--out", out]
    cases: list[tuple[list[Any], tuple[str, ...]]] = [
        (["--seeds", "0,1", "--set", "ppo.chunk_len=null"], ("ppo.chunk_len", "32")),
        (["--seeds", "0,0"], ("--seeds", "given twice")),
        (["--seeds", "0,x"], ("--seeds", "integers")),
        (["--seeds", "0,1", "--seed", "3"], ("--seeds", "--seed")),
        (["--seeds", "0,1", "--set", "device=cuda"], ("device", "cpu")),
    ]
    for extra, needles in cases:
        assert_one_line_error(main_in_process([*train, *extra], capsys), *needles)
    no_out = ["train", "--agent", "meta-rim", "--seeds", "0,1"]
    assert_one_line_error(main_in_process(no_out, capsys), "--seeds", "--out")
    assert not out.exists()  # nothing written
    with pytest.raises(ConfigError, match=r"ppo\.chunk_len"):
        run_seeds(resolve_config("lstm", ENV_ID, timesteps=64), [0, 1], out)
    levels = [
        SimpleNamespace(seed=s, start=n, model=SimpleNamespace(device=torch.device("cpu")))
        for s, n in [(0, 64), (1, 128)]
    ]
    with pytest.raises(ConfigError, match=r"one step count.*seed 0 at 64, seed 1 at 128"):
        _check_runs(levels)  # type: ignore[arg-type]


def test_interrupt_then_resume(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """SIGINT after the second rollout stops both seeds at the next step; each rolls back to that rollout's start and
    checkpoints there (status interrupted); ``metarim train --resume --out DIR --seeds`` then completes both."""
    config = _config(tmp_path_factory, timesteps=256)
    out = tmp_path_factory.mktemp("interrupted") / "meta-rim"
    sent: list[int] = []
    on_rollout_end = RunControl._on_rollout_end

    def interrupt_once(self: RunControl) -> None:
        on_rollout_end(self)
        if self.num_timesteps >= STEPS and not sent:
            sent.append(self.num_timesteps)
            os.kill(os.getpid(), signal.SIGINT)  # the handler of run_seeds: every seed is asked to stop

    with monkeypatch.context() as patch:
        patch.setattr(RunControl, "_on_rollout_end", interrupt_once)
        results = run_seeds(config, [3, 4], out)
    assert sent == [STEPS]
    assert [(r["status"], r["timesteps"]) for r in results] == [("interrupted", STEPS)] * 2
    for seed in (3, 4):
        run = out / f"seed_{seed}"
        assert json.loads((run / "checkpoint.json").read_text())["timesteps"] == STEPS
        assert (run / "checkpoint.zip").is_file() and not (run / "done.json").exists()

    resumed = main_in_process(["train", "--resume", "--out", out, "--seeds", "3,4"], capsys)
    assert resumed.returncode == 0, resumed.stderr
    lines = resumed.stdout.splitlines()
    for seed in (3, 4):
        run = out / f"seed_{seed}"
        assert any(line.startswith(f"seed {seed} done: {STEPS} steps") and line.endswith(str(run)) for line in lines)
        assert json.loads((run / "done.json").read_text())["timesteps"] == 256
        assert [int(r["timesteps"]) for r in _rows(run / "curve.csv")] == [64, 128, 192, 256]
        assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == seed
        assert [v["at_timesteps"] for v in json.loads((run / "versions.json").read_text())["resumed"]] == [STEPS]
