"""An ``nn.LSTM`` that resets its state inside a sequence (a :class:`~metarim_sb3.cores.protocol.RecurrentCore`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch as th
from torch import nn

from metarim_sb3.cores.protocol import ATTENTION, MODULES

LSTMState = tuple[th.Tensor, th.Tensor]
S = TypeVar("S")


def run_segments(
    run: Callable[[th.Tensor, S], tuple[th.Tensor, S]],
    x: th.Tensor,
    state: S,
    episode_starts: th.Tensor | None,
    reset: Callable[[S, th.Tensor], S],
) -> tuple[th.Tensor, S]:
    """
    Run a fused recurrent call over a sequence once per segment between episode starts (the loop the LSTM and GRU
    cores share): no reset after ``t = 0``, the case of every training minibatch of sb3-contrib's buffer, is one call.

    :param run: ``run(x_segment, state) -> (output, state)``.
    :param x: input ``(T, B, ...)``.
    :param state: the state before ``t = 0``.
    :param episode_starts: ``(T, B)``, nonzero where the state is reset before the step; ``None``: no reset.
    :param reset: ``reset(state, starts_t)`` resets the batch entries where ``starts_t`` (``(B,)``) is nonzero.
    :return: the outputs ``(T, B, ...)`` and the final state.
    """
    if episode_starts is None:
        return run(x, state)
    state = reset(state, episode_starts[0])
    n_steps = x.shape[0]
    if n_steps == 1 or not bool(episode_starts[1:].any()):
        return run(x, state)
    bounds = (th.nonzero(episode_starts[1:].any(dim=1)).flatten() + 1).tolist()
    outputs = []
    start = 0
    for stop in [*bounds, n_steps]:
        if start > 0:
            state = reset(state, episode_starts[start])
        out, state = run(x[start:stop], state)
        outputs.append(out)
        start = stop
    return th.cat(outputs), state


class LSTMCore(nn.LSTM):
    """
    ``nn.LSTM`` (time-first) whose forward also takes ``episode_starts`` and zeroes the state of the
    environments that start an episode at a time step, inside the call; it satisfies the
    :class:`~metarim_sb3.cores.protocol.RecurrentCore` protocol.

    The parameters and their names are exactly those of ``nn.LSTM``, so weights can be copied to and
    from sb3-contrib's recurrent policies with ``load_state_dict``. The results equal those of
    sb3-contrib's per-step loop (up to float rounding), with far fewer kernel calls:

    * ``T == 1`` (every rollout step): one fused ``lstm_cell`` call for a one-layer LSTM
      (``nn.LSTM`` with one time step costs about 1.5x a cell call on CPU);
    * no reset after ``t = 0`` (every training minibatch of sb3-contrib's recurrent buffer, which
      splits sequences at episode starts): one fused ``nn.LSTM`` call over the whole sequence;
    * otherwise: one fused call per segment between reset points.

    Paper: Hochreiter & Schmidhuber, Neural Computation 9(8), 1997 (the LSTM).
    Code: this module; the reset semantics are those of sb3-contrib's ``RecurrentActorCriticPolicy``.

    :param input_size: Size of the input features.
    :param hidden_size: Size of the hidden (and cell) state.
    :param num_layers: Number of stacked layers.
    :param kwargs: Other ``nn.LSTM`` arguments (``bias``, ``dropout``). ``batch_first``,
        ``bidirectional`` and ``proj_size`` are not supported.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs: Any) -> None:
        for key in ("batch_first", "bidirectional", "proj_size"):
            if kwargs.get(key):
                raise ValueError(f"lstm_kwargs: {key!r} is not supported by LSTMCore (got {kwargs[key]!r})")
        super().__init__(input_size, hidden_size, num_layers=num_layers, **kwargs)

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        """
        Parameter roles, as :meth:`RIM.parameter_roles <metarim_sb3.cores.rim.module.RIM.parameter_roles>`: all
        weights are recurrent-cell ("modules") weights; an LSTM has no attention.

        :return: ``{MODULES: [...], ATTENTION: []}``
        """
        return {MODULES: list(self.parameters()), ATTENTION: []}

    def _run(self, x: th.Tensor, state: LSTMState) -> tuple[th.Tensor, LSTMState]:
        if x.shape[0] == 1 and self.num_layers == 1 and self.bias:
            w_ih, w_hh, b_ih, b_hh = cast(list[th.Tensor], self._flat_weights)
            h, c = th.lstm_cell(x[0], (state[0][0], state[1][0]), w_ih, w_hh, b_ih, b_hh)
            h = h.unsqueeze(0)
            return h, (h, c.unsqueeze(0))
        return super().forward(x, state)

    def forward(  # type: ignore[override]
        self,
        x: th.Tensor,
        state: LSTMState,
        episode_starts: th.Tensor | None = None,
    ) -> tuple[th.Tensor, LSTMState]:
        """
        Run the LSTM over a sequence, zeroing the state of an environment at each of its episode starts.

        :param x: Input, shape ``(T, B, input_size)``.
        :param state: ``(h, c)``, each ``(num_layers, B, hidden_size)``: the state before ``t = 0``.
        :param episode_starts: ``(T, B)``, 1.0 where an episode starts at that step (the state is
            zeroed before the step), else 0.0. ``None``: no reset.
        :return: Output ``(T, B, hidden_size)`` (last layer) and the final ``(h, c)``.
        """

        def reset(state: LSTMState, starts: th.Tensor) -> LSTMState:
            keep = (1.0 - starts).view(1, -1, 1)
            return state[0] * keep, state[1] * keep

        return run_segments(self._run, x, state, episode_starts, reset)
