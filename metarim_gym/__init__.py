"""metarim_gym: multi-task, distribution-shifting MiniGrid environments for gymnasium.

``import metarim_gym`` registers the ``MetaRIM-*`` ids; then ``gymnasium.make("MetaRIM-DoorKey-v0")`` works in any
agent. ``gymnasium.make("metarim_gym:MetaRIM-DoorKey-v0")`` works without the import.
"""

from metarim_gym.multitask import HELDOUT, MultiTaskEnv
from metarim_gym.registration import ENV_IDS, register_envs
from metarim_gym.schedules import SCHEDULES, StageSchedule
from metarim_gym.spaces import MAX_MISSION_LEN, VOCABULARY, MissionTokenizer, observation_space
from metarim_gym.tasks import FAMILIES, Family, Stage, Task

__version__ = "0.1.0"

register_envs()

__all__ = [
    "ENV_IDS",
    "FAMILIES",
    "HELDOUT",
    "MAX_MISSION_LEN",
    "SCHEDULES",
    "VOCABULARY",
    "Family",
    "MissionTokenizer",
    "MultiTaskEnv",
    "Stage",
    "StageSchedule",
    "Task",
    "__version__",
    "observation_space",
    "register_envs",
]
