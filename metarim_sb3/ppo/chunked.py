"""``ChunkedRecurrentPPO``: sb3-contrib's RecurrentPPO trained on fixed-length chunks (truncated BPTT)."""

from __future__ import annotations

from typing import Any

from sb3_contrib import RecurrentPPO

from metarim_sb3.ppo.buffers import check_chunking, chunked_buffer_class

__all__ = ["ChunkedRecurrentPPO"]


class ChunkedRecurrentPPO(RecurrentPPO):
    """
    sb3-contrib's ``RecurrentPPO`` whose minibatches are shuffled fixed-length chunks of the rollout
    (:mod:`metarim_sb3.ppo.buffers`) instead of padded sequences split at episode starts: each gradient step runs the
    recurrent core over ``chunk_len`` steps of ``batch_size / chunk_len`` chunks side by side, which costs far less
    per sample with :class:`~metarim_sb3.policies.RIMPolicy` and the other fast policies of this package. Rollout
    collection, losses, logging, saving and loading are sb3-contrib's. Any sb3-contrib recurrent policy works.
    ``RecurrentPPO(RIMPolicy, env)`` keeps working unchanged; this class is the opt-in layout::

        model = ChunkedRecurrentPPO(MultiInputRIMPolicy, env, chunk_len=32, n_steps=128, batch_size=256)

    Gradients reach back at most ``chunk_len`` steps (truncated backpropagation through time); each chunk starts
    from the recurrent state stored at collection time.

    Code: this module and :mod:`metarim_sb3.ppo.buffers`, on top of sb3-contrib's ``RecurrentPPO``.

    :param args: as ``RecurrentPPO`` (``policy``, ``env``).
    :param chunk_len: time steps per chunk; must divide ``n_steps`` and ``batch_size``.
    :param kwargs: as ``RecurrentPPO``.
    """

    def __init__(self, *args: Any, chunk_len: int = 32, **kwargs: Any) -> None:
        self.chunk_len = chunk_len
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        check_chunking(self.chunk_len, self.n_steps, self.batch_size or self.n_steps * self.n_envs)
        super()._setup_model()
        old = self.rollout_buffer
        self.rollout_buffer = chunked_buffer_class(self.observation_space)(  # type: ignore[call-arg]
            self.n_steps,
            self.observation_space,
            self.action_space,
            old.hidden_state_shape,  # type: ignore[attr-defined]
            self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            chunk_len=self.chunk_len,
        )
