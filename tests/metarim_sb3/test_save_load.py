"""Save / load round trips: ``model.save`` -> ``RecurrentPPO.load`` in a fresh process, ``policy.save`` -> ``load``."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch as th
from repo_paths import DATA
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.save_util import load_from_zip_file

import metarim_sb3
from metarim_sb3 import GROUP_NAMES, MultiInputFastLstmPolicy, MultiInputRIMPolicy, RIMPolicy

ENV_ID = "metarim_gym:MetaRIM-DoorKey-v0"
EXTRACTOR = dict(features_dim=24, cnn_channels=(8, 16), mission_embedding_dim=6)
CONFIGS = {
    "rim": (
        MultiInputRIMPolicy,
        dict(
            n_units=3,
            unit_size=8,
            k=2,
            cell="gru",
            input_key_size=12,
            comm_key_size=8,
            comm_value_size=8,
            comm_heads=2,
            enable_critic_lstm=False,
            net_arch=[16],
            features_extractor_kwargs=EXTRACTOR,
        ),
    ),
    "lstm": (
        MultiInputFastLstmPolicy,
        dict(lstm_hidden_size=12, n_lstm_layers=2, net_arch=dict(pi=[8], vf=[16]), features_extractor_kwargs=EXTRACTOR),
    ),
}

# Run both in this process and in the fresh one; it must not import metarim_sb3 (load() has to find it).
ROLLOUT = '''
import gymnasium as gym
import numpy as np


def episode(model, n_steps=60, seed=3):
    """Deterministic actions and recurrent states along one seeded rollout (with resets)."""
    env = gym.make("metarim_gym:MetaRIM-DoorKey-v0")
    obs, _ = env.reset(seed=seed)
    state, start, actions, states = None, np.ones(1, dtype=bool), [], []
    for _ in range(n_steps):
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        actions.append(int(action))
        states.append(state[0].copy())
        obs, _, terminated, truncated, _ = env.step(action)
        start = np.array([terminated or truncated])
        if start[0]:
            obs, _ = env.reset()
    return np.array(actions), np.stack(states)
'''

CHILD = (
    ROLLOUT
    + """
import sys
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.save_util import load_from_zip_file

th.set_num_threads(1)
assert "metarim_sb3" not in sys.modules
results = {}
for path in sys.argv[2:]:
    model = RecurrentPPO.load(path, device="cpu")
    actions, states = episode(model)
    results[path + ":actions"], results[path + ":states"] = actions, states
    for key, value in model.policy.state_dict().items():
        results[path + ":" + key] = value.numpy()
    results[path + ":groups"] = np.array([g["name"] for g in model.policy.optimizer.param_groups])
np.savez(sys.argv[1], **results)
"""
)


def episode(model: RecurrentPPO) -> tuple[np.ndarray, np.ndarray]:
    namespace: dict = {}
    exec(ROLLOUT, namespace)
    return namespace["episode"](model)


def trained(name: str) -> RecurrentPPO:
    cls, kwargs = CONFIGS[name]
    model = RecurrentPPO(cls, ENV_ID, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs=kwargs, seed=0)
    return model.learn(64)


def test_model_save_load_in_fresh_process(tmp_path: Path) -> None:
    models = {name: trained(name) for name in CONFIGS}
    paths = {name: str(tmp_path / f"{name}.zip") for name in CONFIGS}
    for name, model in models.items():
        model.save(paths[name])
    out = tmp_path / "child.npz"
    repo_root = str(Path(metarim_sb3.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), *paths.values()],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = np.load(out)
    for name, model in models.items():
        path = paths[name]
        for key, value in model.policy.state_dict().items():
            assert np.array_equal(child[f"{path}:{key}"], value.numpy()), (name, key)
        assert list(child[f"{path}:groups"]) == list(GROUP_NAMES)
        actions, states = episode(model)
        assert np.array_equal(child[f"{path}:actions"], actions), name
        assert np.allclose(child[f"{path}:states"], states, atol=1e-6), name


@pytest.mark.parametrize("name", list(CONFIGS))
def test_optimizer_state_round_trip(tmp_path: Path, name: str) -> None:
    model = trained(name)
    model.save(tmp_path / "model.zip")
    loaded = RecurrentPPO.load(tmp_path / "model.zip", env=model.get_env())
    assert type(loaded.policy) is CONFIGS[name][0]
    assert [g["name"] for g in loaded.policy.optimizer.param_groups] == list(GROUP_NAMES)
    before, after = model.policy.optimizer.state_dict(), loaded.policy.optimizer.state_dict()
    assert before["param_groups"] == after["param_groups"]
    for index, state in before["state"].items():
        assert th.equal(state["exp_avg"], after["state"][index]["exp_avg"])
    groups = loaded.policy.param_groups_by_name()
    for group in loaded.policy.optimizer.param_groups:
        assert [id(p) for p in group["params"]] == [id(p) for p in groups[group["name"]]]
    loaded.learn(32)  # training goes on after loading


@pytest.mark.parametrize("name", list(CONFIGS))
def test_policy_save_load(tmp_path: Path, name: str) -> None:
    policy = trained(name).policy
    policy.save(str(tmp_path / "policy.pt"))
    loaded = type(policy).load(str(tmp_path / "policy.pt"))
    assert loaded.lstm_actor.hidden_size == policy.lstm_actor.hidden_size
    assert (loaded.lstm_critic is None) == (policy.lstm_critic is None)
    assert loaded._get_constructor_parameters().keys() == policy._get_constructor_parameters().keys()
    for (k1, v1), (k2, v2) in zip(policy.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k1 == k2 and th.equal(v1, v2)
    actions, states = episode(policy)  # type: ignore[arg-type]  # BasePolicy.predict has the same signature
    actions2, states2 = episode(loaded)  # type: ignore[arg-type]
    assert np.array_equal(actions, actions2) and np.allclose(states, states2, atol=1e-6)


def test_rim_constructor_parameters_complete() -> None:
    policy = trained("rim").policy
    data = policy._get_constructor_parameters()
    for key, value in CONFIGS["rim"][1].items():
        assert data[key] == value, key
    assert data["dropout"] == 0.0 and "rim_dropout" not in data and data["normalize_images"] is False
    assert RIMPolicy(**data).lstm_actor.hidden_size == 24


LEGACY = DATA


@pytest.mark.parametrize("name", ["legacy_rim.zip", "legacy_lstm.zip"])
def test_models_saved_by_an_older_layout_still_load(name: str) -> None:
    """Zips written before ``metarim_sb3.rim`` became a package (see ``tests/data/make_legacy_models.py``)."""
    path = LEGACY / name
    _, params, _ = load_from_zip_file(path, device="cpu")
    assert params is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # an old zip may hold rim_dropout (now dropout)
        model = RecurrentPPO.load(path, device="cpu")
    saved = params["policy"]
    loaded = model.policy.state_dict()
    assert loaded.keys() == saved.keys()
    for key, value in saved.items():
        assert th.equal(loaded[key], value), key
    assert [g["name"] for g in model.policy.optimizer.param_groups] == list(GROUP_NAMES)
    actions, states = episode(model)
    assert actions.shape == (60,) and np.isfinite(states).all()
