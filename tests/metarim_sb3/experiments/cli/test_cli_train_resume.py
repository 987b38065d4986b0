"""``metarim train``: the run folder's contents, Ctrl-C then ``--resume``, evaluate and render."""

from __future__ import annotations

import csv
import json
import signal
import time
from pathlib import Path

import yaml
from cli_helpers import ENV_ID, metarim, popen_metarim
from sb3_contrib import RecurrentPPO


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_run_folder(finished_run: Path) -> None:
    for name in ("config.yaml", "versions.json", "checkpoint.zip", "model.zip", "done.json", "curve.csv",
                 "mastery.csv", "final_eval.json", "heldout_eval.csv", "rim_activity.npz", "progress.csv", "drift.csv",
                 "drift_reference.pt"):  # fmt: skip
        assert (finished_run / name).is_file(), name
    assert any((finished_run / "tensorboard").iterdir())
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert (config["agent"], config["env"], config["seed"], config["timesteps"]) == ("rim", ENV_ID, 1, 512)
    assert config["fast_slow"]["mode"] == "joint" and config["n_envs"] == 2
    versions = json.loads((finished_run / "versions.json").read_text())["started"]
    assert {"python", "torch", "stable_baselines3", "sb3_contrib", "gymnasium", "minigrid"} <= set(versions)
    done = json.loads((finished_run / "done.json").read_text())
    assert done["status"] == "done" and done["timesteps"] == 512
    assert done["schedule"] == "threshold"
    drift = _rows(finished_run / "drift.csv")
    assert [int(r["timesteps"]) for r in drift][-1] == 512 and "drift_attention" in drift[0]
    steps = [int(r["timesteps"]) for r in _rows(finished_run / "curve.csv")]
    assert steps == list(range(64, 513, 64))


def test_interrupt_then_resume(tmp_path: Path, tiny_config: Path) -> None:
    out = tmp_path / "run"
    # window 1, threshold 0.01: shift at the first success, so the checkpoint is (very likely) past stage 0
    args = ["--config", tiny_config, "--set", "curriculum.window=1", "--set", "curriculum.threshold=0.01"]
    proc = popen_metarim("train", "--agent", "meta-rim", "--env", ENV_ID, "--timesteps", "4096", "--out", out, *args)
    deadline = time.time() + 120
    meta = out / "checkpoint.json"
    while time.time() < deadline and proc.poll() is None:
        if meta.exists() and json.loads(meta.read_text())["timesteps"] >= 256:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert not (out / "done.json").exists()
    saved = json.loads(meta.read_text())
    at = saved["timesteps"]
    assert 256 <= at < 4096 and at % 64 == 0  # rolled back to a rollout boundary
    # the checkpoint holds the curriculum window and the fast/slow meta-sequence (4 rollouts each) it was in
    assert saved["curriculum"]["stage"] == saved["stages"][0]
    checkpoint = RecurrentPPO.load(out / "checkpoint.zip")
    meta_sequence = checkpoint.metarim_fast_slow_state
    assert meta_sequence["settings"] == {"mode": "meta", "other": "fast", "slow_every": 4}
    assert meta_sequence["state"]["rollouts"] == (at // 64) % 4
    assert meta_sequence["state"]["slow_updates"] == (at // 64) // 4

    result = metarim("train", "--resume", "--out", out)
    assert result.returncode == 0, result.stderr
    done = json.loads((out / "done.json").read_text())
    assert done["timesteps"] == 4096
    rows = _rows(out / "curve.csv")
    steps = [int(r["timesteps"]) for r in rows]
    assert steps == list(range(64, 4097, 64))  # no gap, no duplicate around the interrupt
    drift_steps = [int(r["timesteps"]) for r in _rows(out / "drift.csv")]
    # one row per rollout (+ one at each training end), none replayed: rows past the checkpoint were truncated
    assert drift_steps == sorted(drift_steps) and sorted(set(drift_steps)) == list(range(64, 4097, 64))
    assert len(drift_steps) <= len(set(drift_steps)) + 1
    assert (out / "drift_reference.pt").is_file()
    assert (out / f"progress_from_{at}.csv").exists()
    # the resumed envs start in the checkpoint's stage (the curriculum never moves back)
    after = [int(r["stage"]) for r in rows if int(r["timesteps"]) > at]
    assert min(after) >= min(saved["stages"])
    times = [float(r["time_s"]) for r in rows]
    assert times == sorted(times)  # wall time accumulates over both segments
    history = json.loads((out / "versions.json").read_text())
    assert history["resumed"][0]["at_timesteps"] == at


def test_evaluate(finished_run: Path) -> None:
    result = metarim("evaluate", finished_run, "--stage", "heldout", "--episodes", "6", "--n-envs", "2")
    assert result.returncode == 0, result.stderr
    assert "success rate" in result.stdout and "Wilson" in result.stdout
    summary = json.loads((finished_run / "eval_heldout.json").read_text())
    assert summary["episodes"] == 6
    low, high = summary["success_ci"]
    assert 0.0 <= low <= summary["success_rate"] <= high <= 1.0
    assert len(_rows(finished_run / "eval_heldout_episodes.csv")) == 6
    result = metarim("evaluate", finished_run, "--stage", "1", "--episodes", "2", "--n-envs", "1")
    assert result.returncode == 0, result.stderr
    assert (finished_run / "eval_1.json").exists()


def test_render(finished_run: Path, tmp_path: Path) -> None:
    for extra, name in (([], "random.gif"), (["--model", finished_run], "model.gif")):
        result = metarim("render", "--env", ENV_ID, "--steps", "5", "--out", tmp_path / name, *extra)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / name).read_bytes()[:6] in (b"GIF87a", b"GIF89a")
