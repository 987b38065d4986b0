"""Deprecated (this old path is removed in metarim 0.3.0): split into

- :mod:`metarim_sb3.experiments.training.folder`
- :mod:`metarim_sb3.experiments.training.ownership`

whose names it looks up."""

from __future__ import annotations

import warnings

from metarim_sb3._deprecated import moved_message
from metarim_sb3.experiments._forward import forwarder

_HOMES = (
    "metarim_sb3.experiments.training.folder",
    "metarim_sb3.experiments.training.ownership",
)

warnings.warn(moved_message(__name__, " and ".join(_HOMES)), DeprecationWarning, stacklevel=2)
__getattr__, __dir__, __all__ = forwarder(__name__, _HOMES)
