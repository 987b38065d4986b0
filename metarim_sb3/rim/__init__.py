"""Deprecated: the RIM core and the recurrent-core protocol moved to :mod:`metarim_sb3.cores` (the RIM itself to
:mod:`metarim_sb3.cores.rim`, the protocol and role names to :mod:`metarim_sb3.cores.protocol`). This old path warns
once and keeps working until metarim 0.3.0: its names come from the new package, and its old submodules
(``module``, ``reference``, ``protocol``, ``_fused``, ``_pool``) are aliases of the new ones.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from metarim_sb3._deprecated import moved_message

warnings.warn(moved_message(__name__, "metarim_sb3.cores"), DeprecationWarning, stacklevel=2)

__all__ = ["ATTENTION", "MODULES", "OTHER", "RIM", "ROLE_NAMES", "RecurrentCore", "run_together"]


def __getattr__(name: str) -> Any:
    """The old package's names, from the new packages (PEP 562)."""
    new = importlib.import_module("metarim_sb3.cores" if name in __all__ else "metarim_sb3.cores.rim")
    try:
        return getattr(new, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
