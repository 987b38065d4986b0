"""benchmarks/profile_run.py: each py-spy sample lands in exactly one phase, by the documented rule order."""

from __future__ import annotations

import importlib.util

from repo_paths import ROOT

RAW = "\n".join(
    [
        "learn (a.py:1);collect_rollouts (b.py:2);step (vec_env.py:3) 1",  # no 'VecEnv.step' frame: policy side
        "learn (a.py:1);collect_rollouts (b.py:2);VecEnv.step (base_vec_env.py:3);DummyVecEnv.step_wait (d.py:4) 5",
        "learn (a.py:1);collect_rollouts (b.py:2);CallbackList._on_step (c.py:5);VecEnv.step (base_vec_env.py:3) 2",
        "learn (a.py:1);RecurrentPPO.train (p.py:6);Tensor.backward (t.py:7);RIMSequence.backward (f.py:8) 3",
        "learn (a.py:1);RecurrentPPO.train (p.py:6);RIMSequence.forward (f.py:9) 4",
        "learn (a.py:1);RecurrentPPO.train (p.py:6);Optimizer.step (o.py:1);FastSlowCallback._pre (s.py:2) 2",
        "main (m.py:1);setup (s.py:1) 3",
    ]
)


def test_each_sample_has_one_phase() -> None:
    spec = importlib.util.spec_from_file_location("profile_run", ROOT / "benchmarks" / "profile_run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    total, phases, rim = module.summarize(RAW + "\n")
    assert total == 20 and sum(phases.values()) == total
    assert phases["rollout: env step"] == 5
    assert phases["callbacks (evaluations, curriculum, telemetry)"] == 2  # an evaluation's env step is a callback's
    assert phases["PPO update: backward"] == 3 and phases["PPO update: forward and the rest"] == 4
    assert phases["PPO update: optimizer step (fast/slow hooks in it)"] == 2  # a hook inside the step is the step's
    assert phases["rollout: policy forward and buffer"] == 1
    assert phases["other (setup, final evaluation, checkpoints)"] == 3
    assert rim == 7
    text = module.table(total, phases, rim, header="h")
    assert "RIM core (fused forward + backward, any phase)" in text and " 35.0%" in text
