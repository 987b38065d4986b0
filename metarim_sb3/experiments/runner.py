"""Deprecated (this old path is removed in metarim 0.3.0): split into

- :mod:`metarim_sb3.experiments.training.runner`
- :mod:`metarim_sb3.experiments.training.model`
- :mod:`metarim_sb3.experiments.training.resume`

whose names it looks up."""

from __future__ import annotations

import warnings

from metarim_sb3._deprecated import moved_message
from metarim_sb3.experiments._forward import forwarder

_HOMES = (
    "metarim_sb3.experiments.training.runner",
    "metarim_sb3.experiments.training.model",
    "metarim_sb3.experiments.training.resume",
)
#: Private names that were renamed when they moved.
_RENAMED = {
    "_policy_class": "metarim_sb3.experiments.training.model:policy_class",
    "_build_model": "metarim_sb3.experiments.training.model:build_model",
    "_callbacks": "metarim_sb3.experiments.training.model:build_callbacks",
    "_check_resume_files": "metarim_sb3.experiments.training.resume:check_resume_files",
    "_has_rows": "metarim_sb3.experiments.training.resume:has_rows",
    "_resume_changes": "metarim_sb3.experiments.training.resume:resume_changes",
    "_apply_ppo": "metarim_sb3.experiments.training.resume:apply_ppo",
}

warnings.warn(moved_message(__name__, " and ".join(_HOMES)), DeprecationWarning, stacklevel=2)
__getattr__, __dir__, __all__ = forwarder(__name__, _HOMES, _RENAMED)
