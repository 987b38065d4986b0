"""Many seeds in one process: ``S`` independent agents whose weights are stacked along a leading seed dimension.

Every layer runs all seeds' copies as one batched op (issue 23), so the per-op overhead that dominates small
recurrent policies on a CPU is paid once for ``S`` agents. Nothing statistical is shared between seeds.

- :mod:`~metarim_sb3.seed_batch.layers`: linear maps, convolutions, MLPs and the MiniGrid features extractor;
- :mod:`~metarim_sb3.seed_batch.cores`: the LSTM, GRU and RIM cores;
- :mod:`~metarim_sb3.seed_batch.stacking`: moving weights between ``S`` ordinary modules and a batched one;
- :mod:`~metarim_sb3.seed_batch.policy`: :class:`~metarim_sb3.seed_batch.policy.SeedBatchPolicy`, ``S`` recurrent
  actor-critic policies (imports SB3);
- :mod:`~metarim_sb3.seed_batch.ppo`: the PPO update of ``S`` seeds, with per-seed Adam, clipping and fast/slow
  schedule (imports SB3);
- :mod:`~metarim_sb3.seed_batch.trainer`: :func:`~metarim_sb3.seed_batch.trainer.learn_seed_batch`, ``model.learn``
  for ``S`` ordinary models in lockstep (rollouts, callbacks, logging; imports SB3).

Not built yet: the CLI.
"""

from metarim_sb3.seed_batch.cores import SeedGRU, SeedLSTM, SeedRIM, seed_core
from metarim_sb3.seed_batch.layers import SeedConv2d, SeedLinear, SeedMiniGridExtractor, SeedSequential
from metarim_sb3.seed_batch.stacking import (
    check_names,
    stack_into,
    stack_state_dicts,
    unstack_into,
    unstack_state_dict,
)

__all__ = [
    "SeedConv2d",
    "SeedGRU",
    "SeedLSTM",
    "SeedLinear",
    "SeedMiniGridExtractor",
    "SeedRIM",
    "SeedSequential",
    "check_names",
    "seed_core",
    "stack_into",
    "stack_state_dicts",
    "unstack_into",
    "unstack_state_dict",
]
