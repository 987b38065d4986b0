"""
The claims a comparison preset declares, as data: each claim, and the set with its decision rule's settings.

They live apart from :mod:`~metarim_sb3.experiments.reporting.claims` (which parses and judges them under rule v1)
so that :mod:`~metarim_sb3.experiments.reporting.protocol` (rule v2) can name their type without importing back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    """One claim: ``reference`` is better than ``against`` on ``metric``."""

    text: str
    metric: str
    against: str


@dataclass(frozen=True)
class Claims:
    """The claims of a preset with their decision rule."""

    reference: str
    alpha: float
    margin: float
    items: tuple[Claim, ...]
    #: ``v1`` (:mod:`~metarim_sb3.experiments.reporting.claims`) or ``v2``
    #: (:mod:`~metarim_sb3.experiments.reporting.protocol`).
    rule: str = "v1"
    #: v2: env -> weight of the pooled verdict.
    weights: tuple[tuple[str, float], ...] = ()
    #: v2: metrics reported without a verdict.
    secondary: tuple[str, ...] = ()
    #: v2: env -> frames the time to threshold is capped at.
    tau: tuple[tuple[str, int], ...] = ()
