"""When the task distribution shifts: stage schedules (pure Python, no gymnasium).

A schedule owns the *requested* stage of one environment. The environment reads it at every reset, so a shift
always takes effect at the start of the next episode, never in the middle of one.

- ``manual``: the stage only changes through :meth:`StageSchedule.set_stage` (e.g. from a curriculum callback via
  ``vec_env.env_method("set_stage", i)``);
- ``steps``: move to the next stage every ``shift_every`` environment steps;
- ``episodes``: move to the next stage every ``shift_every`` finished episodes.

After the last training stage the schedule stays there, or with ``cycle=True`` returns to stage 0 (to measure
forgetting). Stage ``n_stages`` denotes the held-out stage; automatic schedules never enter or leave it.
"""

from __future__ import annotations

import math
import numbers

#: The schedule names accepted by :class:`StageSchedule` and the ``schedule`` keyword of every MetaRIM env.
SCHEDULES = ("manual", "steps", "episodes")


class StageSchedule:
    """Counts steps or episodes of one environment and decides its stage.

    :param kind: one of :data:`SCHEDULES`.
    :param n_stages: number of training stages (at least 1).
    :param shift_every: steps or episodes between shifts; required (> 0) for ``steps`` and ``episodes``.
    :param cycle: return to stage 0 after the last training stage instead of staying there.
    :param start: the initial stage, ``0..n_stages`` (``n_stages`` = held out).
    """

    def __init__(
        self,
        kind: str = "manual",
        n_stages: int = 1,
        shift_every: int | None = None,
        cycle: bool = False,
        start: int = 0,
    ) -> None:
        if kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")
        if not is_integer(n_stages) or n_stages < 1:
            raise ValueError(f"n_stages must be an integer of at least 1, got {n_stages!r}")
        if shift_every is None:
            if kind != "manual":
                raise ValueError(f"shift_every must be a positive integer for schedule={kind!r}, got None")
        elif not is_integer(shift_every, allow_integral_float=True) or shift_every <= 0:
            raise ValueError(
                f"shift_every must be a positive integer (or None with schedule='manual'), got {shift_every!r}"
            )
        if not is_bool(cycle):
            raise ValueError(f"cycle must be True or False, got {cycle!r}")
        self.kind = kind
        self.n_stages = int(n_stages)
        self.shift_every = None if shift_every is None else int(shift_every)
        self.cycle = bool(cycle)
        self._count_steps = kind == "steps"
        self._count_episodes = kind == "episodes"
        self.stage = 0
        self.count = 0
        self.shifts = 0
        self.set_stage(start)

    def set_stage(self, stage: int) -> None:
        """Request ``stage`` (effective at the next reset) and restart the shift counter.

        :param stage: ``0..n_stages - 1`` for a training stage, ``n_stages`` for the held-out stage.
        """
        if not is_integer(stage) or not 0 <= stage <= self.n_stages:
            raise ValueError(
                f"stage must be an integer in 0..{self.n_stages} ({self.n_stages} = held out), got {stage!r}"
            )
        self.stage = int(stage)
        self.count = 0

    def on_step(self) -> None:
        """Count one environment step."""
        if self._count_steps:
            self._tick()

    def on_episode_end(self) -> None:
        """Count one finished episode."""
        if self._count_episodes:
            self._tick()

    def _tick(self) -> None:
        self.count += 1
        if self.count < self.shift_every:  # type: ignore[operator]
            return
        self.count = 0
        if self.stage >= self.n_stages:  # held out: automatic schedules stay out of it
            return
        nxt = self.stage + 1
        if nxt == self.n_stages:
            nxt = 0 if self.cycle else self.stage
        if nxt != self.stage:
            self.stage = nxt
            self.shifts += 1


def is_integer(value: object, allow_integral_float: bool = False) -> bool:
    """Whether ``value`` is an integer (Python or NumPy, not a bool).

    :param value: the value to check.
    :param allow_integral_float: also accept finite floats with no fractional part (``5e4``).
    :return: ``True`` if it is.
    """
    if is_bool(value):
        return False
    if isinstance(value, numbers.Integral):
        return True
    return (
        allow_integral_float
        and isinstance(value, numbers.Real)
        and math.isfinite(float(value))
        and float(value).is_integer()
    )


def is_bool(value: object) -> bool:
    """Whether ``value`` is ``True`` or ``False`` (Python or NumPy bool).

    :param value: the value to check.
    :return: ``True`` if it is.
    """
    return isinstance(value, bool) or type(value).__name__ in ("bool", "bool_")  # numpy.bool / numpy.bool_
