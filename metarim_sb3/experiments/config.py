"""Deprecated (this old path is removed in metarim 0.3.0): split into

- :mod:`metarim_sb3.experiments.training.config`
- :mod:`metarim_sb3.experiments.training.yaml_io`
- :mod:`metarim_sb3.experiments.grid.presets`

whose names it looks up."""

from __future__ import annotations

import warnings

from metarim_sb3._deprecated import moved_message
from metarim_sb3.experiments._forward import forwarder

_HOMES = (
    "metarim_sb3.experiments.training.config",
    "metarim_sb3.experiments.training.yaml_io",
    "metarim_sb3.experiments.grid.presets",
)
#: Private names that were renamed when they moved.
_RENAMED = {
    "_short": "metarim_sb3.experiments.training.config:short_repr",
}

warnings.warn(moved_message(__name__, " and ".join(_HOMES)), DeprecationWarning, stacklevel=2)
__getattr__, __dir__, __all__ = forwarder(__name__, _HOMES, _RENAMED)
