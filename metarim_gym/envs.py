"""The registered MetaRIM families: thin subclasses of :class:`MultiTaskEnv` that fix the stage lists.

Each class docstring is Markdown with fixed sections; the stage tables and the registered configurations in it
are generated from :mod:`metarim_gym.tasks` and :mod:`metarim_gym.registration`, so they cannot drift.
"""

from __future__ import annotations

from typing import Any

from metarim_gym.multitask import MultiTaskEnv
from metarim_gym.registration import ENV_IDS
from metarim_gym.spaces import MAX_MISSION_LEN
from metarim_gym.tasks import FAMILIES, Family

#: Section headings every family docstring carries, in order.
DOC_SECTIONS = (
    "Description",
    "Tasks",
    "Distribution Shift",
    "Observation Space",
    "Action Space",
    "Rewards",
    "Termination",
    "Registered Configurations",
    "Version History",
)


def _stage_table(family: Family) -> str:
    rows = ["| stage | tasks (weight) | MiniGrid ids |", "|---|---|---|"]
    for i, stage in enumerate((*family.stages, family.heldout)):
        label = f"{i}" if i < len(family.stages) else f"{i} (held out)"
        total = sum(t.weight for t in stage.tasks)
        tasks = ", ".join(f"{t.name} ({t.weight / total:.2f})" for t in stage.tasks)
        ids = ", ".join(sorted({f"`{t.env_id}`" + (f" {dict(t.kwargs)}" if t.kwargs else "") for t in stage.tasks}))
        rows.append(f"| {label} | {tasks} | {ids} |")
    return "\n".join(rows)


def family_doc(family_key: str, description: str, tasks: str) -> str:
    """Compose a family's Markdown docstring from its own text and the shared sections.

    :param family_key: key in :data:`~metarim_gym.tasks.FAMILIES`.
    :param description: the family's own description paragraph.
    :param tasks: what the agent must do in this family.
    :return: the docstring.
    """
    family = FAMILIES[family_key]
    env_id = next(i for i, (_, key) in ENV_IDS.items() if key == family_key)
    n = len(family.stages)
    return f"""
## Description

{description}

## Tasks

{tasks}

{_stage_table(family)}

## Distribution Shift

The stage changes by the `schedule` keyword: `"manual"` (default; set from outside with `set_stage(i)`, e.g.
`vec_env.env_method("set_stage", i)` from a success-threshold curriculum), `"steps"` (every `shift_every`
environment steps) or `"episodes"` (every `shift_every` episodes). `cycle=True` returns to stage 0 after stage
{n - 1}. A shift takes effect at the next reset. `stage=i` or `stage="heldout"` starts in (and, with the manual
schedule, stays in) one stage; the held-out stage ({n}) is never entered by a schedule.

## Observation Space

`Dict(image=Box(0, [10, 5, 2], (7, 7, 3), uint8), direction=Discrete(4), mission=Box(0, V, ({MAX_MISSION_LEN},),
int64))`: the egocentric 7×7 view as MiniGrid (object, colour, state) indices, the agent's heading, and the
mission as token ids of the fixed vocabulary `metarim_gym.spaces.VOCABULARY` (0 = padding). Shared by every
MetaRIM id. `mission_format="text"` gives the mission sentence instead (a `Text` space), as MiniGrid does. The
view is computed by `metarim_gym.fast_obs` (the same arrays as MiniGrid's `gen_obs`, faster: `bench_env.py`);
`fast_obs=False` keeps MiniGrid's own.

MiniGrid's own wrappers work: `RGBImgObsWrapper`, `RGBImgPartialObsWrapper`, `FullyObsWrapper`, `ImgObsWrapper`,
`OneHotPartialObsWrapper`, and `FlatObsWrapper` / `DictObservationSpaceWrapper` with `mission_format="text"`. The
env's `width` and `height` are the largest over all its tasks, so full views of a smaller grid are padded with
walls (black pixels) at the right and bottom; `rgb_array` frames have one size for every task.

## Action Space

`Discrete(7)`: left, right, forward, pickup, drop, toggle, done (MiniGrid's actions).

## Rewards

MiniGrid's: `1 - 0.9 * (step_count / max_steps)` on success, `0` otherwise.

## Termination

The episode terminates when the task is solved (or failed, e.g. by stepping into lava) and is truncated after the
task's own `max_steps`. On the last step `info["is_success"]` says whether the goal was reached; `info["task"]`
and `info["stage"]` are present on every step.

## Registered Configurations

- `gym.make("{env_id}")`: manual schedule, stage 0.
- `gym.make("{env_id}", stage="heldout")`: the held-out stage, for zero-shot evaluation.
- `gym.make("{env_id}", schedule="steps", shift_every=50_000, cycle=True)`: automatic shifts.

## Version History

- v0: initial release.
"""


class _FamilyEnv(MultiTaskEnv):
    family_key = ""

    def __init__(self, **kwargs: Any) -> None:
        family = FAMILIES[self.family_key]
        kwargs.setdefault("stages", family.stages)
        kwargs.setdefault("heldout", family.heldout)
        super().__init__(**kwargs)


class MultiRoomEnv(_FamilyEnv):
    family_key = "multiroom"
    __doc__ = family_doc(
        "multiroom",
        "A chain of rooms connected by closed doors; the number and size of the rooms grow from stage to stage.",
        "Open the doors and walk through the rooms to the green goal in the last one "
        "(mission: *traverse the rooms to get to the goal*).",
    )


class DoorKeyEnv(_FamilyEnv):
    family_key = "doorkey"
    __doc__ = family_doc(
        "doorkey",
        "A room split by a wall with a locked door; the grid grows from 5×5 to 8×8 over the stages and to 16×16 "
        "in the held-out stage.",
        "Pick up the key, open the door and reach the goal (mission: *use the key to open the door and then get "
        "to the goal*).",
    )


class KeyCorridorEnv(_FamilyEnv):
    family_key = "keycorridor"
    __doc__ = family_doc(
        "keycorridor",
        "A corridor with side rooms; the ball lies behind a locked door whose key is hidden in another room. "
        "More rows of rooms (R) and larger rooms (S) make it harder.",
        "Find the key, unlock the door and pick up the ball (mission: *pick up the {colour} ball*).",
    )


class LavaCrossingEnv(_FamilyEnv):
    family_key = "lavacrossing"
    __doc__ = family_doc(
        "lavacrossing",
        "Walls of lava with gaps; from a single gap in a small room (LavaGap) to several lava rivers "
        "(LavaCrossing). Stepping into lava ends the episode with no reward.",
        "Reach the green goal without touching lava (mission: *avoid the lava and get to the green goal square*).",
    )


class GoToEnv(_FamilyEnv):
    family_key = "goto"
    __doc__ = family_doc(
        "goto",
        "BabyAI's mission-conditioned navigation: a room with the target object and distractors; the room and "
        "the number of distractors grow. The agent must read the mission to know which object to go to.",
        "Go next to the object named by the mission (mission: *go to the {colour} {object}*).",
    )


class MultiTaskFamilyEnv(_FamilyEnv):
    family_key = "multitask"
    __doc__ = family_doc(
        "multitask",
        "A mixture of families whose weights shift: DoorKey and MultiRoom first, then mostly LavaGap and BabyAI "
        "GoTo, then harder versions of four families. Tests adaptation to a change of the task *mixture*.",
        "Each episode is one task of the mixture; its mission tells which.",
    )
