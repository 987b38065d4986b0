"""Former home of the curriculum and held-out evaluation callbacks; they now live in :mod:`metarim_sb3.callbacks`.

This module keeps ``from metarim_sb3.curriculum import CurriculumCallback, HeldOutEvalCallback`` working.
"""

from metarim_sb3.callbacks.curriculum import CurriculumCallback
from metarim_sb3.callbacks.heldout_eval import HeldOutEvalCallback

__all__ = ["CurriculumCallback", "HeldOutEvalCallback"]
