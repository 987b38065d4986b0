"""Tasks, stages and the stage lists of every MetaRIM family (frozen dataclasses, no gymnasium import).

A :class:`Task` names a MiniGrid or BabyAI environment (a registered id plus keyword overrides). A :class:`Stage`
is a weighted mixture of tasks; at each reset the environment samples one task of the current stage in proportion
to its weight. A :class:`Family` is an ordered list of training stages of rising difficulty plus one held-out stage,
harder than any training stage, for zero-shot tests.

The stage lists below are metarim's own choices (the Meta-RIMs paper publishes none); stage 0 of every family is
learnable by PPO in minutes on a laptop CPU.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metarim_gym.schedules import is_bool


@dataclass(frozen=True)
class Task:
    """One MiniGrid/BabyAI environment.

    :param env_id: a registered gymnasium id, e.g. ``"MiniGrid-DoorKey-5x5-v0"``.
    :param kwargs: keyword overrides passed to ``gymnasium.make`` (e.g. ``{"size": 7}``).
    :param weight: relative sampling weight inside its stage (> 0).
    :param name: short display name; defaults to the id without its prefix and version.
    """

    env_id: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"Task env_id must be a non-empty gymnasium id string, got {self.env_id!r}")
        weight = self.weight
        if is_bool(weight) or not isinstance(weight, numbers.Real) or not math.isfinite(float(weight)) or weight <= 0:
            raise ValueError(f"Task weight must be a finite number > 0, got {weight!r} for {self.env_id!r}")
        object.__setattr__(self, "weight", float(weight))
        if not isinstance(self.kwargs, Mapping):
            raise ValueError(f"Task kwargs must be a mapping of keyword arguments, got {self.kwargs!r}")
        if not self.name:
            short = self.env_id.split("-", 1)[-1].rsplit("-v", 1)[0]
            object.__setattr__(self, "name", short)
        object.__setattr__(self, "kwargs", dict(self.kwargs))

    @property
    def key(self) -> tuple[str, str]:
        """Identity of the environment instance this task needs (same id and kwargs share one instance)."""
        return (self.env_id, repr(sorted(self.kwargs.items())))


TaskLike = Task | str | Mapping[str, Any]


def as_task(task: TaskLike) -> Task:
    """Coerce an id string, a ``dict`` of :class:`Task` fields, or a :class:`Task` into a :class:`Task`.

    :param task: the task description.
    :return: the task.
    """
    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        return Task(task)
    if isinstance(task, Mapping):
        unknown = set(task) - {"env_id", "kwargs", "weight", "name"}
        if unknown:
            raise ValueError(f"unknown task keys {sorted(unknown)}; allowed: env_id, kwargs, weight, name")
        return Task(**task)
    raise ValueError(f"a task must be a Task, an env id string or a mapping, got {type(task).__name__}")


@dataclass(frozen=True)
class Stage:
    """A weighted mixture of tasks.

    :param tasks: the tasks (at least one).
    :param name: display name of the stage.
    """

    tasks: tuple[Task, ...]
    name: str = ""

    def __post_init__(self) -> None:
        tasks = tuple(as_task(t) for t in self.tasks)
        if not tasks:
            raise ValueError("a stage must contain at least one task (got an empty stage)")
        object.__setattr__(self, "tasks", tasks)
        if not self.name:
            object.__setattr__(self, "name", " + ".join(t.name for t in tasks))

    @property
    def probabilities(self) -> tuple[float, ...]:
        """Sampling probability of each task."""
        total = sum(t.weight for t in self.tasks)
        return tuple(t.weight / total for t in self.tasks)


StageLike = Stage | Sequence[TaskLike] | TaskLike


def as_stage(stage: StageLike) -> Stage:
    """Coerce a :class:`Stage`, a single task or a sequence of tasks into a :class:`Stage`.

    :param stage: the stage description.
    :return: the stage.
    """
    if isinstance(stage, Stage):
        return stage
    if isinstance(stage, (str, Task, Mapping)):
        return Stage((as_task(stage),))
    if isinstance(stage, Sequence):
        return Stage(tuple(stage))  # type: ignore[arg-type]
    raise ValueError(f"a stage must be a Stage, a task or a sequence of tasks, got {type(stage).__name__}")


@dataclass(frozen=True)
class Family:
    """An ordered curriculum of training stages plus a held-out stage.

    :param name: family name, e.g. ``"DoorKey"``.
    :param stages: training stages, easiest first.
    :param heldout: the held-out stage (never trained on by the default schedules).
    """

    name: str
    stages: tuple[Stage, ...]
    heldout: Stage


def _mr(rooms: int, size: int, weight: float = 1.0) -> Task:
    """A MultiRoom task with ``rooms`` rooms of at most ``size`` cells (the id's own kwargs are overridden)."""
    return Task(
        "MiniGrid-MultiRoom-N2-S4-v0",
        {"minNumRooms": rooms, "maxNumRooms": rooms, "maxRoomSize": size},
        weight,
        name=f"MultiRoom-N{rooms}-S{size}",
    )


MULTIROOM = Family(
    "MultiRoom",
    stages=(Stage((_mr(2, 4),)), Stage((_mr(3, 4),)), Stage((_mr(4, 5),))),
    heldout=Stage((_mr(6, 6),)),
)
DOORKEY = Family(
    "DoorKey",
    stages=tuple(Stage((Task(f"MiniGrid-DoorKey-{n}x{n}-v0"),)) for n in (5, 6, 8)),
    heldout=Stage((Task("MiniGrid-DoorKey-16x16-v0"),)),
)
KEYCORRIDOR = Family(
    "KeyCorridor",
    stages=tuple(Stage((Task(f"MiniGrid-KeyCorridorS3R{r}-v0"),)) for r in (1, 2, 3)),
    heldout=Stage((Task("MiniGrid-KeyCorridorS4R3-v0"),)),
)
LAVACROSSING = Family(
    "LavaCrossing",
    stages=(
        Stage((Task("MiniGrid-LavaGapS5-v0"),)),
        Stage((Task("MiniGrid-LavaGapS7-v0"),)),
        Stage((Task("MiniGrid-LavaCrossingS9N1-v0"),)),
        Stage((Task("MiniGrid-LavaCrossingS9N2-v0"),)),
    ),
    heldout=Stage((Task("MiniGrid-LavaCrossingS11N5-v0"),)),
)
GOTO = Family(
    "GoTo",
    stages=(
        Stage((Task("BabyAI-GoToObjS4-v0"),)),
        Stage((Task("BabyAI-GoToLocalS6N2-v0"),)),
        Stage((Task("BabyAI-GoToLocalS8N4-v0"),)),
    ),
    heldout=Stage((Task("BabyAI-GoToLocalS8N7-v0"),)),
)
MULTITASK = Family(
    "MultiTask",
    stages=(
        Stage((Task("MiniGrid-DoorKey-5x5-v0", weight=0.5), _mr(2, 4, weight=0.5))),
        Stage(
            (
                Task("MiniGrid-DoorKey-5x5-v0", weight=0.2),
                _mr(2, 4, weight=0.2),
                Task("MiniGrid-LavaGapS5-v0", weight=0.3),
                Task("BabyAI-GoToObjS4-v0", weight=0.3),
            ),
            name="mostly LavaGap-S5 + GoToObj-S4",
        ),
        Stage(
            (
                Task("MiniGrid-DoorKey-6x6-v0"),
                _mr(3, 4),
                Task("MiniGrid-LavaGapS7-v0"),
                Task("MiniGrid-KeyCorridorS3R1-v0"),
            ),
            name="DoorKey-6x6 + MultiRoom-N3-S4 + LavaGap-S7 + KeyCorridor-S3R1",
        ),
    ),
    heldout=Stage(
        (
            Task("MiniGrid-DoorKey-8x8-v0"),
            _mr(4, 5),
            Task("MiniGrid-LavaCrossingS9N1-v0"),
            Task("MiniGrid-KeyCorridorS3R2-v0"),
        )
    ),
)  # fmt: skip

#: Every family, by lower-case name.
FAMILIES: dict[str, Family] = {
    f.name.lower(): f for f in (MULTIROOM, DOORKEY, KEYCORRIDOR, LAVACROSSING, GOTO, MULTITASK)
}
