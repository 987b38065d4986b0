"""Many seeds in one process: ``S`` independent agents whose weights are stacked along a leading seed dimension.

Every layer runs all seeds' copies as one batched op (issue 23), so the per-op overhead that dominates small
recurrent policies on a CPU is paid once for ``S`` agents. Nothing statistical is shared between seeds.

- :mod:`~metarim_sb3.seed_batch.layers`: linear maps, convolutions, MLPs and the MiniGrid features extractor;
- :mod:`~metarim_sb3.seed_batch.cores`: the LSTM, GRU and RIM cores;
- :mod:`~metarim_sb3.seed_batch.stacking`: moving weights between ``S`` ordinary modules and a batched one.
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
