"""The three critic wirings: separate cores, one shared core with or without the value gradient."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch as th
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.env_util import make_vec_env

from metarim_sb3 import MlpGruPolicy, MlpRIMPolicy

TINY_RIM = dict(n_units=3, unit_size=4, k=2, input_key_size=8, comm_key_size=4, comm_value_size=4, comm_heads=2)
SHARED = dict(shared_lstm=True, enable_critic_lstm=False)


def core_grad_from_value_loss(policy_class: type, **policy_kwargs: object) -> float:
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = RecurrentPPO(policy_class, env, n_steps=8, batch_size=8, seed=0, policy_kwargs=policy_kwargs)
    policy = model.policy
    obs = th.randn(6, 4)
    hidden = policy.lstm_actor.hidden_size
    zeros = (th.zeros(1, 2, hidden), th.zeros(1, 2, hidden))
    starts = th.zeros(6)
    values, _, _ = policy.evaluate_actions(obs, th.zeros(6), RNNStates(zeros, zeros), starts)
    policy.zero_grad()
    values.sum().backward()
    grads = [p.grad for p in policy.lstm_actor.parameters() if p.grad is not None]
    return float(sum(g.abs().sum() for g in grads))


@pytest.mark.parametrize(
    ("policy_class", "sizes"), [(MlpRIMPolicy, TINY_RIM), (MlpGruPolicy, dict(lstm_hidden_size=8))]
)
def test_value_gradient_reaches_the_shared_core_only_when_asked(policy_class: type, sizes: dict) -> None:
    assert core_grad_from_value_loss(policy_class, **sizes, **SHARED) == 0.0  # sb3-contrib's detached critic
    assert core_grad_from_value_loss(policy_class, **sizes, **SHARED, shared_critic_gradient=True) > 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(shared_critic_gradient=True), "needs shared_lstm=True"),
        (dict(**SHARED, shared_critic_gradient="yes"), "must be True or False"),
    ],
)
def test_bad_critic_wiring(kwargs: dict, message: str) -> None:
    env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    with pytest.raises(ValueError, match=message):
        RecurrentPPO(MlpRIMPolicy, env, n_steps=8, batch_size=8, policy_kwargs=dict(**TINY_RIM, **kwargs))


def test_shared_critic_gradient_survives_save_and_load(tmp_path: Path) -> None:
    env = make_vec_env("CartPole-v1", n_envs=1, seed=0)
    model = RecurrentPPO(MlpRIMPolicy, env, n_steps=8, batch_size=8,
                         policy_kwargs=dict(**TINY_RIM, **SHARED, shared_critic_gradient=True))  # fmt: skip
    model.save(tmp_path / "m.zip")
    assert RecurrentPPO.load(tmp_path / "m.zip").policy.shared_critic_gradient is True
