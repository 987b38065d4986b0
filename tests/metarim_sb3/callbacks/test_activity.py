"""UnitActivityCallback: the task x unit matrix (shape, k active units per step, counts against the masks),
files, logging, bad input."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

import metarim_gym  # noqa: F401  (registers the MetaRIM ids)
from metarim_sb3 import LstmPolicy, MultiInputRIMPolicy
from metarim_sb3.callbacks import HeldOutEvalCallback, UnitActivityCallback

TINY_EXTRACTOR = dict(features_dim=16, cnn_channels=(4, 4), mission_embedding_dim=4)
N_ENVS, N_STEPS = 3, 8
# one stage of two tasks (cheaper to build than the whole MultiTask family)
TWO_TASKS = dict(stages=[["MiniGrid-DoorKey-5x5-v0", "MiniGrid-MultiRoom-N2-S4-v0"]], heldout=None)


def make_model(n_units: int = 4, k: int = 2, **policy_kwargs: Any) -> RecurrentPPO:
    env = make_vec_env("MetaRIM-MultiTask-v0", n_envs=N_ENVS, seed=0, env_kwargs=TWO_TASKS)
    kwargs = dict(n_units=n_units, unit_size=4, k=k, input_key_size=8, comm_key_size=4, comm_value_size=4)
    kwargs.update(comm_heads=2, features_extractor_kwargs=TINY_EXTRACTOR, net_arch=dict(pi=[8], vf=[8]))
    kwargs.update(policy_kwargs)
    return RecurrentPPO(MultiInputRIMPolicy, env, n_steps=N_STEPS, batch_size=8, n_epochs=1, seed=0,
                        policy_kwargs=kwargs)  # fmt: skip


@pytest.mark.parametrize(("n_units", "k", "critic"), [(4, 2, True), (3, 1, False)])
def test_matrix_shape_and_k_active_units_per_step(tmp_path: Path, n_units: int, k: int, critic: bool) -> None:
    model = make_model(n_units, k, **({} if critic else dict(enable_critic_lstm=False)))
    masks: list[th.Tensor] = []
    model.policy.register_forward_hook(lambda *_: masks.append(model.policy.lstm_actor.last_active.clone()))
    cb = UnitActivityCallback(log_dir=str(tmp_path))
    model.learn(4 * N_ENVS * N_STEPS, callback=cb)
    assert all(m.shape == (1, N_ENVS, n_units) for m in masks) and len(masks) == 4 * N_STEPS
    tasks, matrix = cb.activation_matrix()
    assert matrix.shape == (len(tasks), n_units) and set(tasks) == {"DoorKey-5x5", "MultiRoom-N2-S4"}
    np.testing.assert_allclose(matrix.sum(1), k)
    np.testing.assert_allclose(cb.overall_fraction().sum(), k)
    expected = th.cat(masks).reshape(-1, n_units).double().mean(0).numpy()
    np.testing.assert_allclose(cb.overall_fraction(), expected)
    assert ("critic" in cb._counts) == critic
    with open(tmp_path / "rim_activity.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == (len(tasks) + 1) * (2 if critic else 1)
    assert sum(int(r["steps"]) for r in rows if r["core"] == "actor" and r["task"] != "all") == len(masks) * N_ENVS
    data = np.load(tmp_path / "rim_activity.npz")
    np.testing.assert_allclose(data["actor_fraction"], matrix)
    assert list(data["tasks"]) == tasks


def test_per_task_counts_follow_the_step_infos(tmp_path: Path) -> None:
    model = make_model()
    steps: list[tuple[th.Tensor, list[str]]] = []
    masks: list[th.Tensor] = []
    model.policy.register_forward_hook(lambda *_: masks.append(model.policy.lstm_actor.last_active[0].clone()))

    class Pair(BaseCallback):
        def _on_step(self) -> bool:
            steps.append((masks[-1], [info["task"] for info in self.locals["infos"]]))
            return True

    cb = UnitActivityCallback(log_dir=str(tmp_path))
    model.learn(2 * N_ENVS * N_STEPS, callback=[cb, Pair()])
    tasks, matrix = cb.activation_matrix()
    for t, task in enumerate(tasks):
        rows = [mask[i].double() for mask, names in steps for i, name in enumerate(names) if name == task]
        np.testing.assert_allclose(matrix[t], th.stack(rows).mean(0).numpy())


def test_logs_unit_fractions_and_ignores_evaluation_forwards(tmp_path: Path) -> None:
    model = make_model()
    model.set_logger(configure(str(tmp_path), ["csv"]))
    heldout = HeldOutEvalCallback("MetaRIM-MultiRoom-v0", eval_freq=N_ENVS * 2, n_eval_episodes=1)
    cb = UnitActivityCallback()
    model.learn(2 * N_ENVS * N_STEPS, callback=[heldout, cb])  # evaluation runs between rollout steps
    assert len(heldout.evaluations) >= 2
    assert cb._task_steps.sum() == 2 * N_ENVS * N_STEPS
    with open(tmp_path / "progress.csv") as file:
        logged = list(csv.DictReader(file))
    fractions = [float(logged[-1][f"rim/active_fraction/unit_{i}"]) for i in range(4)]
    assert sum(fractions) == pytest.approx(2.0)
    assert cb.csv_path == str(tmp_path / "rim_activity.csv")  # default folder: the logger's


def test_counts_accumulate_over_learn_calls(tmp_path: Path) -> None:
    model = make_model()
    cb = UnitActivityCallback(log_dir=str(tmp_path))
    model.learn(N_ENVS * N_STEPS, callback=cb)
    model.learn(N_ENVS * N_STEPS, callback=cb, reset_num_timesteps=False)
    assert cb._task_steps.sum() == 2 * N_ENVS * N_STEPS
    assert len(model.policy._forward_hooks) == 0


def test_needs_a_rim_core() -> None:
    env = make_vec_env("MetaRIM-DoorKey-v0", n_envs=1)
    model = RecurrentPPO(LstmPolicy, env, n_steps=8, batch_size=8, policy_kwargs=dict(lstm_hidden_size=8))
    with pytest.raises(ValueError, match="RIM core"):
        model.learn(8, callback=UnitActivityCallback())
    with pytest.raises(ValueError, match="file_name"):
        UnitActivityCallback(file_name="")
    with pytest.raises(ValueError, match="core"):
        UnitActivityCallback().activation_matrix("critic")
