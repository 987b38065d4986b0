"""What an episode reports: observation keys, the mission, and the info contract."""

import gymnasium as gym

import metarim_gym  # noqa: F401  (registers the MetaRIM-* ids)

env = gym.make("MetaRIM-GoTo-v0")
obs, info = env.reset(seed=0)
print(sorted(obs), obs["image"].shape, obs["direction"])
print(
    "mission:",
    env.unwrapped.tokenizer.decode(obs["mission"]),
    "| token ids:",
    obs["mission"][:6],
)
print("reset info:", info)  # {'task': ..., 'stage': 0}
terminated = truncated = False
while not (terminated or truncated):
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
print(
    "last step:", info, "reward", reward
)  # 'is_success' is added on the last step only
