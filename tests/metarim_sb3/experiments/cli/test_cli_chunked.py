"""``ppo.chunk_len`` in ``metarim``: a chunked run trains, resumes, evaluates and renders with ChunkedRecurrentPPO;
a bad length exits 2 with one line; ``null`` (the default) keeps sb3-contrib's RecurrentPPO and its files; the
``layout`` compare preset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cli_helpers import ENV_ID, assert_one_line_error, main_in_process
from repo_paths import DATA
from sb3_contrib import RecurrentPPO

from metarim_sb3.experiments.grid.compare import plan
from metarim_sb3.experiments.grid.presets import compare_preset
from metarim_sb3.experiments.training.config import resolve_config
from metarim_sb3.experiments.training.folder import load_model_file, saved_chunk_len
from metarim_sb3.experiments.training.yaml_io import ConfigError
from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO


def test_chunked_run_trains_resumes_and_evaluates(tmp_path: Path, tiny_config: Path,
                                                  capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    out = tmp_path / "run"
    result = main_in_process(["train", "--agent", "meta-rim", "--env", ENV_ID, "--timesteps", "128", "--out", out,
                    "--config", tiny_config, "--set", "ppo.chunk_len=16"], capsys)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((out / "config.yaml").read_text())["ppo"]["chunk_len"] == 16
    model = load_model_file(out / "model.zip")
    assert type(model) is ChunkedRecurrentPPO and model.chunk_len == 16

    # the checkpoint fixes the layout: a resume may not change it
    refused = main_in_process(
        ["train", "--resume", "--out", out, "--timesteps", "256", "--set", "ppo.chunk_len=8"], capsys
    )
    assert_one_line_error(refused, "ppo.chunk_len")
    result = main_in_process(["train", "--resume", "--out", out, "--timesteps", "256"], capsys)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "done.json").read_text())["timesteps"] == 256
    resumed = load_model_file(out / "checkpoint.zip")
    assert type(resumed) is ChunkedRecurrentPPO and resumed.chunk_len == 16 and resumed.num_timesteps == 256

    result = main_in_process(["evaluate", out, "--episodes", "2", "--n-envs", "1"], capsys)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "eval_heldout.json").read_text())["episodes"] == 2
    result = main_in_process(["render", "--model", out, "--steps", "3", "--out", tmp_path / "run.gif"], capsys)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run.gif").read_bytes()[:6] in (b"GIF87a", b"GIF89a")


@pytest.mark.parametrize("agent", ["rim", "lstm"])  # chunked and stock by default
@pytest.mark.parametrize("value", ["7", "0", "-16", "16.5", "many", "true"])
def test_bad_chunk_len_exits_2(agent: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    result = main_in_process(["train", "--agent", agent, "--env", ENV_ID, "--set", f"ppo.chunk_len={value}"], capsys)
    if agent == "lstm" or value in ("7", "0", "-16"):  # the layout check, with the lengths allowed
        assert_one_line_error(result, "ppo.chunk_len", "null", "ppo.n_steps=128", "ppo.batch_size=256", "32, 64, 128")
    else:  # not an integer where the agent's preset has one: the type check names the key
        assert_one_line_error(result, "config key ppo.chunk_len: expected a")
    assert list(tmp_path.iterdir()) == []


def test_chunk_len_must_divide_the_run_settings() -> None:
    config = resolve_config("rim", ENV_ID, overrides={"ppo": {"chunk_len": 32}})
    assert config.ppo.chunk_len == 32
    with pytest.raises(ConfigError, match=r"ppo.chunk_len .* ppo.n_steps=48 .*\(1, 2, 4, 8, 16\), got 32"):
        resolve_config("rim", ENV_ID, overrides={"ppo": {"chunk_len": 32, "n_steps": 48, "batch_size": 64}})


def test_default_layouts(finished_run: Path) -> None:
    """The RIM agents train in chunks of 32 (results/layout), the LSTM and GRU baselines in whole sequences."""
    layouts = {a: resolve_config(a, ENV_ID).ppo.chunk_len for a in ("meta-rim", "rim", "reversed", "lstm", "gru")}
    assert layouts == {"meta-rim": 32, "rim": 32, "reversed": 32, "lstm": None, "gru": None}
    assert yaml.safe_load((finished_run / "config.yaml").read_text())["ppo"]["chunk_len"] == 32  # a rim run
    assert saved_chunk_len(finished_run / "model.zip") == 32
    assert type(load_model_file(finished_run / "model.zip")) is ChunkedRecurrentPPO
    for legacy in ("legacy_rim.zip", "legacy_lstm.zip"):  # models saved before the key existed
        assert type(load_model_file(DATA / legacy)) is RecurrentPPO


def test_layout_preset_pairs_every_agent_with_its_chunked_variant(tmp_path: Path) -> None:
    grid, quick = compare_preset("layout"), compare_preset("quick")
    assert (grid["timesteps"], grid["overrides"]) == (quick["timesteps"], quick["overrides"]) and grid["seeds"] == {
        ENV_ID: 3
    }
    jobs = plan("layout", tmp_path)
    assert len(jobs) == 6 * 3
    layouts = {(j.config.variant_of or j.agent, j.config.ppo.chunk_len) for j in jobs}
    assert layouts == {(a, c) for a in ("meta-rim", "rim", "reversed") for c in (None, 32)}
    for job in jobs:
        base = resolve_config(job.config.variant_of or job.agent, ENV_ID, overrides=quick["overrides"],
                              timesteps=quick["timesteps"][ENV_ID])  # fmt: skip
        base = base.with_changes(ppo={"chunk_len": job.config.ppo.chunk_len})
        assert {k: v for k, v in job.config.to_dict().items() if k not in ("agent", "variant_of")} == {
            k: v for k, v in base.to_dict().items() if k != "agent"
        }  # each pair differs in the layout alone
