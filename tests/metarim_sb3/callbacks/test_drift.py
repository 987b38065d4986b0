"""ParameterDriftCallback: what it measures, its CSV and reference file; FastSlowCallback's scaled slow step."""

from __future__ import annotations

import csv
import math
from typing import Any

import pytest
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.env_util import make_vec_env

from metarim_sb3 import MlpRIMPolicy
from metarim_sb3.callbacks import DEFAULT_SLOW_FRACTION, FastSlowCallback
from metarim_sb3.callbacks.drift import ParameterDriftCallback, group_distance, group_norm

TINY_RIM = dict(n_units=3, unit_size=4, k=2, input_key_size=8, comm_key_size=4, comm_value_size=4, comm_heads=2)
N_ENVS, N_STEPS, BATCH, EPOCHS = 2, 8, 8, 2
ROLLOUT = N_ENVS * N_STEPS
FAST_STEPS_PER_ROLLOUT = EPOCHS * ROLLOUT // BATCH


def make_model(seed: int = 0, **kwargs: Any) -> RecurrentPPO:
    env = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=seed)
    policy_kwargs = dict(net_arch=dict(pi=[8], vf=[8]), **TINY_RIM)
    params = dict(n_steps=N_STEPS, batch_size=BATCH, n_epochs=EPOCHS, learning_rate=1e-3, seed=seed)
    return RecurrentPPO(MlpRIMPolicy, env, policy_kwargs=policy_kwargs, **{**params, **kwargs})


def test_group_norm_and_distance_are_l2_over_the_whole_group() -> None:
    a = [th.tensor([3.0, 0.0]), th.tensor([[4.0]])]
    b = [th.tensor([0.0, 0.0]), th.tensor([[0.0]])]
    assert group_norm(a) == pytest.approx(5.0)
    assert group_distance(a, b) == pytest.approx(5.0)
    assert group_norm([]) == 0.0
    with pytest.raises(ValueError, match="same length"):
        group_distance(a, b[:1])


def test_drift_measures_distance_from_start_and_last_update(tmp_path: Any) -> None:
    model = make_model()
    start = {g["name"]: [p.detach().clone() for p in g["params"]] for g in model.policy.optimizer.param_groups}
    drift = ParameterDriftCallback(log_dir=tmp_path)
    model.learn(3 * ROLLOUT, callback=drift)
    for g in model.policy.optimizer.param_groups:
        expected = group_distance(g["params"], start[g["name"]]) / group_norm(start[g["name"]])
        assert drift.last["drift"][g["name"]] == pytest.approx(expected, rel=1e-6)
        assert drift.last["drift"][g["name"]] > 0  # joint training (no fast/slow callback) moves every group
    with open(tmp_path / "drift.csv") as file:
        rows = list(csv.DictReader(file))
    # one row per rollout end (3) and one at training end
    assert [int(r["timesteps"]) for r in rows] == [ROLLOUT, 2 * ROLLOUT, 3 * ROLLOUT, 3 * ROLLOUT]
    assert float(rows[0]["drift_modules"]) == 0.0  # nothing trained before the first rollout ends
    assert set(rows[0]) == {"timesteps", *(f"{k}_{g}" for k in ("drift", "update") for g in start)}
    # the updates of the rows, chained, cannot be shorter than the distance from the start (triangle inequality)
    for name in start:
        assert sum(float(r[f"update_{name}"]) for r in rows) >= float(rows[-1][f"drift_{name}"]) - 1e-9
    assert (tmp_path / "drift_reference.pt").is_file()


def test_drift_resumes_from_the_saved_reference(tmp_path: Any) -> None:
    model = make_model()
    model.learn(2 * ROLLOUT, callback=ParameterDriftCallback(log_dir=tmp_path))
    first = ParameterDriftCallback(log_dir=tmp_path)
    model.learn(ROLLOUT, callback=first, reset_num_timesteps=False)
    # a new callback in the same folder measures from the run's start, not from where it resumed
    assert first.last["drift"]["modules"] > first.last["update"]["modules"] > 0


def test_meta_mode_attention_moves_only_at_slow_updates() -> None:
    model = make_model()
    drift = ParameterDriftCallback()
    rows: list[dict[str, float]] = []
    original = drift.record

    def record() -> dict[str, dict[str, float]]:
        result = original()
        rows.append(dict(result["update"]))
        return result

    drift.record = record  # type: ignore[method-assign]
    model.learn(4 * ROLLOUT, callback=CallbackList([FastSlowCallback(slow_every=2, mode="meta"), drift]))
    # records at the ends of rollouts 1..4, then at training end; slow updates start rollouts 3 and end training
    assert [r["attention"] > 0 for r in rows] == [False, False, True, False, True]
    assert all(r["modules"] > 0 for r in rows[1:])


@pytest.mark.parametrize("value", ["step", 0, -1.0, math.nan, math.inf, True])
def test_slow_lr_scale_bad_values(value: Any) -> None:
    with pytest.raises(ValueError, match="slow_lr_scale"):
        FastSlowCallback(slow_lr_scale=value)


@pytest.mark.parametrize("scale", ["steps", 2.5])
def test_slow_step_learning_rate_is_scaled(scale: str | float) -> None:
    model = make_model()
    seen: list[float] = []
    optimizer = model.policy.optimizer
    callback = FastSlowCallback(fast_lr=1e-3, slow_lr=1e-4, slow_every=2, mode="meta", slow_lr_scale=scale)

    def post(opt: th.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if callback._in_slow_step:
            seen.append(next(g["lr"] for g in opt.param_groups if g["name"] == "attention"))

    handle = optimizer.register_step_post_hook(post)
    model.learn(2 * ROLLOUT, callback=callback)
    handle.remove()
    expected = 1e-4 * (2 * FAST_STEPS_PER_ROLLOUT if scale == "steps" else 2.5)
    assert seen == [pytest.approx(expected)]


@pytest.mark.parametrize("mode", ["meta", "reversed"])
def test_slow_group_drifts_a_documented_fraction_of_the_fast_group(mode: str) -> None:
    """With defaults (slow_lr = rho fast_lr, scaled by the fast steps), slow drifts 1x-3x that fraction."""
    model = make_model(learning_rate=7e-4)
    drift = ParameterDriftCallback()
    model.learn(12 * ROLLOUT, callback=CallbackList([FastSlowCallback(slow_every=4, mode=mode), drift]))
    slow, fast = ("attention", "modules") if mode == "meta" else ("modules", "attention")
    ratio = drift.last["drift"][slow] / drift.last["drift"][fast]
    rho = DEFAULT_SLOW_FRACTION
    assert rho <= ratio <= 3 * rho, f"slow/fast drift ratio {ratio:.3f} outside the documented band"


def test_unscaled_slow_step_leaves_the_slow_group_nearly_frozen() -> None:
    """The reason for the scaling: one slow step at the fast lr moves the slow group far less than the fast one."""
    model = make_model(learning_rate=7e-4)
    drift = ParameterDriftCallback()
    fs = FastSlowCallback(slow_lr=7e-4, slow_every=4, slow_lr_scale=1.0)
    model.learn(12 * ROLLOUT, callback=CallbackList([fs, drift]))
    assert drift.last["drift"]["attention"] < 0.2 * drift.last["drift"]["modules"]
