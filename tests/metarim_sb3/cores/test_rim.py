"""Tests of the RIM core (:mod:`metarim_sb3.cores.rim`): semantics against an independent reference, the fused
hand-written backward against autograd and finite differences, and argument checking."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from metarim_sb3.cores import ATTENTION, MODULES, RIM, ROLE_NAMES, RecurrentCore, run_together
from metarim_sb3.cores.lstm import LSTMCore
from metarim_sb3.cores.rim._fused import RIMSequence

CELLS = ("lstm", "gru")
PATHS = ("fused", "reference", "no_grad")


def tiny(cell: str = "lstm", **kw: object) -> RIM:
    """A small float64 RIM with several heads everywhere."""
    args: dict[str, object] = dict(
        n_units=4,
        unit_size=3,
        k=2,
        cell=cell,
        input_key_size=4,
        input_value_size=6,
        input_heads=2,
        comm_key_size=4,
        comm_value_size=6,
        comm_heads=2,
    )
    args.update(kw)
    return RIM(5, **args).double()  # type: ignore[arg-type]


def state(rim: RIM, b: int, seed: int = 0, requires_grad: bool = False) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(1, b, rim.hidden_size, generator=g, dtype=torch.float64)
    c = torch.randn(1, b, rim.hidden_size, generator=g, dtype=torch.float64)
    if rim.cell == "gru":
        c.zero_()
    return h.requires_grad_(requires_grad), c.requires_grad_(requires_grad)


def run(rim: RIM, path: str, x: Tensor, st: tuple[Tensor, Tensor], starts: Tensor | None = None):
    """Call the RIM through one of its three code paths."""
    rim.fused = path != "reference"
    if path == "no_grad":
        with torch.no_grad():
            return rim(x, st, starts)
    x = x.detach().requires_grad_()
    return rim(x, st, starts)


def torch_cell(rim: RIM, j: int) -> nn.LSTMCell | nn.GRUCell:
    """Unit ``j``'s cell as a torch module with the same weights (torch's LSTM gate order is the RIM's)."""
    cell: nn.LSTMCell | nn.GRUCell
    cell = (
        nn.LSTMCell(rim.weight_ih.shape[1], rim.unit_size)
        if rim.cell == "lstm"
        else nn.GRUCell(rim.weight_ih.shape[1], rim.unit_size)
    )
    cell = cell.to(rim.weight_ih.dtype)
    with torch.no_grad():
        cell.weight_ih.copy_(rim.weight_ih[j].t())
        cell.weight_hh.copy_(rim.weight_hh[j].t())
        if isinstance(cell, nn.LSTMCell):
            cell.bias_ih.copy_(rim.bias[j])
            cell.bias_hh.zero_()
        else:
            cell.bias_ih.copy_(rim.bias_ih[j])
            cell.bias_hh.copy_(rim.bias_hh[j])
    return cell


def reference_step(rim: RIM, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One RIM step written directly from the method description, with one ``nn.LSTMCell``/``nn.GRUCell`` per
    unit and explicit loops; ``x`` ``[B, D]``, ``h``/``c`` ``[B, N, H]``. Returns new ``h``, ``c`` and the mask."""
    n, k = rim.n_units, rim.k
    b = x.shape[0]
    dk = rim.query_weight.shape[-1]
    heads = rim.input_heads
    d_head = dk // heads
    rows = torch.stack((torch.zeros_like(x), x), 1)  # the null row first
    keys, values = rows @ rim.key_weight, rows @ rim.value_weight  # [B, 2, .]
    q = torch.einsum("bnh,nhk->bnk", h, rim.query_weight) + rim.query_bias
    per_head = [
        q[..., i * d_head : (i + 1) * d_head] @ keys[..., i * d_head : (i + 1) * d_head].transpose(1, 2)
        for i in range(heads)
    ]
    probs = (torch.stack(per_head).mean(0) / math.sqrt(d_head)).softmax(-1)  # [B, N, 2]
    attended = probs @ values  # [B, N, dv]
    active = torch.zeros(b, n, dtype=torch.bool)
    active.scatter_(1, probs[..., 0].topk(k, 1, largest=False).indices, True)
    h_tilde, c_tilde = h.clone(), c.clone()
    for j in range(n):
        cell = torch_cell(rim, j)
        if isinstance(cell, nn.LSTMCell):
            h_tilde[:, j], c_tilde[:, j] = cell(attended[:, j], (h[:, j], c[:, j]))
        else:
            h_tilde[:, j] = cell(attended[:, j], h[:, j])
    z = torch.where(active.unsqueeze(-1), h_tilde, h)  # inactive units are read with their kept state
    ch = rim.comm_heads
    dq, dv = rim.comm_query.shape[-1] // ch, rim.comm_value.shape[-1] // ch
    h_new, c_new = h.clone(), c.clone()
    for bi in range(b):
        qs = [z[bi, j] @ rim.comm_query[j] for j in range(n)]
        ks = [z[bi, j] @ rim.comm_key[j] for j in range(n)]
        vs = [z[bi, j] @ rim.comm_value[j] for j in range(n)]
        for i in range(n):
            if not active[bi, i]:
                continue
            read = []
            for m in range(ch):
                sc = torch.stack([qs[i][m * dq : (m + 1) * dq] @ ks[j][m * dq : (m + 1) * dq] for j in range(n)])
                p = (sc / math.sqrt(dq)).softmax(0)
                read.append(torch.stack([p[j] * vs[j][m * dv : (m + 1) * dv] for j in range(n)]).sum(0))
            h_new[bi, i] = h_tilde[bi, i] + torch.tanh(torch.cat(read) @ rim.comm_out[i])
            c_new[bi, i] = c_tilde[bi, i]
    return h_new, c_new, active


def unpack(t: Tensor, rim: RIM) -> Tensor:
    return t.reshape(t.shape[0], rim.n_units, rim.unit_size)


# --------------------------------------------------------------------------------------------- shapes, API


@pytest.mark.parametrize("cell", CELLS)
def test_shapes_and_lstm_duck_typing(cell: str) -> None:
    torch.manual_seed(0)
    rim = RIM(7, n_units=5, unit_size=8, k=3, cell=cell)
    assert (rim.input_size, rim.hidden_size, rim.num_layers, rim.batch_first) == (7, 40, 1, False)
    x = torch.randn(6, 3, 7)
    out, (h, c) = rim(x, (torch.zeros(1, 3, 40), torch.zeros(1, 3, 40)))
    assert out.shape == (6, 3, 40) and h.shape == (1, 3, 40) and c.shape == (1, 3, 40)
    assert torch.equal(out[-1], h[0])
    assert rim.last_active is not None and rim.last_active.shape == (6, 3, 5)
    assert rim.last_active.dtype == torch.bool and not rim.last_active.requires_grad
    if cell == "gru":
        assert torch.equal(c, torch.zeros_like(c))


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("path", PATHS)
def test_exactly_k_units_active_even_with_ties(k: int, path: str) -> None:
    torch.manual_seed(1)
    rim = RIM(4, n_units=5, unit_size=6, k=k).double()
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    x[1:3] = 0.0  # zero inputs: every unit scores 0, a full tie
    run(rim, path, x, (torch.zeros(1, 3, 30, dtype=torch.float64),) * 2)
    assert rim.last_active is not None
    assert torch.equal(rim.last_active.sum(-1), torch.full((5, 3), k))


def test_parameters_initialised_like_torch_lstm() -> None:
    torch.manual_seed(2)
    rim = RIM(10, n_units=3, unit_size=16, k=2)
    bound = 1 / math.sqrt(16)
    for p in (rim.weight_ih, rim.weight_hh, rim.bias):
        assert p.abs().max() <= bound and p.std() > bound / 4  # uniform, not constant (no all-ones init)


def test_parameter_roles_cover_every_parameter_once() -> None:
    for cell in CELLS:
        rim = RIM(5, cell=cell)
        roles = rim.parameter_roles()
        assert list(roles) == ["modules", "attention"]
        listed = [id(p) for ps in roles.values() for p in ps]
        assert len(listed) == len(set(listed))
        assert set(listed) == {id(p) for p in rim.parameters()}
        assert [id(p) for ps in rim.parameter_roles().values() for p in ps] == listed  # deterministic
        names = {id(p): n for n, p in rim.named_parameters()}
        assert all(names[id(p)].startswith(("weight_", "bias")) for p in roles["modules"])
        assert all(names[id(p)].startswith(("query", "key", "value", "comm")) for p in roles["attention"])


# ----------------------------------------------------------------------------------- semantics vs reference


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", CELLS)
def test_step_matches_reference_cells_attention_and_communication(cell: str, path: str) -> None:
    torch.manual_seed(3)
    rim = tiny(cell)
    x = torch.randn(1, 5, 5, dtype=torch.float64)
    h, c = state(rim, 5, seed=3)
    out, (h1, c1) = run(rim, path, x, (h, c))
    h_ref, c_ref, active = reference_step(rim, x[0], unpack(h[0], rim), unpack(c[0], rim))
    assert rim.last_active is not None
    assert torch.equal(rim.last_active[0], active)
    torch.testing.assert_close(unpack(out[0], rim), h_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(unpack(c1[0], rim), c_ref, rtol=1e-10, atol=1e-12)
    assert torch.equal(out[0], h1[0])


@pytest.mark.parametrize("cell", CELLS)
def test_grouped_cells_equal_separate_torch_cells(cell: str) -> None:
    """With the communication output zeroed, each active unit's update is exactly its own torch cell."""
    torch.manual_seed(4)
    rim = tiny(cell, n_units=5, k=3)
    with torch.no_grad():
        rim.comm_out.zero_()
    x = torch.randn(1, 4, 5, dtype=torch.float64)
    h, c = state(rim, 4, seed=4)
    out, (_, c1) = run(rim, "fused", x, (h, c))
    hu, cu = unpack(h[0], rim), unpack(c[0], rim)
    q = torch.einsum("bnh,nhk->bnk", hu, rim.query_weight) + rim.query_bias
    s = (q * (x[0] @ rim.key_weight).unsqueeze(1)).sum(-1) / (rim.input_heads * math.sqrt(2))  # 2 = key size/head
    attended = torch.sigmoid(s).unsqueeze(-1) * (x[0] @ rim.value_weight).unsqueeze(1)
    assert rim.last_active is not None
    for j in range(rim.n_units):
        ref = torch_cell(rim, j)
        act = rim.last_active[0, :, j]
        if isinstance(ref, nn.LSTMCell):
            h_j, c_j = ref(attended[:, j], (hu[:, j], cu[:, j]))
            torch.testing.assert_close(unpack(c1[0], rim)[act, j], c_j[act])
        else:
            h_j = ref(attended[:, j], hu[:, j])
        torch.testing.assert_close(unpack(out[0], rim)[act, j], h_j[act].detach())
        assert torch.equal(unpack(out[0], rim)[~act, j], hu[~act, j])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", CELLS)
def test_sequence_with_resets_matches_reference(cell: str, path: str) -> None:
    torch.manual_seed(5)
    rim = tiny(cell)
    t_len, b = 6, 3
    x = torch.randn(t_len, b, 5, dtype=torch.float64)
    starts = torch.zeros(t_len, b)
    starts[0, 1] = starts[2, 0] = starts[2, 2] = starts[4, 1] = 1.0
    h, c = state(rim, b, seed=5)
    out, (h_t, c_t) = run(rim, path, x, (h, c), starts)
    hu, cu = unpack(h[0], rim), unpack(c[0], rim)
    assert rim.last_active is not None
    for t in range(t_len):
        keep = (1.0 - starts[t]).view(b, 1, 1).double()
        hu, cu, active = reference_step(rim, x[t], hu * keep, cu * keep)
        torch.testing.assert_close(unpack(out[t], rim), hu, rtol=1e-9, atol=1e-11)
        assert torch.equal(rim.last_active[t], active)
    torch.testing.assert_close(unpack(h_t[0], rim), hu, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(unpack(c_t[0], rim), cu, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", CELLS)
def test_inactive_units_keep_h_and_c_bit_for_bit(cell: str, path: str) -> None:
    torch.manual_seed(6)
    rim = RIM(8, n_units=6, unit_size=16, k=3, cell=cell)
    h, c = torch.randn(1, 5, 96), torch.randn(1, 5, 96)
    if cell == "gru":
        c.zero_()
    for _ in range(4):
        out, (h1, c1) = run(rim, path, torch.randn(1, 5, 8), (h, c))
        assert rim.last_active is not None
        inactive = ~rim.last_active[0]
        assert inactive.any()
        assert torch.equal(unpack(h1[0], rim)[inactive], unpack(h[0], rim)[inactive])
        assert torch.equal(unpack(c1[0], rim)[inactive], unpack(c[0], rim)[inactive])
        assert not torch.equal(unpack(h1[0], rim)[~inactive], unpack(h[0], rim)[~inactive])
        h, c = h1.detach(), c1.detach()
    out, _ = run(rim, path, torch.randn(7, 5, 8), (h, c))  # and inside one sequence call
    assert rim.last_active is not None
    for t in range(1, 7):
        kept = ~rim.last_active[t]
        assert torch.equal(unpack(out[t], rim)[kept], unpack(out[t - 1], rim)[kept])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", CELLS)
def test_stepwise_calls_equal_one_sequence_call(cell: str, path: str) -> None:
    torch.manual_seed(7)
    rim = RIM(6, n_units=5, unit_size=8, k=2, cell=cell).double()
    t_len, b = 9, 4
    x = torch.randn(t_len, b, 6, dtype=torch.float64)
    starts = (torch.rand(t_len, b) < 0.25).float()
    st = state(rim, b, seed=7)
    out, (h_t, c_t) = run(rim, path, x, st, starts)
    assert rim.last_active is not None
    masks = rim.last_active
    h, c = st
    for t in range(t_len):
        o, (h, c) = run(rim, path, x[t : t + 1], (h, c), starts[t : t + 1])
        torch.testing.assert_close(o[0], out[t])
        assert rim.last_active is not None and torch.equal(rim.last_active[0], masks[t])
    torch.testing.assert_close(h, h_t)
    torch.testing.assert_close(c, c_t)


def test_episode_start_zeroes_the_state_before_the_step() -> None:
    torch.manual_seed(8)
    rim = tiny("lstm")
    x = torch.randn(3, 2, 5, dtype=torch.float64)
    h, c = state(rim, 2, seed=8)
    starts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    out, _ = rim(x, (h, c), starts)
    zeros = torch.zeros(1, 1, rim.hidden_size, dtype=torch.float64)
    fresh, _ = rim(x[1:, :1], (zeros, zeros))
    torch.testing.assert_close(out[1:, :1], fresh)
    bool_starts, _ = rim(x, (h, c), starts.bool())
    assert torch.equal(bool_starts, out)
    no_reset, _ = rim(x[1:, :1], (out[:1, :1].detach(), out[:1, :1].detach() * 0 + 1))
    assert not torch.allclose(no_reset, fresh)


def test_no_grad_path_equals_grad_path() -> None:
    torch.manual_seed(9)
    rim = RIM(8, n_units=6, unit_size=16, k=4)
    x = torch.randn(5, 3, 8)
    st = (torch.randn(1, 3, 96), torch.randn(1, 3, 96))
    with torch.no_grad():
        a, (_, ca) = rim(x, st)
    b, (_, cb) = rim(x.requires_grad_(), st)
    torch.testing.assert_close(a, b.detach())
    torch.testing.assert_close(ca, cb.detach())
    with torch.no_grad():  # the cached weights follow parameter updates
        rim.weight_hh.add_(0.1)
        c2, _ = rim(x, st)
    assert not torch.allclose(c2, a)


# ------------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("fused", [True, False])
def test_communication_gradient_reaches_active_units_only(fused: bool) -> None:
    torch.manual_seed(10)
    rim = tiny("lstm", n_units=5, k=2)
    rim.fused = fused
    x = torch.randn(1, 1, 5, dtype=torch.float64)
    h, c = state(rim, 1, seed=10)
    h.requires_grad_()
    out, _ = rim(x, (h, c))
    assert rim.last_active is not None
    active = rim.last_active[0, 0]
    a, inactive = int(active.nonzero()[0]), (~active).nonzero().flatten().tolist()
    other = int(active.nonzero()[1])
    (grad,) = torch.autograd.grad(unpack(out[0], rim)[0, a].sum(), h)
    grad = unpack(grad[0], rim)[0]
    for j in inactive:
        assert torch.equal(grad[j], torch.zeros_like(grad[j]))
    assert grad[other].abs().sum() > 0  # communication among active units carries gradient
    # control: an inactive unit's state does feed the active unit's read forward (so the zero above is the block)
    h2 = h.detach().clone()
    h2.view(rim.n_units, rim.unit_size)[inactive[0]] += 1e-3
    with torch.no_grad():
        out2, _ = rim(x, (h2, c))
    assert torch.equal(rim.last_active[0, 0], active)
    assert not torch.equal(unpack(out2[0], rim)[0, a], unpack(out[0], rim)[0, a].detach())


@pytest.mark.parametrize("cell", CELLS)
def test_input_gradient_is_finite_and_nonzero(cell: str) -> None:
    torch.manual_seed(11)
    rim = RIM(8, n_units=6, unit_size=16, k=4, cell=cell)
    x = torch.randn(10, 4, 8, requires_grad=True)
    starts = (torch.rand(10, 4) < 0.2).float()
    out, (h, c) = rim(x, (torch.zeros(1, 4, 96), torch.zeros(1, 4, 96)), starts)
    (out.square().sum() + h.sum() + c.sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in rim.parameters())


def _grads(rim: RIM, x: Tensor, st: tuple[Tensor, Tensor], starts: Tensor, seed: int) -> list[Tensor]:
    torch.manual_seed(seed)  # same dropout masks for both paths
    out, (h, c) = rim(x, st, starts)
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * w).sum() + (h * h).sum() + c.sum()
    inputs = [x, *st, *rim.parameters()]
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return [out.detach()] + [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, grads, strict=True)]


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("cell", CELLS)
def test_fused_backward_equals_autograd_of_reference_loop(cell: str, dropout: float) -> None:
    torch.manual_seed(12)
    for rim in (
        tiny(cell, dropout=dropout),
        RIM(24, n_units=6, unit_size=32, k=4, cell=cell, dropout=dropout).double(),
    ):
        b = 5 if rim.input_size == 5 else 24  # small input (value projection outside) and large (folded in)
        x = torch.randn(7, b, rim.input_size, dtype=torch.float64, requires_grad=True)
        st = state(rim, b, seed=12, requires_grad=True)
        starts = (torch.rand(7, b) < 0.2).float()
        rim.fused = True
        fused = _grads(rim, x, st, starts, seed=3)
        rim.fused = False
        reference = _grads(rim, x, st, starts, seed=3)
        for a, e in zip(fused, reference, strict=True):
            torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-11)


def test_scratch_reuse_is_safe_across_live_graphs_and_retained_graphs() -> None:
    """Large shapes go through the scratch pool; interleave calls whose graphs stay alive, and backward twice."""
    torch.manual_seed(13)
    rim = RIM(32, n_units=6, unit_size=64, k=4).double()
    xs = [torch.randn(8, 40, 32, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    st = (torch.zeros(1, 40, 384, dtype=torch.float64), torch.zeros(1, 40, 384, dtype=torch.float64))
    rim.fused = False
    expected = [torch.autograd.grad(rim(x, st)[0].square().sum(), x)[0] for x in xs]
    rim.fused = True
    losses = [rim(x, st)[0].square().sum() for x in xs]  # three graphs alive at once
    with torch.no_grad():
        rim(xs[0], st)
    for x, loss, e in zip(xs, losses, expected, strict=True):
        (g1,) = torch.autograd.grad(loss, x, retain_graph=True)
        rim(x, st)[0].sum().backward()  # unrelated work between two backwards of the same graph
        (g2,) = torch.autograd.grad(loss, x)
        torch.testing.assert_close(g1, e)
        assert torch.equal(g1, g2)


def _gradcheck_module(rim: RIM, t_len: int, b: int, h_grad: bool) -> None:
    names = [n for n, _ in rim.named_parameters()]
    x = torch.randn(t_len, b, rim.input_size, dtype=torch.float64, requires_grad=True)
    h, c = state(rim, b, seed=14)
    h.requires_grad_(h_grad)
    c.requires_grad_(rim.cell == "lstm")
    starts = torch.zeros(t_len, b)
    starts[min(2, t_len - 1), 0] = 1.0

    def f(x: Tensor, h: Tensor, c: Tensor, *ps: Tensor) -> tuple[Tensor, ...]:
        out, (h_t, c_t) = torch.func.functional_call(rim, dict(zip(names, ps, strict=True)), (x, (h, c), starts))
        return out, h_t, c_t

    params = [p.detach().clone().requires_grad_() for p in rim.parameters()]
    assert torch.autograd.gradcheck(f, (x, h, c, *params))


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_all_units_active_with_resets(cell: str) -> None:
    """k = N: no gradient is blocked, so the fused backward must equal finite differences everywhere."""
    torch.manual_seed(14)
    rim = tiny(cell, n_units=3, unit_size=2, k=3)
    _gradcheck_module(rim, t_len=4, b=2, h_grad=True)


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_sparse_step(cell: str) -> None:
    """k < N over one step: the blocked communication path only touches the incoming state, not checked here."""
    torch.manual_seed(15)
    rim = tiny(cell, n_units=4, unit_size=2, k=2)
    _gradcheck_module(rim, t_len=1, b=3, h_grad=False)


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_fused_function_with_dropout_and_resets(cell: str, fuse: bool) -> None:
    torch.manual_seed(16)
    rim = tiny(cell, n_units=3, unit_size=2, k=3)
    t_len, b = 4, 2
    cfg = rim._cfg
    keep = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    drop = (torch.rand(t_len, cfg.n, b) > 0.3).double() / 0.7
    x2 = torch.randn(t_len * b, 5 if fuse else 6, dtype=torch.float64, requires_grad=True)
    kq = torch.randn(t_len, 1, b, 4, dtype=torch.float64, requires_grad=True)
    h0, c0 = (s[0].detach().requires_grad_() for s in state(rim, b, seed=16))
    params = [None if p is None else p.detach().clone().requires_grad_() for p in rim._params()]
    if not fuse:
        params[1] = params[1].detach()  # type: ignore[union-attr]  # the value projection is applied outside

    def f(x2: Tensor, kq: Tensor, h0: Tensor, c0: Tensor, *ps: Tensor) -> tuple[Tensor, ...]:
        it = iter(ps)
        full = [p if p is None or not p.requires_grad else next(it) for p in params]
        out, h_t, c_t, _ = RIMSequence.apply(cfg, fuse, keep, drop, x2, kq, h0, c0, *full)
        return out, h_t, c_t

    diff = [p for p in params if p is not None and p.requires_grad]
    assert torch.autograd.gradcheck(f, (x2, kq, h0, c0, *diff))


# ------------------------------------------------------------------------------------------------ dropout


def test_dropout_is_stochastic_in_training_and_deterministic_in_eval() -> None:
    torch.manual_seed(17)
    rim = RIM(8, n_units=6, unit_size=16, k=4, dropout=0.5)
    x, st = torch.randn(5, 3, 8), (torch.zeros(1, 3, 96), torch.zeros(1, 3, 96))
    a, _ = rim(x, st)
    b, _ = rim(x, st)
    assert not torch.equal(a, b)
    rim.eval()
    c, _ = rim(x, st)
    d, _ = rim(x, st)
    assert torch.equal(c, d)
    rim.dropout = 0.0
    rim.train()
    e, _ = rim(x, st)
    torch.testing.assert_close(c, e)


# ------------------------------------------------------------------------------------- RIMs run together


def _pair(cell: str, dropout: float, input_size: int) -> tuple[RIM, RIM]:
    """Two independent RIMs of equal sizes (different weights), like a policy's actor and critic cores."""
    if input_size == 5:
        return tiny(cell, dropout=dropout), tiny(cell, dropout=dropout)
    sizes = dict(n_units=6, unit_size=8, k=4, input_key_size=8, input_value_size=16, comm_key_size=8)
    return tuple(RIM(input_size, cell=cell, dropout=dropout, **sizes).double() for _ in range(2))  # type: ignore[return-value]


def _one_by_one(cores: list[RIM], x: Tensor, states: list[tuple[Tensor, Tensor]], starts: Tensor | None) -> list:
    return [core(x, st, starts) for core, st in zip(cores, states, strict=True)]


@pytest.mark.parametrize("input_size", [5, 24])  # value projection outside the kernel when alone / always folded
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("cell", CELLS)
def test_run_together_equals_separate_calls_with_gradients(cell: str, dropout: float, input_size: int) -> None:
    torch.manual_seed(21)
    a, b_ = _pair(cell, dropout, input_size)
    t_len, b = 6, 4
    x = torch.randn(t_len, b, input_size, dtype=torch.float64, requires_grad=True)
    starts = (torch.rand(t_len, b) < 0.25).float()
    sts = [state(a, b, seed=1, requires_grad=True), state(b_, b, seed=2, requires_grad=True)]
    w = torch.linspace(-1, 1, t_len * b * a.hidden_size, dtype=torch.float64).view(t_len, b, -1)

    def grads(together: bool) -> tuple[list[Tensor], list[Tensor]]:
        torch.manual_seed(5)  # the same dropout draws, in the same order
        call = run_together if together else _one_by_one
        results = call([a, b_], x, sts, starts)
        loss = sum(((out * w * (i + 1)).sum() + h.square().sum() + c.sum()) for i, (out, (h, c)) in enumerate(results))
        inputs = [x, *sts[0], *sts[1], *a.parameters(), *b_.parameters()]
        got = torch.autograd.grad(loss, inputs, allow_unused=True)
        values = [t.detach() for out, (h, c) in results for t in (out, h, c)] + [a.last_active, b_.last_active]
        return values, [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, got, strict=True)]

    sep_values, sep_grads = grads(False)
    tog_values, tog_grads = grads(True)
    for s_, t_ in zip(sep_values, tog_values, strict=True):
        assert s_ is not None and t_ is not None and s_.shape == t_.shape
        torch.testing.assert_close(t_, s_, rtol=1e-10, atol=1e-12)
    for s_, t_ in zip(sep_grads, tog_grads, strict=True):
        torch.testing.assert_close(t_, s_, rtol=1e-9, atol=1e-11)
    assert sum(g.abs().sum() for g in tog_grads[5:]) > 0  # parameters of both RIMs got gradients


@pytest.mark.parametrize("t_len", [1, 5])  # the rollout step and the no-grad sequence loop
@pytest.mark.parametrize("cell", CELLS)
def test_run_together_without_grad_equals_separate_calls(cell: str, t_len: int) -> None:
    torch.manual_seed(22)
    a, b_ = _pair(cell, 0.0, 24)
    x = torch.randn(t_len, 3, 24, dtype=torch.float64)
    starts = torch.zeros(t_len, 3)
    starts[0, 1] = 1.0
    sts = [state(a, 3, seed=3), state(b_, 3, seed=4)]
    with torch.no_grad():
        separate = [a(x, sts[0], starts), b_(x, sts[1], starts)]
        masks = [a.last_active, b_.last_active]
        for _ in range(2):  # the second call reuses the cached group weights
            together = run_together([a, b_], x, sts, starts)
            for (out_s, (h_s, c_s)), (out_t, (h_t, c_t)) in zip(separate, together, strict=True):
                torch.testing.assert_close(out_t, out_s, rtol=1e-10, atol=1e-12)
                torch.testing.assert_close(h_t, h_s, rtol=1e-10, atol=1e-12)
                torch.testing.assert_close(c_t, c_s, rtol=1e-10, atol=1e-12)
            assert torch.equal(masks[0], a.last_active) and torch.equal(masks[1], b_.last_active)
        with torch.no_grad():
            b_.weight_hh.add_(0.1)  # a changed parameter invalidates the cached group weights
        moved = run_together([a, b_], x, sts, starts)[1]
        torch.testing.assert_close(moved[0], b_(x, sts[1], starts)[0], rtol=1e-10, atol=1e-12)


def test_run_together_falls_back_for_rims_that_differ() -> None:
    torch.manual_seed(23)
    a, b_ = tiny(), tiny(k=3)
    x = torch.randn(3, 2, 5, dtype=torch.float64)
    sts = [state(a, 2), state(b_, 2)]
    results = run_together([a, b_], x, sts)
    for core, st, (out, _) in zip((a, b_), sts, results, strict=True):
        torch.testing.assert_close(out, core(x, st)[0])
    with pytest.raises(ValueError, match="states"):
        run_together([a, b_], x, sts[:1])


# --------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"k": 0}, "k"),
        ({"k": 7}, "k"),
        ({"n_units": 0}, "n_units"),
        ({"unit_size": -1}, "unit_size"),
        ({"input_key_size": 0}, "input_key_size"),
        ({"input_value_size": 0}, "input_value_size"),
        ({"comm_key_size": 0}, "comm_key_size"),
        ({"comm_value_size": -4}, "comm_value_size"),
        ({"input_heads": 0}, "input_heads"),
        ({"comm_heads": 0}, "comm_heads"),
        ({"cell": "rnn"}, "cell"),
        ({"input_key_size": 6, "input_heads": 4}, "input_key_size"),
        ({"comm_key_size": 30}, "comm_key_size"),
        ({"comm_value_size": 30}, "comm_value_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": float("nan")}, "dropout"),
        ({"dropout": True}, "dropout"),
        ({"k": True}, "k"),
        ({"n_units": True}, "n_units"),
        ({"unit_size": 4.0}, "unit_size"),
        ({"comm_heads": np.int64(0)}, "comm_heads"),
    ],
)
def test_bad_constructor_arguments_raise_value_error_naming_them(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        RIM(8, **kwargs)  # type: ignore[arg-type]


def test_numpy_integer_sizes_are_accepted_as_ints() -> None:
    rim = RIM(np.int64(8), n_units=np.int32(3), unit_size=np.int64(4), k=np.int64(2), dropout=np.float32(0.25))
    assert (rim.input_size, rim.n_units, rim.unit_size, rim.k, rim.hidden_size) == (8, 3, 4, 2, 12)
    assert all(type(v) is int for v in (rim.input_size, rim.n_units, rim.unit_size, rim.k, rim.hidden_size))
    assert type(rim.dropout) is float and rim.weight_ih.shape == (3, 16, 16)


def test_rim_is_a_recurrent_core_and_roles_use_the_role_names() -> None:
    rim = RIM(8, n_units=2, unit_size=4, k=1)
    assert isinstance(rim, RecurrentCore) and isinstance(LSTMCore(8, 4), RecurrentCore)
    assert not isinstance(nn.LSTM(8, 4), RecurrentCore)  # no episode resets, no parameter roles
    assert list(rim.parameter_roles()) == [MODULES, ATTENTION] == list(ROLE_NAMES[:2])


def test_check_arguments_raises_what_the_constructor_raises_and_draws_no_random_numbers() -> None:
    state = torch.random.get_rng_state()
    RIM.check_arguments(n_units=3, unit_size=4, k=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    with pytest.raises(ValueError, match="comm_heads"):
        RIM.check_arguments(comm_heads=3)


def test_bad_input_size_raises() -> None:
    with pytest.raises(ValueError, match="input_size"):
        RIM(0)


def test_bad_forward_arguments_raise_value_error_naming_them() -> None:
    rim = RIM(8, n_units=2, unit_size=4, k=1)
    x, st = torch.randn(3, 2, 8), (torch.zeros(1, 2, 8), torch.zeros(1, 2, 8))
    bad: list[tuple[Callable[[], object], str]] = [
        (lambda: rim(torch.randn(2, 8), st), "x"),
        (lambda: rim(torch.randn(3, 2, 7), st), "x"),
        (lambda: rim(x, (torch.zeros(1, 2, 9), st[1])), "state"),
        (lambda: rim(x, (st[0], torch.zeros(2, 8))), "state"),
        (lambda: rim(x, (st[0],)), "state"),  # type: ignore[arg-type]
        (lambda: rim(x, st, torch.zeros(3, 3)), "episode_starts"),
    ]
    for call, name in bad:
        with pytest.raises(ValueError, match=name):
            call()


# ------------------------------------------------------------------------------------------------ threads, GPU


def test_thread_count_is_restored() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rim = RIM(8, n_units=6, unit_size=16, k=4)
        out, _ = rim(torch.randn(4, 3, 8, requires_grad=True), (torch.zeros(1, 3, 96), torch.zeros(1, 3, 96)))
        out.sum().backward()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cell", CELLS)
def test_cuda_matches_cpu(cell: str) -> None:
    torch.manual_seed(18)
    rim = RIM(8, n_units=6, unit_size=16, k=4, cell=cell).double()
    x = torch.randn(6, 5, 8, dtype=torch.float64)
    starts = (torch.rand(6, 5) < 0.2).float()
    st = (torch.randn(1, 5, 96, dtype=torch.float64), torch.randn(1, 5, 96, dtype=torch.float64))
    cpu = _grads(rim, x.requires_grad_(), st, starts, seed=0)
    rim_gpu = rim.cuda()
    st_gpu = (st[0].cuda(), st[1].cuda())
    gpu = _grads(rim_gpu, x.detach().cuda().requires_grad_(), st_gpu, starts.cuda(), seed=0)
    for a, b in zip(cpu, gpu, strict=True):
        torch.testing.assert_close(a, b.cpu())


def test_torch_compile_runs_the_fused_kernel_eagerly() -> None:
    """``torch.compile`` of a module holding a fused RIM works (the kernel runs eagerly inside) and changes nothing."""
    torch.manual_seed(0)
    rim = RIM(8, 3, 4, 2)
    x = torch.randn(5, 2, 8, requires_grad=True)
    state = (torch.zeros(1, 2, 12), torch.zeros(1, 2, 12))
    eager, (h, c) = rim(x, state)
    (grad,) = torch.autograd.grad(eager.sum(), x)
    compiled, (h2, c2) = torch.compile(rim)(x, state)
    (grad2,) = torch.autograd.grad(compiled.sum(), x)
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close((h2, c2), (h, c))
    torch.testing.assert_close(grad2, grad)
