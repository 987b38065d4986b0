"""Seed-batched recurrent cores: ``S`` independent LSTMs, GRUs or RIMs, every weight with a leading seed dimension.

Each core has the parameter names of the ordinary core it stands for (:class:`~metarim_sb3.cores.lstm.LSTMCore`,
:class:`~metarim_sb3.cores.gru.GRUCore`, :class:`~metarim_sb3.cores.rim.module.RIM`) with shapes ``[S, *shape]``, and
the call ``core(x, (h, c), episode_starts)`` of :class:`~metarim_sb3.cores.protocol.RecurrentCore` with a seed dimension
in front of everything: ``x [S, T, B, input_size]``, ``h`` and ``c`` ``[S, 1, B, hidden_size]``,
``episode_starts [S, T, B]``. The cells are written so that the seed dimension is native (batched matmuls over
seeds, no ``vmap``: ``nn.LSTM``/``nn.GRU`` have no batching rules); every op of a time step serves all seeds.

The RIM runs through the fused kernel with the seeds as its groups (:mod:`metarim_sb3.seed_batch.rim_kernel`);
``SeedRIM(..., fused=False)`` runs the plain-autograd specification (:mod:`metarim_sb3.cores.rim.reference`) with a
seed dimension, step for step, instead.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from metarim_sb3.cores.gru import GRUCore
from metarim_sb3.cores.lstm import LSTMCore
from metarim_sb3.cores.protocol import ATTENTION, MODULES
from metarim_sb3.cores.rim import RIM
from metarim_sb3.cores.rim._fused import Params, Weights
from metarim_sb3.seed_batch.rim_kernel import folded_weights, run_seeds

__all__ = ["SeedGRU", "SeedLSTM", "SeedRIM", "seed_core"]

State = tuple[Tensor, Tensor]


def _resets(episode_starts: Tensor | None, t_len: int) -> tuple[Tensor | None, list[bool]]:
    """``(starts != 0)`` as ``[S, T, B, 1]`` booleans and, per step, whether any seed's entry resets there."""
    if episode_starts is None:
        return None, [False] * t_len
    starts = (episode_starts != 0).unsqueeze(-1)
    return starts, starts.transpose(0, 1).reshape(t_len, -1).any(1).tolist()


def _check(x: Tensor, state: State, n_seeds: int, input_size: int, hidden: int) -> None:
    if x.dim() != 4 or x.shape[0] != n_seeds or x.shape[-1] != input_size:
        raise ValueError(f"x must have shape (S={n_seeds}, T, B, input_size={input_size}), got {tuple(x.shape)}")
    want = (n_seeds, 1, x.shape[2], hidden)
    for name, s in zip(("h", "c"), state, strict=True):
        if tuple(s.shape) != want:
            raise ValueError(f"state {name} must have shape {want}, got {tuple(s.shape)}")


class _SeedCell(nn.Module):
    """What the seed-batched LSTM and GRU share: torch's parameter names (``weight_ih_l0`` ...) with a seed dim."""

    def __init__(self, n_seeds: int, input_size: int, hidden_size: int, gates: int, device: torch.device) -> None:
        super().__init__()
        self.n_seeds, self.input_size, self.hidden_size, self.num_layers = n_seeds, input_size, hidden_size, 1
        g = gates * hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(n_seeds, g, input_size, device=device))
        self.weight_hh_l0 = nn.Parameter(torch.empty(n_seeds, g, hidden_size, device=device))
        self.bias_ih_l0 = nn.Parameter(torch.empty(n_seeds, g, device=device))
        self.bias_hh_l0 = nn.Parameter(torch.empty(n_seeds, g, device=device))

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        """As the ordinary cores: every weight is a cell ("modules") weight, no attention.

        :return: ``{MODULES: [...], ATTENTION: []}``.
        """
        return {MODULES: list(self.parameters()), ATTENTION: []}

    def _input_gates(self, x: Tensor, bias: Tensor) -> Tensor:
        """The input's gate contributions for the whole sequence, one batched matmul: ``[S, T, B, G]``."""
        s, t_len, b, d = x.shape
        rows = x.reshape(s, t_len * b, d)
        return torch.baddbmm(bias.unsqueeze(1), rows, self.weight_ih_l0.transpose(1, 2)).view(s, t_len, b, -1)


class _LSTMSequence(torch.autograd.Function):
    """The LSTM recurrence over a whole sequence with a hand-written backward through time.

    Autograd over the step loop computes the recurrent weight's gradient step by step (``T`` small ``bmm`` and ``T``
    accumulations of a ``[S, H, 4H]`` tensor); here the backward loop only carries the state gradients, and the
    weight's gradient is one ``bmm`` over all steps at the end. Same arithmetic as the loop in
    :meth:`SeedLSTM.forward` (up to the summation order of the weight gradient); each seed's slices of every
    gradient depend on that seed only.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        gi: Tensor,
        h: Tensor,
        c: Tensor,
        w_hh: Tensor,
        keep: Tensor | None,
        resets: list[bool],
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:param gi: input gates ``[S, T, B, 4H]`` (biases included). :param h: ``[S, B, H]``. :param c: ``[S, B, H]``.
        :param w_hh: ``[S, H, 4H]``. :param keep: ``[S, T, B, 1]`` (0 where an episode starts) or ``None``.
        :param resets: per step, whether any entry resets there.
        :return: outputs ``[S, T, B, H]``, final ``h`` and ``c``."""
        s, t_len, b, g4 = gi.shape
        hs = g4 // 4
        h_prev = gi.new_empty(s, t_len, b, hs)
        c_prev = gi.new_empty(s, t_len, b, hs)
        acts = gi.new_empty(s, t_len, b, g4)  # sigmoid(i, f), tanh(g), sigmoid(o)
        out = gi.new_empty(s, t_len, b, hs)
        cs = gi.new_empty(s, t_len, b, hs)
        for t in range(t_len):
            if resets[t]:
                assert keep is not None
                h, c = h * keep[:, t], c * keep[:, t]
            h_prev[:, t], c_prev[:, t] = h, c
            gates = torch.baddbmm(gi[:, t], h, w_hh)
            act = acts[:, t]
            torch.sigmoid(gates, out=act)
            act[..., 2 * hs : 3 * hs] = torch.tanh(gates[..., 2 * hs : 3 * hs])
            c = act[..., hs : 2 * hs] * c + act[..., :hs] * act[..., 2 * hs : 3 * hs]
            cs[:, t] = c
            h = act[..., 3 * hs :] * torch.tanh(c)
            out[:, t] = h
        ctx.save_for_backward(h_prev, c_prev, acts, cs, w_hh, keep)  # type: ignore[arg-type]
        ctx.resets = resets  # type: ignore[attr-defined]
        return out, h.clone(), c

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, d_out: Tensor, d_h: Tensor | None, d_c: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        h_prev, c_prev, acts, cs, w_hh, keep = ctx.saved_tensors  # type: ignore[attr-defined]
        resets: list[bool] = ctx.resets  # type: ignore[attr-defined]
        s, t_len, b, g4 = acts.shape
        hs = g4 // 4
        dh = torch.zeros_like(h_prev[:, 0]) if d_h is None else d_h.clone()
        dc = torch.zeros_like(h_prev[:, 0]) if d_c is None else d_c.clone()
        d_gates = torch.empty_like(acts)
        w_t = w_hh.transpose(1, 2)
        for t in range(t_len - 1, -1, -1):
            act = acts[:, t]
            i_, f_, g_, o_ = act[..., :hs], act[..., hs : 2 * hs], act[..., 2 * hs : 3 * hs], act[..., 3 * hs :]
            dh = dh + d_out[:, t]
            tc = torch.tanh(cs[:, t])
            dc = dc + dh * o_ * (1 - tc * tc)
            dg = d_gates[:, t]
            dg[..., :hs] = dc * g_ * i_ * (1 - i_)
            dg[..., hs : 2 * hs] = dc * c_prev[:, t] * f_ * (1 - f_)
            dg[..., 2 * hs : 3 * hs] = dc * i_ * (1 - g_ * g_)
            dg[..., 3 * hs :] = dh * tc * o_ * (1 - o_)
            dh = torch.bmm(dg, w_t)
            dc = dc * f_
            if resets[t]:
                dh, dc = dh * keep[:, t], dc * keep[:, t]
        d_w = None
        if ctx.needs_input_grad[3]:  # type: ignore[attr-defined]
            d_w = torch.bmm(h_prev.reshape(s, t_len * b, hs).transpose(1, 2), d_gates.reshape(s, t_len * b, g4))
        return d_gates, dh, dc, d_w, None, None


class SeedLSTM(_SeedCell):
    """``S`` independent one-layer :class:`~metarim_sb3.cores.lstm.LSTMCore` (torch's gate order ``i, f, g, o``).

    :param n_seeds: ``S``.
    :param input_size: features of each input row.
    :param hidden_size: state size.
    :param device: where the parameters live.
    """

    def __init__(self, n_seeds: int, input_size: int, hidden_size: int, device: torch.device | None = None) -> None:
        super().__init__(n_seeds, input_size, hidden_size, 4, torch.device("cpu") if device is None else device)

    def forward(self, x: Tensor, state: State, episode_starts: Tensor | None = None) -> tuple[Tensor, State]:
        """Run every seed's LSTM over its sequence; an entry's state is zeroed (multiplied by 0, as
        :class:`~metarim_sb3.cores.lstm.LSTMCore` does) before a step where its episode starts.

        :param x: ``[S, T, B, input_size]``.
        :param state: ``(h, c)``, each ``[S, 1, B, hidden_size]``.
        :param episode_starts: ``[S, T, B]``, nonzero where an episode starts; ``None``: no reset.
        :return: outputs ``[S, T, B, hidden_size]`` and the final ``(h, c)``.
        """
        _check(x, state, self.n_seeds, self.input_size, self.hidden_size)
        hs, t_len = self.hidden_size, x.shape[1]
        gi = self._input_gates(x, self.bias_ih_l0 + self.bias_hh_l0)
        w_hh = self.weight_hh_l0.transpose(1, 2)
        starts, resets = _resets(episode_starts, t_len)
        h, c = state[0][:, 0], state[1][:, 0]
        if torch.is_grad_enabled() and any(v.requires_grad for v in (gi, h, c, w_hh)):
            keep = None if starts is None else (~starts).to(x.dtype)
            out, h, c = _LSTMSequence.apply(gi, h, c, w_hh, keep, resets)
            return out, (h.unsqueeze(1), c.unsqueeze(1))
        outs = []
        for t in range(t_len):
            if resets[t]:
                keep = (~starts[:, t]).to(h.dtype)  # type: ignore[index]
                h, c = h * keep, c * keep
            gates = torch.baddbmm(gi[:, t], h, w_hh)
            act = torch.sigmoid(gates)
            i_, f_, o_ = act[..., :hs], act[..., hs : 2 * hs], act[..., 3 * hs :]
            c = f_ * c + i_ * torch.tanh(gates[..., 2 * hs : 3 * hs])
            h = o_ * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, 1), (h.unsqueeze(1), c.unsqueeze(1))


class _GRUSequence(torch.autograd.Function):
    """The GRU recurrence over a whole sequence with a hand-written backward through time (as
    :class:`_LSTMSequence`: the recurrent weight's and bias's gradients are one ``bmm`` and one sum at the end)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        gi: Tensor,
        h: Tensor,
        w_hh: Tensor,
        b_hh: Tensor,
        keep: Tensor | None,
        resets: list[bool],
    ) -> tuple[Tensor, Tensor]:
        """:param gi: input gates ``[S, T, B, 3H]``. :param h: ``[S, B, H]``. :param w_hh: ``[S, H, 3H]``.
        :param b_hh: ``[S, 1, 3H]``. :param keep: ``[S, T, B, 1]`` (0 where an episode starts) or ``None``.
        :param resets: per step, whether any entry resets there.
        :return: outputs ``[S, T, B, H]`` and the final ``h``."""
        s, t_len, b, g3 = gi.shape
        hs = g3 // 3
        h_prev = gi.new_empty(s, t_len, b, hs)
        rzs = gi.new_empty(s, t_len, b, 2 * hs)
        ns = gi.new_empty(s, t_len, b, hs)
        gh_ns = gi.new_empty(s, t_len, b, hs)
        out = gi.new_empty(s, t_len, b, hs)
        for t in range(t_len):
            if resets[t]:
                assert keep is not None
                h = h * keep[:, t]
            h_prev[:, t] = h
            gh = torch.baddbmm(b_hh, h, w_hh)
            g_in = gi[:, t]
            rz = rzs[:, t]
            torch.sigmoid(g_in[..., : 2 * hs] + gh[..., : 2 * hs], out=rz)
            gh_ns[:, t] = gh[..., 2 * hs :]
            n = torch.tanh(g_in[..., 2 * hs :] + rz[..., :hs] * gh[..., 2 * hs :])
            ns[:, t] = n
            h = n + rz[..., hs:] * (h - n)
            out[:, t] = h
        ctx.save_for_backward(h_prev, rzs, ns, gh_ns, w_hh, keep)  # type: ignore[arg-type]
        ctx.resets = resets  # type: ignore[attr-defined]
        return out, h.clone()

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, d_out: Tensor, d_h: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        h_prev, rzs, ns, gh_ns, w_hh, keep = ctx.saved_tensors  # type: ignore[attr-defined]
        resets: list[bool] = ctx.resets  # type: ignore[attr-defined]
        s, t_len, b, hs = h_prev.shape
        dh = torch.zeros_like(h_prev[:, 0]) if d_h is None else d_h.clone()
        d_gi = h_prev.new_empty(s, t_len, b, 3 * hs)
        d_gh = torch.empty_like(d_gi)
        w_t = w_hh.transpose(1, 2)
        for t in range(t_len - 1, -1, -1):
            r, z, n = rzs[:, t, :, :hs], rzs[:, t, :, hs:], ns[:, t]
            dh = dh + d_out[:, t]
            d_pre_n = dh * (1 - z) * (1 - n * n)
            d_pre_r = d_pre_n * gh_ns[:, t] * r * (1 - r)
            d_pre_z = dh * (h_prev[:, t] - n) * z * (1 - z)
            dgi, dgh = d_gi[:, t], d_gh[:, t]
            dgi[..., :hs], dgi[..., hs : 2 * hs], dgi[..., 2 * hs :] = d_pre_r, d_pre_z, d_pre_n
            dgh[..., : 2 * hs] = dgi[..., : 2 * hs]
            dgh[..., 2 * hs :] = d_pre_n * r
            dh = torch.baddbmm(dh * z, dgh, w_t)
            if resets[t]:
                dh = dh * keep[:, t]
        flat = d_gh.reshape(s, t_len * b, 3 * hs)
        d_w = torch.bmm(h_prev.reshape(s, t_len * b, hs).transpose(1, 2), flat)
        return d_gi, dh, d_w, flat.sum(1, keepdim=True), None, None


class SeedGRU(_SeedCell):
    """``S`` independent one-layer :class:`~metarim_sb3.cores.gru.GRUCore` (gate order ``r, z, n``; ``c`` carried as
    zeros and never read).

    :param n_seeds: ``S``.
    :param input_size: features of each input row.
    :param hidden_size: state size.
    :param device: where the parameters live.
    """

    def __init__(self, n_seeds: int, input_size: int, hidden_size: int, device: torch.device | None = None) -> None:
        super().__init__(n_seeds, input_size, hidden_size, 3, torch.device("cpu") if device is None else device)

    def forward(self, x: Tensor, state: State, episode_starts: Tensor | None = None) -> tuple[Tensor, State]:
        """Run every seed's GRU over its sequence; an entry's state is replaced by zeros (``torch.where``, as
        :class:`~metarim_sb3.cores.gru.GRUCore` does) before a step where its episode starts.

        :param x: ``[S, T, B, input_size]``.
        :param state: ``(h, c)``, each ``[S, 1, B, hidden_size]``; ``c`` is not read.
        :param episode_starts: ``[S, T, B]``, nonzero where an episode starts; ``None``: no reset.
        :return: outputs ``[S, T, B, hidden_size]`` and the final ``(h, zeros)``.
        """
        _check(x, state, self.n_seeds, self.input_size, self.hidden_size)
        hs, t_len = self.hidden_size, x.shape[1]
        gi = self._input_gates(x, self.bias_ih_l0)
        w_hh, b_hh = self.weight_hh_l0.transpose(1, 2), self.bias_hh_l0.unsqueeze(1)
        starts, resets = _resets(episode_starts, t_len)
        h = state[0][:, 0]
        if torch.is_grad_enabled() and any(v.requires_grad for v in (gi, h, w_hh, b_hh)):
            keep = None if starts is None else (~starts).to(x.dtype)
            out, h = _GRUSequence.apply(gi, h, w_hh, b_hh, keep, resets)
            return out, (h.unsqueeze(1), torch.zeros_like(state[1]))
        outs = []
        for t in range(t_len):
            if resets[t]:
                h = torch.where(starts[:, t], torch.zeros_like(h), h)  # type: ignore[index]
            gh = torch.baddbmm(b_hh, h, w_hh)
            g_in = gi[:, t]
            rz = torch.sigmoid(g_in[..., : 2 * hs] + gh[..., : 2 * hs])
            n = torch.tanh(g_in[..., 2 * hs :] + rz[..., :hs] * gh[..., 2 * hs :])
            h = n + rz[..., hs:] * (h - n)
            outs.append(h)
        return torch.stack(outs, 1), (h.unsqueeze(1), torch.zeros_like(state[1]))


class _Rows:
    """The rows and output gradients of one weight's matmuls over a sequence, kept for one weight-gradient matmul."""

    def __init__(self) -> None:
        self.xs: list[Tensor] = []
        self.gs: list[Tensor] = []


class _WeightSink(torch.autograd.Function):
    """Identity on a weight whose step-by-step uses (:class:`_DeferredMatmul`) give it no gradient themselves: its
    backward runs after all of theirs (autograd runs a node once every use of its output is done) and computes the
    weight's gradient from all the kept rows at once, ``x^T g`` over every step in one batched matmul."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, w: Tensor, rows: _Rows) -> Tensor:  # type: ignore[override]
        ctx.rows = rows  # type: ignore[attr-defined]
        ctx.set_materialize_grads(False)
        return w.view_as(w)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor | None
    ) -> tuple[Tensor | None, None]:
        rows: _Rows = ctx.rows  # type: ignore[attr-defined]
        if not rows.xs:
            return grad, None
        x, g = torch.cat(rows.xs, -2), torch.cat(rows.gs, -2)
        rows.xs, rows.gs = [], []
        d_w = torch.matmul(x.transpose(-1, -2), g)
        return d_w if grad is None else d_w + grad, None


class _DeferredMatmul(torch.autograd.Function):
    """``x @ w`` whose backward gives ``x`` its gradient and leaves ``w``'s to :class:`_WeightSink`."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, x: Tensor, w: Tensor, rows: _Rows
    ) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.rows = rows  # type: ignore[attr-defined]
        return torch.matmul(x, w)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, g: Tensor
    ) -> tuple[Tensor | None, None, None]:
        x, w = ctx.saved_tensors  # type: ignore[attr-defined]
        rows: _Rows = ctx.rows  # type: ignore[attr-defined]
        rows.xs.append(x)
        rows.gs.append(g)
        return (torch.matmul(g, w.transpose(-1, -2)) if ctx.needs_input_grad[0] else None), None, None  # type: ignore[attr-defined]


def _heads(x: Tensor, n_heads: int) -> Tensor:
    """Split the last dimension into heads: ``[..., n_heads * d]`` -> ``[..., n_heads, d]``."""
    return x.view(*x.shape[:-1], n_heads, x.shape[-1] // n_heads)


#: The per-unit weights a RIM step multiplies by, whose gradients :class:`SeedRIM` computes once per sequence.
_DEFERRED = ("query_weight", "weight_ih", "weight_hh", "comm_query", "comm_key", "comm_value", "comm_out")


class SeedRIM(nn.Module):
    """``S`` independent :class:`~metarim_sb3.cores.rim.module.RIM` of the same sizes (parameter names of the RIM,
    shapes ``[S, *shape]``).

    The step is :func:`metarim_sb3.cores.rim.reference.rim_step` with a seed dimension in front of every tensor
    (per-unit tensors ``[S, N, B, ...]``, per-unit weights ``[S, N, in, out]``): input attention over the null row
    and the input, top-``k`` selection (not differentiated), each unit's own cell, communication among units read
    from the post-update states, sparse update. Keys and values of the whole sequence are projected once, before the
    loop.
    Dropout is not supported (the policies' default ``rim_dropout=0``).

    :param template: an ordinary RIM giving the sizes (its weights are not copied).
    :param n_seeds: ``S``.
    :param fused: run the seeds through the fused kernel as its groups (:mod:`metarim_sb3.seed_batch.rim_kernel`;
        first-order gradients only); ``False`` for the plain autograd loop.
    """

    def __init__(self, template: RIM, n_seeds: int, *, fused: bool = True) -> None:
        super().__init__()
        if template.dropout > 0.0:
            raise ValueError(f"SeedRIM does not support dropout yet (got dropout={template.dropout})")
        self.n_seeds, self.fused = n_seeds, fused
        self._cfg, self._in_scale = template._cfg._replace(groups=n_seeds), template._in_scale
        self._cache: tuple[tuple[object, ...], Weights] | None = None
        self.input_size, self.n_units, self.unit_size = template.input_size, template.n_units, template.unit_size
        self.k, self.cell = template.k, template.cell
        self.hidden_size, self.num_layers = template.hidden_size, 1
        self.input_heads, self.comm_heads = template.input_heads, template.comm_heads
        self.last_active: Tensor | None = None
        self._deferred: dict[str, tuple[Tensor, _Rows]] | None = None
        for name, p in template.named_parameters():
            self.register_parameter(name, nn.Parameter(torch.empty(n_seeds, *p.shape, device=p.device)))
        self._roles = {role: [n for n, p in template.named_parameters() if any(p is q for q in ps)]
                       for role, ps in template.parameter_roles().items()}  # fmt: skip

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        """As :meth:`RIM.parameter_roles <metarim_sb3.cores.rim.module.RIM.parameter_roles>`: cells in ``modules``,
        input and communication attention in ``attention``.

        :return: ``{MODULES: [...], ATTENTION: [...]}``.
        """
        return {role: [getattr(self, n) for n in names] for role, names in self._roles.items()}

    def __getstate__(self) -> dict[str, object]:
        state = super().__getstate__()
        state["_cache"] = None  # derived weights are rebuilt on demand, never pickled
        return state

    def _params(self) -> Params:
        """The stacked parameters as the fused kernel reads them."""
        gru, p = self.cell == "gru", self._p
        return Params(
            weight_ih=p("weight_ih"),
            value_weight=p("value_weight"),
            weight_hh=p("weight_hh"),
            query_weight=p("query_weight"),
            bias=p("bias_hh") if gru else p("bias"),
            query_bias=p("query_bias"),
            bias_ih=p("bias_ih") if gru else None,
            comm_query=p("comm_query"),
            comm_key=p("comm_key"),
            comm_value=p("comm_value"),
            comm_out=p("comm_out"),
        )

    def _cached_weights(self, params: Params) -> Weights:
        """The no-grad kernel weights, reused while no parameter changed (every rollout step reads them)."""
        key = tuple((q.data_ptr(), q._version, q.dtype, q.device) for q in params if q is not None)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, folded_weights(self._cfg, params))
        return self._cache[1]

    def _forward_fused(self, x: Tensor, state: State, episode_starts: Tensor | None) -> tuple[Tensor, State]:
        """:meth:`forward` through the fused kernel, the seeds as its groups (unit-major packed states per seed)."""
        s, t_len, b, _ = x.shape
        n, hidden = self.n_units, self.hidden_size
        h0, c0 = (st.reshape(s, b, hidden).transpose(0, 1).reshape(b, s * hidden) for st in state)
        keep = None
        if episode_starts is not None:
            keep = (episode_starts == 0).to(x.dtype).transpose(0, 1).unsqueeze(2).expand(t_len, s, n, b)
            keep = keep.reshape(t_len, s * n, b)
        params = self._params()
        cached = None if torch.is_grad_enabled() else self._cached_weights(params)
        key_weight = self._p("key_weight")
        out, h_t, c_t, m = run_seeds(self._cfg, params, key_weight, x, keep, h0, c0, self._in_scale, cached)
        self.last_active = m.view(t_len, s, n, b).permute(1, 0, 3, 2).detach()
        out = out.view(t_len, b, s, hidden).permute(2, 0, 1, 3)
        h, c = (st.view(b, s, hidden).transpose(0, 1).unsqueeze(1) for st in (h_t, c_t))
        return out, (h, c)

    def _p(self, name: str) -> Tensor:
        p: Tensor = getattr(self, name)
        return p

    def _mm(self, x: Tensor, name: str) -> Tensor:
        """``x @ weight`` of a per-unit weight in the step; with gradients, its weight gradient is deferred to one
        matmul over the whole sequence (:class:`_WeightSink`) instead of one per step and their sum."""
        deferred = self._deferred
        if deferred is None:
            return torch.matmul(x, self._p(name))
        w, rows = deferred[name]
        return _DeferredMatmul.apply(x, w, rows)  # type: ignore[no-any-return]

    def _step(self, key: Tensor, value: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step for all seeds: ``key [S, B, dk]``, ``value [S, B, dv]``, ``h``/``c`` ``[S, N, B, H]``.

        :return: new ``h`` and ``c`` ``[S, N, B, H]`` and the active mask ``[S, N, B]``.
        """
        p, hs, n_units = self._p, self.unit_size, self.n_units
        s, b = h.shape[0], h.shape[2]
        # 1. input attention (null row: key and value zero, score 0)
        query = self._mm(h, "query_weight") + p("query_bias").unsqueeze(2)  # [S, N, B, dk]
        q_heads, k_heads = _heads(query, self.input_heads), _heads(key, self.input_heads).unsqueeze(1)
        score = ((q_heads * k_heads).sum(-1) / math.sqrt(q_heads.shape[-1])).mean(-1)  # [S, N, B]
        attention = torch.softmax(torch.stack((torch.zeros_like(score), score), -1), -1)
        attended = attention[..., 1].unsqueeze(-1) * value.unsqueeze(1)  # [S, N, B, dv]
        # 2. selection of the k largest scores per seed and batch entry
        active = torch.zeros_like(score, dtype=torch.bool)
        active.scatter_(1, score.detach().topk(self.k, 1, sorted=False).indices, True)
        active3 = active.unsqueeze(-1)
        # 3. each unit's own cell
        if self.cell == "lstm":
            gates = self._mm(attended, "weight_ih") + self._mm(h, "weight_hh") + p("bias").unsqueeze(2)
            in_gate, forget_gate, candidate, out_gate = gates.split(hs, -1)
            c_new = torch.sigmoid(forget_gate) * c + torch.sigmoid(in_gate) * torch.tanh(candidate)
            h_new = torch.sigmoid(out_gate) * torch.tanh(c_new)
        else:
            gi = self._mm(attended, "weight_ih") + p("bias_ih").unsqueeze(2)
            gh = self._mm(h, "weight_hh") + p("bias_hh").unsqueeze(2)
            reset = torch.sigmoid(gi[..., :hs] + gh[..., :hs])
            update = torch.sigmoid(gi[..., hs : 2 * hs] + gh[..., hs : 2 * hs])
            candidate = torch.tanh(gi[..., 2 * hs :] + reset * gh[..., 2 * hs :])
            h_new, c_new = (1.0 - update) * candidate + update * h, c
        # 4. communication among each seed's units (inactive units read as constants)
        read = torch.where(active3, h_new, h.detach())
        heads = self.comm_heads
        q = _heads(self._mm(read, "comm_query"), heads).permute(0, 2, 3, 1, 4)  # [S, B, heads, N, dq]
        k = _heads(self._mm(read, "comm_key"), heads).permute(0, 2, 3, 1, 4)
        v = _heads(self._mm(read, "comm_value"), heads).permute(0, 2, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
        message = (weights @ v).permute(0, 3, 1, 2, 4).reshape(s, n_units, b, -1)  # [S, N, B, heads * dv]
        h_new = h_new + torch.tanh(self._mm(message, "comm_out"))
        # 5. sparse update
        return torch.where(active3, h_new, h), torch.where(active3, c_new, c), active

    def forward(self, x: Tensor, state: State, episode_starts: Tensor | None = None) -> tuple[Tensor, State]:
        """Run every seed's RIM over its sequence (states zeroed where an episode starts, as the RIM does).

        Sets :attr:`last_active` to the active masks ``[S, T, B, N]`` (as the RIM's ``[T, B, N]`` per seed).

        :param x: ``[S, T, B, input_size]``.
        :param state: ``(h, c)``, each ``[S, 1, B, n_units * unit_size]``.
        :param episode_starts: ``[S, T, B]``, nonzero where an episode starts; ``None``: no reset.
        :return: outputs ``[S, T, B, n_units * unit_size]`` and the final ``(h, c)``.
        """
        _check(x, state, self.n_seeds, self.input_size, self.hidden_size)
        if self.fused:
            return self._forward_fused(x, state, episode_starts)
        s, t_len, b, d = x.shape
        n, hs = self.n_units, self.unit_size
        rows = x.reshape(s, t_len * b, d)
        keys = torch.bmm(rows, self._p("key_weight")).view(s, t_len, b, -1)
        values = torch.bmm(rows, self._p("value_weight")).view(s, t_len, b, -1)
        h = state[0].reshape(s, b, n, hs).transpose(1, 2)
        c = torch.zeros_like(h) if self.cell == "gru" else state[1].reshape(s, b, n, hs).transpose(1, 2)
        starts, _ = _resets(episode_starts, t_len)
        outs, masks = [], []
        # With episode starts given, the reset (a multiply by 0 or 1) runs at every step, not only at the steps
        # where some entry starts: otherwise the autograd graph's shape, and with it the order in which gradients
        # are summed, would depend on the other seeds' episode starts, moving a seed's gradients by rounding.
        always = starts is not None
        self._deferred = None
        if torch.is_grad_enabled():
            self._deferred = {}
            for name in _DEFERRED:
                kept = _Rows()
                self._deferred[name] = (_WeightSink.apply(self._p(name), kept), kept)
        for t in range(t_len):
            if always:
                keep = (~starts[:, t]).to(x.dtype).unsqueeze(1)  # type: ignore[index]
                h, c = h * keep, c * keep
            h, c, active = self._step(keys[:, t], values[:, t], h, c)
            outs.append(h)
            masks.append(active)
        self._deferred = None
        out = torch.stack(outs, 1).transpose(2, 3).reshape(s, t_len, b, n * hs)  # unit-major columns
        self.last_active = torch.stack(masks, 1).transpose(2, 3).detach()
        c_out = c.transpose(1, 2).reshape(s, 1, b, n * hs)
        return out, (out[:, -1:].clone(), c_out)


def seed_core(core: nn.Module, n_seeds: int) -> nn.Module:
    """The seed-batched counterpart of an ordinary core (sizes only; weights not copied).

    :param core: a :class:`LSTMCore`, :class:`GRUCore` or :class:`RIM` (one layer).
    :param n_seeds: ``S``.
    :return: :class:`SeedLSTM`, :class:`SeedGRU` or :class:`SeedRIM`.
    :raises TypeError: for another core, or several layers.
    """
    if isinstance(core, RIM):
        return SeedRIM(core, n_seeds)
    if isinstance(core, (LSTMCore, GRUCore)):
        if core.num_layers != 1 or not core.bias:
            raise TypeError(f"seed_core: only one-layer cores with biases, got {core}")
        cls = SeedLSTM if isinstance(core, LSTMCore) else SeedGRU
        device = next(core.parameters()).device
        return cls(n_seeds, core.input_size, core.hidden_size, device)
    raise TypeError(f"seed_core: no seed-batched version of {type(core).__name__} (LSTMCore, GRUCore or RIM)")
