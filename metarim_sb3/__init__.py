"""metarim_sb3: Recurrent Independent Mechanisms with fast/slow learning for stable-baselines3 / sb3-contrib.

Policies for sb3-contrib's ``RecurrentPPO`` (pass the class, e.g. ``RecurrentPPO(MultiInputRIMPolicy, env)``):

- :class:`RIMPolicy` and its aliases :class:`MlpRIMPolicy`, :class:`CnnRIMPolicy`, :class:`MultiInputRIMPolicy`
  (same policy, different default features extractor, as SB3's ``Mlp``/``Cnn``/``MultiInput`` names);
- :class:`LstmPolicy` and :class:`MlpFastLstmPolicy`, :class:`CnnFastLstmPolicy`, :class:`MultiInputFastLstmPolicy`:
  sb3-contrib's LSTM policy with the same fast sequence path as the RIM (the fair baseline). The ``Fast`` names
  avoid shadowing sb3-contrib's ``MlpLstmPolicy`` / ``MultiInputLstmPolicy``.

Building blocks: :class:`RIM` (the core), :class:`LSTMCore`, :class:`MiniGridExtractor` (features extractor for
MiniGrid / MetaRIM observations), :data:`GROUP_NAMES` (the optimizer's parameter groups).

Callbacks: :class:`FastSlowCallback` (the Meta-RIMs fast/slow training scheme), :class:`CurriculumCallback`
(success-threshold stage shifts), :class:`HeldOutEvalCallback` (zero-shot evaluation on a fixed stage),
:class:`UnitActivityCallback` (which units are active, per task).
"""

from metarim_sb3.callbacks import CurriculumCallback, FastSlowCallback, HeldOutEvalCallback, UnitActivityCallback
from metarim_sb3.lstm_core import LSTMCore
from metarim_sb3.policies import (
    GROUP_NAMES,
    CnnFastLstmPolicy,
    CnnRIMPolicy,
    FastRecurrentPolicy,
    LstmPolicy,
    MlpFastLstmPolicy,
    MlpRIMPolicy,
    MultiInputFastLstmPolicy,
    MultiInputRIMPolicy,
    RIMPolicy,
)
from metarim_sb3.rim import RIM, run_together
from metarim_sb3.torch_layers import MiniGridExtractor

__version__ = "0.1.0"

__all__ = [
    "GROUP_NAMES",
    "RIM",
    "CnnFastLstmPolicy",
    "CnnRIMPolicy",
    "CurriculumCallback",
    "FastRecurrentPolicy",
    "FastSlowCallback",
    "HeldOutEvalCallback",
    "LSTMCore",
    "LstmPolicy",
    "MiniGridExtractor",
    "MlpFastLstmPolicy",
    "MlpRIMPolicy",
    "MultiInputFastLstmPolicy",
    "MultiInputRIMPolicy",
    "RIMPolicy",
    "UnitActivityCallback",
    "__version__",
    "run_together",
]
