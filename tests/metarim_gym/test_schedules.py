"""Stage schedules: shifts exactly when configured, per environment, deterministic."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import metarim_gym  # noqa: F401
from metarim_gym.schedules import StageSchedule


def _stages_over_steps(schedule: StageSchedule, n: int) -> list[int]:
    seen = []
    for _ in range(n):
        schedule.on_step()
        seen.append(schedule.stage)
    return seen


def test_steps_schedule_shifts_exactly_every_s_steps() -> None:
    s = StageSchedule("steps", n_stages=3, shift_every=5)
    assert _stages_over_steps(s, 16) == [0] * 4 + [1] * 5 + [2] * 7
    assert s.shifts == 2


def test_cycle_returns_to_stage_zero() -> None:
    s = StageSchedule("steps", n_stages=2, shift_every=2, cycle=True)
    assert _stages_over_steps(s, 8) == [0, 1, 1, 0, 0, 1, 1, 0]


def test_episodes_schedule_ignores_steps() -> None:
    s = StageSchedule("episodes", n_stages=3, shift_every=2)
    _stages_over_steps(s, 100)
    assert s.stage == 0
    s.on_episode_end()
    assert s.stage == 0
    s.on_episode_end()
    assert s.stage == 1


def test_manual_schedule_never_moves_by_itself() -> None:
    s = StageSchedule("manual", n_stages=3)
    _stages_over_steps(s, 100)
    for _ in range(100):
        s.on_episode_end()
    assert s.stage == 0
    s.set_stage(2)
    assert s.stage == 2


def test_set_stage_restarts_the_counter_and_heldout_is_sticky() -> None:
    s = StageSchedule("steps", n_stages=3, shift_every=4)
    _stages_over_steps(s, 3)
    s.set_stage(1)
    assert _stages_over_steps(s, 4) == [1, 1, 1, 2]
    s.set_stage(3)  # held out
    assert _stages_over_steps(s, 20) == [3] * 20


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "weekly"}, "schedule must be one of"),
        ({"kind": "steps"}, "shift_every"),
        ({"kind": "steps", "shift_every": 0}, "shift_every"),
        ({"kind": "episodes", "shift_every": -3}, "shift_every"),
        ({"kind": "steps", "shift_every": 2.5}, "shift_every"),
        ({"n_stages": 0}, "n_stages"),
        ({"n_stages": 2, "start": 3}, "stage"),
        ({"kind": "steps", "shift_every": float("nan")}, "shift_every"),
        ({"kind": "steps", "shift_every": float("inf")}, "shift_every"),
        ({"kind": "episodes", "shift_every": True}, "shift_every"),
        ({"kind": "manual", "shift_every": 1.5}, "shift_every"),
        ({"kind": "steps", "shift_every": 2, "cycle": "no"}, "cycle"),
        ({"kind": "steps", "shift_every": 2, "cycle": 1}, "cycle"),
    ],
)
def test_bad_schedule_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StageSchedule(**kwargs)


def test_shift_applies_at_next_reset_and_per_env() -> None:
    a = gym.make("MetaRIM-DoorKey-v0", schedule="steps", shift_every=3).unwrapped
    b = gym.make("MetaRIM-DoorKey-v0", schedule="steps", shift_every=3).unwrapped
    _, info = a.reset(seed=0)
    b.reset(seed=0)
    assert info["stage"] == 0
    for _ in range(3):
        _, _, _, _, info = a.step(0)
        assert info["stage"] == 0  # the running episode keeps its stage
    assert a.get_stage() == 1 and b.get_stage() == 0  # requested for a only
    _, info = a.reset()
    assert info["stage"] == 1 and info["task"] == "DoorKey-6x6"
    assert a.task_env.width == 6


def test_numpy_scalars_are_accepted() -> None:
    s = StageSchedule("steps", n_stages=np.int64(3), shift_every=np.int32(2), cycle=np.bool_(True), start=np.int64(1))
    assert _stages_over_steps(s, 4) == [1, 2, 2, 0]
    assert StageSchedule("episodes", shift_every=np.float64(4.0)).shift_every == 4
