"""One RIM step in plain autograd torch, parameters read by name: the specification the fast kernel must meet.

This is the RIM of Goyal et al. (arXiv 1909.10893), written to be checked against the paper line by line, with
our choices marked (see :mod:`metarim_sb3.cores.rim.module`). It runs when a
:class:`~metarim_sb3.cores.rim.module.RIM` is built with ``fused=False`` (slower; supports higher-order gradients),
and the tests hold the fused kernel
(:mod:`metarim_sb3.cores.rim._fused`) equal to it, values and gradients.

Shapes: ``N`` units of state size ``H``, batch ``B``; per-unit tensors are unit-first, ``[N, B, ...]``; per-unit
weights are ``[N, in, out]`` (unit ``j`` computes ``x @ W[j]``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from metarim_sb3.cores.rim.module import RIM

__all__ = ["rim_sequence", "rim_step"]


def _per_unit(x: Tensor, weight: Tensor) -> Tensor:
    """Each unit's own linear map: ``x [N, B, in]``, ``weight [N, in, out]`` -> ``[N, B, out]``."""
    return torch.bmm(x, weight)


def _heads(x: Tensor, n_heads: int) -> Tensor:
    """Split the last dimension into heads: ``[..., n_heads * d]`` -> ``[..., n_heads, d]``."""
    return x.view(*x.shape[:-1], n_heads, x.shape[-1] // n_heads)


def rim_step(rim: RIM, x: Tensor, h: Tensor, c: Tensor, drop: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """One time step of the RIM.

    :param rim: the module whose parameters are used (read by name).
    :param x: the input row ``x_t`` ``[B, input_size]``.
    :param h: hidden states ``[N, B, H]`` (after any episode reset).
    :param c: cell states ``[N, B, H]`` (zeros for GRU cells).
    :param drop: dropout factors on the input-row attention ``[N, B]`` (zero or ``1 / (1 - rate)``), or ``None``.
    :return: new ``h`` and ``c`` ``[N, B, H]`` and the active mask ``[N, B]``.
    """
    n_units, hs = rim.n_units, rim.unit_size

    # 1. Input attention over two rows, the null row (zeros) and x_t. Keys and values have no bias, so the null
    #    row's key and value are zero and its score is 0. Each unit queries with its own projection of h_j.
    key = x @ rim.key_weight  # [B, dk]
    value = x @ rim.value_weight  # [B, dv]
    query = _per_unit(h, rim.query_weight) + rim.query_bias.unsqueeze(1)  # [N, B, dk]
    q_heads, k_heads = _heads(query, rim.input_heads), _heads(key, rim.input_heads)
    head_scores = (q_heads * k_heads).sum(-1) / math.sqrt(q_heads.shape[-1])  # [N, B, heads]
    score = head_scores.mean(-1)  # averaged over heads, [N, B]
    attention = torch.softmax(torch.stack((torch.zeros_like(score), score), -1), -1)  # over (null, x_t)
    p_input = attention[..., 1]  # [N, B]
    if drop is not None:
        p_input = p_input * drop
    attended = p_input.unsqueeze(-1) * value  # A_j = p_j v_t (the null row's value is zero), [N, B, dv]

    # 2. Selection: the k units that put the least attention on the null row, i.e. the largest scores (ranked by
    #    the score, the log-odds, so a saturated softmax cannot tie). Not differentiated through.
    active = torch.zeros_like(score, dtype=torch.bool)
    active.scatter_(0, score.detach().topk(rim.k, 0, sorted=False).indices, True)
    active3 = active.unsqueeze(-1)

    # 3. Independent dynamics: each unit's own cell (torch's LSTM / GRU gate order) reads its attended input.
    if rim.cell == "lstm":
        gates = _per_unit(attended, rim.weight_ih) + _per_unit(h, rim.weight_hh) + rim.bias.unsqueeze(1)
        in_gate, forget_gate, candidate, out_gate = gates.split(hs, -1)
        c_new = torch.sigmoid(forget_gate) * c + torch.sigmoid(in_gate) * torch.tanh(candidate)
        h_new = torch.sigmoid(out_gate) * torch.tanh(c_new)
    else:
        gi = _per_unit(attended, rim.weight_ih) + rim.bias_ih.unsqueeze(1)
        gh = _per_unit(h, rim.weight_hh) + rim.bias_hh.unsqueeze(1)
        reset = torch.sigmoid(gi[..., :hs] + gh[..., :hs])
        update = torch.sigmoid(gi[..., hs : 2 * hs] + gh[..., hs : 2 * hs])
        candidate = torch.tanh(gi[..., 2 * hs :] + reset * gh[..., 2 * hs :])
        h_new, c_new = (1.0 - update) * candidate + update * h, c

    # 4. Communication: multi-head attention among units over the post-update states (h~ for active units, the
    #    kept h for inactive ones, read as constants); each unit projects with its own weights. Only active units
    #    add tanh of the result (residually), so only they receive gradient through this path.
    read = torch.where(active3, h_new, h.detach())  # [N, B, H]
    heads = rim.comm_heads
    q = _heads(_per_unit(read, rim.comm_query), heads).permute(1, 2, 0, 3)  # [B, heads, N, dq]
    k = _heads(_per_unit(read, rim.comm_key), heads).permute(1, 2, 0, 3)
    v = _heads(_per_unit(read, rim.comm_value), heads).permute(1, 2, 0, 3)  # [B, heads, N, dv]
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)  # [B, heads, N read, N written]
    message = (weights @ v).permute(2, 0, 1, 3).reshape(n_units, x.shape[0], -1)  # [N, B, heads * dv]
    h_new = h_new + torch.tanh(_per_unit(message, rim.comm_out))  # bounded: see the RIM's "choices that are ours"

    # 5. Sparse update: inactive units keep h and c exactly.
    return torch.where(active3, h_new, h), torch.where(active3, c_new, c), active


def rim_sequence(
    rim: RIM, x: Tensor, h0: Tensor, c0: Tensor, keep: Tensor | None = None, drop: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`rim_step` over a sequence, with episode resets.

    :param rim: the module whose parameters are used.
    :param x: inputs ``(T, B, input_size)``.
    :param h0: initial hidden states, packed ``[B, N * H]`` (unit ``j`` at columns ``j*H:(j+1)*H``).
    :param c0: initial cell states, packed likewise (ignored for GRU cells, whose ``c`` is zeros).
    :param keep: ``[T, B]``, 0 where an episode starts at that step (the state is zeroed first), else 1; or ``None``.
    :param drop: ``[T, N, B]`` dropout factors on the input-row attention, or ``None``.
    :return: outputs ``[T, B, N * H]``, final ``h`` and ``c`` ``[B, N * H]`` and the active masks ``[T, N, B]``.
    """
    t_len, b = x.shape[0], x.shape[1]
    n_units, hs = rim.n_units, rim.unit_size
    h = h0.view(b, n_units, hs).transpose(0, 1)
    c = torch.zeros_like(h) if rim.cell == "gru" else c0.view(b, n_units, hs).transpose(0, 1)
    outs, masks = [], []
    for t in range(t_len):
        if keep is not None:
            h, c = h * keep[t].view(1, b, 1), c * keep[t].view(1, b, 1)
        h, c, active = rim_step(rim, x[t], h, c, None if drop is None else drop[t])
        outs.append(h)
        masks.append(active)
    out = torch.stack(outs).transpose(1, 2).reshape(t_len, b, n_units * hs)
    return out, out[-1], c.transpose(0, 1).reshape(b, n_units * hs), torch.stack(masks)
