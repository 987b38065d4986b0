"""SeedBatchPolicy equals S separate policies (values, log-probs, entropies and their gradients; rollout steps)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib.common.recurrent.type_aliases import RNNStates

import metarim_gym  # noqa: F401
from metarim_sb3 import MultiInputFastLstmPolicy, MultiInputGruPolicy, MultiInputRIMPolicy
from metarim_sb3.policies import FastRecurrentPolicy
from metarim_sb3.seed_batch.policy import SeedBatchPolicy

TINY_RIM = dict(n_units=3, unit_size=4, k=2, input_key_size=8, comm_key_size=4, comm_value_size=4, comm_heads=2)
EXTRACTOR = dict(features_dim=16, cnn_channels=(4, 8), mission_embedding_dim=4)
CRITICS = {
    "shared-detached": dict(shared_lstm=True, enable_critic_lstm=False),
    "shared": dict(shared_lstm=True, enable_critic_lstm=False, shared_critic_gradient=True),
    "separate": dict(shared_lstm=False, enable_critic_lstm=True),
    "linear": dict(shared_lstm=False, enable_critic_lstm=False),
}


def make_policies(agent: str, n_seeds: int, critic: str = "shared-detached") -> list[FastRecurrentPolicy]:
    env = gym.make("MetaRIM-GoTo-v0")
    kwargs: dict[str, Any] = dict(net_arch=[8], features_extractor_kwargs=EXTRACTOR, **CRITICS[critic])
    cls: type[FastRecurrentPolicy]
    if agent == "rim":
        cls, kwargs = MultiInputRIMPolicy, {**kwargs, **TINY_RIM}
    else:
        cls = MultiInputFastLstmPolicy if agent == "lstm" else MultiInputGruPolicy
        kwargs["lstm_hidden_size"] = 12
    policies: list[FastRecurrentPolicy] = []
    for s in range(n_seeds):
        torch.manual_seed(100 + s)
        policies.append(cls(env.observation_space, env.action_space, lambda _: 1e-3, **kwargs))
    return policies


def sample_batch(policy: FastRecurrentPolicy, n_seeds: int, n_seq: int, t_len: int, seed: int = 0) -> dict[str, Any]:
    """Random raw observations, actions, states and episode starts, ``[S, n_seq * T, ...]``."""
    space = policy.observation_space
    assert isinstance(space, gym.spaces.Dict)
    space.seed(seed)
    gen = torch.Generator().manual_seed(seed)
    m = n_seq * t_len
    samples = [space.sample() for _ in range(n_seeds * m)]
    obs = {
        k: torch.as_tensor(np.stack([smp[k] for smp in samples])).float().view(n_seeds, m, *space[k].shape or ())
        for k in space.spaces
    }
    hidden = policy.lstm_actor.hidden_size

    def state() -> tuple[torch.Tensor, torch.Tensor]:
        return 0.3 * torch.randn(n_seeds, 1, n_seq, hidden, generator=gen), 0.3 * torch.randn(
            n_seeds, 1, n_seq, hidden, generator=gen
        )

    starts = (torch.rand(n_seeds, m, generator=gen) < 0.2).float()
    actions = torch.randint(0, 7, (n_seeds, m), generator=gen).float()
    return dict(obs=obs, actions=actions, states=RNNStates(state(), state()), starts=starts)


def seed_slice(batch: dict[str, Any], s: int) -> dict[str, Any]:
    st = batch["states"]
    return dict(
        obs={k: v[s] for k, v in batch["obs"].items()},
        actions=batch["actions"][s],
        states=RNNStates((st.pi[0][s], st.pi[1][s]), (st.vf[0][s], st.vf[1][s])),
        starts=batch["starts"][s],
    )


@pytest.mark.parametrize(
    ("agent", "critic"),
    [
        ("lstm", "shared-detached"),
        ("gru", "shared-detached"),
        ("rim", "shared-detached"),
        ("rim", "separate"),
        ("lstm", "shared"),
        ("gru", "linear"),
    ],
)
def test_evaluate_actions_and_gradients_equal_separate_policies(agent: str, critic: str) -> None:
    n_seeds = 3
    policies = make_policies(agent, n_seeds, critic)
    batched = SeedBatchPolicy.from_policies(policies)
    batch = sample_batch(policies[0], n_seeds, n_seq=2, t_len=5)
    values, log_prob, entropy = batched.evaluate_actions(
        batch["obs"], batch["actions"], batch["states"], batch["starts"]
    )
    assert values.shape == log_prob.shape == entropy.shape == (n_seeds, 10)
    (values.square().sum() + log_prob.sum() + 0.1 * entropy.sum()).backward()
    names = dict(batched.named_parameters())
    for s, policy in enumerate(policies):
        one = seed_slice(batch, s)
        v, lp, ent = policy.evaluate_actions(one["obs"], one["actions"].long(), one["states"], one["starts"])
        (v.square().sum() + lp.sum() + 0.1 * ent.sum()).backward()
        torch.testing.assert_close(values[s], v.flatten(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(log_prob[s], lp, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(entropy[s], ent, rtol=1e-5, atol=1e-6)
        for name, p in policy.named_parameters():
            grad = names[name].grad
            assert grad is not None and p.grad is not None, name
            torch.testing.assert_close(grad[s], p.grad, rtol=1e-4, atol=1e-6, msg=f"{name}, seed {s}")


def test_param_groups_match_the_policies_groups() -> None:
    policies = make_policies("rim", 2)
    batched = SeedBatchPolicy.from_policies(policies)
    ours = {id(p): n for n, p in batched.named_parameters()}
    theirs = {id(p): n for n, p in policies[0].named_parameters()}
    groups, ref = batched.param_groups_by_name(), policies[0].param_groups_by_name()
    assert {g: [ours[id(p)] for p in ps] for g, ps in groups.items()} == {
        g: [theirs[id(p)] for p in ps] for g, ps in ref.items()
    }


def test_rollout_step_equals_separate_policies_and_unstack_round_trips() -> None:
    n_seeds = 2
    policies = make_policies("rim", n_seeds)
    batched = SeedBatchPolicy.from_policies(policies)
    batch = sample_batch(policies[0], n_seeds, n_seq=3, t_len=1, seed=1)
    with torch.no_grad():
        actions, values, log_prob, states = batched(batch["obs"], batch["states"], batch["starts"], deterministic=True)
        for s, policy in enumerate(policies):
            one = seed_slice(batch, s)
            a, v, lp, st = policy(one["obs"], one["states"], one["starts"], deterministic=True)
            assert torch.equal(actions[s], a)
            torch.testing.assert_close(values[s], v.flatten(), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(log_prob[s], lp, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(states.pi[0][s], st.pi[0], rtol=1e-5, atol=1e-6)
        gens = [torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)]
        sampled, _, _, _ = batched(batch["obs"], batch["states"], batch["starts"], generators=gens)
        assert sampled.shape == (n_seeds, 3) and bool(((sampled >= 0) & (sampled < 7)).all())
    fresh = make_policies("rim", n_seeds)
    for pol in fresh:
        for q in pol.parameters():
            q.data.zero_()
    batched.unstack_into(fresh)
    for a_pol, b_pol in zip(policies, fresh, strict=True):
        for (n, p), q in zip(a_pol.named_parameters(), b_pol.parameters(), strict=True):
            assert torch.equal(p, q), n


def test_unsupported_configurations_are_refused() -> None:
    env = gym.make("MetaRIM-GoTo-v0")
    policy = MultiInputFastLstmPolicy(
        env.observation_space, env.action_space, lambda _: 1e-3, lstm_hidden_size=8, share_features_extractor=False
    )
    with pytest.raises(TypeError, match="MiniGridExtractor"):
        SeedBatchPolicy(policy, 2)
