"""The RIM layer, a drop-in recurrent core, and a runner for several RIMs that share an input.

Goyal, Lamb, Hoffmann, Sodhani, Levine, Bengio, Schölkopf, "Recurrent Independent Mechanisms",
arXiv 1909.10893 (ICLR 2021).

The state is split into ``N`` units of size ``H``, each with its own LSTM (or GRU) cell. At every step ``t``:

1. **Input attention.** The input is a set of two rows, a null row (zeros) and ``x_t``. Keys and values are
   projections shared by all units (no bias, so the null row's key and value are zero); each unit queries with
   its own projection of ``h_j``. Scores are divided by ``sqrt(d_head)`` and averaged over the input heads; a
   softmax over the two rows gives the weight ``p_j`` of the input row and the attended input ``A_j = p_j v_t``.
   Dropout, when enabled, acts on these attention weights.
2. **Selection.** The ``k`` units that put the least attention on the null row are active. The choice is not
   differentiated through.
3. **Independent dynamics.** Each unit updates its own cell from ``A_j``: ``(h~_j, c~_j) = Cell_j(A_j, (h_j, c_j))``.
   All cells run as one batched matmul over units.
4. **Communication.** Multi-head attention among units: each active unit reads the post-update states of all units
   (``h~`` for active units, the kept ``h`` for inactive ones) and adds ``tanh`` of the projected result to ``h~_j``
   (residual). Inactive units neither read nor receive gradient through this path (their states are read as
   constants, as in the authors' implementation), so for ``k < N`` the gradient is that of this blocked graph.
5. **Sparse update.** Inactive units keep ``h`` and ``c`` bit-for-bit; gradients still flow through time for them.
6. The output is every unit's state, concatenated unit-major (unit ``j`` at ``[j*H:(j+1)*H]``).

:mod:`metarim_sb3.cores.rim.reference` states one step of this in plain autograd torch, parameters by name.

Speed (see :mod:`metarim_sb3.cores.rim._fused`): the input projections of the whole sequence are computed once, outside
the time loop (the attended input enters the cell only through ``p_j * (v_t W_ih,j)``, so the value projection folds
into the cell input weights); with gradients, the sequence runs as one :class:`torch.autograd.Function` whose
hand-written backward forms each weight gradient as one matmul over all steps; without gradients a single step
(rollout) takes a lean path. ``fused=False`` runs the reference loop instead (needed only for higher-order
gradients).

Choices that are ours, not the paper's: weights laid out ``[unit, in, out]`` (torch's LSTM/GRU gate order; one
LSTM bias per unit); a per-unit query bias (otherwise all units tie at a zero state); no bias in the key/value and
communication projections (a key bias cancels from the two-row softmax and a value bias is absorbed by the cell
bias); per-unit communication projections; a ``tanh`` on the communication output (with an unbounded residual,
units that keep their states feed them back to each other, and states grew geometrically over long episodes until
they overflowed; with it an LSTM unit's state stays within ``(-2, 2)``); dropout on the input attention only; units
are ranked by the log-odds of their input-row attention (the same order as least null attention, without ties from
a saturated softmax).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from metarim_sb3.cores.protocol import ATTENTION, MODULES
from metarim_sb3.cores.rim._fused import (
    CellConfig,
    Params,
    RIMSequence,
    Weights,
    cat_groups,
    derive_weights,
    fold_value,
    run_no_grad,
)
from metarim_sb3.cores.rim.reference import rim_sequence

__all__ = ["RIM", "run_together"]


def _positive(name: str, value: object, at_most: tuple[str, int] | None = None) -> int:
    """``value`` as an ``int`` if it is a positive integer (numpy integers included, ``bool`` not), else ValueError.

    :param at_most: ``(name, bound)`` of an inclusive upper bound, if any.
    """
    bound = "" if at_most is None else f" in 1..{at_most[0]}={at_most[1]}"
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, bool)
        or not 1 <= int(value) <= (at_most[1] if at_most else int(value))
    ):
        raise ValueError(f"{name} must be a positive integer{bound}, got {value!r}")
    return int(value)


def _fraction(name: str, value: object) -> float:
    """``value`` as a ``float`` if it is a real number in ``[0, 1)`` (not ``bool``, not NaN), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")  # NaN fails the range test
    return float(value)


class RIM(nn.Module):
    """A layer of ``n_units`` recurrent independent mechanisms, ``k`` of them active per step.

    A :class:`~metarim_sb3.cores.protocol.RecurrentCore`: to ``RecurrentPPO`` it looks like a one-layer ``nn.LSTM``
    (``input_size``, ``hidden_size``, ``num_layers``, state ``(h, c)`` each ``(1, B, hidden_size)``), with
    ``hidden_size = n_units * unit_size``. Integer sizes may be numpy integers; ``bool`` is rejected.

    :param input_size: features of each input row.
    :param n_units: number of units ``N``.
    :param unit_size: state size ``H`` of each unit.
    :param k: active units per step, ``1 <= k <= n_units``.
    :param cell: ``"lstm"`` or ``"gru"`` (a GRU carries ``c`` as zeros).
    :param input_key_size: input-attention key/query size (all heads).
    :param input_value_size: input-attention value size; ``None`` means ``4 * unit_size``.
    :param input_heads: input-attention heads; must divide ``input_key_size``.
    :param comm_key_size: communication key/query size (all heads).
    :param comm_value_size: communication value size (all heads).
    :param comm_heads: communication heads; must divide both communication sizes.
    :param dropout: dropout on the input-attention weights in training mode, in ``[0, 1)``.
    :param fused: run the sequence through the hand-written backward (fast, first-order only); ``False`` for the
        plain autograd loop of :mod:`metarim_sb3.cores.rim.reference` (slower; supports higher-order gradients).
    """

    def __init__(
        self,
        input_size: int,
        n_units: int = 6,
        unit_size: int = 32,
        k: int = 4,
        cell: str = "lstm",
        input_key_size: int = 64,
        input_value_size: int | None = None,
        input_heads: int = 1,
        comm_key_size: int = 32,
        comm_value_size: int = 32,
        comm_heads: int = 4,
        dropout: float = 0.0,
        *,
        fused: bool = True,
    ) -> None:
        super().__init__()
        input_size = _positive("input_size", input_size)
        n_units = _positive("n_units", n_units)
        unit_size = _positive("unit_size", unit_size)
        k = _positive("k", k, at_most=("n_units", n_units))
        input_key_size, input_value_size, input_heads, comm_key_size, comm_value_size, comm_heads = (
            _positive(name, value)
            for name, value in (
                ("input_key_size", input_key_size),
                ("input_value_size", 4 * unit_size if input_value_size is None else input_value_size),
                ("input_heads", input_heads),
                ("comm_key_size", comm_key_size),
                ("comm_value_size", comm_value_size),
                ("comm_heads", comm_heads),
            )
        )
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        for size_name, size, heads_name, heads in (
            ("input_key_size", input_key_size, "input_heads", input_heads),
            ("comm_key_size", comm_key_size, "comm_heads", comm_heads),
            ("comm_value_size", comm_value_size, "comm_heads", comm_heads),
        ):
            if size % heads:
                raise ValueError(f"{heads_name}={heads} must divide {size_name}={size}")
        dropout = _fraction("dropout", dropout)

        self.input_size, self.n_units, self.unit_size, self.k, self.cell = input_size, n_units, unit_size, k, cell
        self.hidden_size = n_units * unit_size
        self.num_layers = 1
        self.batch_first = False
        self.dropout = dropout
        self.fused = fused
        self.input_heads, self.comm_heads = input_heads, comm_heads
        self.last_active: Tensor | None = None
        gates = (3 if cell == "gru" else 4) * unit_size
        self._cfg = CellConfig(
            n=n_units,
            hs=unit_size,
            k=k,
            gru=cell == "gru",
            g=gates,
            dk=input_key_size,
            nh=comm_heads,
            dq=comm_key_size // comm_heads,
            dv=comm_value_size // comm_heads,
            cscale=1.0 / math.sqrt(comm_key_size // comm_heads),
        )
        # mean over heads of per-head scores q_h . k_h / sqrt(d_head) == q . k / (heads * sqrt(d_head))
        self._in_scale = 1.0 / (input_heads * math.sqrt(input_key_size // input_heads))

        def param(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape))

        # mechanisms (per-unit recurrent cells), weights laid out [unit, in, out]
        self.weight_ih = param(n_units, input_value_size, gates)
        self.weight_hh = param(n_units, unit_size, gates)
        if cell == "gru":
            self.bias_ih = param(n_units, gates)
            self.bias_hh = param(n_units, gates)
        else:
            self.bias = param(n_units, gates)
        # attention (input attention, then communication)
        self.query_weight = param(n_units, unit_size, input_key_size)
        self.query_bias = param(n_units, input_key_size)
        self.key_weight = param(input_size, input_key_size)
        self.value_weight = param(input_size, input_value_size)
        self.comm_query = param(n_units, unit_size, comm_key_size)
        self.comm_key = param(n_units, unit_size, comm_key_size)
        self.comm_value = param(n_units, unit_size, comm_value_size)
        self.comm_out = param(n_units, comm_value_size, unit_size)
        self._cache: tuple[tuple[object, ...], Weights] | None = None
        self._group_cache: tuple[tuple[int, ...], Weights, list[Weights]] | None = None
        self.reset_parameters()

    @classmethod
    def check_arguments(cls, **kwargs: Any) -> None:
        """Raise the :class:`ValueError` that ``RIM(input_size, **kwargs)`` would raise, without allocating weights.

        The constructor is the one place the arguments are checked; this runs it on the ``meta`` device (no memory,
        no random numbers drawn), for callers that must check before they can build the RIM.

        :param kwargs: keyword arguments of :class:`RIM` other than ``input_size``.
        :raises ValueError: naming the first bad argument and what is allowed.
        """
        with torch.device("meta"):
            cls(1, **kwargs)

    def reset_parameters(self) -> None:
        """Uniform ``±1/sqrt(fan_in)`` everywhere; cells use ``±1/sqrt(unit_size)`` as ``nn.LSTM`` does."""
        cell_bound = 1.0 / math.sqrt(self.unit_size)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith(("weight_", "bias")) or name == "query_bias":
                    p.uniform_(-cell_bound, cell_bound)
                else:
                    p.uniform_(-1.0 / math.sqrt(p.shape[-2]), 1.0 / math.sqrt(p.shape[-2]))
        self._cache = None

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        """Split the parameters into ``modules`` (per-unit cells) and ``attention`` (input + communication)."""
        cells = ["weight_ih", "weight_hh", *(("bias_ih", "bias_hh") if self.cell == "gru" else ("bias",))]
        attention = ["query_weight", "query_bias", "key_weight", "value_weight"]
        attention += ["comm_query", "comm_key", "comm_value", "comm_out"]
        return {MODULES: [getattr(self, n) for n in cells], ATTENTION: [getattr(self, n) for n in attention]}

    def __getstate__(self) -> dict[str, object]:
        state = super().__getstate__()
        state["_cache"] = state["_group_cache"] = None  # derived weights are rebuilt on demand, never pickled
        return state

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, n_units={self.n_units}, unit_size={self.unit_size}, k={self.k}, cell={self.cell!r}, "
            f"input_heads={self.input_heads}, comm_heads={self.comm_heads}, dropout={self.dropout}"
        )

    def _params(self) -> Params:
        """The parameters as the fused kernel reads them."""
        gru = self.cell == "gru"
        return Params(
            weight_ih=self.weight_ih,
            value_weight=self.value_weight,
            weight_hh=self.weight_hh,
            query_weight=self.query_weight,
            bias=self.bias_hh if gru else self.bias,
            query_bias=self.query_bias,
            bias_ih=self.bias_ih if gru else None,
            comm_query=self.comm_query,
            comm_key=self.comm_key,
            comm_value=self.comm_value,
            comm_out=self.comm_out,
        )

    def _fast_weights_cached(self) -> Weights:
        """:func:`derive_weights` (input fused), reused while no parameter changed; for calls without grad."""
        params = self._params()
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params if p is not None)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, derive_weights(self._cfg, True, params))
        return self._cache[1]

    def _check(self, x: Tensor, state: tuple[Tensor, Tensor], episode_starts: Tensor | None) -> None:
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.input_size:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (T, B, input_size={self.input_size}), got {shape}")
        t_len, b = x.shape[0], x.shape[1]
        if t_len == 0 or b == 0:
            raise ValueError(f"x must have non-empty T and B dimensions, got {tuple(x.shape)}")
        want = (1, b, self.hidden_size)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError("state must be a pair (h, c) of tensors")
        for name, s in zip(("h", "c"), state, strict=True):
            if not isinstance(s, Tensor) or tuple(s.shape) != want:
                got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
                raise ValueError(f"state {name} must have shape {want}, got {got}")
        if episode_starts is not None and (
            not isinstance(episode_starts, Tensor) or tuple(episode_starts.shape) != (t_len, b)
        ):
            got = tuple(episode_starts.shape) if isinstance(episode_starts, Tensor) else type(episode_starts).__name__
            raise ValueError(f"episode_starts must have shape (T, B) = {(t_len, b)}, got {got}")

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor], episode_starts: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run the RIM over a sequence.

        :param x: inputs ``(T, B, input_size)``.
        :param state: ``(h, c)``, each ``(1, B, n_units * unit_size)``.
        :param episode_starts: ``(T, B)``, nonzero where an episode starts at that step; the state of that batch
            entry is zeroed before the step is computed.
        :return: outputs ``(T, B, n_units * unit_size)`` and the final ``(h, c)``.
        """
        return _run((self,), x, (state,), episode_starts)[0]

    def _group_key(self) -> tuple[object, ...]:
        """What must agree between RIMs that run as one group (:func:`run_together`)."""
        return (self._cfg, self.input_size, self.dropout, self.training, self.key_weight.dtype, self.key_weight.device)


def run_together(
    cores: Sequence[RIM],
    x: Tensor,
    states: Sequence[tuple[Tensor, Tensor]],
    episode_starts: Tensor | None = None,
) -> list[tuple[Tensor, tuple[Tensor, Tensor]]]:
    """Run several RIMs over the same input, as one fused kernel when they can share it.

    Independent RIMs of equal sizes that read the same input (a policy's actor and critic cores) run side by side:
    their units are stacked into one set, with selection and communication kept within each RIM, so each time
    step issues the same few ops as a single RIM does instead of once per RIM. Results, gradients and
    ``last_active`` equal those of calling each RIM on its own. RIMs that differ in sizes, dropout, mode, dtype or
    device, or that run unfused, are called one by one.

    :param cores: the RIMs.
    :param x: inputs ``(T, B, input_size)``, shared by all.
    :param states: each RIM's ``(h, c)``, each ``(1, B, hidden_size)``.
    :param episode_starts: ``(T, B)``, as in :meth:`RIM.forward`.
    :return: each RIM's ``(output, (h, c))``, in order.
    """
    if len(cores) != len(states):
        raise ValueError(f"states must hold one (h, c) per core: {len(cores)} cores, {len(states)} states")
    key = cores[0]._group_key()
    if len(cores) == 1 or not all(c.fused and c._group_key() == key for c in cores):
        return [core(x, state, episode_starts) for core, state in zip(cores, states, strict=True)]
    return _run(tuple(cores), x, tuple(states), episode_starts)


def _group_weights(cores: tuple[RIM, ...]) -> Weights:
    """The no-grad kernel weights of a group, reused while no parameter of any member changed."""
    parts = [core._fast_weights_cached() for core in cores]
    if len(cores) == 1:
        return parts[0]
    lead = cores[0]
    key = tuple(id(core) for core in cores) + tuple(id(w) for part in parts for w in part)
    cache = lead._group_cache
    if cache is None or cache[0] != key:
        cache = lead._group_cache = (key, cat_groups(parts), parts)  # parts kept alive so their ids stay theirs
    return cache[1]


@torch.compiler.disable  # dynamo cannot trace the kernel's scratch pool: compiled callers run it eagerly
def _kernel(
    cores: tuple[RIM, ...],
    cfg: CellConfig,
    needs_grad: bool,
    rows: Tensor,
    kq: Tensor,
    keep: Tensor | None,
    drop: Tensor | None,
    h0: Tensor,
    c0: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The fused kernel over a group of RIMs: :func:`run_no_grad` without gradients, else :class:`RIMSequence`.

    :return: outputs ``[T, B, U * H]``, final ``h`` and ``c`` ``[B, U * H]`` and the active masks ``[T, U, B]``.
    """
    if not needs_grad:
        return run_no_grad(cfg, rows, kq, keep, drop, h0, c0, _group_weights(cores))
    lead = cores[0]
    rows_n = kq.shape[0] * kq.shape[2]
    # several RIMs have several value projections: fold them into the cell weights
    fuse = len(cores) > 1 or fold_value(cfg, rows_n, lead.input_size, lead.value_weight.shape[1])
    x2 = rows if fuse else rows @ lead.value_weight
    params = [p for core in cores for p in core._params()]
    return RIMSequence.apply(cfg, fuse, keep, drop, x2, kq, h0, c0, *params)  # type: ignore[no-any-return]


def _run(
    cores: tuple[RIM, ...],
    x: Tensor,
    states: tuple[tuple[Tensor, Tensor], ...],
    episode_starts: Tensor | None,
) -> list[tuple[Tensor, tuple[Tensor, Tensor]]]:
    """:meth:`RIM.forward` for one RIM or a group of compatible RIMs (see :func:`run_together`)."""
    lead, n_groups = cores[0], len(cores)
    for state in states:
        lead._check(x, state, episode_starts)
    t_len, b = x.shape[0], x.shape[1]
    n, hidden = lead.n_units, lead.hidden_size
    cfg = lead._cfg if n_groups == 1 else lead._cfg._replace(groups=n_groups)

    def packed(i: int) -> Tensor:
        parts = [state[i].reshape(b, hidden) for state in states]
        return (parts[0] if n_groups == 1 else torch.cat(parts, 1)).to(x.dtype).contiguous()

    h0, c0 = packed(0), packed(1)
    keep = None
    if episode_starts is not None:
        keep = (episode_starts == 0).to(device=x.device, dtype=x.dtype)
    drop = None
    if lead.training and lead.dropout > 0.0:  # drawn per RIM, in order, as separate calls would
        draws = [torch.empty(t_len, n, b, dtype=x.dtype, device=x.device).bernoulli_(1.0 - lead.dropout) for _ in cores]
        drop = (draws[0] if n_groups == 1 else torch.cat(draws, 1)).div_(1.0 - lead.dropout)
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad
        or any(s.requires_grad for state in states for s in state)
        or any(p.requires_grad for core in cores for p in core.parameters())
    )
    rows = x.reshape(t_len * b, lead.input_size)
    key_weight = lead.key_weight if n_groups == 1 else torch.cat([core.key_weight for core in cores], 1)
    kq = (rows @ key_weight).mul_(lead._in_scale).view(t_len, b, n_groups, -1).transpose(1, 2)  # [T, groups, B, dk]
    if not needs_grad or lead.fused:
        out, h_t, c_t, masks = _kernel(cores, cfg, needs_grad, rows, kq, keep, drop, h0, c0)
    else:  # unfused RIMs never run as a group (see run_together)
        out, h_t, c_t, masks = rim_sequence(lead, x, h0, c0, keep, drop)
    results = []
    for i, core in enumerate(cores):
        units, cols = slice(i * n, (i + 1) * n), slice(i * hidden, (i + 1) * hidden)
        core.last_active = masks[:, units].detach().transpose(1, 2).contiguous()
        if n_groups == 1:
            results.append((out, (h_t.view(1, b, -1), c_t.view(1, b, -1))))
        else:
            h_i, c_i = h_t[:, cols].reshape(1, b, hidden), c_t[:, cols].reshape(1, b, hidden)
            results.append((out[..., cols], (h_i, c_i)))
    return results
