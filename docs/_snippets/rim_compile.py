"""``torch.compile`` of a RIM: the fused kernel runs eagerly inside; same result."""

import torch

from metarim_sb3 import RIM

torch.manual_seed(0)
rim = RIM(16, n_units=4, unit_size=8, k=2)
x, state = torch.randn(5, 3, 16), (torch.zeros(1, 3, 32), torch.zeros(1, 3, 32))
eager, _ = rim(x, state)
compiled, (h, c) = torch.compile(rim)(x, state)
print("same output:", torch.allclose(compiled, eager), tuple(compiled.shape))
