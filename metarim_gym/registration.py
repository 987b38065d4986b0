"""The only place with ``gymnasium.register`` calls. Importing this module imports neither torch nor minigrid."""

from __future__ import annotations

import gymnasium as gym

#: Registered id -> (entry point, family key in :data:`metarim_gym.tasks.FAMILIES`).
ENV_IDS: dict[str, tuple[str, str]] = {
    "MetaRIM-MultiRoom-v0": ("metarim_gym.envs:MultiRoomEnv", "multiroom"),
    "MetaRIM-DoorKey-v0": ("metarim_gym.envs:DoorKeyEnv", "doorkey"),
    "MetaRIM-KeyCorridor-v0": ("metarim_gym.envs:KeyCorridorEnv", "keycorridor"),
    "MetaRIM-LavaCrossing-v0": ("metarim_gym.envs:LavaCrossingEnv", "lavacrossing"),
    "MetaRIM-GoTo-v0": ("metarim_gym.envs:GoToEnv", "goto"),
    "MetaRIM-MultiTask-v0": ("metarim_gym.envs:MultiTaskFamilyEnv", "multitask"),
}


def register_envs() -> None:
    """Register every MetaRIM id with gymnasium (idempotent)."""
    for env_id, (entry_point, _) in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)
