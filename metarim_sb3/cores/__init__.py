"""The recurrent cores of the policies: what a core must be, and the three cores.

A recurrent core stands in for sb3-contrib's ``nn.LSTM``: to ``RecurrentPPO`` it looks like a one-layer, time-first
``nn.LSTM`` with an ``(h, c)`` state, and it adds episode resets inside the call and the roles of its parameters.

- :mod:`~metarim_sb3.cores.protocol`: :class:`~metarim_sb3.cores.protocol.RecurrentCore` (the contract) and the role
  names :data:`~metarim_sb3.cores.protocol.MODULES`, :data:`~metarim_sb3.cores.protocol.ATTENTION`,
  :data:`~metarim_sb3.cores.protocol.OTHER`, :data:`~metarim_sb3.cores.protocol.ROLE_NAMES` (the policies' optimizer
  parameter groups);
- :mod:`~metarim_sb3.cores.rim`: Recurrent Independent Mechanisms, :class:`~metarim_sb3.cores.rim.module.RIM` and
  :func:`~metarim_sb3.cores.rim.module.run_together`; its specification in plain torch,
  :mod:`~metarim_sb3.cores.rim.reference`, sits beside the fast kernel;
- :mod:`~metarim_sb3.cores.lstm`: :class:`~metarim_sb3.cores.lstm.LSTMCore`, an ``nn.LSTM`` with in-sequence resets
  (the LSTM baseline);
- :mod:`~metarim_sb3.cores.gru`: :class:`~metarim_sb3.cores.gru.GRUCore`, an ``nn.GRU`` with in-sequence resets and an
  LSTM-shaped state (the GRU baseline).

The names below load on first use, so ``import metarim_sb3.cores.protocol`` does not build the RIM kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metarim_sb3._lazy import lazy_exports

if TYPE_CHECKING:
    from metarim_sb3.cores.gru import GRUCore
    from metarim_sb3.cores.lstm import LSTMCore
    from metarim_sb3.cores.protocol import ATTENTION, MODULES, OTHER, ROLE_NAMES, RecurrentCore
    from metarim_sb3.cores.rim import RIM, run_together

__all__ = [
    "ATTENTION",
    "MODULES",
    "OTHER",
    "RIM",
    "ROLE_NAMES",
    "GRUCore",
    "LSTMCore",
    "RecurrentCore",
    "run_together",
]

#: The module that defines each public name (imported on first use, PEP 562).
_HOMES = {
    **dict.fromkeys(("ATTENTION", "MODULES", "OTHER", "ROLE_NAMES", "RecurrentCore"), "metarim_sb3.cores.protocol"),
    "GRUCore": "metarim_sb3.cores.gru",
    "LSTMCore": "metarim_sb3.cores.lstm",
    **dict.fromkeys(("RIM", "run_together"), "metarim_sb3.cores.rim.module"),
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
