"""An ``nn.GRU`` that resets its state inside a sequence and carries an LSTM-shaped ``(h, c)`` state.

sb3-contrib's ``RecurrentPPO`` stores every recurrent state as a pair ``(h, c)``; a GRU has no cell state, so
:class:`GRUCore` takes and returns ``c`` as zeros of the same shape and never reads it.
"""

from __future__ import annotations

from typing import Any, cast

import torch as th
from torch import nn

from metarim_sb3.cores.lstm import run_segments
from metarim_sb3.cores.protocol import ATTENTION, MODULES

GRUState = tuple[th.Tensor, th.Tensor]


class GRUCore(nn.GRU):
    """
    ``nn.GRU`` (time-first) with the call signature of :class:`~metarim_sb3.cores.lstm.LSTMCore`:
    ``core(x, (h, c), episode_starts)``; the state of an environment is zeroed at each of its episode starts,
    inside the call. ``c`` is carried as zeros (sb3-contrib's buffers hold two state tensors).

    The parameters and their names are exactly those of ``nn.GRU``. Kernel calls, as for the LSTM core: one fused
    ``gru_cell`` per rollout step, one fused ``nn.GRU`` call per segment between reset points in training.
    Resets replace the state with zeros (``torch.where``) rather than multiplying it by ``1 - episode_start``, so
    a non-finite value cannot survive a reset.

    The GRU is the strongest memory model of POPGym's benchmark of RL memory (Morad et al., ICLR 2023), the
    baseline a reviewer asks for beside the LSTM.

    Paper: Cho et al., "Learning Phrase Representations using RNN Encoder-Decoder", arXiv 1406.1078 (the GRU).
    Code: this module.

    :param input_size: Size of the input features.
    :param hidden_size: Size of the hidden state.
    :param num_layers: Number of stacked layers.
    :param kwargs: Other ``nn.GRU`` arguments (``bias``, ``dropout``). ``batch_first`` and ``bidirectional``
        are not supported.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs: Any) -> None:
        for key in ("batch_first", "bidirectional", "proj_size"):
            if kwargs.get(key):
                raise ValueError(f"lstm_kwargs: {key!r} is not supported by GRUCore (got {kwargs[key]!r})")
        kwargs.pop("proj_size", None)
        super().__init__(input_size, hidden_size, num_layers=num_layers, **kwargs)

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        """
        Parameter roles, as :meth:`RIM.parameter_roles <metarim_sb3.cores.rim.module.RIM.parameter_roles>`: all weights
        are recurrent-cell ("modules") weights; a GRU has no attention.

        :return: ``{"modules": [...], "attention": []}``
        """
        return {MODULES: list(self.parameters()), ATTENTION: []}

    def _run(self, x: th.Tensor, h: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        if x.shape[0] == 1 and self.num_layers == 1 and self.bias:
            w_ih, w_hh, b_ih, b_hh = cast(list[th.Tensor], self._flat_weights)
            h1 = th.gru_cell(x[0], h[0], w_ih, w_hh, b_ih, b_hh).unsqueeze(0)
            return h1, h1
        return super().forward(x, h)

    def forward(  # type: ignore[override]
        self,
        x: th.Tensor,
        state: GRUState,
        episode_starts: th.Tensor | None = None,
    ) -> tuple[th.Tensor, GRUState]:
        """
        Run the GRU over a sequence, zeroing the state of an environment at each of its episode starts.

        :param x: Input, shape ``(T, B, input_size)``.
        :param state: ``(h, c)``, each ``(num_layers, B, hidden_size)``; ``c`` is not read.
        :param episode_starts: ``(T, B)``, nonzero where an episode starts at that step (the state is zeroed
            before the step). ``None``: no reset.
        :return: Output ``(T, B, hidden_size)`` (last layer) and the final ``(h, zeros)``.
        """
        h, c = state

        def reset(h: th.Tensor, starts: th.Tensor) -> th.Tensor:
            return th.where(starts.view(1, -1, 1) != 0, th.zeros_like(h), h)

        out, h = run_segments(self._run, x, h, episode_starts, reset)
        return out, (h, th.zeros_like(c))
