"""metarim_sb3: Recurrent Independent Mechanisms with fast/slow learning for stable-baselines3 / sb3-contrib.

Policies for sb3-contrib's ``RecurrentPPO`` (pass the class, e.g. ``RecurrentPPO(MultiInputRIMPolicy, env)``):

- :class:`RIMPolicy` and its aliases :class:`MlpRIMPolicy`, :class:`CnnRIMPolicy`, :class:`MultiInputRIMPolicy`
  (same policy, different default features extractor, as SB3's ``Mlp``/``Cnn``/``MultiInput`` names);
- :class:`GruPolicy` and :class:`MlpGruPolicy`, :class:`CnnGruPolicy`, :class:`MultiInputGruPolicy`: the same with a
  GRU core (:class:`GRUCore`), the second memory baseline;
- :class:`LstmPolicy` and :class:`MlpFastLstmPolicy`, :class:`CnnFastLstmPolicy`, :class:`MultiInputFastLstmPolicy`:
  sb3-contrib's LSTM policy with the same fast sequence path as the RIM (the fair baseline). The ``Fast`` names
  avoid shadowing sb3-contrib's ``MlpLstmPolicy`` / ``MultiInputLstmPolicy``.

Building blocks: :class:`RIM` (the core), :class:`LSTMCore`, :class:`RecurrentCore` (the protocol both satisfy),
:class:`MiniGridExtractor` (features extractor for MiniGrid / MetaRIM observations), :data:`GROUP_NAMES` (the
optimizer's parameter groups, the role names of :mod:`metarim_sb3.cores.protocol`).

Callbacks: :class:`FastSlowCallback` (the Meta-RIMs fast/slow training scheme), :class:`CurriculumCallback`
(success-threshold stage shifts), :class:`HeldOutEvalCallback` (zero-shot evaluation on a fixed stage),
:class:`UnitActivityCallback` (which units are active, per task), :class:`ParameterDriftCallback` (how far each
parameter group has moved: slow means slower, not frozen), :class:`StageEvalCallback` (success on the current stage
and every stage seen, for adaptation and forgetting).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metarim_sb3._lazy import lazy_exports

if TYPE_CHECKING:
    from metarim_sb3.callbacks import (
        CurriculumCallback,
        FastSlowCallback,
        HeldOutEvalCallback,
        ParameterDriftCallback,
        StageEvalCallback,
        UnitActivityCallback,
    )
    from metarim_sb3.cores.gru import GRUCore
    from metarim_sb3.cores.lstm import LSTMCore
    from metarim_sb3.cores.protocol import RecurrentCore
    from metarim_sb3.cores.rim import RIM, run_together
    from metarim_sb3.policies import (
        GROUP_NAMES,
        CnnFastLstmPolicy,
        CnnGruPolicy,
        CnnRIMPolicy,
        FastRecurrentPolicy,
        GruPolicy,
        LstmPolicy,
        MlpFastLstmPolicy,
        MlpGruPolicy,
        MlpRIMPolicy,
        MultiInputFastLstmPolicy,
        MultiInputGruPolicy,
        MultiInputRIMPolicy,
        RIMPolicy,
    )
    from metarim_sb3.torch_layers import MiniGridExtractor

__version__ = "0.1.0"

__all__ = [
    "GROUP_NAMES",
    "RIM",
    "CnnFastLstmPolicy",
    "CnnGruPolicy",
    "CnnRIMPolicy",
    "CurriculumCallback",
    "FastRecurrentPolicy",
    "FastSlowCallback",
    "GRUCore",
    "GruPolicy",
    "HeldOutEvalCallback",
    "LSTMCore",
    "LstmPolicy",
    "MiniGridExtractor",
    "MlpFastLstmPolicy",
    "MlpGruPolicy",
    "MlpRIMPolicy",
    "MultiInputFastLstmPolicy",
    "MultiInputGruPolicy",
    "MultiInputRIMPolicy",
    "ParameterDriftCallback",
    "RIMPolicy",
    "RecurrentCore",
    "StageEvalCallback",
    "UnitActivityCallback",
    "__version__",
    "run_together",
]

#: The module that defines each public name. Names are imported on first use (PEP 562), so ``import metarim_sb3``
#: and the ``metarim`` command's ``--help`` do not import torch and Stable-Baselines3 (seconds of start-up).
_HOMES = {
    **dict.fromkeys(
        (
            "CurriculumCallback",
            "FastSlowCallback",
            "HeldOutEvalCallback",
            "ParameterDriftCallback",
            "StageEvalCallback",
            "UnitActivityCallback",
        ),
        "metarim_sb3.callbacks",
    ),
    "GRUCore": "metarim_sb3.cores.gru",
    "LSTMCore": "metarim_sb3.cores.lstm",
    **dict.fromkeys(
        (
            "GROUP_NAMES",
            "CnnFastLstmPolicy",
            "CnnGruPolicy",
            "CnnRIMPolicy",
            "FastRecurrentPolicy",
            "GruPolicy",
            "LstmPolicy",
            "MlpFastLstmPolicy",
            "MlpGruPolicy",
            "MlpRIMPolicy",
            "MultiInputFastLstmPolicy",
            "MultiInputGruPolicy",
            "MultiInputRIMPolicy",
            "RIMPolicy",
        ),
        "metarim_sb3.policies",
    ),
    **dict.fromkeys(("RIM", "run_together"), "metarim_sb3.cores.rim"),
    "RecurrentCore": "metarim_sb3.cores.protocol",
    "MiniGridExtractor": "metarim_sb3.torch_layers",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
