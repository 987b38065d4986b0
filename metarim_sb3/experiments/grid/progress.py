"""The progress lines of a grid, shared by the local backend (:mod:`~metarim_sb3.experiments.grid.compare`) and
the Ray backend (:mod:`~metarim_sb3.experiments.grid.ray_backend`)."""

from __future__ import annotations

import math

__all__ = ["eta_text"]


def eta_text(elapsed: float, ran: int, left: int, workers: int) -> str:
    """
    :param elapsed: seconds since the runs started.
    :param ran: runs finished so far.
    :param left: runs still to finish.
    :param workers: worker processes.
    :return: ``", ETA 12s"`` (runs left at the mean pace so far, ``workers`` at a time), or ``""`` when none are left.
    """
    if left <= 0 or ran <= 0:
        return ""
    per_run = elapsed * min(workers, ran) / ran  # wall time of one run, ``workers`` running side by side
    return f", ETA {per_run * math.ceil(left / workers):.0f}s"
