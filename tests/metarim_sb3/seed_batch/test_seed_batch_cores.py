"""Seed-batched cores and layers equal S separate ordinary modules carrying the same weights (values and gradients)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metarim_sb3.cores.gru import GRUCore
from metarim_sb3.cores.lstm import LSTMCore
from metarim_sb3.cores.rim import RIM
from metarim_sb3.seed_batch import SeedLinear, SeedSequential, seed_core, stack_into, unstack_into

TINY_RIM = dict(n_units=4, unit_size=5, k=2, input_key_size=6, comm_key_size=4, comm_value_size=6, comm_heads=2)


def make_core(kind: str, input_size: int, seed: int, dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(seed)
    core: nn.Module
    if kind == "lstm":
        core = LSTMCore(input_size, 7)
    elif kind == "gru":
        core = GRUCore(input_size, 7)
    else:
        core = RIM(input_size, cell=kind.split("-")[1], **TINY_RIM)  # type: ignore[arg-type]
    return core.to(dtype)


def run_and_grad(
    core: nn.Module, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, starts: torch.Tensor, w: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """Outputs, final states and the gradients of a fixed random functional of them."""
    x, h, c = (t.detach().clone().requires_grad_(True) for t in (x, h, c))
    out, (h_t, c_t) = core(x, (h, c), starts)
    loss = (out * w).sum() + (h_t**2).sum() + (0.5 * c_t).sum()
    inputs = [x, h, c, *core.parameters()]
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)  # a GRU never reads c: None or zeros
    grads = tuple(torch.zeros_like(i) if g is None else g for g, i in zip(grads, inputs, strict=True))
    return (out.detach(), h_t.detach(), c_t.detach(), *grads)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rim-lstm", "rim-gru"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_seed_batched_core_equals_separate_cores(kind: str, dtype: torch.dtype) -> None:
    n_seeds, t_len, b, d = 3, 6, 4, 5
    cores = [make_core(kind, d, 10 + s, dtype) for s in range(n_seeds)]
    batched = seed_core(cores[0], n_seeds).to(dtype)
    stack_into(batched, cores)
    gen = torch.Generator().manual_seed(0)
    hidden: int = getattr(cores[0], "hidden_size")  # noqa: B009
    x = torch.randn(n_seeds, t_len, b, d, generator=gen, dtype=dtype)
    h = 0.5 * torch.randn(n_seeds, 1, b, hidden, generator=gen, dtype=dtype)
    c = 0.5 * torch.randn(n_seeds, 1, b, hidden, generator=gen, dtype=dtype)
    starts = (torch.rand(n_seeds, t_len, b, generator=gen) < 0.25).to(dtype)
    starts[0, 0, 0] = 1.0
    w = torch.randn(n_seeds, t_len, b, hidden, generator=gen, dtype=dtype)
    got = run_and_grad(batched, x, h, c, starts, w)
    rtol, atol = (1e-9, 1e-10) if dtype == torch.float64 else (1e-4, 2e-5)
    for s, core in enumerate(cores):
        want = run_and_grad(core, x[s], h[s], c[s], starts[s], w[s])
        assert len(got) == len(want)
        for i, (g, ref) in enumerate(zip(got, want, strict=True)):
            assert g[s].shape == ref.shape, i
            torch.testing.assert_close(g[s], ref, rtol=rtol, atol=atol, msg=f"item {i} of seed {s}")
    if kind.startswith("rim"):
        assert isinstance(batched.last_active, torch.Tensor)
        for s, core in enumerate(cores):
            core(x[s], (h[s], c[s]), starts[s])
            assert torch.equal(batched.last_active[s], core.last_active)  # type: ignore[index,arg-type]


@pytest.mark.parametrize("kind", ["lstm", "gru", "rim-lstm"])
def test_roles_and_stack_unstack_round_trip(kind: str) -> None:
    cores = [make_core(kind, 5, s, torch.float32) for s in range(2)]
    batched = seed_core(cores[0], 2)
    stack_into(batched, cores)
    roles, ref = getattr(batched, "parameter_roles")(), getattr(cores[0], "parameter_roles")()  # noqa: B009
    names = {id(p): n for n, p in batched.named_parameters()}
    ref_names = {id(p): n for n, p in cores[0].named_parameters()}
    assert {r: [names[id(p)] for p in ps] for r, ps in roles.items()} == {
        r: [ref_names[id(p)] for p in ps] for r, ps in ref.items()
    }
    fresh = [make_core(kind, 5, 99 + s, torch.float32) for s in range(2)]
    unstack_into(batched, fresh)
    for a, b in zip(cores, fresh, strict=True):
        for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
            assert torch.equal(p, q), n


def test_seed_linear_and_mlp_equal_separate_layers() -> None:
    mlps = []
    for s in range(3):
        torch.manual_seed(s)
        mlps.append(nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)))
    batched = SeedSequential(mlps[0], 3)
    assert isinstance(batched[0], SeedLinear)
    stack_into(batched, mlps)
    x = torch.randn(3, 5, 4, requires_grad=True)
    out = batched(x)
    out.square().sum().backward()
    for s, mlp in enumerate(mlps):
        xs = x[s].detach().requires_grad_(True)
        ref = mlp(xs)
        ref.square().sum().backward()
        torch.testing.assert_close(out[s], ref)
        torch.testing.assert_close(x.grad[s], xs.grad)  # type: ignore[index]
        for (n, p), q in zip(batched.named_parameters(), mlp.parameters(), strict=True):
            torch.testing.assert_close(p.grad[s], q.grad, msg=n)  # type: ignore[index]


def test_bad_shapes_and_unknown_cores_are_refused() -> None:
    core = make_core("lstm", 5, 0, torch.float32)
    batched = seed_core(core, 2)
    with pytest.raises(ValueError, match="x must have shape"):
        batched(torch.zeros(3, 2, 1, 5), (torch.zeros(3, 1, 1, 7), torch.zeros(3, 1, 1, 7)))
    with pytest.raises(ValueError, match="state h"):
        batched(torch.zeros(2, 2, 1, 5), (torch.zeros(2, 1, 2, 7), torch.zeros(2, 1, 1, 7)))
    with pytest.raises(TypeError, match="no seed-batched version"):
        seed_core(nn.LSTM(5, 7), 2)
    with pytest.raises(ValueError, match="shapes differ"):
        stack_into(batched, [make_core("gru", 5, 0, torch.float32)] * 2)
    with pytest.raises(ValueError, match="names differ"):
        stack_into(batched, [make_core("rim-lstm", 5, 0, torch.float32)] * 2)
    with pytest.raises(ValueError, match="dropout"):
        seed_core(RIM(5, dropout=0.1, **TINY_RIM), 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["lstm", "gru", "rim-lstm", "rim-gru"])
def test_other_seeds_data_leave_a_seeds_values_and_gradients_bitwise_unchanged(kind: str) -> None:
    """Seed 1's inputs, states and episode starts (so the steps where some seed resets) change; seed 0's outputs
    and gradients are bitwise the same."""
    n_seeds, t_len, b, d = 2, 6, 4, 5
    cores = [make_core(kind, d, 10 + s, torch.float32) for s in range(n_seeds)]
    batched = seed_core(cores[0], n_seeds)
    stack_into(batched, cores)
    hidden: int = getattr(cores[0], "hidden_size")  # noqa: B009
    results = []
    for other in (0, 1):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(n_seeds, t_len, b, d, generator=gen)
        h = 0.5 * torch.randn(n_seeds, 1, b, hidden, generator=gen)
        c = 0.5 * torch.randn(n_seeds, 1, b, hidden, generator=gen)
        starts = torch.zeros(n_seeds, t_len, b)
        starts[0, 2, 1] = 1.0
        w = torch.randn(n_seeds, t_len, b, hidden, generator=gen)
        if other:
            x[1], h[1], c[1], w[1] = 3 * x[1] + 1, -h[1], 2 * c[1], w[1].flip(0)
            starts[1, 4, :] = 1.0
        results.append(run_and_grad(batched, x, h, c, starts, w))
    for i, (a, b_) in enumerate(zip(*results, strict=True)):
        assert torch.equal(a[0], b_[0]), f"item {i}"
