"""Former home of the unit-activity callback; it now lives in :mod:`metarim_sb3.callbacks.activity`.

This module keeps ``from metarim_sb3.activity import UnitActivityCallback`` working.
"""

from metarim_sb3.callbacks.activity import UnitActivityCallback

__all__ = ["UnitActivityCallback"]
