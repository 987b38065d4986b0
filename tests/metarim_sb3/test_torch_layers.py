"""MiniGridExtractor: spaces it accepts, what it reads from the observation, and SB3 integration."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.preprocessing import preprocess_obs

import metarim_gym
from metarim_sb3 import MiniGridExtractor

SPACE = metarim_gym.observation_space()


def batch(space: spaces.Space, n: int, seed: int = 0) -> dict[str, th.Tensor] | th.Tensor:
    """``n`` samples of ``space``, preprocessed the way SB3 does it (normalize_images=False)."""
    space.seed(seed)
    samples = [space.sample() for _ in range(n)]
    if isinstance(space, spaces.Dict):
        obs = {key: th.as_tensor(np.stack([s[key] for s in samples])) for key in space.spaces}
    else:
        obs = th.as_tensor(np.stack(samples))
    return preprocess_obs(obs, space, normalize_images=False)


def test_output_shape_and_gradients() -> None:
    extractor = MiniGridExtractor(SPACE, features_dim=24)
    obs = batch(SPACE, 5)
    features = extractor(obs)
    assert features.shape == (5, 24) and features.dtype == th.float32 and th.isfinite(features).all()
    features.sum().backward()
    assert all(p.grad is not None for p in extractor.parameters())
    # the Dict rollout buffer stores Discrete as (B, 1): SB3 then one-hots to (B, 1, n)
    obs_buffer = dict(obs, direction=obs["direction"].unsqueeze(1))
    assert th.equal(extractor(obs_buffer), extractor(obs))


def test_reads_every_part_of_the_observation() -> None:
    th.manual_seed(0)
    extractor = MiniGridExtractor(SPACE)
    obs = batch(SPACE, 1)
    base = extractor(obs)
    image = obs["image"].clone()
    image[0, 3, 3, 1] = (image[0, 3, 3, 1] + 1) % 6  # another colour in one cell
    mission = obs["mission"].clone()
    mission[0, 0] = mission[0, 0] % 56 + 1  # another first word
    for key, value in (("image", image), ("direction", obs["direction"].roll(1, dims=-1)), ("mission", mission)):
        assert not th.equal(value, obs[key])
        assert not th.allclose(extractor(dict(obs, **{key: value})), base), key


def test_mission_padding_is_masked() -> None:
    th.manual_seed(0)
    extractor = MiniGridExtractor(SPACE)
    obs = batch(SPACE, 2)
    mission = th.zeros_like(obs["mission"])
    mission[0, :3] = th.tensor([13.0, 27.0, 36.0])  # "go to the"
    mission[1, 5:8] = th.tensor([13.0, 27.0, 36.0])  # same words, elsewhere among padding
    features = extractor(
        dict(
            obs,
            mission=mission,
            image=obs["image"][:1].expand(2, -1, -1, -1),
            direction=obs["direction"][:1].expand(2, -1),
        )
    )
    assert th.allclose(features[0], features[1], atol=1e-6)
    empty = extractor(dict(obs, mission=th.zeros_like(mission)))
    assert th.isfinite(empty).all()


def test_channels_first_and_pixel_bounds() -> None:
    last = spaces.Box(0, 255, (7, 7, 3), np.uint8)  # minigrid's ImgObsWrapper
    first = spaces.Box(0, 255, (3, 7, 7), np.uint8)  # after SB3's VecTransposeImage
    th.manual_seed(0)
    ext_last = MiniGridExtractor(last)
    ext_first = MiniGridExtractor(first)
    ext_first.load_state_dict(ext_last.state_dict())
    obs = th.randint(0, 11, (4, 7, 7, 3)).float()
    assert th.allclose(ext_last(obs), ext_first(obs.permute(0, 3, 1, 2)), atol=1e-6)
    assert MiniGridExtractor.has_pixel_bounds(last) and not MiniGridExtractor.has_pixel_bounds(SPACE)


@pytest.mark.parametrize(
    "space",
    [
        spaces.Box(-1.0, 1.0, (5,), np.float32),
        spaces.Box(0.0, 1.0, (7, 7, 3), np.float32),
        spaces.Discrete(4),
        spaces.Dict({"direction": spaces.Discrete(4)}),
        spaces.Dict({"image": SPACE["image"], "other": spaces.Discrete(2)}),
        spaces.Dict({"image": SPACE["image"], "direction": spaces.Box(0, 3, (1,), np.int64)}),
        spaces.Dict({"image": SPACE["image"], "mission": spaces.Box(0, 9, (2, 3), np.int64)}),
        spaces.Box(0, 10, (2, 2, 3), np.uint8),
        spaces.Dict({"image": SPACE["image"], "mission": spaces.MultiDiscrete([[3, 3], [3, 3]])}),
    ],
)
def test_unsupported_spaces(space: spaces.Space) -> None:
    with pytest.raises(ValueError, match="observation_space"):
        MiniGridExtractor(space)


@pytest.mark.parametrize(
    ("kwargs", "key"), [(dict(features_dim=0), "features_dim"), (dict(cnn_channels=(8, 8, 8)), "cnn_channels")]
)
def test_bad_kwargs(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        MiniGridExtractor(SPACE, **kwargs)


def test_feed_forward_ppo() -> None:
    model = PPO(
        "MultiInputPolicy",
        "MetaRIM-GoTo-v0",
        n_steps=32,
        batch_size=32,
        n_epochs=1,
        policy_kwargs=dict(features_extractor_class=MiniGridExtractor, features_extractor_kwargs=dict(features_dim=16)),
    )
    model.learn(64)
    assert isinstance(model.policy.features_extractor, MiniGridExtractor)


def test_multidiscrete_mission_equals_token_box() -> None:
    """A MultiDiscrete mission (minigrid's DictObservationSpaceWrapper) gives the features of the same token ids
    in a Box, with the same weights: both are the same bag of words."""
    box = spaces.Dict({"image": SPACE["image"], "mission": spaces.Box(0, 9, (6,), np.int64)})
    multi = spaces.Dict({"image": SPACE["image"], "mission": spaces.MultiDiscrete([10] * 6)})
    th.manual_seed(0)
    ext_box, ext_multi = MiniGridExtractor(box), MiniGridExtractor(multi)
    ext_multi.load_state_dict(ext_box.state_dict())
    raw = {"image": th.randint(0, 3, (3, 7, 7, 3)), "mission": th.tensor([[4, 2, 0, 0, 0, 0], [2, 4, 0, 9, 0, 0],
                                                                           [0] * 6])}  # fmt: skip
    features = ext_multi(preprocess_obs(raw, multi, normalize_images=False))
    assert th.allclose(features, ext_box(preprocess_obs(raw, box, normalize_images=False)), atol=1e-6)
    assert not th.allclose(features[0], features[1])  # "4 2" and "2 4 9" differ; order does not matter


def test_babyai_with_minigrid_dict_wrapper_trains() -> None:
    import gymnasium as gym
    from minigrid.wrappers import DictObservationSpaceWrapper

    env = DictObservationSpaceWrapper(gym.make("BabyAI-GoToLocalS6N2-v0"))
    assert isinstance(env.observation_space["mission"], spaces.MultiDiscrete)
    model = PPO(
        "MultiInputPolicy",
        env,
        n_steps=32,
        batch_size=32,
        n_epochs=1,
        seed=0,
        policy_kwargs=dict(
            features_extractor_class=MiniGridExtractor,
            features_extractor_kwargs=dict(features_dim=16),
            normalize_images=False,
        ),
    )
    model.learn(64)
    assert model.policy.features_extractor.mission_embedding is not None
