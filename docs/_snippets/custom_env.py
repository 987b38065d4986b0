"""An environment of your own: three stages, one a mixture, and a held-out stage."""

from metarim_gym import MultiTaskEnv, Task

stage_0 = "MiniGrid-Empty-5x5-v0"  # one task, given by its id
stage_1 = [  # a mixture: DoorKey 75 % of the episodes, LavaGap 25 %
    Task("MiniGrid-DoorKey-5x5-v0", weight=3),
    "MiniGrid-LavaGapS5-v0",
]
# an id with keyword overrides, under a name of its own
stage_2 = Task(
    "MiniGrid-MultiRoom-N2-S4-v0", {"maxRoomSize": 5}, name="MultiRoom-N2-S5"
)

env = MultiTaskEnv(
    stages=[stage_0, stage_1, stage_2],
    heldout="MiniGrid-DoorKey-8x8-v0",
    schedule="episodes",
    shift_every=3,  # next stage after every 3 finished episodes
)
obs, info = env.reset(seed=0)
episodes = 0
while episodes < 8:  # random actions
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    if terminated or truncated:
        episodes += 1
        print(f"stage {info['stage']}  {info['task']:<16} success {info['is_success']}")
        obs, info = env.reset()
print("next stage:", env.get_stage(), "| held-out stage:", env.heldout_stage)
