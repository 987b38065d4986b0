"""Deprecated (this old path is removed in metarim 0.3.0): split into

- :mod:`metarim_sb3.experiments.reporting.report`
- :mod:`metarim_sb3.experiments.reporting.runs`
- :mod:`metarim_sb3.experiments.reporting.sections.summary`
- :mod:`metarim_sb3.experiments.reporting.sections.adaptation`
- :mod:`metarim_sb3.experiments.reporting.sections.zero_shot`
- :mod:`metarim_sb3.experiments.reporting.sections.forgetting`
- :mod:`metarim_sb3.experiments.reporting.sections.drift`
- :mod:`metarim_sb3.experiments.reporting.sections.cost`
- :mod:`metarim_sb3.experiments.reporting.sections.paired`
- :mod:`metarim_sb3.experiments.reporting.sections.verdict`

whose names it looks up."""

from __future__ import annotations

import warnings

from metarim_sb3._deprecated import moved_message
from metarim_sb3.experiments._forward import forwarder

_HOMES = (
    "metarim_sb3.experiments.reporting.report",
    "metarim_sb3.experiments.reporting.runs",
    "metarim_sb3.experiments.reporting.sections.summary",
    "metarim_sb3.experiments.reporting.sections.adaptation",
    "metarim_sb3.experiments.reporting.sections.zero_shot",
    "metarim_sb3.experiments.reporting.sections.forgetting",
    "metarim_sb3.experiments.reporting.sections.drift",
    "metarim_sb3.experiments.reporting.sections.cost",
    "metarim_sb3.experiments.reporting.sections.paired",
    "metarim_sb3.experiments.reporting.sections.verdict",
)
#: Private names that were renamed when they moved.
_RENAMED = {
    "_agent_order": "metarim_sb3.experiments.reporting.runs:agent_order",
    "_auc_markdown": "metarim_sb3.experiments.reporting.sections.adaptation:adaptation_auc_markdown",
    "_zero_shot_markdown": "metarim_sb3.experiments.reporting.sections.zero_shot:zero_shot_markdown",
    "_zero_shot_mastery_markdown": "metarim_sb3.experiments.reporting.sections.zero_shot:zero_shot_mastery_markdown",
    "_forgetting_markdown": "metarim_sb3.experiments.reporting.sections.forgetting:forgetting_markdown",
    "_drift_markdown": "metarim_sb3.experiments.reporting.sections.drift:drift_markdown",
    "_cost_markdown": "metarim_sb3.experiments.reporting.sections.cost:cost_markdown",
    "_paired_markdown": "metarim_sb3.experiments.reporting.sections.paired:paired_markdown",
    "_verdict_v2": "metarim_sb3.experiments.reporting.sections.verdict:verdict_v2",
    "_write_summary": "metarim_sb3.experiments.reporting.sections.summary:write_summary",
    "_write_aggregate": "metarim_sb3.experiments.reporting.sections.summary:write_aggregate",
    "_limits": "metarim_sb3.experiments.reporting.sections.summary:limits",
}

warnings.warn(moved_message(__name__, " and ".join(_HOMES)), DeprecationWarning, stacklevel=2)
__getattr__, __dir__, __all__ = forwarder(__name__, _HOMES, _RENAMED)
