"""The seed-batched RIM through the fused kernel (:mod:`metarim_sb3.cores.rim._fused`), seeds run as groups.

``S`` independent RIMs of the same sizes are ``S`` groups of the kernel (``CellConfig.groups``): their units are
stacked, seed-major, into one set of ``U = S * N`` units, and selection and communication stay within each seed, so
every time step issues the ops of one RIM whatever ``S``. What groups share and seeds do not, the input rows and the
episode starts, is handled outside the step loop:

* each seed's cell inputs ``u = (x W_v) W_ih`` (tanh-gate columns doubled) and scaled keys are formed before the
  loop with batched matmuls over seeds and handed to the kernel (:func:`~metarim_sb3.cores.rim._fused.forward_loop`'s
  ``u``); their gradients, and those of the projections, are ordinary autograd;
* the reset factors are given per unit, ``[T, U, B]``;
* the kernel's weights are derived from the stacked parameters with autograd ops (:func:`seed_weights`), so only
  the step loop runs in the hand-written backward (:class:`_SeedRIMSequence`).

Every per-unit weight gradient is formed per unit, over that seed's rows only, so each seed's gradients depend on
that seed alone, with the rounding of a single RIM's fused run.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from metarim_sb3.cores.rim._fused import (
    CellConfig,
    Params,
    Weights,
    backward_loop,
    fold_value,
    forward_loop,
    rollout_step,
)
from metarim_sb3.cores.rim._pool import POOL

__all__ = ["folded_weights", "run_seeds", "seed_inputs", "seed_weights"]

_SCALES: dict[tuple[int, int, torch.dtype, torch.device], Tensor] = {}


def _gate_scale(cfg: CellConfig, like: Tensor) -> Tensor:
    """``[G]`` column factors: 2 on the tanh gate's columns (``tanh(x) = 2 sigmoid(2x) - 1``), 1 elsewhere."""
    key = (cfg.g, cfg.hs, like.dtype, like.device)
    scale = _SCALES.get(key)
    if scale is None:
        scale = torch.ones(cfg.g, dtype=like.dtype, device=like.device)
        scale[2 * cfg.hs : 3 * cfg.hs] = 2.0
        _SCALES[key] = scale
    return scale


def seed_weights(cfg: CellConfig, p: Params) -> Weights:
    """The kernel's weights (as :func:`~metarim_sb3.cores.rim._fused.derive_weights`) of ``S`` stacked RIMs, with
    autograd ops (differentiable; also used without gradients).

    :param cfg: one RIM's sizes (``groups`` is not read).
    :param p: the stacked parameters, each ``[S, *shape]``.
    :return: ``w_in`` the cell input weights per seed ``[S, dv, N * G]`` (value projection not folded in), the other
        fields over all ``U = S * N`` units, seed-major.
    """
    s, n, hs, g = p.weight_hh.shape[0], cfg.n, cfg.hs, cfg.g
    scale = _gate_scale(cfg, p.weight_hh)
    w_in = (p.weight_ih * scale).transpose(1, 2).reshape(s, -1, n * g)
    w_hq = torch.cat((p.weight_hh * scale, p.query_weight), -1).reshape(s * n, hs, -1)
    bias, b_ih = p.bias, p.bias_ih
    if b_ih is not None:
        bias = torch.cat((bias[..., : 2 * hs] + b_ih[..., : 2 * hs], bias[..., 2 * hs :]), -1)
    b_hq = torch.cat((bias * scale, p.query_bias), -1).reshape(s * n, 1, -1)
    b_in = None if b_ih is None else (b_ih[..., 2 * hs :] * 2.0).reshape(s * n, 1, hs)
    heads = [w.reshape(s * n, hs, cfg.nh, -1) for w in (p.comm_query, p.comm_key, p.comm_value)]
    w_c = torch.cat((heads[0] * cfg.cscale, heads[1], heads[2]), -1).reshape(s * n, hs, -1)
    return Weights(w_in, w_hq, b_hq, b_in, w_c, p.comm_out.reshape(s * n, -1, hs))


def seed_inputs(
    cfg: CellConfig, x: Tensor, key_weight: Tensor, value_weight: Tensor, w_in: Tensor, in_scale: float, fold: bool
) -> tuple[Tensor, Tensor]:
    """Every seed's cell inputs and scaled keys for the whole sequence, laid out as the kernel reads them.

    :param cfg: one RIM's sizes.
    :param x: inputs ``[S, T, B, D]``.
    :param key_weight: ``[S, D, dk]``.
    :param value_weight: ``[S, D, dv]``.
    :param w_in: cell input weights ``[S, dv, N * G]`` (from :func:`seed_weights`), or, folded, ``[S, D, N * G]``.
    :param in_scale: the input-attention score scale.
    :param fold: whether ``w_in`` has the value projection folded in.
    :return: ``u [T, B, S * N, G]`` (contiguous) and ``kq [T, S, B, dk]``.
    """
    s, t_len, b, d = x.shape
    rows = x.reshape(s, t_len * b, d)
    kq = torch.bmm(rows, key_weight).mul(in_scale).view(s, t_len, b, -1).transpose(0, 1)
    u = torch.bmm(rows if fold else torch.bmm(rows, value_weight), w_in)  # [S, T * B, N * G]
    return u.transpose(0, 1).reshape(t_len, b, s * cfg.n, cfg.g), kq


class _SeedRIMSequence(torch.autograd.Function):
    """The step loop of ``S`` RIMs run as ``S`` groups, one autograd node with the kernel's hand-written backward.

    ``apply(cfg, keep, u, kq, h0, c0, w_hq, b_hq, b_in, w_c, w_o)``: ``cfg`` with ``groups = S``; ``keep`` per-unit
    reset factors ``[T, U, B]`` or ``None``; ``u`` and ``kq`` from :func:`seed_inputs`; ``h0``/``c0`` packed
    ``[B, U * H]``; the weights from :func:`seed_weights`. Outputs: the sequence output ``[T, B, U * H]``, final
    ``h`` and ``c`` ``[B, U * H]`` and the active masks ``[T, U, B]``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        cfg: CellConfig,
        keep: Tensor | None,
        u: Tensor,
        kq: Tensor,
        h0: Tensor,
        c0: Tensor,
        w_hq: Tensor,
        b_hq: Tensor,
        b_in: Tensor | None,
        w_c: Tensor,
        w_o: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        t_len, b, nu = kq.shape[0], kq.shape[2], cfg.groups * cfg.n
        weights = Weights(None, w_hq, b_hq, b_in, w_c, w_o)
        sv = forward_loop(cfg, None, kq, keep, None, h0.view(b, nu, cfg.hs), c0.view(b, nu, cfg.hs), weights, u=u)
        ctx.cfg, ctx.sv, ctx.keep = cfg, sv, keep
        ctx.save_for_backward(kq, h0, w_hq, w_c, w_o)
        ctx.mark_non_differentiable(sv.m)
        weakref.finalize(ctx, POOL.give, sv.pooled).atexit = False
        out = sv.hout.view(t_len, b, nu * cfg.hs)
        return out, out[-1].clone(), sv.cseq[-1].view(b, -1).clone(), sv.m

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_out: Tensor, d_ht: Tensor, d_ct: Tensor, _d_m: Tensor) -> tuple[Tensor | None, ...]:
        kq, h0, w_hq, w_c, w_o = ctx.saved_tensors
        d_u, d_kq, d_h0, d_c0, d_w = backward_loop(
            ctx.cfg, ctx.sv, None, None, kq, ctx.keep, None, h0, w_hq, w_c, w_o, d_out, d_ht, d_ct
        )
        return None, None, d_u, d_kq, d_h0, d_c0, d_w.w_hq, d_w.b_hq, d_w.b_in, d_w.w_c, d_w.w_o


@torch.compiler.disable  # dynamo cannot trace the kernel's scratch pool: compiled callers run it eagerly
def run_seeds(
    cfg: CellConfig,
    params: Params,
    key_weight: Tensor,
    x: Tensor,
    keep: Tensor | None,
    h0: Tensor,
    c0: Tensor,
    in_scale: float,
    cached: Weights | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``S`` RIMs over their sequences through the fused kernel: with autograd when gradients are enabled, else
    without (one step: :func:`~metarim_sb3.cores.rim._fused.rollout_step`).

    :param cfg: one RIM's sizes with ``groups = S``.
    :param params: the stacked parameters, each ``[S, *shape]`` (``bias`` is ``bias_hh`` for GRU cells).
    :param key_weight: ``[S, D, dk]``.
    :param x: inputs ``[S, T, B, D]``.
    :param keep: per-unit reset factors ``[T, U, B]``, or ``None``.
    :param h0: ``[B, U * H]``.
    :param c0: ``[B, U * H]``.
    :param in_scale: the input-attention score scale.
    :param cached: without gradients, :func:`seed_weights` with the value projection folded into ``w_in``
        (``[S, D, N * G]``), reused between calls; ``None`` derives them here.
    :return: outputs ``[T, B, U * H]``, final ``h`` and ``c`` ``[B, U * H]``, active masks ``[T, U, B]``.
    """
    t_len, b, d = x.shape[1:]
    nu = cfg.groups * cfg.n
    if torch.is_grad_enabled():
        w = seed_weights(cfg, params)
        assert w.w_in is not None
        fold = fold_value(cfg, t_len * b, d, params.value_weight.shape[-1])
        w_in = torch.bmm(params.value_weight, w.w_in) if fold else w.w_in
        u, kq = seed_inputs(cfg, x, key_weight, params.value_weight, w_in, in_scale, fold)
        return _SeedRIMSequence.apply(cfg, keep, u, kq, h0, c0, w.w_hq, w.b_hq, w.b_in, w.w_c, w.w_o)  # type: ignore[no-any-return]
    weights = cached if cached is not None else folded_weights(cfg, params)
    assert weights.w_in is not None
    u, kq = seed_inputs(cfg, x, key_weight, params.value_weight, weights.w_in, in_scale, True)
    h0_, c0_ = h0.view(b, nu, cfg.hs), c0.view(b, nu, cfg.hs)
    if t_len == 1:
        k0 = None if keep is None else keep[0]
        h_new, c_new, m = rollout_step(cfg, None, kq[0], k0, None, h0_, c0_, weights, u=u[0].transpose(0, 1))
        return h_new.view(1, b, -1), h_new.view(b, -1).clone(), c_new.view(b, -1), m.unsqueeze(0)
    sv = forward_loop(cfg, None, kq, keep, None, h0_, c0_, weights, u=u)
    out = sv.hout.view(t_len, b, -1)
    h_t, c_t = out[-1].clone(), sv.cseq[-1].reshape(b, -1).clone()
    POOL.give(sv.pooled)
    return out, h_t, c_t, sv.m


def folded_weights(cfg: CellConfig, params: Params) -> Weights:
    """:func:`seed_weights` without autograd, the value projection folded into ``w_in`` (``[S, D, N * G]``).

    :param cfg: one RIM's sizes.
    :param params: the stacked parameters.
    :return: the kernel's weights for calls without gradients.
    """
    with torch.no_grad():
        w = seed_weights(cfg, params)
        assert w.w_in is not None
        return w._replace(w_in=torch.bmm(params.value_weight, w.w_in))
