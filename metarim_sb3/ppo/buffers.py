"""Rollout buffers that cut recurrent rollouts into fixed-length chunks (truncated BPTT) for wide minibatches.

sb3-contrib's recurrent buffers split a minibatch of contiguous samples at episode starts and pad the pieces: with
MiniGrid's short episodes a 256-sample minibatch becomes a few padded sequences, so each gradient step runs the
recurrent core over a long, narrow batch (T ~ 40-128, B ~ 3-5) whose cost is per-time-step overhead. These buffers
instead cut every environment's rollout into chunks of ``chunk_len`` consecutive steps, each starting from the
recurrent state stored when the rollout was collected, and put ``batch_size / chunk_len`` chunks, shuffled, in a
minibatch: every gradient step runs ``chunk_len`` time steps over a wide batch. Episode starts inside a chunk reset
the state there, as in any recurrent policy of sb3-contrib (and in one fused call with
:class:`~metarim_sb3.policies.FastRecurrentPolicy`). No padding: every sample is real, the mask is all ones.

This is truncated backpropagation through time with stored initial states, as in well-known recurrent PPO
implementations: gradients reach back at most ``chunk_len`` steps, and the initial states are those the policy had
at collection time (not recomputed with the updated weights).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.buffers import RecurrentDictRolloutBuffer, RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.type_aliases import (
    RecurrentDictRolloutBufferSamples,
    RecurrentRolloutBufferSamples,
    RNNStates,
)

__all__ = ["ChunkedRecurrentDictRolloutBuffer", "ChunkedRecurrentRolloutBuffer", "check_chunking"]

_STATES = ("hidden_states_pi", "cell_states_pi", "hidden_states_vf", "cell_states_vf")
_PER_STEP = ("actions", "values", "log_probs", "advantages", "returns", *_STATES, "episode_starts")


def check_chunking(chunk_len: int, n_steps: int, batch_size: int) -> None:
    """
    Check that rollouts of ``n_steps`` per environment cut into whole chunks and minibatches hold whole chunks.

    :param chunk_len: time steps per chunk.
    :param n_steps: steps per environment per rollout.
    :param batch_size: samples per minibatch.
    :raises ValueError: naming the parameter and what is allowed.
    """
    if isinstance(chunk_len, bool) or not isinstance(chunk_len, (int, np.integer)) or chunk_len < 1:
        raise ValueError(f"chunk_len must be a positive integer, got {chunk_len!r}")
    if n_steps % chunk_len:
        raise ValueError(f"chunk_len={chunk_len} must divide n_steps={n_steps} (each rollout is cut into chunks)")
    if batch_size % chunk_len:
        raise ValueError(f"chunk_len={chunk_len} must divide batch_size={batch_size} (minibatches hold whole chunks)")


class _Chunking:
    """What both chunked buffers share: the flattening and the chunk indices. Mixed into the sb3-contrib buffers."""

    buffer_size: int
    n_envs: int
    chunk_len: int
    generator_ready: bool
    device: th.device
    __dict__: dict[str, Any]

    def _flatten_for_chunks(self, observations: bool) -> None:
        # (n_steps, n_layers, n_envs, dim) -> (n_steps, n_envs, n_layers, dim), then env-major flattening as
        # sb3-contrib does: flat index = env * n_steps + t, so a chunk is a contiguous range of one environment.
        for name in _STATES:
            self.__dict__[name] = self.__dict__[name].swapaxes(1, 2)
        names = (*_PER_STEP, "observations") if observations else _PER_STEP
        for name in names:
            self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])  # type: ignore[attr-defined]
        self.generator_ready = True

    def _chunk_batches(self, batch_size: int | None) -> Generator[tuple[np.ndarray, np.ndarray], None, None]:
        """Yield ``(flat sample indices, chunk start indices)`` of each minibatch, chunks in random order."""
        total = self.buffer_size * self.n_envs
        batch_size = total if batch_size is None else batch_size
        per_batch = max(1, batch_size // self.chunk_len)
        starts = np.random.permutation(total // self.chunk_len) * self.chunk_len
        offsets = np.arange(self.chunk_len)
        for first in range(0, len(starts), per_batch):
            chunk_starts = starts[first : first + per_batch]
            yield (chunk_starts[:, None] + offsets).reshape(-1), chunk_starts

    def _states(self, chunk_starts: np.ndarray) -> RNNStates:
        def pair(h: str, c: str) -> tuple[th.Tensor, th.Tensor]:
            # (n_chunks, n_layers, dim) -> (n_layers, n_chunks, dim)
            return tuple(  # type: ignore[return-value]
                self.to_torch(self.__dict__[name][chunk_starts].swapaxes(0, 1)).contiguous()  # type: ignore[attr-defined]
                for name in (h, c)
            )

        return RNNStates(pair("hidden_states_pi", "cell_states_pi"), pair("hidden_states_vf", "cell_states_vf"))

    def _scalars(self, idx: np.ndarray) -> dict[str, th.Tensor]:
        to_torch = self.to_torch  # type: ignore[attr-defined]
        return dict(
            old_values=to_torch(self.__dict__["values"][idx].flatten()),
            old_log_prob=to_torch(self.__dict__["log_probs"][idx].flatten()),
            advantages=to_torch(self.__dict__["advantages"][idx].flatten()),
            returns=to_torch(self.__dict__["returns"][idx].flatten()),
            episode_starts=to_torch(self.__dict__["episode_starts"][idx].flatten()),
            mask=th.ones(len(idx), device=self.device),
        )


class ChunkedRecurrentRolloutBuffer(_Chunking, RecurrentRolloutBuffer):
    """
    sb3-contrib's ``RecurrentRolloutBuffer`` whose minibatches are shuffled fixed-length chunks (see the module).

    Samples are laid out sequence-major, ``(n_chunks * chunk_len, ...)``, with states ``(n_layers, n_chunks, dim)``:
    the format sb3-contrib's recurrent policies read.

    :param args: as ``RecurrentRolloutBuffer``.
    :param chunk_len: time steps per chunk; must divide the rollout's steps per environment.
    :param kwargs: as ``RecurrentRolloutBuffer``.
    """

    def __init__(self, *args: Any, chunk_len: int = 32, **kwargs: Any) -> None:
        self.chunk_len = chunk_len
        super().__init__(*args, **kwargs)
        check_chunking(chunk_len, self.buffer_size, chunk_len)

    def get(self, batch_size: int | None = None) -> Generator[RecurrentRolloutBufferSamples, None, None]:  # type: ignore[override]
        """
        Yield the rollout as minibatches of whole chunks, in random chunk order.

        :param batch_size: samples per minibatch (a multiple of ``chunk_len``); ``None``: the whole rollout.
        """
        assert self.full, "Rollout buffer must be full before sampling from it"
        if not self.generator_ready:
            self._flatten_for_chunks(observations=True)
        for idx, chunk_starts in self._chunk_batches(batch_size):
            yield RecurrentRolloutBufferSamples(
                observations=self.to_torch(self.observations[idx]),
                actions=self.to_torch(self.actions[idx]),
                lstm_states=self._states(chunk_starts),
                **self._scalars(idx),
            )


class ChunkedRecurrentDictRolloutBuffer(_Chunking, RecurrentDictRolloutBuffer):
    """
    sb3-contrib's ``RecurrentDictRolloutBuffer`` whose minibatches are shuffled fixed-length chunks (see the module).

    :param args: as ``RecurrentDictRolloutBuffer``.
    :param chunk_len: time steps per chunk; must divide the rollout's steps per environment.
    :param kwargs: as ``RecurrentDictRolloutBuffer``.
    """

    def __init__(self, *args: Any, chunk_len: int = 32, **kwargs: Any) -> None:
        self.chunk_len = chunk_len
        super().__init__(*args, **kwargs)
        check_chunking(chunk_len, self.buffer_size, chunk_len)

    def get(self, batch_size: int | None = None) -> Generator[RecurrentDictRolloutBufferSamples, None, None]:  # type: ignore[override]
        """
        Yield the rollout as minibatches of whole chunks, in random chunk order.

        :param batch_size: samples per minibatch (a multiple of ``chunk_len``); ``None``: the whole rollout.
        """
        assert self.full, "Rollout buffer must be full before sampling from it"
        if not self.generator_ready:
            for key, obs in self.observations.items():
                self.observations[key] = self.swap_and_flatten(obs)
            self._flatten_for_chunks(observations=False)
        for idx, chunk_starts in self._chunk_batches(batch_size):
            yield RecurrentDictRolloutBufferSamples(
                observations={key: self.to_torch(obs[idx]) for key, obs in self.observations.items()},
                actions=self.to_torch(self.actions[idx]),
                lstm_states=self._states(chunk_starts),
                **self._scalars(idx),
            )


def chunked_buffer_class(observation_space: spaces.Space) -> type[RecurrentRolloutBuffer | RecurrentDictRolloutBuffer]:
    """
    The chunked buffer class for an observation space (Dict or not), as sb3-contrib picks its own.

    :param observation_space: the environment's observation space.
    :return: :class:`ChunkedRecurrentDictRolloutBuffer` or :class:`ChunkedRecurrentRolloutBuffer`.
    """
    if isinstance(observation_space, spaces.Dict):
        return ChunkedRecurrentDictRolloutBuffer
    return ChunkedRecurrentRolloutBuffer
