"""Time loops of the RIM cell: a fused forward/backward pair and an eager autograd reference.

Inputs are pre-projected (see :class:`metarim_sb3.rim.RIM`). Per step ``t`` the loops read

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
  selection and communication kept within each RIM;
* the backward first forms every per-step derivative factor for all steps at once, then walks the steps in
  reverse with only the recurrent ops, and finally forms each weight gradient as one matmul over all
  ``T * B`` rows (as fused LSTM kernels do);
* large scratch tensors come from a small pool (:class:`_BufferPool`) and go back to it when the backward is done
  (backward scratch) or when the autograd graph is freed (tensors saved by the forward).

:func:`rim_sequence_eager` is the plain formulation (``tanh``, unscaled weights) in differentiable torch ops; it
serves higher-order gradients and is the reference the tests compare the fast path with.
"""

from __future__ import annotations

import math
import threading
import weakref
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


class _BufferPool:
    """Reuse of large CPU scratch tensors between calls.

    A fresh multi-megabyte CPU tensor is returned to the OS when freed and page-faults again on its next first
    touch, which costs as much as the arithmetic here. Buffers are flat; a request takes the smallest free
    buffer that holds it without wasting more than half. Tensors handed back must have no other users.

    :param max_bytes: cap on the bytes kept.
    """

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self._free: list[Tensor] = []
        self._bytes = 0
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device."""
        numel = math.prod(shape)
        if like.device.type != "cpu" or numel < 16384:
            return torch.empty(shape, dtype=like.dtype, device=like.device)
        with self._lock:
            fits = [
                (b.numel(), i)
                for i, b in enumerate(self._free)
                if b.dtype == like.dtype and numel <= b.numel() <= 2 * numel
            ]
            if fits:
                buf = self._free.pop(min(fits)[1])
                self._bytes -= buf.numel() * buf.element_size()
                return buf[:numel].view(shape)
        return torch.empty(numel, dtype=like.dtype).view(shape)

    def give(self, tensors: list[Tensor]) -> None:
        """Return tensors obtained from :meth:`take` (views of them are fine)."""
        with self._lock:
            held = {b.data_ptr() for b in self._free}
            for t in tensors:
                base = t if t._base is None else t._base
                if base.device.type != "cpu" or base.dim() != 1 or base.numel() < 16384 or base.data_ptr() in held:
                    continue
                held.add(base.data_ptr())
                self._free.append(base)
                self._bytes += base.numel() * base.element_size()
            while self._bytes > self._max_bytes:
                old = self._free.pop(0)
                self._bytes -= old.numel() * old.element_size()


_POOL = _BufferPool()


#: ``(w_in, w_hq, b_hq, b_in, w_c, w_o)``: the kernel's weights (see :func:`derive_weights`).
Weights = tuple[Tensor, Tensor, Tensor, "Tensor | None", Tensor, Tensor]


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
    x2: Tensor,
    w_in: Tensor,
    kq: Tensor,
    keep: Tensor | None,
    drop: Tensor | None,
    h0: Tensor,
    c0: Tensor,
    weights: tuple[Tensor, Tensor, Tensor | None, Tensor, Tensor],
) -> dict[str, Any]:
    """Run the cell over ``T`` steps without autograd recording (fast formulation).

    ``U = cfg.groups * cfg.n`` units in all (one group per independent RIM, group-major).

    :param cfg: static sizes.
    :param x2: input rows ``[T * B, D']`` (raw inputs, or their values when ``w_in`` holds only the cell weights).
    :param w_in: ``[D', U * G]``; ``x2 @ w_in`` gives every unit's cell input (tanh-gate columns doubled).
    :param kq: scaled input keys ``[T, groups, B, dk]``.
    :param keep: ``[T, B]`` 0/1 factors (0 where an episode starts), or ``None`` when no step resets.
    :param drop: ``[T, U, B]`` dropout factors on the input-row attention, or ``None``.
    :param h0: initial hidden states ``[B, U, H]``.
    :param c0: initial cell states ``[B, U, H]`` (ignored for GRU cells, whose ``c`` is zeros).
    :param weights: ``(w_hq, b_hq, b_in, w_c, w_o)`` as produced by :func:`derive_weights` (and :func:`cat_groups`).
    :return: a dict with the outputs ``hout [T, B, U, H]``, cell states ``cseq [T + 1, B, U, H]``, the active
        masks ``m [T, U, B]``, the tensors the backward needs and ``pooled``, the scratch to give back.
    """
    w_hq, b_hq, b_in, w_c, w_o = weights
    n, gr, hs, g, nh, dq, dv = cfg.n, cfg.groups, cfg.hs, cfg.g, cfg.nh, cfg.dq, cfg.dv
    t_len, b = kq.shape[0], kq.shape[2]
    nu, nq, nv = gr * n, nh * dq, nh * dv
    take = _POOL.take
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
    resets = keep.eq(0).any(1).tolist() if keep is not None else [False] * t_len
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
            kt = keep[t].view(1, b, 1)  # type: ignore[index]
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
    return dict(
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
        pooled=[u, cseq, ah_all, s2_all, p_all, z_all, qkv_all, hm_all, oc_all, tc_all],
    )


def rollout_step(
    cfg: CellConfig,
    x: Tensor,
    w_in: Tensor,
    kq: Tensor,
    keep: Tensor | None,
    drop: Tensor | None,
    h0: Tensor,
    c0: Tensor,
    weights: tuple[Tensor, Tensor, Tensor | None, Tensor, Tensor],
) -> tuple[Tensor, Tensor, Tensor]:
    """One step without autograd and without saving anything: :func:`forward_loop` at ``T = 1`` with fewer ops.

    :param cfg: static sizes.
    :param x: input rows ``[B, D]``; ``x @ w_in`` gives every unit's cell input.
    :param w_in: ``[D, U * G]`` (value projection folded in, tanh-gate columns doubled; ``U = groups * n``).
    :param kq: scaled keys ``[groups, B, dk]``.
    :param keep: ``[B]`` 0/1 factors (0 where an episode starts), or ``None``.
    :param drop: ``[U, B]`` dropout factors, or ``None``.
    :param h0: hidden states ``[B, U, H]``.
    :param c0: cell states ``[B, U, H]`` (ignored for GRU cells).
    :param weights: ``(w_hq, b_hq, b_in, w_c, w_o)`` from :func:`derive_weights` (and :func:`cat_groups`).
    :return: new ``h`` and ``c`` ``[B, U, H]`` and the active mask ``[U, B]``.
    """
    w_hq, b_hq, b_in, w_c, w_o = weights
    n, gr, hs, g, nh, dq, dv = cfg.n, cfg.groups, cfg.hs, cfg.g, cfg.nh, cfg.dq, cfg.dv
    b, nu = x.shape[0], gr * n
    u = torch.mm(x, w_in).view(b, nu, g).transpose(0, 1)
    h = h0.transpose(0, 1)
    c = torch.zeros_like(h) if cfg.gru else c0.transpose(0, 1)
    if keep is not None:
        h, c = h * keep.view(1, b, 1), c * keep.view(1, b, 1)
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


def backward_loop(
    cfg: CellConfig,
    sv: dict[str, Any],
    x2: Tensor,
    w_in: Tensor,
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
) -> tuple[Tensor | None, ...]:
    """Reverse pass of :func:`forward_loop` (``need_x2``: whether the input rows need a gradient).

    :return: gradients for ``x2, w_in, kq, h0, c0, w_hq, b_hq, b_in, w_c, w_o``.
    """
    n, gr, hs, g, dk, nh, dq, dv = cfg.n, cfg.groups, cfg.hs, cfg.g, cfg.dk, cfg.nh, cfg.dq, cfg.dv
    t_len, b = kq.shape[0], kq.shape[2]
    rows, nv, nu = t_len * b, nh * dv, gr * n
    take = _POOL.take
    # states before each step (after the episode resets)
    hold = torch.cat((h0.view(1, b, nu, hs), sv["hout"][:-1]), out=take((t_len, b, nu, hs), kq))
    if keep is not None and any(sv["resets"]):
        hold.mul_(keep.view(t_len, b, 1, 1))
    mf = sv["m"].to(kq.dtype).unsqueeze(-1)
    p, ah, s2, u = sv["p"], sv["ah"], sv["s2"], sv["u"]
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
        torch.mul(sv["cseq"][:-1].transpose(1, 2), dact[..., hs : 2 * hs], out=fac[..., hs : 2 * hs])
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
    d_u = take((t_len, b, nu, g), kq)
    scratch += [d_ah, d_gi, d_qkv, d_hm, d_comm, d_s, d_u] if cfg.gru else [d_ah, d_qkv, d_hm, d_comm, d_s, d_u]
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
    d_hq, d_hk, d_hv = d_hm[..., :dq], d_hm[..., dq : 2 * dq], d_hm[..., 2 * dq :]
    d_hm5 = d_hm.view(gr, b, nh, n, c_h)
    hm = sv["hm"]
    hqs, hks, hvs = hm[..., :dq].unbind(0), hm[..., dq : 2 * dq].unbind(0), hm[..., 2 * dq :].transpose(2, 3).unbind(0)
    pcs = sv["pc"]
    tc = sv["tc"]
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
        if sv["resets"][t]:
            kt = keep[t].view(1, b, 1)  # type: ignore[index]
            dh = dh * kt
            dc = dc * kt
    # weight gradients, once over all T * B rows
    torch.mul(d_gi.transpose(0, 1), pd, out=d_u.transpose(1, 2))
    d_u2 = d_u.view(rows, nu * g)
    d_x2 = torch.mm(d_u2, w_in.t()) if need_x2 else None
    d_w_in = torch.mm(x2.t(), d_u2)
    d_w_hq = torch.bmm(hold.view(rows, nu, hs).transpose(0, 1).transpose(1, 2), d_ah.view(nu, rows, g + dk))
    d_b_hq = d_ah.sum((1, 2)).unsqueeze(1)
    d_w_c = torch.bmm(sv["z"].transpose(1, 2), d_qkv.view(nu, rows, -1))
    d_w_o = torch.bmm(sv["oc"].view(nu, rows, nv).transpose(1, 2), d_comm)
    d_kq = (d_s.view(t_len, gr, n, b, 1) * ah[..., g:].view(t_len, gr, n, b, dk)).sum(2)
    d_b_in = d_gi[..., 2 * hs :].sum((1, 2)).unsqueeze(1) if cfg.gru else None
    d_h0 = dh.transpose(0, 1).reshape(b, nu * hs)
    d_c0 = torch.zeros_like(d_h0) if cfg.gru else dc.transpose(0, 1).reshape(b, nu * hs)
    _POOL.give(scratch)
    return d_x2, d_w_in, d_kq, d_h0, d_c0, d_w_hq, d_b_hq, d_b_in, d_w_c, d_w_o


def derive_weights(cfg: CellConfig, fuse: bool, params: tuple[Tensor | None, ...]) -> Weights:
    """Weights in the fast kernel's formulation, from the module's parameters (no autograd).

    :param cfg: static sizes.
    :param fuse: fold the value projection into the cell input weights (the kernel then reads raw input rows).
    :param params: ``(weight_ih, value_weight, weight_hh, query_weight, bias, query_bias, bias_ih, comm_query,
        comm_key, comm_value, comm_out)``; ``bias`` is the LSTM bias or the GRU ``bias_hh``, ``bias_ih`` is ``None``
        for LSTM cells.
    :return: ``(w_in, w_hq, b_hq, b_in, w_c, w_o)``: input-to-cell weights ``[D', N * G]``; recurrent and query
        weights ``[N, H, G + dk]`` with bias ``[N, 1, G + dk]``; the GRU candidate input bias ``[N, 1, H]``;
        communication query/key/value weights ``[N, H, ...]`` (queries times the score scale); output weights.
        Tanh-gate columns are doubled (``tanh(x) = 2 sigmoid(2x) - 1``); doubling is exact.
    """
    w_ih, w_v, w_hh, w_q, bias, b_q, b_ih, c_q, c_k, c_v, c_o = params
    n, hs, g = cfg.n, cfg.hs, cfg.g
    w_in = w_ih.transpose(0, 1).reshape(-1, n * g)  # type: ignore[union-attr]  # [dv, N * G]
    if fuse:
        w_in = w_v @ w_in  # type: ignore[operator]
    w_in.view(-1, n, g)[..., 2 * hs : 3 * hs] *= 2.0
    w_hq = torch.cat((w_hh, w_q), -1)  # type: ignore[arg-type]
    w_hq[..., 2 * hs : 3 * hs] *= 2.0
    if b_ih is not None:
        bias = torch.cat((bias[:, : 2 * hs] + b_ih[:, : 2 * hs], bias[:, 2 * hs :]), 1)  # type: ignore[index]
    b_hq = torch.cat((bias, b_q), -1).unsqueeze(1)  # type: ignore[arg-type]
    b_hq[..., 2 * hs : 3 * hs] *= 2.0
    b_in = (b_ih[:, 2 * hs :] * 2.0).unsqueeze(1) if b_ih is not None else None
    # communication columns by head: (head, q | k | v), so one copy gives every head's [N, q | k | v] matrix
    heads = [w.view(n, hs, cfg.nh, -1) for w in (c_q, c_k, c_v)]  # type: ignore[union-attr]
    w_c = torch.cat((heads[0] * cfg.cscale, heads[1], heads[2]), -1).view(n, hs, -1)
    return w_in, w_hq, b_hq, b_in, w_c, c_o  # type: ignore[return-value]


def derive_weights_backward(
    cfg: CellConfig, fuse: bool, params: tuple[Tensor | None, ...], grads: tuple[Tensor | None, ...]
) -> tuple[Tensor | None, ...]:
    """Map gradients w.r.t. :func:`derive_weights`'s outputs back to ``params`` (same order)."""
    w_ih, w_v, b_ih = params[0], params[1], params[6]
    d_w_in, d_w_hq, d_b_hq, d_b_in, d_w_c, d_w_o = grads
    assert w_ih is not None and w_v is not None and d_w_in is not None and d_w_hq is not None
    assert d_b_hq is not None and d_w_c is not None
    n, hs, g = cfg.n, cfg.hs, cfg.g
    nq = cfg.nh * cfg.dq
    d_w_in.view(-1, n, g)[..., 2 * hs : 3 * hs] *= 2.0
    d_w_v = None
    if fuse:
        d_w_v = d_w_in @ w_ih.transpose(0, 1).reshape(-1, n * g).t()
        d_w_in = w_v.t() @ d_w_in
    d_w_ih = d_w_in.view(-1, n, g).transpose(0, 1)
    d_w_hq[..., 2 * hs : 3 * hs] *= 2.0
    d_b = d_b_hq.squeeze(1)
    d_b[:, 2 * hs : 3 * hs] *= 2.0
    d_bias, d_b_q = d_b[:, :g], d_b[:, g:]
    d_b_ih = None
    if b_ih is not None and d_b_in is not None:
        d_b_ih = torch.cat((d_bias[:, : 2 * hs], d_b_in.squeeze(1) * 2.0), 1)
    d_heads = d_w_c.view(n, hs, cfg.nh, -1)
    dq = cfg.dq
    d_c_q = d_heads[..., :dq].reshape(n, hs, nq) * cfg.cscale
    d_c_k = d_heads[..., dq : 2 * dq].reshape(n, hs, nq)
    d_c_v = d_heads[..., 2 * dq :].reshape(n, hs, -1)
    return (
        d_w_ih,
        d_w_v,
        d_w_hq[..., :g],
        d_w_hq[..., g:],
        d_bias,
        d_b_q,
        d_b_ih,
        d_c_q,
        d_c_k,
        d_c_v,
        d_w_o,
    )


N_PARAMS = 11  #: parameters per RIM in the order of :func:`derive_weights`


def cat_groups(parts: list[Weights]) -> Weights:
    """Join the :func:`derive_weights` outputs of several RIMs of the same sizes into one group-major set.

    :param parts: one ``(w_in, w_hq, b_hq, b_in, w_c, w_o)`` per RIM.
    :return: the same tuple over all units (``w_in`` joined along its columns, the rest along units).
    """
    if len(parts) == 1:
        return parts[0]
    w_in = torch.cat([p[0] for p in parts], 1)
    w_hq, b_hq, w_o = (torch.cat([p[i] for p in parts]) for i in (1, 2, 5))  # type: ignore[misc]
    b_in = None if parts[0][3] is None else torch.cat([p[3] for p in parts if p[3] is not None])
    w_c = torch.cat([p[4] for p in parts])
    return w_in, w_hq, b_hq, b_in, w_c, w_o


class RIMSequence(torch.autograd.Function):
    """The whole sequence, weight preparation included, as one autograd node with a hand-written backward.

    ``apply(cfg, fuse, keep, drop, x2, kq, h0, c0, *params)``: ``x2`` are the input rows ``[T * B, D]`` when
    ``fuse`` (the value projection is folded into the cell weights) else their values ``[T * B, dv]``; ``kq`` the
    scaled keys ``[T, groups, B, dk]``; ``h0``/``c0`` packed ``[B, U * H]`` with ``U = groups * N`` units;
    ``params`` as in :func:`derive_weights`, once per group (``fuse`` must be true for several groups, whose value
    projections differ). Outputs: the sequence output ``[T, B, U * H]``, final ``h`` and ``c`` ``[B, U * H]``
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
        groups = [params[i : i + N_PARAMS] for i in range(0, len(params), N_PARAMS)]
        w_in, *weights = cat_groups([derive_weights(cfg, fuse, p) for p in groups])
        h0_, c0_ = h0.view(b, nu, cfg.hs), c0.view(b, nu, cfg.hs)
        sv = forward_loop(cfg, x2, w_in, kq, keep, drop, h0_, c0_, tuple(weights))  # type: ignore[arg-type]
        ctx.cfg, ctx.fuse, ctx.sv, ctx.keep, ctx.drop = cfg, fuse, sv, keep, drop
        ctx.params = params
        ctx.save_for_backward(x2, w_in, kq, h0, weights[0], weights[3], weights[4])
        ctx.mark_non_differentiable(sv["m"])
        # the saved scratch goes back to the pool once the graph (and this context) is gone
        weakref.finalize(ctx, _POOL.give, sv.pop("pooled")).atexit = False
        out = sv["hout"].view(t_len, b, nu * cfg.hs)
        return out, out[-1].clone(), sv["cseq"][-1].view(b, -1).clone(), sv["m"]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_out: Tensor, d_ht: Tensor, d_ct: Tensor, _d_m: Tensor) -> tuple[Tensor | None, ...]:
        x2, w_in, kq, h0, w_hq, w_c, w_o = ctx.saved_tensors
        d_x2, d_w_in, d_kq, d_h0, d_c0, d_w_hq, d_b_hq, d_b_in, d_w_c, d_w_o = backward_loop(
            ctx.cfg,
            ctx.sv,
            x2,
            w_in,
            kq,
            ctx.keep,
            ctx.drop,
            h0,
            w_hq,
            w_c,
            w_o,
            d_out,
            d_ht,
            d_ct,
            ctx.needs_input_grad[4],
        )
        assert d_w_in is not None and d_w_hq is not None and d_b_hq is not None and d_w_c is not None
        assert d_w_o is not None
        n, g = ctx.cfg.n, ctx.cfg.g
        d_params: list[Tensor | None] = []
        for i in range(ctx.cfg.groups):
            units, cols = slice(i * n, (i + 1) * n), slice(i * n * g, (i + 1) * n * g)
            d_b_in_i = None if d_b_in is None else d_b_in[units]
            grads = (d_w_in[:, cols], d_w_hq[units], d_b_hq[units], d_b_in_i, d_w_c[units], d_w_o[units])
            params = ctx.params[i * N_PARAMS : (i + 1) * N_PARAMS]
            d_params += derive_weights_backward(ctx.cfg, ctx.fuse, params, grads)
        return (None, None, None, None, d_x2, d_kq, d_h0, d_c0, *d_params)


def _comm_eager(cfg: CellConfig, z: Tensor, w_c: Tensor, w_o: Tensor) -> Tensor:
    """Multi-head attention among units (plain formulation): every unit reads every unit's ``z``."""
    n, b = z.shape[0], z.shape[1]
    nq = cfg.nh * cfg.dq
    qkv = torch.bmm(z, w_c)
    qc = qkv[..., :nq].reshape(n, b, cfg.nh, cfg.dq)
    kc = qkv[..., nq : 2 * nq].reshape(n, b, cfg.nh, cfg.dq)
    vc = qkv[..., 2 * nq :].reshape(n, b, cfg.nh, cfg.dv)
    pc = torch.softmax((qc.unsqueeze(1) * kc.unsqueeze(0)).sum(-1) * cfg.cscale, 1)  # [N read, N written, B, nh]
    oc = (pc.unsqueeze(-1) * vc.unsqueeze(0)).sum(1)
    return torch.bmm(oc.reshape(n, b, cfg.nh * cfg.dv), w_o)


def rim_sequence_eager(
    cfg: CellConfig,
    keep: Tensor | None,
    drop: Tensor | None,
    u: Tensor,
    kq: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hq: Tensor,
    b_hq: Tensor,
    b_ih: Tensor | None,
    w_c: Tensor,
    w_o: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Plain formulation in differentiable ops; weights from ``RIM._eager_weights`` (``b_ih`` the GRU input bias)."""
    n, hs, g = cfg.n, cfg.hs, cfg.g
    t_len, b = kq.shape[0], kq.shape[1]
    h = h0.view(b, n, hs).transpose(0, 1)
    c = torch.zeros_like(h) if cfg.gru else c0.view(b, n, hs).transpose(0, 1)
    outs, masks = [], []
    for t in range(t_len):
        if keep is not None:
            kt = keep[t].view(1, b, 1)
            h, c = h * kt, c * kt
        ah = torch.baddbmm(b_hq, h, w_hq)
        s = (ah[..., g:] * kq[t]).sum(-1)
        m3 = _select(s.detach(), cfg.k).unsqueeze(-1)
        p = torch.sigmoid(s)
        pd = (p * drop[t] if drop is not None else p).unsqueeze(-1)
        if cfg.gru:
            gi, gh = b_ih + pd * u[:, t], ah[..., :g]  # type: ignore[operator]
            r = torch.sigmoid(gi[..., :hs] + gh[..., :hs])
            zg = torch.sigmoid(gi[..., hs : 2 * hs] + gh[..., hs : 2 * hs])
            nn_ = torch.tanh(gi[..., 2 * hs :] + r * gh[..., 2 * hs :])
            ht, ct = (1.0 - zg) * nn_ + zg * h, c
        else:
            gates = ah[..., :g] + pd * u[:, t]
            i_, f_ = torch.sigmoid(gates[..., : 2 * hs]).chunk(2, -1)
            o_ = torch.sigmoid(gates[..., 3 * hs :])
            ct = f_ * c + i_ * torch.tanh(gates[..., 2 * hs : 3 * hs])
            ht = o_ * torch.tanh(ct)
        z = torch.where(m3, ht, h.detach())  # the communication path never reaches inactive units
        h = torch.where(m3, ht + torch.tanh(_comm_eager(cfg, z, w_c, w_o)), h)
        c = torch.where(m3, ct, c)
        outs.append(h)
        masks.append(m3.squeeze(-1))
    out = torch.stack(outs).transpose(1, 2).reshape(t_len, b, n * hs)
    return out, out[-1], c.transpose(0, 1).reshape(b, n * hs), torch.stack(masks)
