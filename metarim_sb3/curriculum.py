"""Deprecated: the curriculum and held-out evaluation callbacks moved to :mod:`metarim_sb3.callbacks` (this old path
is removed in metarim 0.3.0)."""

import warnings

from metarim_sb3._deprecated import moved_message

warnings.warn(moved_message(__name__, "metarim_sb3.callbacks"), DeprecationWarning, stacklevel=2)

from metarim_sb3.callbacks.curriculum import CurriculumCallback  # noqa: E402
from metarim_sb3.callbacks.heldout_eval import HeldOutEvalCallback  # noqa: E402

__all__ = ["CurriculumCallback", "HeldOutEvalCallback"]
