"""Training callbacks for stable-baselines3 / sb3-contrib, one per file.

- :class:`FastSlowCallback` (:mod:`~metarim_sb3.callbacks.fast_slow`): the Meta-RIMs fast/slow training scheme;
- :class:`CurriculumCallback` (:mod:`~metarim_sb3.callbacks.curriculum`): success-threshold stage shifts;
- :class:`HeldOutEvalCallback` (:mod:`~metarim_sb3.callbacks.heldout_eval`): zero-shot evaluation on a fixed stage;
- :class:`UnitActivityCallback` (:mod:`~metarim_sb3.callbacks.activity`): which RIM units are active, per task.
"""

from metarim_sb3.callbacks.activity import UnitActivityCallback
from metarim_sb3.callbacks.curriculum import CurriculumCallback
from metarim_sb3.callbacks.fast_slow import FastSlowCallback
from metarim_sb3.callbacks.heldout_eval import HeldOutEvalCallback

__all__ = ["CurriculumCallback", "FastSlowCallback", "HeldOutEvalCallback", "UnitActivityCallback"]
