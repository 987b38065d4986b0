"""How a report prints its estimates.

- **Reporting rules** (:func:`interval_allowed`, :func:`format_estimate`, :func:`format_number`,
  :func:`format_column`): no interval with fewer than :data:`MIN_SEEDS_FOR_INTERVAL` seeds; integer-valued
  columns print as integers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["MIN_SEEDS_FOR_INTERVAL", "format_column", "format_estimate", "format_number", "interval_allowed"]


#: Fewest seeds for which a report prints an interval.
MIN_SEEDS_FOR_INTERVAL = 3


# ------------------------------------------------------------------------------------------- formatting
def interval_allowed(n_seeds: int) -> bool:
    """
    :param n_seeds: seeds behind an estimate.
    :return: whether a report may print an interval for it (at least :data:`MIN_SEEDS_FOR_INTERVAL`): a
        bootstrap over one or two seeds gives degenerate intervals such as ``0.74 [0.74, 0.74]``.
    """
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 0:
        raise ValueError(f"n_seeds must be an integer >= 0, got {n_seeds!r}")
    return n_seeds >= MIN_SEEDS_FOR_INTERVAL


def format_number(value: float | None, digits: int = 2, scale: float = 1.0, suffix: str = "") -> str:
    """
    :param value: the number (``None`` or NaN print as ``n/a``).
    :param digits: decimals of a non-integer value.
    :param scale: divide by this first (e.g. ``1e3`` with ``suffix="k"``).
    :param suffix: appended to the number.
    :return: the number; an integer value (after scaling) prints without decimals.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    v = float(value) / scale
    if math.isinf(v):
        return f"{v}{suffix}"
    return f"{int(v)}{suffix}" if v.is_integer() else f"{v:.{digits}f}{suffix}"


def format_column(values: Sequence[float | None], digits: int = 2) -> list[str]:
    """
    :param values: one column of a table.
    :param digits: decimals when some value is not an integer.
    :return: the values as text: all as integers when every finite value is integral, else all with ``digits``.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    integral = all(v.is_integer() for v in finite)
    out = []
    for v in values:
        if v is None or math.isnan(float(v)):
            out.append("n/a")
        elif integral or math.isinf(float(v)):
            out.append(format_number(v))
        else:
            out.append(f"{float(v):.{digits}f}")
    return out


def format_estimate(
    point: float, low: float, high: float, n_seeds: int, digits: int = 2, scale: float = 1.0, suffix: str = ""
) -> str:
    """
    ``"x [lo, hi]"`` when :func:`interval_allowed`, else ``"x (n=2: no interval)"``.

    :param point: the estimate (NaN prints ``n/a``).
    :param low: lower end of its interval.
    :param high: upper end.
    :param n_seeds: seeds behind it.
    :param digits: decimals.
    :param scale: divide every number by this first.
    :param suffix: appended to every number (e.g. ``"k"``).
    :return: the text.
    """
    if math.isnan(point):
        return "n/a"

    def fmt(v: float) -> str:
        return f"{v / scale:.{digits}f}{suffix}"

    if not interval_allowed(n_seeds):
        return f"{fmt(point)} (n={n_seeds}: no interval)"
    return f"{fmt(point)} [{fmt(low)}, {fmt(high)}]"
