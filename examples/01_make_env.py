"""Make a MetaRIM environment, watch the stage shift, and run a stock SB3 agent on it.

python examples/01_make_env.py [--steps 2000]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
from stable_baselines3 import PPO

import metarim_gym


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="PPO training steps (default: 2000)")
    args = parser.parse_args()

    # A shifting env: every 300 steps the next (harder) DoorKey stage starts at the next reset.
    env = gym.make("MetaRIM-DoorKey-v0", schedule="steps", shift_every=300)
    obs, info = env.reset(seed=0)
    print("observation keys:", sorted(obs), "| mission:", env.unwrapped.tokenizer.decode(obs["mission"]))
    for _ in range(1200):
        obs, _reward, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            print(f"episode ended: task={info['task']} stage={info['stage']} success={info['is_success']}")
            obs, info = env.reset()

    # Any stock agent works without wrappers; evaluate zero-shot on the held-out stage with stage="heldout".
    model = PPO("MultiInputPolicy", gym.make("MetaRIM-DoorKey-v0"), n_steps=256, seed=0, verbose=0)
    model.learn(args.steps)
    heldout = gym.make("MetaRIM-DoorKey-v0", stage="heldout")
    obs, info = heldout.reset(seed=1)
    print("held-out task:", info["task"], "| families:", ", ".join(metarim_gym.ENV_IDS))


if __name__ == "__main__":
    main()
