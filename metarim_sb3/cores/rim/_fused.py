"""The fast RIM kernel: the whole sequence as one autograd node with a hand-written backward, and a lean rollout step.

It computes what :mod:`metarim_sb3.cores.rim.reference` states step by step (the tests hold the two equal, values and
gradients), reformulated for speed. Inputs are pre-projected (see :class:`metarim_sb3.cores.rim.module.RIM`). Per step
``t`` the loops read

* ``u[:, t]`` — the input row pushed through the value projection and each unit's input weights,
  ``(x_t W_v) W_ih,j``, shape ``[N, B, G]``; the fused kernel computes it itself as ``x2 @ w_in``;
* ``kq[t]`` — the input row's key multiplied by the attention scale, shape ``[B, dk]``.

The null row has key 0 and value 0 (the projections carry no bias), so the input attention of unit ``j`` is a
softmax over the two scores ``(0, s_j)``: the weight on the input row is ``sigmoid(s_j)`` and the attended input
is ``sigmoid(s_j) * v_t``. Ranking units by least attention on the null row is ranking by ``s_j`` (the log-odds),
which avoids the ties a saturated sigmoid would produce.

Fast path (:func:`forward_loop`, :class:`RIMSequence`). On CPU the cost is per-op overhead and first-touch page
faults, not FLOPs, so the loop issues few, cheap ops:

* states are stored batch-first ``[B, N, H]`` (the packed API layout) and read unit-first through transposed
  views; batched matmuls accept those strides without copies; per-step views are made in bulk before the loop;
* ``tanh(x) = 2 sigmoid(2x) - 1`` (torch's CPU ``tanh`` is several times slower than ``sigmoid``); the caller
  passes weights whose tanh-gate columns are doubled (exact in floating point), see :func:`derive_weights`;
* the communication attention of all heads runs as one block-diagonal ``[heads * N, heads * N]`` attention per
  batch entry (a few small batched matmuls, see :func:`_head_mask`); its query weights arrive pre-multiplied by
  the score scale and its projection columns ordered by head, so one copy per step lays out every head's matrix;
* several RIMs of equal sizes on the same input (``CellConfig.groups``) run as one set of stacked units, with
  selection and communication kept within each RIM; RIMs with inputs of their own (the seeds of
  :mod:`metarim_sb3.seed_batch.rim_kernel`) run as groups too, handing :func:`forward_loop` their cell inputs ``u``
  and per-unit reset factors;
* the backward first forms every per-step derivative factor for all steps at once, then walks the steps in
  reverse with only the recurrent ops, and finally forms each weight gradient as one matmul over all
  ``T * B`` rows (as fused LSTM kernels do);
* large scratch tensors come from a small pool (``_pool``) and go back to it when the backward is done (backward
  scratch) or when the autograd graph is freed (tensors saved by the forward).

Without gradients, :func:`run_no_grad` runs the loop (or, for one step, :func:`rollout_step`) and returns the
scratch to the pool itself. Interface records: :class:`Params` (one RIM's parameters by name), :class:`Weights`
(the kernel's derived weights), :class:`Saved` (what the forward keeps for the backward).
"""

from __future__ import annotations

import math
import weakref
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from metarim_sb3.cores.rim._pool import POOL


class Params(NamedTuple):
    """One RIM's parameters, as the kernel reads them (the module's attributes of the same names).

    ``bias`` is the LSTM bias or, for GRU cells, ``bias_hh``; ``bias_ih`` is ``None`` for LSTM cells.
    """

    weight_ih: Tensor
    value_weight: Tensor
    weight_hh: Tensor
    query_weight: Tensor
    bias: Tensor
    query_bias: Tensor
    bias_ih: Tensor | None
    comm_query: Tensor
    comm_key: Tensor
    comm_value: Tensor
    comm_out: Tensor


N_PARAMS = len(Params._fields)  #: parameters per RIM, flattened in this order into :class:`RIMSequence`


class Weights(NamedTuple):
    """The kernel's weights, derived from :class:`Params` by :func:`derive_weights` (``U`` units, gate width ``G``).

    Tanh-gate columns are doubled (``tanh(x) = 2 sigmoid(2x) - 1``; doubling is exact).

    :param w_in: input-to-cell weights ``[D', U * G]`` (the value projection folded in, or not); ``None`` where the
        caller gives the kernel the cell inputs ``u`` themselves (seed-batched RIMs, each with its own inputs).
    :param w_hq: recurrent and input-query weights side by side ``[U, H, G + dk]``.
    :param b_hq: their bias ``[U, 1, G + dk]`` (for GRU cells the ``r``/``z`` input biases are added in).
    :param b_in: the GRU candidate's input bias ``[U, 1, H]``; ``None`` for LSTM cells.
    :param w_c: communication query/key/value weights ``[U, H, heads * (2 dq + dv)]``, columns ordered by head,
        queries times the score scale.
    :param w_o: communication output weights ``[U, heads * dv, H]``.
    """

    w_in: Tensor | None
    w_hq: Tensor
    b_hq: Tensor
    b_in: Tensor | None
    w_c: Tensor
    w_o: Tensor


class Saved(NamedTuple):
    """What :func:`forward_loop` computes: the outputs, and what :func:`backward_loop` reads back.

    ``U`` units in all, gate width ``G``; all but ``m``, ``pc`` and ``resets`` live in pooled scratch.

    :param hout: outputs ``[T, B, U, H]``.
    :param cseq: cell states ``[T + 1, B, U, H]`` (zeros for GRU cells).
    :param m: active masks ``[T, U, B]``.
    :param u: cell inputs ``[T, B, U, G]``.
    :param ah: gate activations and input-attention queries ``[T, U, B, G + dk]``.
    :param s2: ``sigmoid(2 c~)`` (LSTM) or ``sigmoid(2 n_pre)`` (GRU) ``[T, U, B, H]``.
    :param p: input-row attention weights ``[T, U, B]``.
    :param z: the states communication reads ``[U, T * B, H]``.
    :param hm: communication queries, keys and values, one ``[heads * n, 2 dq + dv]`` matrix per (group, batch
        entry) ``[T, groups * B, heads * n, 2 dq + dv]``.
    :param oc: communication outputs before projection ``[U, T, B, heads * dv]``.
    :param tc: ``tanh`` of the projected communication outputs, what is added to the states ``[T, U, B, H]``.
    :param pc: communication attention per step, each ``[groups * B, heads * n, heads * n]``.
    :param resets: per step, whether any batch entry resets there.
    :param pooled: the scratch to give back to the pool when none of the above is needed any more.
    """

    hout: Tensor
    cseq: Tensor
    m: Tensor
    u: Tensor
    ah: Tensor
    s2: Tensor
    p: Tensor
    z: Tensor
    hm: Tensor
    oc: Tensor
    tc: Tensor
    pc: list[Tensor]
    resets: list[bool]
    pooled: list[Tensor]


class CellConfig(NamedTuple):
    """Static sizes of the cell.

    :param n: number of units ``N``.
    :param hs: unit state size ``H``.
    :param k: number of active units per step.
    :param gru: GRU cells if true, LSTM cells otherwise.
    :param g: gate width (``4H`` LSTM, ``3H`` GRU).
    :param dk: input-attention key size (all heads).
    :param nh: communication heads.
    :param dq: communication key size per head.
    :param dv: communication value size per head.
    :param cscale: communication score scale ``1 / sqrt(dq)``.
    :param groups: independent RIMs of these sizes run side by side on the same input (actor and critic cores):
        every per-unit tensor holds ``groups * n`` units, group-major; selection and communication stay within
        a group.
    """

    n: int
    hs: int
    k: int
    gru: bool
    g: int
    dk: int
    nh: int
    dq: int
    dv: int
    cscale: float
    groups: int = 1


def _select(s: Tensor, k: int, out: Tensor | None = None) -> Tensor:
    """Boolean mask of the ``k`` largest scores along the unit dimension, the second to last (``[..., N, B]``;
    ``out`` must be all false)."""
    out = torch.zeros_like(s, dtype=torch.bool) if out is None else out
    return out.scatter_(-2, s.topk(k, -2, sorted=False).indices, True)


_HEAD_MASKS: dict[tuple[int, int, torch.dtype, torch.device], Tensor] = {}


def _head_mask(nh: int, n: int, like: Tensor) -> Tensor:
    """``[nh * n, nh * n]`` additive score mask: 0 within a head's ``n x n`` block, ``-inf`` across heads.

    The communication attention of all heads runs as one ``[nh * n, nh * n]`` matmul per (group, batch entry): with
    this mask its softmax is block-diagonal, i.e. each head's own attention, at the cost of fewer, larger matrices
    than one ``n x n`` matrix per head (which small batched matmuls and softmaxes handle poorly).
    """
    key = (nh, n, like.dtype, like.device)
    mask = _HEAD_MASKS.get(key)
    if mask is None:
        head = torch.arange(nh, device=like.device).repeat_interleave(n)
        zero, minus_inf = torch.zeros((), dtype=like.dtype), torch.full((), -math.inf, dtype=like.dtype)
        mask = _HEAD_MASKS[key] = torch.where(head[:, None] == head[None, :], zero, minus_inf).to(like.device)
    return mask


def forward_loop(
    cfg: CellConfig,
    x2: Tensor | None,
    kq: Tensor,
    keep: Tensor | None,
    drop: Tensor | None,
    h0: Tensor,
    c0: Tensor,
    weights: Weights,
    u: Tensor | None = None,
) -> Saved:
    """Run the cell over ``T`` steps without autograd recording (fast formulation).

    ``U = cfg.groups * cfg.n`` units in all (one group per independent RIM, group-major).

    :param cfg: static sizes.
    :param x2: input rows ``[T * B, D']`` (raw inputs, or their values when ``w_in`` holds only the cell weights);
        ``None`` when ``u`` is given.
    :param kq: scaled input keys ``[T, groups, B, dk]``.
    :param keep: ``[T, B]`` 0/1 factors (0 where an episode starts), or per unit ``[T, U, B]``, or ``None`` when no
        step resets.
    :param drop: ``[T, U, B]`` dropout factors on the input-row attention, or ``None``.
    :param h0: initial hidden states ``[B, U, H]``.
    :param c0: initial cell states ``[B, U, H]`` (ignored for GRU cells, whose ``c`` is zeros).
    :param weights: from :func:`derive_weights` (and :func:`cat_groups`); ``x2 @ weights.w_in`` gives every unit's
        cell input.
    :param u: the cell inputs ``[T, B, U, G]`` (tanh-gate columns doubled) instead of ``x2 @ weights.w_in``; kept
        as they are (saved for the backward, never pooled).
    :return: the outputs and what the backward needs; give ``pooled`` back to the pool when done.
    """
    w_in, w_hq, b_hq, b_in, w_c, w_o = weights
    n, gr, hs, g, nh, dq, dv = cfg.n, cfg.groups, cfg.hs, cfg.g, cfg.nh, cfg.dq, cfg.dv
    t_len, b = kq.shape[0], kq.shape[2]
    nu, nq, nv = gr * n, nh * dq, nh * dv
    take = POOL.take
    own_u = u is None
    if u is None:
        assert x2 is not None and w_in is not None
        u = torch.mm(x2, w_in, out=take((t_len * b, nu * g), kq)).view(t_len, b, nu, g)
    hout = torch.empty(t_len, b, nu, hs, dtype=kq.dtype, device=kq.device)
    cseq = take((t_len + 1, b, nu, hs), kq)
    if cfg.gru:
        cseq.zero_()
    else:
        cseq[0] = c0
    m_all = torch.zeros(t_len, nu, b, dtype=torch.bool, device=kq.device)
    # gate pre-activations, turned into activations in place, then the input-attention queries
    ah_all = take((t_len, nu, b, g + cfg.dk), kq)
    s2_all = take((t_len, nu, b, hs), kq)  # sigmoid(2 c~) (LSTM) / sigmoid(2 n_pre) (GRU)
    p_all = take((t_len, nu, b), kq)
    z_all = take((nu, t_len * b, hs), kq)
    qkv_all = take((t_len, nu, b, nq + nq + nv), kq)  # columns (head, q | k | v) as derive_weights lays them
    hm_all = take((t_len, gr * b, nh * n, 2 * dq + dv), kq)  # the same, one [heads * n, q | k | v] matrix
    oc_all = take((nu, t_len, b, nv), kq)
    tc_all = take((t_len, nu, b, hs), kq)  # tanh of the communication output (bounds the residual)
    resets = keep.eq(0).flatten(1).any(1).tolist() if keep is not None else [False] * t_len
    keeps = _step_keeps(keep, t_len, b)
    pcs: list[Tensor] = []
    # per-step views, made in bulk; [groups, n, ...] views where selection and attention stay within a group
    us, kqs, ahs = u.transpose(1, 2).unbind(0), kq.unsqueeze(2).unbind(0), ah_all.unbind(0)
    m_s, m3s = m_all.view(t_len, gr, n, b).unbind(0), m_all.unsqueeze(-1).unbind(0)
    ps, pgs, s2s = p_all.unbind(0), p_all.view(t_len, gr, n, b).unbind(0), s2_all.unbind(0)
    qs, gates = ah_all[..., g:].view(t_len, gr, n, b, cfg.dk).unbind(0), ah_all[..., :g].unbind(0)
    chunks = [ah_all[..., j * hs : (j + 1) * hs].unbind(0) for j in range(g // hs)]
    if cfg.gru:
        u_rz, u_n = [x.transpose(1, 2).unbind(0) for x in (u[..., : 2 * hs], u[..., 2 * hs :])]
        rz_s = ah_all[..., : 2 * hs].unbind(0)
    hs_new, cs = hout.transpose(1, 2).unbind(0), cseq.transpose(1, 2).unbind(0)
    zs = z_all.view(nu, t_len, b, hs).unbind(1)
    qkvs, ocs, tcs = qkv_all.unbind(0), oc_all.unbind(1), tc_all.unbind(0)
    qkv_heads = qkv_all.view(t_len, gr, n, b, nh, 2 * dq + dv).permute(0, 1, 3, 4, 2, 5).unbind(0)
    hms = hm_all.unbind(0)
    hqs, hks = hm_all[..., :dq].unbind(0), hm_all[..., dq : 2 * dq].transpose(2, 3).unbind(0)
    hvs = hm_all[..., 2 * dq :].unbind(0)
    mask = _head_mask(nh, n, kq)
    oc_heads = oc_all.view(gr, n, t_len, b, nh, dv).permute(2, 0, 3, 4, 1, 5).unbind(0)
    h = h0.transpose(0, 1)
    for t in range(t_len):
        c = cs[t]
        if resets[t]:
            kt = keeps[t]
            h = h * kt
            c.mul_(kt)
        torch.baddbmm(b_hq, h, w_hq, out=ahs[t])
        s = torch.linalg.vecdot(qs[t], kqs[t])  # [groups, n, B]
        _select(s, cfg.k, m_s[t])
        m3 = m3s[t]
        torch.sigmoid(s, out=pgs[t])
        pd = (ps[t] * drop[t] if drop is not None else ps[t]).unsqueeze(-1)
        if cfg.gru:
            rz_s[t].addcmul_(pd, u_rz[t]).sigmoid_()
            r_, zg = chunks[0][t], chunks[1][t]
            n_pre = torch.addcmul(b_in, pd, u_n[t]).addcmul_(r_, chunks[2][t])  # type: ignore[arg-type]
            nn_ = torch.sigmoid(n_pre, out=s2s[t]).mul(2.0).sub_(1.0)
            ht = torch.addcmul(nn_, zg, h - nn_)
        else:
            gates[t].addcmul_(pd, us[t]).sigmoid_()
            i_, f_, sg, o_ = chunks[0][t], chunks[1][t], chunks[2][t], chunks[3][t]
            ct = (f_ * c).sub_(i_).addcmul_(i_, sg, value=2.0)  # f c + i tanh(x_g), tanh(x_g) = 2 sg - 1
            s2 = torch.sigmoid(ct * 2.0, out=s2s[t])
            ht = torch.addcmul(torch.neg(o_), o_, s2, value=2.0)  # o tanh(c~)
            torch.where(m3, ct, c, out=cs[t + 1])
        z = torch.where(m3, ht, h, out=zs[t])
        # communication: every unit reads every unit of its group (post-update states); all heads in one
        # block-diagonal attention per (group, batch entry), see _head_mask
        torch.bmm(z, w_c, out=qkvs[t])
        hms[t].view(gr, b, nh, n, -1).copy_(qkv_heads[t])
        pc = torch.softmax(torch.baddbmm(mask, hqs[t], hks[t]), 2)  # [groups * B, (head, n) read, (head, n) written]
        pcs.append(pc)
        oc_heads[t].copy_(torch.bmm(pc, hvs[t]).view(gr, b, nh, n, dv))
        comm = torch.bmm(ocs[t], w_o, out=tcs[t]).tanh_()
        h = torch.where(m3, ht.add_(comm), h, out=hs_new[t])
    return Saved(
        hout=hout,
        cseq=cseq,
        m=m_all,
        u=u,
        ah=ah_all,
        s2=s2_all,
        p=p_all,
        z=z_all,
        hm=hm_all,
        oc=oc_all,
        tc=tc_all,
        pc=pcs,
        resets=resets,
        pooled=[u, cseq, ah_all, s2_all, p_all, z_all, qkv_all, hm_all, oc_all, tc_all][0 if own_u else 1 :],
    )


def _step_keeps(keep: Tensor | None, t_len: int, b: int) -> list[Tensor]:
    """Per step, the reset factors as they multiply unit-first states ``[U, B, H]``: ``[1, B, 1]`` from ``[T, B]``,
    ``[U, B, 1]`` from per-unit ``[T, U, B]``."""
    if keep is None:
        return []
    return list((keep.view(t_len, 1, b, 1) if keep.dim() == 2 else keep.unsqueeze(-1)).unbind(0))


def rollout_step(
    cfg: CellConfig,
    x: Tensor | None,
    kq: Tensor,
    keep: Tensor | None,
    drop: Tensor | None,
    h0: Tensor,
    c0: Tensor,
    weights: Weights,
    u: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One step without autograd and without saving anything: :func:`forward_loop` at ``T = 1`` with fewer ops
    (every rollout step takes this path, where per-op overhead is the whole cost).

    :param cfg: static sizes.
    :param x: input rows ``[B, D]`` (``None`` when ``u`` is given).
    :param kq: scaled keys ``[groups, B, dk]``.
    :param keep: ``[B]`` 0/1 factors (0 where an episode starts), or per unit ``[U, B]``, or ``None``.
    :param drop: ``[U, B]`` dropout factors, or ``None``.
    :param h0: hidden states ``[B, U, H]``.
    :param c0: cell states ``[B, U, H]`` (ignored for GRU cells).
    :param weights: as for :func:`forward_loop`, with the value projection folded into ``w_in``.
    :param u: the cell inputs ``[U, B, G]`` (tanh-gate columns doubled) instead of ``x @ weights.w_in``.
    :return: new ``h`` and ``c`` ``[B, U, H]`` and the active mask ``[U, B]``.
    """
    w_in, w_hq, b_hq, b_in, w_c, w_o = weights
    n, gr, hs, g, nh, dq, dv = cfg.n, cfg.groups, cfg.hs, cfg.g, cfg.nh, cfg.dq, cfg.dv
    b, nu = kq.shape[1], gr * n
    if u is None:
        assert x is not None and w_in is not None
        u = torch.mm(x, w_in).view(b, nu, g).transpose(0, 1)
    h = h0.transpose(0, 1)
    c = torch.zeros_like(h) if cfg.gru else c0.transpose(0, 1)
    if keep is not None:
        kt = keep.view(1, b, 1) if keep.dim() == 1 else keep.unsqueeze(-1)
        h, c = h * kt, c * kt
    ah = torch.baddbmm(b_hq, h, w_hq)
    s = torch.linalg.vecdot(ah[..., g:].view(gr, n, b, -1), kq.unsqueeze(1))
    m = _select(s, cfg.k).view(nu, b)
    m3 = m.unsqueeze(-1)
    p = torch.sigmoid(s).view(nu, b)
    pd = (p * drop if drop is not None else p).unsqueeze(-1)
    if cfg.gru:
        r_, zg = ah[..., : 2 * hs].addcmul_(pd, u[..., : 2 * hs]).sigmoid_().split(hs, -1)
        n_pre = torch.addcmul(b_in, pd, u[..., 2 * hs :]).addcmul_(r_, ah[..., 2 * hs : g])  # type: ignore[arg-type]
        nn_ = torch.sigmoid(n_pre).mul_(2.0).sub_(1.0)
        ht = torch.addcmul(nn_, zg, h - nn_)
        ct = c
    else:
        i_, f_, sg, o_ = ah[..., :g].addcmul_(pd, u).sigmoid_().split(hs, -1)
        ct = (f_ * c).sub_(i_).addcmul_(i_, sg, value=2.0)
        ht = torch.addcmul(torch.neg(o_), o_, torch.sigmoid(ct * 2.0), value=2.0)
    z = torch.where(m3, ht, h)
    hm = torch.bmm(z, w_c).view(gr, n, b, nh, -1).permute(0, 2, 3, 1, 4).reshape(gr * b, nh * n, -1)
    pc = torch.softmax(torch.baddbmm(_head_mask(nh, n, hm), hm[..., :dq], hm[..., dq : 2 * dq].transpose(1, 2)), 2)
    oc = torch.bmm(pc, hm[..., 2 * dq :]).view(gr, b, nh, n, dv).permute(0, 3, 1, 2, 4).reshape(nu, b, nh * dv)
    comm = torch.bmm(oc, w_o).tanh_()
    h_new, c_new = torch.empty_like(h0), torch.empty_like(h0)
    torch.where(m3, ht.add_(comm), h, out=h_new.transpose(0, 1))
    torch.where(m3, ct, c, out=c_new.transpose(0, 1))
    return h_new, c_new, m


def run_no_grad(
    cfg: CellConfig,
    rows: Tensor,
    kq: Tensor,
    keep: Tensor | None,
    drop: Tensor | None,
    h0: Tensor,
    c0: Tensor,
    weights: Weights,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The sequence without autograd: :func:`rollout_step` for one step, else :func:`forward_loop` (its scratch goes
    straight back to the pool).

    :param cfg: static sizes (``U = groups * n`` units).
    :param rows: input rows ``[T * B, D]``.
    :param kq: scaled keys ``[T, groups, B, dk]``.
    :param keep: ``[T, B]`` 0/1 factors, or ``None``.
    :param drop: ``[T, U, B]`` dropout factors, or ``None``.
    :param h0: initial hidden states ``[B, U * H]``.
    :param c0: initial cell states ``[B, U * H]``.
    :param weights: from :func:`derive_weights` with the value projection folded in (and :func:`cat_groups`).
    :return: outputs ``[T, B, U * H]``, final ``h`` and ``c`` ``[B, U * H]`` and the active masks ``[T, U, B]``.
    """
    t_len, b, nu = kq.shape[0], kq.shape[2], cfg.groups * cfg.n
    h0_, c0_ = h0.view(b, nu, -1), c0.view(b, nu, -1)
    with torch.no_grad():
        if t_len == 1:
            k0 = None if keep is None else keep[0]
            d0 = None if drop is None else drop[0]
            h_new, c_new, m = rollout_step(cfg, rows, kq[0], k0, d0, h0_, c0_, weights)
            return h_new.view(1, b, -1), h_new.view(b, -1).clone(), c_new.view(b, -1), m.unsqueeze(0)
        sv = forward_loop(cfg, rows, kq, keep, drop, h0_, c0_, weights)
        out = sv.hout.view(t_len, b, -1)
        h_t, c_t = out[-1].clone(), sv.cseq[-1].reshape(b, -1).clone()
        POOL.give(sv.pooled)
        return out, h_t, c_t, sv.m


def backward_loop(
    cfg: CellConfig,
    sv: Saved,
    x2: Tensor | None,
    w_in: Tensor | None,
    kq: Tensor,
    keep: Tensor | None,
    drop: Tensor | None,
    h0: Tensor,
    w_hq: Tensor,
    w_c: Tensor,
    w_o: Tensor,
    d_out: Tensor,
    d_ht: Tensor,
    d_ct: Tensor,
    need_x2: bool = True,
) -> tuple[Tensor | None, Tensor, Tensor, Tensor, Weights]:
    """Reverse pass of :func:`forward_loop` (``need_x2``: whether the input rows need a gradient).

    With ``x2`` and ``w_in`` ``None`` (the forward was given the cell inputs ``u``), the first gradient is that of
    ``u``, ``[T, B, U, G]``, and the weight gradients' ``w_in`` is ``None``.

    :return: gradients for ``x2`` (``None`` unless ``need_x2``), ``kq``, ``h0`` and ``c0``, and for the weights (a
        :class:`Weights` of gradients; ``b_in`` is ``None`` for LSTM cells).
    """
    n, gr, hs, g, dk, nh, dq, dv = cfg.n, cfg.groups, cfg.hs, cfg.g, cfg.dk, cfg.nh, cfg.dq, cfg.dv
    t_len, b = kq.shape[0], kq.shape[2]
    rows, nv, nu = t_len * b, nh * dv, gr * n
    take = POOL.take
    # states before each step (after the episode resets)
    hold = torch.cat((h0.view(1, b, nu, hs), sv.hout[:-1]), out=take((t_len, b, nu, hs), kq))
    if keep is not None and any(sv.resets):
        hold.mul_(keep.view(t_len, b, 1, 1) if keep.dim() == 2 else keep.transpose(1, 2).unsqueeze(-1))
    mf = sv.m.to(kq.dtype).unsqueeze(-1)
    p, ah, s2, u = sv.p, sv.ah, sv.s2, sv.u
    pd = (p * drop if drop is not None else p).unsqueeze(-1)
    pdiff = torch.addcmul(p, p, p, value=-1.0)
    if drop is not None:
        pdiff.mul_(drop)
    # per-step derivative factors, for all steps at once
    ds2 = torch.addcmul(s2, s2, s2, value=-1.0, out=take(s2.shape, kq))
    tmp = take(s2.shape, kq)
    scratch = [hold, ds2, tmp]
    steps: tuple[tuple[Tensor, ...], ...]
    if cfg.gru:
        rz = ah[..., : 2 * hs]
        dact = torch.addcmul(rz, rz, rz, value=-1.0, out=take(rz.shape, kq))
        zg = rz[..., hs:]
        f_n = torch.mul(torch.sub(1.0, zg, out=tmp), ds2, out=take(s2.shape, kq)).mul_(2.0)
        torch.sub(hold.transpose(1, 2), torch.mul(s2, 2.0, out=tmp).sub_(1.0), out=tmp)
        f_z = torch.mul(tmp, dact[..., hs:], out=take(s2.shape, kq))
        f_r = torch.mul(ah[..., 2 * hs : g], dact[..., :hs], out=take(s2.shape, kq))
        steps = tuple(
            zip(f_n.unbind(0), f_z.unbind(0), f_r.unbind(0), rz[..., :hs].unbind(0), zg.unbind(0), strict=True)
        )
        scratch += [dact, f_n, f_z, f_r]
    else:
        act = ah[..., :g]
        dact = torch.addcmul(act, act, act, value=-1.0, out=take(act.shape, kq))
        i_, f_, sg, o_ = act.split(hs, -1)
        fac = take(act.shape, kq)
        torch.mul(torch.mul(sg, 2.0, out=tmp).sub_(1.0), dact[..., :hs], out=fac[..., :hs])
        torch.mul(sv.cseq[:-1].transpose(1, 2), dact[..., hs : 2 * hs], out=fac[..., hs : 2 * hs])
        torch.mul(i_, dact[..., 2 * hs : 3 * hs], out=fac[..., 2 * hs : 3 * hs]).mul_(2.0)
        torch.mul(torch.mul(s2, 2.0, out=tmp).sub_(1.0), dact[..., 3 * hs :], out=fac[..., 3 * hs :])
        a_o = torch.mul(o_, ds2, out=tmp)  # o (1 - tanh(c~)^2) / 4
        fac_ifg = fac[..., : 3 * hs].view(t_len, nu, b, 3, hs)
        steps = tuple(zip(a_o.unbind(0), f_.unbind(0), fac_ifg.unbind(0), fac[..., 3 * hs :].unbind(0), strict=True))
        scratch += [dact, fac]
    d_ah = take((nu, t_len, b, g + dk), kq)
    d_gi = take((nu, t_len, b, g), kq) if cfg.gru else d_ah[..., :g]
    c_h = 2 * dq + dv
    d_qkv = take((nu, t_len, b, nh * c_h), kq)
    d_hm = take((gr * b, nh * n, c_h), kq)
    d_comm = take((nu, rows, hs), kq)
    d_s = take((t_len, nu, b), kq)
    d_u = (
        take((t_len, b, nu, g), kq)
        if x2 is not None
        else torch.empty(t_len, b, nu, g, dtype=kq.dtype, device=kq.device)
    )
    scratch += [d_ah, d_gi, d_qkv, d_hm, d_comm, d_s] if cfg.gru else [d_ah, d_qkv, d_hm, d_comm, d_s]
    if x2 is not None:
        scratch.append(d_u)
    keeps = _step_keeps(keep, t_len, b)
    w_hq_t, w_c_t, w_o_t = w_hq.transpose(1, 2), w_c.transpose(1, 2), w_o.transpose(1, 2)
    # per-step views, made in bulk; [groups, n, ...] views where selection and attention stay within a group
    d_outs = d_out.reshape(t_len, b, nu, hs).transpose(1, 2).unbind(0)
    us, kqs, mfs = u.transpose(1, 2).unbind(0), kq.unsqueeze(2).unbind(0), mf.unbind(0)
    pdiffs = pdiff.unbind(0)
    d_ahs, d_gis, d_ss = d_ah.unbind(1), d_gi.unbind(1), d_s.unbind(0)
    d_sgs = d_s.view(t_len, gr, n, b, 1).unbind(0)
    dghs, dqs = d_ah[..., :g].unbind(1), d_ah[..., g:].view(gr, n, t_len, b, dk).unbind(2)
    d_comms = d_comm.view(nu, t_len, b, hs).unbind(1)
    d_qkvs = d_qkv.unbind(1)
    d_qkv_heads = d_qkv.view(gr, n, t_len, b, nh, c_h).permute(2, 0, 3, 4, 1, 5).unbind(0)
    # bmm into a strided slice takes a slow per-matrix path: each part has its own buffer, joined by one cat a step
    d_hq, d_hk, d_hv = take((gr * b, nh * n, dq), kq), take((gr * b, nh * n, dq), kq), take((gr * b, nh * n, dv), kq)
    scratch += [d_hq, d_hk, d_hv]
    d_hm5 = d_hm.view(gr, b, nh, n, c_h)
    hm = sv.hm
    hqs, hks, hvs = hm[..., :dq].unbind(0), hm[..., dq : 2 * dq].unbind(0), hm[..., 2 * dq :].transpose(2, 3).unbind(0)
    pcs = sv.pc
    tc = sv.tc
    one = torch.ones((), dtype=tc.dtype, device=tc.device)
    dtc = torch.addcmul(one, tc, tc, value=-1.0, out=take(tc.shape, kq))  # 1 - tanh^2
    scratch.append(dtc)
    dtcs = dtc.unbind(0)
    dh = d_ht.reshape(b, nu, hs).transpose(0, 1)
    dc = d_ct.reshape(b, nu, hs).transpose(0, 1)
    for t in range(t_len - 1, -1, -1):
        m_f = mfs[t]
        dh = dh + d_outs[t]
        dhm = dh * m_f
        d_cm = torch.mul(dhm, dtcs[t], out=d_comms[t])  # through the tanh of the communication output
        dh_old = dh - dhm
        # communication attention: one block-diagonal [heads * n, heads * n] attention per (group, batch entry)
        pc = pcs[t]
        d_o = torch.bmm(d_cm, w_o_t).view(gr, n, b, nh, dv).permute(0, 2, 3, 1, 4).reshape(gr * b, nh * n, dv)
        torch.bmm(pc.transpose(1, 2), d_o, out=d_hv)
        d_pc = torch.bmm(d_o, hvs[t]).mul_(pc)
        d_sc = torch.addcmul(d_pc, pc, d_pc.sum(2, keepdim=True), value=-1.0)
        torch.bmm(d_sc, hks[t], out=d_hq)
        torch.bmm(d_sc.transpose(1, 2), hqs[t], out=d_hk)
        torch.cat((d_hq, d_hk, d_hv), 2, out=d_hm)
        d_qkv_heads[t].copy_(d_hm5)
        d_h = torch.addcmul(dhm, torch.bmm(d_qkvs[t], w_c_t), m_f)  # inactive units get nothing
        dgh = dghs[t]
        if cfg.gru:
            f_n_t, f_z_t, f_r_t, r_t, zg_t = steps[t]
            dgi = d_gis[t]
            dn = torch.mul(d_h, f_n_t, out=dgi[..., 2 * hs :])
            torch.mul(dn, f_r_t, out=dgi[..., :hs])
            torch.mul(d_h, f_z_t, out=dgi[..., hs : 2 * hs])
            dgh[..., : 2 * hs] = dgi[..., : 2 * hs]
            torch.mul(dn, r_t, out=dgh[..., 2 * hs :])
            dh_old.addcmul_(d_h, zg_t)
        else:
            a_o_t, f_t, fac_ifg_t, fac_o_t = steps[t]
            dcm = dc * m_f
            dct = torch.addcmul(dcm, d_h, a_o_t, value=4.0)
            dc = (dc - dcm).addcmul_(dct, f_t)
            torch.mul(dct.unsqueeze(2), fac_ifg_t, out=dgh[..., : 3 * hs].view(nu, b, 3, hs))
            torch.mul(d_h, fac_o_t, out=dgh[..., 3 * hs :])
            dgi = dgh
        torch.mul(torch.linalg.vecdot(dgi, us[t]), pdiffs[t], out=d_ss[t])
        torch.mul(d_sgs[t], kqs[t], out=dqs[t])
        dh = torch.baddbmm(dh_old, d_ahs[t], w_hq_t)
        if sv.resets[t]:
            kt = keeps[t]
            dh = dh * kt
            dc = dc * kt
    # weight gradients, once over all T * B rows
    torch.mul(d_gi.transpose(0, 1), pd, out=d_u.transpose(1, 2))
    d_u2 = d_u.view(rows, nu * g)
    d_x2: Tensor | None = d_u
    d_w_in = None
    if x2 is not None:
        assert w_in is not None
        d_x2 = torch.mm(d_u2, w_in.t()) if need_x2 else None
        d_w_in = torch.mm(x2.t(), d_u2)
    d_w_hq = torch.bmm(hold.view(rows, nu, hs).transpose(0, 1).transpose(1, 2), d_ah.view(nu, rows, g + dk))
    d_b_hq = d_ah.sum((1, 2)).unsqueeze(1)
    d_w_c = torch.bmm(sv.z.transpose(1, 2), d_qkv.view(nu, rows, -1))
    d_w_o = torch.bmm(sv.oc.view(nu, rows, nv).transpose(1, 2), d_comm)
    d_kq = (d_s.view(t_len, gr, n, b, 1) * ah[..., g:].view(t_len, gr, n, b, dk)).sum(2)
    d_b_in = d_gi[..., 2 * hs :].sum((1, 2)).unsqueeze(1) if cfg.gru else None
    d_h0 = dh.transpose(0, 1).reshape(b, nu * hs)
    d_c0 = torch.zeros_like(d_h0) if cfg.gru else dc.transpose(0, 1).reshape(b, nu * hs)
    POOL.give(scratch)
    return d_x2, d_kq, d_h0, d_c0, Weights(d_w_in, d_w_hq, d_b_hq, d_b_in, d_w_c, d_w_o)


def fold_value(cfg: CellConfig, rows: int, d_in: int, d_v: int) -> bool:
    """Whether to fold the value projection into the cell input weights: fewer flops to multiply the inputs by
    ``W_v W_ih`` than by ``W_v`` and then ``W_ih``.

    :param cfg: one RIM's sizes.
    :param rows: ``T * B``.
    :param d_in: input features.
    :param d_v: input value size.
    :return: true to fold.
    """
    ng = cfg.n * cfg.g
    return d_in * d_v * ng + rows * d_in * ng < rows * d_v * (d_in + ng)


def derive_weights(cfg: CellConfig, fuse: bool, params: Params) -> Weights:
    """The kernel's weights (:class:`Weights`) from one RIM's parameters (no autograd).

    :param cfg: static sizes.
    :param fuse: fold the value projection into the cell input weights (the kernel then reads raw input rows).
    :param params: the RIM's parameters.
    :return: the weights; tanh-gate columns doubled, communication query weights times the score scale.
    """
    n, hs, g = cfg.n, cfg.hs, cfg.g
    w_in = params.weight_ih.transpose(0, 1).reshape(-1, n * g)  # [dv, N * G]
    if fuse:
        w_in = params.value_weight @ w_in
    w_in.view(-1, n, g)[..., 2 * hs : 3 * hs] *= 2.0
    w_hq = torch.cat((params.weight_hh, params.query_weight), -1)
    w_hq[..., 2 * hs : 3 * hs] *= 2.0
    bias, b_ih = params.bias, params.bias_ih
    if b_ih is not None:
        bias = torch.cat((bias[:, : 2 * hs] + b_ih[:, : 2 * hs], bias[:, 2 * hs :]), 1)
    b_hq = torch.cat((bias, params.query_bias), -1).unsqueeze(1)
    b_hq[..., 2 * hs : 3 * hs] *= 2.0
    b_in = (b_ih[:, 2 * hs :] * 2.0).unsqueeze(1) if b_ih is not None else None
    # communication columns by head: (head, q | k | v), so one copy gives every head's [N, q | k | v] matrix
    heads = [w.view(n, hs, cfg.nh, -1) for w in (params.comm_query, params.comm_key, params.comm_value)]
    w_c = torch.cat((heads[0] * cfg.cscale, heads[1], heads[2]), -1).view(n, hs, -1)
    return Weights(w_in, w_hq, b_hq, b_in, w_c, params.comm_out)


def derive_weights_backward(cfg: CellConfig, fuse: bool, params: Params, grads: Weights) -> list[Tensor | None]:
    """Map gradients w.r.t. :func:`derive_weights`'s outputs back to the parameters.

    :return: one gradient per field of :class:`Params`, in its order (``None`` for ``value_weight`` unless ``fuse``,
        and for ``bias_ih`` of LSTM cells).
    """
    n, hs, g = cfg.n, cfg.hs, cfg.g
    nq = cfg.nh * cfg.dq
    d_w_in, d_w_hq, d_b_hq = grads.w_in, grads.w_hq, grads.b_hq
    assert d_w_in is not None
    d_w_in.view(-1, n, g)[..., 2 * hs : 3 * hs] *= 2.0
    d_w_v = None
    if fuse:
        d_w_v = d_w_in @ params.weight_ih.transpose(0, 1).reshape(-1, n * g).t()
        d_w_in = params.value_weight.t() @ d_w_in
    d_w_ih = d_w_in.view(-1, n, g).transpose(0, 1)
    d_w_hq[..., 2 * hs : 3 * hs] *= 2.0
    d_b = d_b_hq.squeeze(1)
    d_b[:, 2 * hs : 3 * hs] *= 2.0
    d_bias, d_b_q = d_b[:, :g], d_b[:, g:]
    d_b_ih = None
    if params.bias_ih is not None and grads.b_in is not None:
        d_b_ih = torch.cat((d_bias[:, : 2 * hs], grads.b_in.squeeze(1) * 2.0), 1)
    d_heads = grads.w_c.view(n, hs, cfg.nh, -1)
    dq = cfg.dq
    d_c_q = d_heads[..., :dq].reshape(n, hs, nq) * cfg.cscale
    d_c_k = d_heads[..., dq : 2 * dq].reshape(n, hs, nq)
    d_c_v = d_heads[..., 2 * dq :].reshape(n, hs, -1)
    return [d_w_ih, d_w_v, d_w_hq[..., :g], d_w_hq[..., g:], d_bias, d_b_q, d_b_ih, d_c_q, d_c_k, d_c_v, grads.w_o]


def cat_groups(parts: list[Weights]) -> Weights:
    """Join the :func:`derive_weights` outputs of several RIMs of the same sizes into one group-major set.

    :param parts: one :class:`Weights` per RIM.
    :return: the same over all units (``w_in`` joined along its columns, the rest along units).
    """
    if len(parts) == 1:
        return parts[0]
    b_in = None if parts[0].b_in is None else torch.cat([p.b_in for p in parts if p.b_in is not None])
    return Weights(
        w_in=torch.cat([p.w_in for p in parts if p.w_in is not None], 1),
        w_hq=torch.cat([p.w_hq for p in parts]),
        b_hq=torch.cat([p.b_hq for p in parts]),
        b_in=b_in,
        w_c=torch.cat([p.w_c for p in parts]),
        w_o=torch.cat([p.w_o for p in parts]),
    )


class RIMSequence(torch.autograd.Function):
    """The whole sequence, weight preparation included, as one autograd node with a hand-written backward.

    ``apply(cfg, fuse, keep, drop, x2, kq, h0, c0, *params)``: ``x2`` are the input rows ``[T * B, D]`` when
    ``fuse`` (the value projection is folded into the cell weights) else their values ``[T * B, dv]``; ``kq`` the
    scaled keys ``[T, groups, B, dk]``; ``h0``/``c0`` packed ``[B, U * H]`` with ``U = groups * N`` units;
    ``params`` each group's :class:`Params`, flattened in order (``fuse`` must be true for several groups, whose
    value projections differ). Outputs: the sequence output ``[T, B, U * H]``, final ``h`` and ``c`` ``[B, U * H]``
    and the active masks ``[T, U, B]``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        cfg: CellConfig,
        fuse: bool,
        keep: Tensor | None,
        drop: Tensor | None,
        x2: Tensor,
        kq: Tensor,
        h0: Tensor,
        c0: Tensor,
        *params: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        t_len, b, nu = kq.shape[0], kq.shape[2], cfg.groups * cfg.n
        groups = [Params(*params[i : i + N_PARAMS]) for i in range(0, len(params), N_PARAMS)]  # type: ignore[arg-type]
        weights = cat_groups([derive_weights(cfg, fuse, p) for p in groups])
        h0_, c0_ = h0.view(b, nu, cfg.hs), c0.view(b, nu, cfg.hs)
        sv = forward_loop(cfg, x2, kq, keep, drop, h0_, c0_, weights)
        ctx.cfg, ctx.fuse, ctx.sv, ctx.keep, ctx.drop, ctx.groups = cfg, fuse, sv, keep, drop, groups
        ctx.save_for_backward(x2, weights.w_in, kq, h0, weights.w_hq, weights.w_c, weights.w_o)
        ctx.mark_non_differentiable(sv.m)
        # the saved scratch goes back to the pool once the graph (and this context) is gone
        weakref.finalize(ctx, POOL.give, sv.pooled).atexit = False
        out = sv.hout.view(t_len, b, nu * cfg.hs)
        return out, out[-1].clone(), sv.cseq[-1].view(b, -1).clone(), sv.m

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_out: Tensor, d_ht: Tensor, d_ct: Tensor, _d_m: Tensor) -> tuple[Tensor | None, ...]:
        x2, w_in, kq, h0, w_hq, w_c, w_o = ctx.saved_tensors
        sv, need_x2 = ctx.sv, ctx.needs_input_grad[4]
        d_x2, d_kq, d_h0, d_c0, d_w = backward_loop(
            ctx.cfg, sv, x2, w_in, kq, ctx.keep, ctx.drop, h0, w_hq, w_c, w_o, d_out, d_ht, d_ct, need_x2
        )
        n, g = ctx.cfg.n, ctx.cfg.g
        d_params: list[Tensor | None] = []
        for i, params in enumerate(ctx.groups):
            units, cols = slice(i * n, (i + 1) * n), slice(i * n * g, (i + 1) * n * g)
            grads = Weights(
                w_in=None if d_w.w_in is None else d_w.w_in[:, cols],
                w_hq=d_w.w_hq[units],
                b_hq=d_w.b_hq[units],
                b_in=None if d_w.b_in is None else d_w.b_in[units],
                w_c=d_w.w_c[units],
                w_o=d_w.w_o[units],
            )
            d_params += derive_weights_backward(ctx.cfg, ctx.fuse, params, grads)
        return (None, None, None, None, d_x2, d_kq, d_h0, d_c0, *d_params)
