"""The RIM stays finite over long episodes: rollout states, and the training sequence path that reads them.

Communication adds its output to an active unit's state, and inactive units keep their state, so units can feed
each other's states back to one another. With a communication gain above one (as PPO training on CartPole without
velocities reached), an unbounded addition let states grow geometrically over a long episode until the
communication scores overflowed: the rollout stored states of ~1e23 in the buffer, and the training pass that
started from them produced non-finite values and gradients. The communication output is therefore squashed by a
``tanh`` (an LSTM unit's state then stays within ``(-2, 2)``). These tests drive a RIM with such a gain through
the shapes that exposed it: long episodes, several resets per sequence, zero padding and states stored by a
rollout, for both kernels.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import TimeLimit
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.buffers import create_sequencers
from stable_baselines3.common.env_util import make_vec_env
from torch import Tensor

from metarim_sb3.cores.rim import RIM
from metarim_sb3.policies import FastRecurrentPolicy, MlpRIMPolicy

N_ENVS, N_STEPS, INPUT = 8, 320, 2
#: Steps between resets per env: some episodes short, several much longer than the growth needs to overflow.
EPISODE_LENGTHS = (37, 300, 64, 250, 180, 41, 320, 150)


def _rim(cell: str = "lstm", fused: bool = True, seed: int = 0) -> RIM:
    """A CartPole-sized RIM whose communication gain exceeds one (value and output projections scaled by 3)."""
    torch.manual_seed(seed)
    rim = RIM(INPUT, n_units=4, unit_size=16, k=2, cell=cell, fused=fused)
    with torch.no_grad():
        rim.comm_value.mul_(3.0)
        rim.comm_out.mul_(3.0)
    return rim


def _rollout(rim: RIM) -> tuple[Tensor, np.ndarray, Tensor, Tensor]:
    """Step ``rim`` one step at a time without gradients, as RecurrentPPO's rollout does.

    :return: observations ``(N_STEPS, N_ENVS, INPUT)``, episode starts ``(N_STEPS, N_ENVS)`` and the states
        before each step (what the buffer stores), ``h`` and ``c`` each ``(N_STEPS, N_ENVS, hidden)``.
    """
    gen = torch.Generator().manual_seed(1)
    obs = 0.2 * torch.randn(N_STEPS, N_ENVS, INPUT, generator=gen)
    starts = np.zeros((N_STEPS, N_ENVS), dtype=np.float32)
    for env, length in enumerate(EPISODE_LENGTHS):
        starts[::length, env] = 1.0
    h = torch.zeros(1, N_ENVS, rim.hidden_size)
    c = torch.zeros_like(h)
    hs, cs = [], []
    with torch.no_grad():
        for t in range(N_STEPS):
            hs.append(h[0])
            cs.append(c[0])
            _, (h, c) = rim(obs[t : t + 1], (h, c), torch.from_numpy(starts[t : t + 1]))
    return obs, starts, torch.stack(hs), torch.stack(cs)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rollout_states_stay_finite_over_long_episodes(cell: str) -> None:
    rim = _rim(cell)
    _, _, h, c = _rollout(rim)
    assert torch.isfinite(h).all() and torch.isfinite(c).all()
    if cell == "lstm":  # o tanh(c) plus a tanh-squashed communication output
        assert h.abs().max() < 2.0


def _buffer_minibatch(
    obs: Tensor, starts: np.ndarray, h: Tensor, c: Tensor, lo: int, hi: int
) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor, Tensor]:
    """A minibatch as sb3-contrib's recurrent buffer builds it from rows ``lo:hi`` of the env-major flat rollout.

    :return: padded features ``(n_seq * max_len, INPUT)``, the stored states at the sequence starts, padded
        episode starts and the mask of real (non-padding) rows.
    """

    def flat(a: np.ndarray) -> np.ndarray:
        return a.swapaxes(0, 1).reshape(N_ENVS * N_STEPS, *a.shape[2:])[lo:hi]

    env_change = np.zeros((N_STEPS, N_ENVS), dtype=np.float32)
    env_change[0] = 1.0
    seq_starts, pad, pad_and_flatten = create_sequencers(flat(starts), flat(env_change), torch.device("cpu"))
    n_seq = len(seq_starts)
    features = pad(flat(obs.numpy())).reshape(-1, INPUT)
    states = tuple(torch.from_numpy(flat(s.numpy())[seq_starts]).unsqueeze(0).contiguous() for s in (h, c))
    episode_starts = pad_and_flatten(flat(starts))
    mask = pad_and_flatten(np.ones(hi - lo, dtype=np.float32)) > 0
    assert features.shape[0] == mask.shape[0] and states[0].shape[1] == n_seq
    return features, states, episode_starts, mask  # type: ignore[return-value]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
def test_training_sequences_from_stored_states_are_finite(fused: bool) -> None:
    """Minibatches of the rollout above (padding, stored states), through the policy's sequence path.

    LSTM units only: a GRU unit's state is not bounded by its cell (it interpolates towards its own previous
    state), so with this exaggerated gain its states drift and its gradients through 300 steps can overflow.
    """
    rim = _rim("lstm", fused)
    obs, starts, h, c = _rollout(rim)
    for lo, hi in ((0, 512), (700, 1300), (N_ENVS * N_STEPS - 400, N_ENVS * N_STEPS)):
        features, states, episode_starts, mask = _buffer_minibatch(obs, starts, h, c, lo, hi)
        features.requires_grad_(True)
        states = (states[0].requires_grad_(True), states[1].requires_grad_(True))
        rim.zero_grad()
        out, (h_t, c_t) = FastRecurrentPolicy._process_sequence(features, states, episode_starts, rim)
        assert torch.isfinite(out).all() and torch.isfinite(h_t).all() and torch.isfinite(c_t).all()
        (out[mask].sin().sum() + h_t.sum() + c_t.sum()).backward()
        grads = [features.grad, states[0].grad, states[1].grad, *(p.grad for p in rim.parameters())]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "eager"])
def test_sequences_with_several_resets_and_padding_are_finite(fused: bool) -> None:
    """Whole rollout columns as sequences: several resets inside each, zero padding after a shorter one,
    actor and critic cores run together as the policy runs them."""
    actor, critic = _rim(fused=fused, seed=0), _rim(fused=fused, seed=1)
    obs, starts, h, c = _rollout(actor)
    _, _, h_vf, c_vf = _rollout(critic)
    t_len = 200
    x = obs[40 : 40 + t_len].clone()
    resets = torch.from_numpy(starts[40 : 40 + t_len])
    x[150:, 0] = 0.0  # env 0's sequence is padded after 150 steps
    resets[150:, 0] = 0.0
    features = x.transpose(0, 1).reshape(-1, INPUT).requires_grad_(True)
    episode_starts = resets.transpose(0, 1).reshape(-1)
    states = [
        (h[40].unsqueeze(0).requires_grad_(True), c[40].unsqueeze(0).requires_grad_(True)),
        (h_vf[40].unsqueeze(0).requires_grad_(True), c_vf[40].unsqueeze(0).requires_grad_(True)),
    ]
    assert (resets.sum(0) >= 2).any()
    results = FastRecurrentPolicy._process_sequences(features, tuple(states), episode_starts, (actor, critic))
    loss = torch.zeros(())
    for out, (h_t, c_t) in results:
        assert torch.isfinite(out).all() and torch.isfinite(h_t).all() and torch.isfinite(c_t).all()
        loss = loss + out.sin().sum() + h_t.sum()
    loss.backward()
    grads = [features.grad, *(s.grad for pair in states for s in pair)]
    grads += [p.grad for core in (actor, critic) for p in core.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


class _PositionsOnly(gym.ObservationWrapper[np.ndarray, int, np.ndarray]):
    """CartPole without velocities: the observation is (cart position, pole angle)."""

    def __init__(self, env: gym.Env[np.ndarray, int]) -> None:
        super().__init__(env)
        box = env.observation_space
        assert isinstance(box, gym.spaces.Box)
        self.observation_space = gym.spaces.Box(box.low[[0, 2]], box.high[[0, 2]], dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[[0, 2]].astype(np.float32)


def _cartpole_no_velocity() -> gym.Env[np.ndarray, int]:
    return TimeLimit(_PositionsOnly(gym.make("CartPole-v1").unwrapped), max_episode_steps=500)


@pytest.mark.slow
def test_rim_policy_learns_cartpole_without_velocities() -> None:
    """The configuration whose rollout states once overflowed (~11k steps) trains to the end and learns.

    Measured with the bounded communication: mean episode reward 77.6 (seed 0) and 64.4 (seed 1) after 60k steps,
    still rising; random play scores about 22, and our LSTM-64 with the same heads reached 98.0 (seed 0). The bar
    is set below the measured value, not at the 100 first hoped for.
    """
    env = make_vec_env(_cartpole_no_velocity, n_envs=8, seed=0)
    model = RecurrentPPO(
        MlpRIMPolicy,
        env,
        n_steps=128,
        batch_size=256,
        n_epochs=10,
        learning_rate=7e-4,
        max_grad_norm=1.0,
        gae_lambda=0.98,
        seed=0,
        policy_kwargs=dict(n_units=4, unit_size=16, k=2, net_arch=dict(vf=[64], pi=[]), ortho_init=False),
    )
    model.learn(60_000)
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())
    mean_reward = float(np.mean([info["r"] for info in model.ep_info_buffer]))
    assert mean_reward >= 60.0, f"mean episode reward {mean_reward:.1f} after 60k steps, want >= 60"
