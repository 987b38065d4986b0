"""Training callbacks for stable-baselines3 / sb3-contrib, one per file.

- :class:`FastSlowCallback` (:mod:`~metarim_sb3.callbacks.fast_slow`): the Meta-RIMs fast/slow training scheme;
- :class:`CurriculumCallback` (:mod:`~metarim_sb3.callbacks.curriculum`): success-threshold stage shifts;
- :class:`HeldOutEvalCallback` (:mod:`~metarim_sb3.callbacks.heldout_eval`): zero-shot evaluation on a fixed stage;
- :class:`UnitActivityCallback` (:mod:`~metarim_sb3.callbacks.activity`): which RIM units are active, per task;
- :class:`ParameterDriftCallback` (:mod:`~metarim_sb3.callbacks.drift`): how far each parameter group has moved;
- :class:`StageEvalCallback` (:mod:`~metarim_sb3.callbacks.stage_eval`): periodic evaluation on the current stage
  and every stage seen (adaptation and forgetting);
- :class:`ZeroShotAtMasteryCallback` (:mod:`~metarim_sb3.callbacks.zero_shot_mastery`): zero-shot evaluation on the
  held-out stage when the last training stage is first mastered.
"""

from metarim_sb3.callbacks.activity import UnitActivityCallback
from metarim_sb3.callbacks.curriculum import CurriculumCallback
from metarim_sb3.callbacks.drift import ParameterDriftCallback
from metarim_sb3.callbacks.fast_slow import DEFAULT_SLOW_FRACTION, FastSlowCallback
from metarim_sb3.callbacks.heldout_eval import HeldOutEvalCallback
from metarim_sb3.callbacks.stage_eval import StageEvalCallback
from metarim_sb3.callbacks.zero_shot_mastery import ZeroShotAtMasteryCallback

__all__ = [
    "DEFAULT_SLOW_FRACTION",
    "CurriculumCallback",
    "FastSlowCallback",
    "HeldOutEvalCallback",
    "ParameterDriftCallback",
    "StageEvalCallback",
    "UnitActivityCallback",
    "ZeroShotAtMasteryCallback",
]
