"""A RIM policy's optimizer groups: the units, the attention, and the rest."""

from sb3_contrib import RecurrentPPO

import metarim_gym  # noqa: F401  (registers the MetaRIM-* ids)
from metarim_sb3 import MultiInputRIMPolicy

model = RecurrentPPO(
    MultiInputRIMPolicy,
    "MetaRIM-MultiRoom-v0",
    policy_kwargs=dict(n_units=6, unit_size=32, k=4),
    seed=0,
)
policy = model.policy
# The actor's RIM core (the critic has its own unless shared_lstm=True):
print(policy.lstm_actor)
for name, params in policy.param_groups_by_name().items():
    size = sum(p.numel() for p in params)
    print(f"{name:>9}: {size:>7} parameters in {len(params)} tensors")
# The optimizer holds the same groups, in GROUP_NAMES order:
print([group["name"] for group in policy.optimizer.param_groups])
