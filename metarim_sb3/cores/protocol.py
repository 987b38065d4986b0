"""What a recurrent core of the policies is: a protocol, and the names of the parameter roles."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn

__all__ = ["ATTENTION", "MODULES", "OTHER", "ROLE_NAMES", "RecurrentCore"]

#: Role of the recurrent units' own cells (fast in Meta-RIMs).
MODULES = "modules"
#: Role of the input and communication attention (slow in Meta-RIMs; empty for an LSTM).
ATTENTION = "attention"
#: Role of every other policy parameter (features extractor, MLP, action and value heads).
OTHER = "other"
#: The roles, in the fixed order of the policies' optimizer parameter groups.
ROLE_NAMES = (MODULES, ATTENTION, OTHER)


@runtime_checkable
class RecurrentCore(Protocol):
    """A recurrent core the policies accept in place of sb3-contrib's ``nn.LSTM``.

    It looks like a time-first ``nn.LSTM`` to ``RecurrentPPO`` (``input_size``, ``hidden_size``, ``num_layers``;
    the state ``(h, c)``, each ``(num_layers, B, hidden_size)``), and adds two things: episode resets inside the
    call, and the roles of its parameters. :class:`~metarim_sb3.cores.rim.module.RIM` and
    :class:`~metarim_sb3.cores.lstm.LSTMCore` implement it. ``isinstance`` checks the members' presence only.
    """

    input_size: int
    hidden_size: int
    num_layers: int

    def __call__(
        self, x: Tensor, state: tuple[Tensor, Tensor], episode_starts: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run over a sequence.

        :param x: inputs ``(T, B, input_size)``.
        :param state: ``(h, c)`` before ``t = 0``, each ``(num_layers, B, hidden_size)``.
        :param episode_starts: ``(T, B)``, nonzero where an episode starts (the state of that entry is zeroed
            before the step); ``None``: no reset.
        :return: outputs ``(T, B, hidden_size)`` and the final ``(h, c)``.
        """
        ...

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        """The core's parameters by role.

        :return: ``{MODULES: [...], ATTENTION: [...]}``; every parameter of the core in exactly one list.
        """
        ...
