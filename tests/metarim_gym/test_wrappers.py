"""Every registered MetaRIM id under MiniGrid's own wrappers and gymnasium's recording wrappers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import RecordEpisodeStatistics, RecordVideo
from minigrid.wrappers import (
    DictObservationSpaceWrapper,
    FlatObsWrapper,
    FullyObsWrapper,
    ImgObsWrapper,
    OneHotPartialObsWrapper,
    RGBImgObsWrapper,
    RGBImgPartialObsWrapper,
)

import metarim_gym

ENV_IDS = sorted(metarim_gym.ENV_IDS)

#: wrapper -> keyword arguments the MetaRIM env needs for it (the two that read the mission as text)
WRAPPERS: dict[type[gym.Wrapper], dict[str, str]] = {
    FlatObsWrapper: {"mission_format": "text"},
    DictObservationSpaceWrapper: {"mission_format": "text"},
    RGBImgPartialObsWrapper: {},
    RGBImgObsWrapper: {},
    FullyObsWrapper: {},
    ImgObsWrapper: {},
    OneHotPartialObsWrapper: {},
    RecordEpisodeStatistics: {},
}


def _roll(env: gym.Env, steps: int, check: Callable[[object], None]) -> None:
    obs, _ = env.reset(seed=0)
    check(obs)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(3)))
        check(obs)
        if terminated or truncated:
            obs, _ = env.reset()
            check(obs)


@pytest.mark.parametrize("wrapper", list(WRAPPERS), ids=lambda w: w.__name__)
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_minigrid_wrapper(env_id: str, wrapper: type[gym.Wrapper]) -> None:
    # stage "heldout" too for the full-view wrappers: its grid is the largest, so padding is exercised on stage 0
    stages: tuple[int | str, ...] = (0, "heldout") if wrapper in (FullyObsWrapper, RGBImgObsWrapper) else (0,)
    for stage in stages:
        env = wrapper(gym.make(env_id, stage=stage, **WRAPPERS[wrapper]))

        def check(obs: object, env: gym.Env = env) -> None:
            assert env.observation_space.contains(obs)

        _roll(env, 8, check)
        env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_record_video(env_id: str, tmp_path: Path) -> None:
    pytest.importorskip("moviepy")
    folder = tmp_path / "videos"
    env = RecordVideo(gym.make(env_id, render_mode="rgb_array"), str(folder), episode_trigger=lambda _: True)
    _roll(env, 6, lambda obs: None)
    env.close()  # writes the clip of the unfinished episode
    assert list(folder.glob("*.mp4"))


def test_full_view_of_a_small_task_is_padded_to_the_largest_grid() -> None:
    env = gym.make("MetaRIM-MultiTask-v0").unwrapped
    sizes = {(e.width, e.height) for e in env._envs.values()}
    assert (env.width, env.height) == (max(w for w, _ in sizes), max(h for _, h in sizes))
    for _ in range(20):  # find an episode of a task smaller than the largest grid
        env.reset()
        inner = env.task_env
        if inner.width < env.width:
            break
    assert inner.width < env.width
    full = FullyObsWrapper(env).observation(env._observe(inner.gen_obs()))["image"]
    wall = full[env.width - 1, env.height - 1]
    assert tuple(wall) == (2, 5, 0)  # padding cells are grey walls
    x, y = inner.agent_pos
    assert full[x, y, 0] == 10  # the agent sits at its own coordinates
    frame = env.get_frame()
    assert frame.shape == (env.height * env.tile_size, env.width * env.tile_size, 3)
    assert not frame[-env.tile_size :, -env.tile_size :].any()  # padded with black


def test_no_death_wrapper_reads_the_running_task() -> None:
    from minigrid.wrappers import NoDeath

    env = NoDeath(gym.make("MetaRIM-LavaCrossing-v0"), no_death_types=("lava",), death_cost=-1.0)
    env.reset(seed=0)
    inner = env.unwrapped.task_env
    lava = next((x, y) for x in range(inner.width) for y in range(inner.height)
                if inner.grid.get(x, y) is not None and inner.grid.get(x, y).type == "lava")  # fmt: skip
    inner.agent_pos, inner.agent_dir = (lava[0] - 1, lava[1]), 0  # facing the lava from its left
    _, reward, terminated, _, _ = env.step(env.unwrapped.actions.forward)
    assert reward == -1.0 and not terminated


def test_text_missions_match_tokens() -> None:
    text = gym.make("MetaRIM-GoTo-v0", mission_format="text")
    tokens = gym.make("MetaRIM-GoTo-v0")
    obs_t, _ = text.reset(seed=3)
    obs_k, _ = tokens.reset(seed=3)
    assert isinstance(obs_t["mission"], str) and obs_t["mission"] == text.unwrapped.mission
    assert metarim_gym.MissionTokenizer().decode(obs_k["mission"]) == obs_t["mission"].lower().replace(",", "")
    with pytest.raises(ValueError, match="mission_format"):
        gym.make("MetaRIM-GoTo-v0", mission_format="chars")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_text_mission_space_holds_every_stage(env_id: str) -> None:
    env = gym.make(env_id, mission_format="text")
    env.reset(seed=0)
    for stage in range(env.unwrapped.n_stages + 1):
        for _ in range(5):
            obs, _ = env.reset(options={"stage": stage})
            assert env.observation_space.contains(obs), obs["mission"]


def test_text_mission_env_passes_gymnasium_checker() -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(gym.make("MetaRIM-GoTo-v0", mission_format="text").unwrapped, skip_render_check=True)


def test_minigrid_attributes_need_a_reset() -> None:
    env = gym.make("MetaRIM-DoorKey-v0").unwrapped
    assert env.width == 16  # known before any reset: wrappers read it in their constructors
    with pytest.raises(gym.error.ResetNeeded, match="agent_pos"):
        _ = env.agent_pos


@pytest.mark.parametrize(
    ("wrapper", "error"), [(FlatObsWrapper, ValueError), (DictObservationSpaceWrapper, AttributeError)]
)
def test_text_wrapper_on_token_missions_names_the_fix(wrapper: type[gym.Wrapper], error: type[Exception]) -> None:
    """Without ``mission_format="text"`` the wrappers that read the mission as text fail with the fix in the message."""
    env = wrapper(gym.make("MetaRIM-GoTo-v0"))
    with pytest.raises(error, match=r"gym\.make\(env_id, mission_format='text'\)"):
        env.reset(seed=0)


def test_token_missions_stay_plain_arrays_for_numeric_use() -> None:
    """The mission tokens compare, stack, pickle and convert as an int64 array; only misuse as text changes."""
    import pickle

    env = gym.make("MetaRIM-GoTo-v0")
    obs, _ = env.reset(seed=0)
    mission = obs["mission"]
    assert isinstance(mission, np.ndarray) and mission.dtype == np.int64 and env.observation_space.contains(obs)
    assert (mission == mission.copy()).all() and not (mission != mission).any()
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(mission)), mission)
    assert np.stack([mission, mission]).shape == (2, *mission.shape)
    assert bool(mission[:1] == mission[0])  # a one-element truth value is numpy's
    assert not hasattr(mission, "lower") and not hasattr(mission, "no_such_attribute")


class CheckableFullyObs(FullyObsWrapper, gym.utils.RecordConstructorArgs):
    """The recipe of docs/concepts.md: a MiniGrid wrapper that records its arguments, as ``check_env`` needs (at
    module level: the checker rebuilds the env from its spec, which names the class by module and name)."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        FullyObsWrapper.__init__(self, env)


class CheckableRGBImgObs(RGBImgObsWrapper, gym.utils.RecordConstructorArgs):
    """:class:`CheckableFullyObs` for ``RGBImgObsWrapper``."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        RGBImgObsWrapper.__init__(self, env)


class CheckableFlatObs(FlatObsWrapper, gym.utils.RecordConstructorArgs):
    """:class:`CheckableFullyObs` for ``FlatObsWrapper``."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        FlatObsWrapper.__init__(self, env)


@pytest.mark.parametrize(
    ("wrapper", "checkable"),
    [(FullyObsWrapper, CheckableFullyObs), (RGBImgObsWrapper, CheckableRGBImgObs), (FlatObsWrapper, CheckableFlatObs)],
    ids=lambda w: w.__name__,
)
def test_check_env_on_wrapped_envs(wrapper: type[gym.Wrapper], checkable: type[gym.Wrapper]) -> None:
    """gymnasium's ``check_env`` refuses MiniGrid's wrappers as they are (they do not record their arguments, so
    the wrapped env's spec cannot be rebuilt) and passes with the documented recipe."""
    from gymnasium.utils.env_checker import check_env

    kwargs = {"mission_format": "text"} if wrapper is FlatObsWrapper else {}
    with pytest.raises(ValueError, match="RecordConstructorArgs"):
        check_env(wrapper(gym.make("MetaRIM-GoTo-v0", **kwargs)), skip_render_check=True)
    check_env(checkable(gym.make("MetaRIM-GoTo-v0", render_mode="rgb_array", **kwargs)))


@pytest.mark.parametrize(
    ("wrapper", "stock_cnn_works"),
    [(FullyObsWrapper, False), (RGBImgObsWrapper, True), (RGBImgPartialObsWrapper, True)],
    ids=lambda w: getattr(w, "__name__", str(w)),
)
def test_full_and_rgb_observations_train(wrapper: type[gym.Wrapper], stock_cnn_works: bool) -> None:
    """The recipe of docs/concepts.md: full grids of indices need :class:`MiniGridExtractor` (SB3's NatureCNN
    kernels are larger than an 8x8 grid); RGB frames train with the stock ``MultiInputPolicy``; the RIM policy
    takes both."""
    pytest.importorskip("torch")
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO

    from metarim_sb3 import MiniGridExtractor, MultiInputRIMPolicy

    small = {"n_steps": 32, "batch_size": 32, "n_epochs": 1, "seed": 0}
    recipe = {"features_extractor_class": MiniGridExtractor, "normalize_images": False}
    env = wrapper(gym.make("MetaRIM-GoTo-v0"))
    PPO("MultiInputPolicy", env, policy_kwargs=recipe, **small).learn(32)
    RecurrentPPO(MultiInputRIMPolicy, env, **small).learn(32)
    if stock_cnn_works:
        PPO("MultiInputPolicy", env, **small).learn(32)
    else:
        with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
            PPO("MultiInputPolicy", env, **small).learn(32)
