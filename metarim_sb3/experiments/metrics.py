"""Deprecated (this old path is removed in metarim 0.3.0): split into

- :mod:`metarim_sb3.experiments.reporting.metrics`
- :mod:`metarim_sb3.experiments.reporting.comparisons`
- :mod:`metarim_sb3.experiments.reporting.formatting`

whose names it looks up."""

from __future__ import annotations

import warnings

from metarim_sb3._deprecated import moved_message
from metarim_sb3.experiments._forward import forwarder

_HOMES = (
    "metarim_sb3.experiments.reporting.metrics",
    "metarim_sb3.experiments.reporting.comparisons",
    "metarim_sb3.experiments.reporting.formatting",
)

warnings.warn(moved_message(__name__, " and ".join(_HOMES)), DeprecationWarning, stacklevel=2)
__getattr__, __dir__, __all__ = forwarder(__name__, _HOMES)
