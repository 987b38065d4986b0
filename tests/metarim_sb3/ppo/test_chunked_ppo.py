"""Chunked recurrent buffers and ChunkedRecurrentPPO: chunk layout, stored states, equivalence, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch as th
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

import metarim_gym  # noqa: F401
from metarim_sb3 import MlpRIMPolicy, MultiInputRIMPolicy
from metarim_sb3.ppo.buffers import ChunkedRecurrentDictRolloutBuffer, ChunkedRecurrentRolloutBuffer, check_chunking
from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO

TINY_RIM = dict(n_units=3, unit_size=4, k=2, input_key_size=8, comm_key_size=4, comm_value_size=4, comm_heads=2)


def filled_buffer(n_steps: int = 8, n_envs: int = 3, chunk_len: int = 4) -> ChunkedRecurrentRolloutBuffer:
    """A buffer whose observation at (t, env) is 100 * env + t and whose stored h is 1000 * env + t."""
    obs_space = __import__("gymnasium").spaces.Box(-np.inf, np.inf, (1,))
    act_space = __import__("gymnasium").spaces.Discrete(2)
    buf = ChunkedRecurrentRolloutBuffer(n_steps, obs_space, act_space, (n_steps, 1, n_envs, 2), "cpu", n_envs=n_envs,
                                        chunk_len=chunk_len)  # fmt: skip
    for t in range(n_steps):
        obs = np.array([[100.0 * e + t] for e in range(n_envs)], dtype=np.float32)
        h = th.tensor([[[1000.0 * e + t] * 2 for e in range(n_envs)]])
        buf.add(obs, np.zeros((n_envs, 1)), np.zeros(n_envs), np.array([t == 0] * n_envs, dtype=np.float32),
                th.zeros(n_envs), th.zeros(n_envs), lstm_states=RNNStates((h, h), (h, h)))  # fmt: skip
    buf.compute_returns_and_advantage(th.zeros(n_envs), np.zeros(n_envs))
    return buf


def test_chunks_are_consecutive_steps_of_one_env_with_their_stored_state() -> None:
    buf = filled_buffer()
    seen = []
    for batch in buf.get(batch_size=8):
        obs = batch.observations.reshape(-1, 4)  # (chunks, chunk_len), sequence-major
        assert obs.shape == (2, 4) and batch.mask.sum() == 8
        h = batch.lstm_states.pi[0]  # (n_layers, n_chunks, dim)
        for chunk, state in zip(obs, h[0], strict=True):
            env, t0 = divmod(int(chunk[0]), 100)
            assert chunk.tolist() == [100.0 * env + t0 + i for i in range(4)]  # consecutive, one env
            assert state.tolist() == [1000.0 * env + t0] * 2  # the state stored at the chunk's first step
            seen.append((env, t0))
        starts = batch.episode_starts.reshape(-1, 4)
        assert all(bool(s[0]) == (int(c[0]) % 100 == 0) for s, c in zip(starts, obs, strict=True))
    assert sorted(seen) == [(e, t) for e in range(3) for t in (0, 4)]  # every chunk exactly once


@pytest.mark.parametrize(
    ("chunk_len", "n_steps", "batch_size", "message"),
    [(0, 8, 8, "positive"), (True, 8, 8, "positive"), (3, 8, 9, "divide n_steps"), (4, 8, 6, "divide batch_size")],
)
def test_check_chunking_rejects_bad_values(chunk_len: int, n_steps: int, batch_size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_chunking(chunk_len, n_steps, batch_size)


def test_model_rejects_chunk_len_that_does_not_divide_n_steps() -> None:
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    with pytest.raises(ValueError, match="chunk_len=5 must divide n_steps=16"):
        ChunkedRecurrentPPO(MlpRIMPolicy, env, n_steps=16, batch_size=16, chunk_len=5, policy_kwargs=TINY_RIM)


class ReplayAtRolloutEnd(BaseCallback):
    """Right after collection, before any update: evaluate the chunked minibatches with the same weights."""

    def __init__(self, chunk_len: int) -> None:
        super().__init__()
        self.chunk_len, self.checked, self.inner_resets = chunk_len, 0, 0

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        policy = self.model.policy
        policy.set_training_mode(False)
        for batch in self.model.rollout_buffer.get(batch_size=8):
            with th.no_grad():
                values, log_prob, _ = policy.evaluate_actions(
                    batch.observations, batch.actions.long().flatten(), batch.lstm_states, batch.episode_starts
                )
            # the stored states are those the same weights produced, so the chunks replay the collection exactly
            th.testing.assert_close(log_prob, batch.old_log_prob, atol=1e-5, rtol=1e-5)
            th.testing.assert_close(values.flatten(), batch.old_values, atol=1e-5, rtol=1e-5)
            self.checked += len(batch.mask)
            self.inner_resets += int(batch.episode_starts.reshape(-1, self.chunk_len)[:, 1:].sum())


@pytest.mark.parametrize("chunk_len", [2, 8])
def test_chunks_replay_the_collection_before_any_update(chunk_len: int) -> None:
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = ChunkedRecurrentPPO(MlpRIMPolicy, env, n_steps=16, batch_size=8, chunk_len=chunk_len, n_epochs=1, seed=0,
                                policy_kwargs=dict(net_arch=[8], **TINY_RIM))  # fmt: skip
    replay = ReplayAtRolloutEnd(chunk_len)
    model.learn(64, callback=replay)
    assert replay.checked == 64
    assert replay.inner_resets > 0  # CartPole episodes end inside chunks: resets inside are replayed too


def test_chunked_ppo_trains_saves_and_loads_dict_obs(tmp_path: Path) -> None:
    env = make_vec_env("MetaRIM-GoTo-v0", n_envs=2, seed=0)
    model = ChunkedRecurrentPPO(MultiInputRIMPolicy, env, n_steps=16, batch_size=16, chunk_len=8, n_epochs=2, seed=0,
                                policy_kwargs=dict(net_arch=[8], **TINY_RIM))  # fmt: skip
    assert isinstance(model.rollout_buffer, ChunkedRecurrentDictRolloutBuffer)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(64)
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    model.save(tmp_path / "m.zip")
    loaded = ChunkedRecurrentPPO.load(tmp_path / "m.zip", env=env)
    assert loaded.chunk_len == 8 and isinstance(loaded.rollout_buffer, ChunkedRecurrentDictRolloutBuffer)
    loaded.learn(32, reset_num_timesteps=False)


def test_stock_recurrent_ppo_is_unchanged() -> None:
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = RecurrentPPO(MlpRIMPolicy, env, n_steps=8, batch_size=8, policy_kwargs=TINY_RIM)
    assert not isinstance(model.rollout_buffer, ChunkedRecurrentRolloutBuffer)
