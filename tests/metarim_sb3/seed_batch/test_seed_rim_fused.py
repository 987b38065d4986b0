"""The fused seed-batched RIM (seeds as the kernel's groups) equals the plain seed-batched loop and each seed's RIM."""

from __future__ import annotations

import pytest
import torch

from metarim_sb3.cores.rim import RIM
from metarim_sb3.seed_batch import stack_into
from metarim_sb3.seed_batch.cores import SeedRIM

SIZES = dict(n_units=4, unit_size=5, k=2, input_key_size=6, comm_key_size=4, comm_value_size=6, comm_heads=2)


def _rims(cell: str, n_seeds: int, d: int, dtype: torch.dtype) -> list[RIM]:
    rims = []
    for s in range(n_seeds):
        torch.manual_seed(20 + s)
        rims.append(RIM(d, cell=cell, **SIZES).to(dtype))  # type: ignore[arg-type]
    return rims


def _seed_rim(rims: list[RIM], fused: bool) -> SeedRIM:
    core = SeedRIM(rims[0], len(rims), fused=fused).to(rims[0].key_weight.dtype)
    stack_into(core, rims)
    return core


def _run(
    core: torch.nn.Module, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, starts: torch.Tensor | None
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Outputs, final states, and the gradients of every input and parameter of a fixed functional of them; the
    active masks."""
    x, h, c = (t.detach().clone().requires_grad_(True) for t in (x, h, c))
    out, (h_t, c_t) = core(x, (h, c), starts)
    per_seed = out.shape[-3:]  # the same weights for every seed, as for a RIM run alone
    weights = torch.linspace(-1.0, 1.0, per_seed.numel(), dtype=out.dtype).view(per_seed)
    loss = (out * weights).sum() + (h_t**2).sum() + (0.5 * c_t).sum()
    inputs = [x, h, c, *core.parameters()]
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    grads = tuple(torch.zeros_like(i) if g is None else g for g, i in zip(grads, inputs, strict=True))
    active = core.last_active
    assert isinstance(active, torch.Tensor)
    return [out.detach(), h_t.detach(), c_t.detach(), *grads], active


def _data(
    n_seeds: int, t_len: int, b: int, d: int, hidden: int, dtype: torch.dtype, resets: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(n_seeds, t_len, b, d, generator=gen, dtype=dtype)
    h = 0.5 * torch.randn(n_seeds, 1, b, hidden, generator=gen, dtype=dtype)
    c = 0.5 * torch.randn(n_seeds, 1, b, hidden, generator=gen, dtype=dtype)
    starts = None
    if resets:
        starts = (torch.rand(n_seeds, t_len, b, generator=gen) < 0.25).to(dtype)
        starts[0, 0, 0] = 1.0
        starts[-1, t_len - 1, 1] = 1.0
    return x, h, c, starts


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("n_seeds", [1, 3])
@pytest.mark.parametrize("resets", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_equals_plain_and_separate_rims(cell: str, n_seeds: int, resets: bool, dtype: torch.dtype) -> None:
    t_len, b, d = 7, 3, 5
    rims = _rims(cell, n_seeds, d, dtype)
    fused, plain = _seed_rim(rims, True), _seed_rim(rims, False)
    x, h, c, starts = _data(n_seeds, t_len, b, d, rims[0].hidden_size, dtype, resets)
    got, got_active = _run(fused, x, h, c, starts)
    want, want_active = _run(plain, x, h, c, starts)
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    assert torch.equal(got_active, want_active)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        torch.testing.assert_close(g, w, **tol, msg=f"item {i} against the plain loop")  # type: ignore[arg-type]
    for s, rim in enumerate(rims):
        ref, ref_active = _run(rim, x[s], h[s], c[s], None if starts is None else starts[s])
        assert torch.equal(got_active[s], ref_active)
        for i, (g, w) in enumerate(zip(got, ref, strict=True)):
            torch.testing.assert_close(g[s], w, **tol, msg=f"item {i} of seed {s}")  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("t_len", [1, 4])
def test_fused_without_gradients_equals_with(cell: str, t_len: int) -> None:
    n_seeds, b, d = 3, 4, 5
    rims = _rims(cell, n_seeds, d, torch.float64)
    fused = _seed_rim(rims, True)
    x, h, c, starts = _data(n_seeds, t_len, b, d, rims[0].hidden_size, torch.float64, True)
    assert starts is not None
    starts[1, 0, 2] = 1.0
    want, want_active = _run(fused, x, h, c, starts)
    for _ in range(2):  # the second call reads the cached weights
        with torch.no_grad():
            out, (h_t, c_t) = fused(x, (h, c), starts)
        assert fused.last_active is not None and torch.equal(fused.last_active, want_active)
        for g, w in zip((out, h_t, c_t), want[:3], strict=True):
            torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # a parameter update invalidates the cache
        fused._p("comm_out").mul_(0.5)
        out, _ = fused(x, (h, c), starts)
    for s, rim in enumerate(rims):
        with torch.no_grad():
            rim.comm_out.mul_(0.5)
            ref, _ = rim(x[s], (h[s], c[s]), starts[s])
        torch.testing.assert_close(out[s], ref, rtol=1e-12, atol=1e-12)
