"""Smoke test of ``benchmarks/profile_seed_batch.py`` (a few seconds): every category reported, patches undone."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from repo_paths import ROOT
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

SCRIPT = ROOT / "benchmarks" / "profile_seed_batch.py"


def test_small_run_reports_every_category(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("profile_seed_batch", SCRIPT)
    assert spec is not None and spec.loader is not None
    prof = importlib.util.module_from_spec(spec)
    sys.modules["profile_seed_batch"] = prof
    spec.loader.exec_module(prof)
    before = (DummyVecEnv.step_wait, BaseCallback.on_step)
    out, data = tmp_path / "profile.txt", tmp_path / "profile.json"
    argv = ["--agent", "lstm", "--seeds", "2", "--iterations", "1", "--repeats", "1", "--n-steps", "8", "--rows", "5"]
    assert prof.main([*argv, "--out", str(out), "--json", str(data)]) == 0
    assert (DummyVecEnv.step_wait, BaseCallback.on_step) == before
    text = out.read_text()
    for category in prof.CATEGORIES:
        assert category in text
    assert "cProfile, batched" in text
    result = json.loads(data.read_text())
    cats = result["categories"]
    assert cats["total"]["separate_s"] > 0 and cats["total"]["batched_s"] > 0
    assert cats["env: step"]["batched_s"] > 0 and cats["update: backward"]["batched_s"] > 0
    parts = sum(cats[c]["separate_s"] for c in prof.CATEGORIES)
    assert abs(parts - cats["total"]["separate_s"]) < 0.05 * cats["total"]["separate_s"]
