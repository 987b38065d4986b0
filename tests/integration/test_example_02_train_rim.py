"""``examples/02_train_rim.py`` runs end to end with a tiny budget."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_train_rim_example() -> None:
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, str(EXAMPLES / "02_train_rim.py"), "--timesteps", "256", "--eval-episodes", "4"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr
    assert "held-out stage: success" in result.stdout
