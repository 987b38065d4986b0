"""A NaN in the parameters stops the run with exit code 3 and one clear line; the last good checkpoint stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from cli_helpers import ENV_ID

# Runs the real CLI with one extra callback that poisons a parameter once 256 steps are done.
SCRIPT = """
import sys
import torch
from stable_baselines3.common.callbacks import BaseCallback
from metarim_sb3.experiments import cli
from metarim_sb3.experiments.training import runner

class Poison(BaseCallback):
    def _on_step(self):
        return True
    def _on_rollout_end(self):
        if self.num_timesteps >= 256:
            with torch.no_grad():
                next(self.model.policy.parameters()).fill_(float("nan"))

make_callbacks = runner.build_callbacks
runner.build_callbacks = lambda *args, **kwargs: [*make_callbacks(*args, **kwargs), Poison()]
cli.main(sys.argv[1:])
"""


def test_nan_stops_the_run(tmp_path: Path, tiny_config: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--agent", "lstm", "--env", ENV_ID, "--timesteps", "1024", "--out", str(out)]
    args += ["--config", str(tiny_config), "--set", "checkpoint.every=64"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "diverged" in lines[0] and "NaN" in lines[0], result.stderr
    assert not (out / "done.json").exists()
    saved = json.loads((out / "checkpoint.json").read_text())
    assert saved["timesteps"] == 192  # the last rollout boundary before the poisoned one (rollouts of 64 steps)
    with zipfile.ZipFile(out / "checkpoint.zip") as archive:
        assert "policy.pth" in archive.namelist()
    check = (
        "import sys, torch; from sb3_contrib import RecurrentPPO; m = RecurrentPPO.load(sys.argv[1]); "
        "assert all(torch.isfinite(p).all() for p in m.policy.parameters())"
    )
    verify = subprocess.run([sys.executable, "-c", check, str(out / "checkpoint.zip")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
