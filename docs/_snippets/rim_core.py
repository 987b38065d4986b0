"""The RIM core on its own, as a drop-in for a one-layer ``nn.LSTM`` (time-first)."""

import torch

from metarim_sb3 import RIM, run_together

rim = RIM(input_size=64, n_units=6, unit_size=32, k=4)
x = torch.randn(20, 8, 64)  # (T, B, input_size)
# hidden_size = n_units * unit_size: all units' states packed in one vector
h0 = torch.zeros(1, 8, rim.hidden_size)
state = (h0, h0.clone())
# batch entry 3 starts a new episode at step 10: its state is zeroed first
starts = torch.zeros(20, 8)
starts[10, 3] = 1.0

out, (h, c) = rim(x, state, starts)
print(out.shape, h.shape)  # (T, B, n_units * unit_size), (1, B, n_units * unit_size)
print(rim.last_active.shape)  # which units were active at each step of the last call
print({role: sum(p.numel() for p in ps) for role, ps in rim.parameter_roles().items()})

# RIMs of equal sizes that read the same input (a policy's actor and critic) run
# as one kernel, with the same results as separate calls
critic = RIM(input_size=64, n_units=6, unit_size=32, k=4)
results = run_together([rim, critic], x, [state, state], starts)
(out_a, state_a), (out_c, state_c) = results
print(torch.allclose(out_a, out, atol=1e-6), out_c.shape)
