"""rl-zoo3 as a client: the committed hyperparams/ YAMLs cover every id and train the RIM policy with the zoo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import metarim_gym

ROOT = Path(__file__).resolve().parents[1]
HYPERPARAMS = ROOT / "hyperparams"
#: YAML file -> (zoo algo, expected policy)
FILES = {
    "ppo.yml": ("ppo", "MultiInputPolicy"),
    "ppo_lstm.yml": ("ppo_lstm", "MultiInputLstmPolicy"),
    "meta_rim.yml": ("ppo_lstm", "metarim_sb3.MultiInputRIMPolicy"),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_yaml_covers_every_id(name: str) -> None:
    entries = yaml.safe_load((HYPERPARAMS / name).read_text())
    assert set(entries) == set(metarim_gym.ENV_IDS)
    assert {e["policy"] for e in entries.values()} == {FILES[name][1]}
    assert all(e["n_timesteps"] > 0 for e in entries.values())


def test_zoo_trains_the_meta_rim_policy(tmp_path: Path) -> None:
    pytest.importorskip("rl_zoo3")
    from sb3_contrib import RecurrentPPO

    from metarim_sb3 import RIMPolicy

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo_lstm", "--env", "MetaRIM-GoTo-v0",
        "--gym-packages", "metarim_gym", "--conf-file", str(HYPERPARAMS / "meta_rim.yml"),
        "-n", "256", "--log-folder", str(tmp_path), "--eval-freq", "-1", "--seed", "0",
        "--hyperparams", "n_envs:2", "n_steps:64", "batch_size:64",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "slow_updates" in proc.stdout  # FastSlowCallback ran and logged
    model = RecurrentPPO.load(tmp_path / "ppo_lstm" / "MetaRIM-GoTo-v0_1" / "MetaRIM-GoTo-v0.zip", device="cpu")
    assert isinstance(model.policy, RIMPolicy) and model.num_timesteps == 256
