"""The algorithm: sb3-contrib's ``RecurrentPPO`` trained on fixed-length chunks (truncated BPTT), and its buffers.

- :mod:`~metarim_sb3.ppo.chunked`: :class:`~metarim_sb3.ppo.chunked.ChunkedRecurrentPPO`, ``RecurrentPPO`` whose
  minibatches are shuffled fixed-length chunks of the rollout;
- :mod:`~metarim_sb3.ppo.buffers`: the rollout buffers that cut rollouts into those chunks
  (:class:`~metarim_sb3.ppo.buffers.ChunkedRecurrentRolloutBuffer`,
  :class:`~metarim_sb3.ppo.buffers.ChunkedRecurrentDictRolloutBuffer`) and
  :func:`~metarim_sb3.ppo.buffers.check_chunking`.

``RecurrentPPO(RIMPolicy, env)`` works without this package; it is the opt-in layout (``metarim`` runs use it when
``ppo.chunk_len`` is an integer).
"""

from metarim_sb3.ppo.buffers import ChunkedRecurrentDictRolloutBuffer, ChunkedRecurrentRolloutBuffer, check_chunking
from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO

__all__ = [
    "ChunkedRecurrentDictRolloutBuffer",
    "ChunkedRecurrentPPO",
    "ChunkedRecurrentRolloutBuffer",
    "check_chunking",
]
