"""Features extractors for MiniGrid-style observations (the MetaRIM observation space)."""

from __future__ import annotations

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

ALLOWED_SPACES = (
    "a Dict with an 'image' Box of non-negative integer cell indices, shape (H, W, C) or (C, H, W), and optionally "
    "'direction' (Discrete) and 'mission' (1-D Box of non-negative integer token ids, or MultiDiscrete as from "
    "minigrid's DictObservationSpaceWrapper; 0 = padding); or such an image Box alone (e.g. minigrid's ImgObsWrapper)"
)


def _check_index_box(space: spaces.Space, name: str, ndim: int) -> spaces.Box:
    ok = (
        isinstance(space, spaces.Box)
        and len(space.shape) == ndim
        and np.issubdtype(space.dtype, np.integer)
        and bool(np.all(space.low >= 0))
        and bool(np.all(np.isfinite(space.high)))
    )
    if not ok:
        raise ValueError(
            f"MiniGridExtractor: observation_space {name} must be a {ndim}-D Box of non-negative integer indices "
            f"with finite bounds, got {space}; allowed: {ALLOWED_SPACES}"
        )
    assert isinstance(space, spaces.Box)
    return space


def is_minigrid_space(observation_space: spaces.Space) -> bool:
    """
    Whether :class:`MiniGridExtractor` accepts this observation space.

    :param observation_space: The observation space.
    :return: ``True`` if the space is a MiniGrid-style Dict or image Box.
    """
    try:
        MiniGridExtractor.check_space(observation_space)
    except ValueError:
        return False
    return True


class MiniGridExtractor(BaseFeaturesExtractor):
    """
    Features extractor for MiniGrid's egocentric grid of (object, colour, state) indices, the agent's
    direction and a tokenised mission.

    * Image: every channel's index is one-hot encoded (sizes from the space's ``high + 1``; 11 + 6 + 3 = 20
      planes for MiniGrid), then two convolutions with ReLU: 3x3 stride 2 (7x7 -> 3x3) and 3x3 (-> 1x1).
      A convolution over one-hot planes is an embedding of each index followed by a convolution, in one
      kernel call, and its backward pass is a plain convolution backward (``nn.Embedding`` backward sorts
      indices, which costs more than the convolutions here). Channel-last ``(H, W, C)`` and channel-first
      ``(C, H, W)`` (after SB3's ``VecTransposeImage``) are both accepted: the smallest dimension is the
      channel one.
    * Direction (``Discrete``): SB3 passes it one-hot, which is used as is (equal to an embedding).
    * Mission (token ids, 0 = padding): mean of the token embeddings with padding excluded (a bag of words,
      computed as normalised token counts times an embedding matrix: enough for MiniGrid/BabyAI missions,
      and cheap). A ``MultiDiscrete`` mission (minigrid's ``DictObservationSpaceWrapper``) arrives one-hot per
      word slot after SB3's preprocessing; it is summed into the same token counts.
    * Concatenation -> ``Linear`` -> ReLU -> ``features_dim``.

    Indices arrive as floats after SB3's preprocessing and are cast back to integers. An image space
    declared as 0..255 ``uint8`` (e.g. ``ImgObsWrapper``) is an "image" for SB3, which divides it by
    255 when ``normalize_images=True``: use ``normalize_images=False`` with such spaces (the policies
    of this package do so by default).

    Paper: Chevalier-Boisvert et al., "Minigrid & Miniworld", arXiv 2306.13831 (observation format).
    Code: this module.

    :param observation_space: See :data:`ALLOWED_SPACES`.
    :param features_dim: Number of output features.
    :param cnn_channels: Output channels of the two convolutions.
    :param mission_embedding_dim: Size of the mission token embeddings (unused without a mission).
    """

    offsets: th.Tensor
    slot_to_token: th.Tensor

    def __init__(
        self,
        observation_space: spaces.Space,
        features_dim: int = 128,
        cnn_channels: tuple[int, int] = (32, 64),
        mission_embedding_dim: int = 32,
    ) -> None:
        image_space, direction_space, mission_space = self.check_space(observation_space)
        if len(cnn_channels) != 2:
            raise ValueError(f"MiniGridExtractor: cnn_channels must have 2 entries, got {cnn_channels!r}")
        for name, value in (
            ("features_dim", features_dim),
            ("mission_embedding_dim", mission_embedding_dim),
            *((f"cnn_channels[{i}]", c) for i, c in enumerate(cnn_channels)),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"MiniGridExtractor: {name} must be a positive integer, got {value!r}")
        super().__init__(observation_space, features_dim)
        shape = image_space.shape
        self._channels_first = int(np.argmin(shape)) == 0
        n_channels = shape[0] if self._channels_first else shape[2]
        height, width = (shape[1], shape[2]) if self._channels_first else (shape[0], shape[1])
        if height < 3 or width < 3:
            raise ValueError(f"MiniGridExtractor: observation_space image must be at least 3x3, got shape {shape}")
        # Channel j's index i is one-hot plane offsets[j] + i.
        high = image_space.high.reshape(n_channels, -1).T if self._channels_first else image_space.high
        sizes = high.reshape(-1, n_channels).max(axis=0).astype(np.int64) + 1
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.register_buffer("offsets", th.as_tensor(offsets, dtype=th.long).view(1, -1, 1, 1), persistent=False)
        self._n_planes = int(sizes.sum())
        c1, c2 = (int(c) for c in cnn_channels)
        h1, w1 = (height - 3) // 2 + 1, (width - 3) // 2 + 1
        self.cnn = nn.Sequential(
            nn.Conv2d(self._n_planes, c1, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(c1, c2, (min(3, h1), min(3, w1))),
            nn.ReLU(),
            nn.Flatten(),
        )
        n_flat = c2 * (h1 - min(3, h1) + 1) * (w1 - min(3, w1) + 1)
        self._n_direction = int(direction_space.n) if direction_space is not None else 0
        self._vocab_size = 0
        self.mission_embedding: nn.Linear | None = None
        self._mission_one_hot = isinstance(mission_space, spaces.MultiDiscrete)
        n_mission = 0
        if isinstance(mission_space, spaces.MultiDiscrete):
            nvec = mission_space.nvec.astype(np.int64)
            self._vocab_size = int(nvec.max())
            # one-hot position of (slot i, token t) -> column t; padding (t = 0) counts for nothing
            slot_to_token = np.zeros((int(nvec.sum()), self._vocab_size), dtype=np.float32)
            tokens = np.concatenate([np.arange(n) for n in nvec])
            slot_to_token[np.arange(tokens.size), tokens] = tokens > 0
            self.register_buffer("slot_to_token", th.as_tensor(slot_to_token), persistent=False)
            self.mission_embedding = nn.Linear(self._vocab_size, mission_embedding_dim, bias=False)
            n_mission = mission_embedding_dim
        elif mission_space is not None:
            self._vocab_size = int(mission_space.high.max()) + 1
            self.mission_embedding = nn.Linear(self._vocab_size, mission_embedding_dim, bias=False)
            n_mission = mission_embedding_dim
        self.linear = nn.Sequential(nn.Linear(n_flat + self._n_direction + n_mission, features_dim), nn.ReLU())

    @staticmethod
    def check_space(
        observation_space: spaces.Space,
    ) -> tuple[spaces.Box, spaces.Discrete | None, spaces.Box | spaces.MultiDiscrete | None]:
        """
        Validate an observation space.

        :param observation_space: The observation space.
        :return: The image space, and the direction and mission spaces (``None`` when absent).
        :raises ValueError: Naming ``observation_space`` and what is allowed.
        """
        if isinstance(observation_space, spaces.Box):
            return _check_index_box(observation_space, "(Box)", 3), None, None
        if not isinstance(observation_space, spaces.Dict) or "image" not in observation_space.spaces:
            raise ValueError(
                f"MiniGridExtractor: unsupported observation_space {observation_space}; allowed: {ALLOWED_SPACES}"
            )
        extra = sorted(set(observation_space.spaces) - {"image", "direction", "mission"})
        if extra:
            raise ValueError(
                f"MiniGridExtractor: observation_space has unsupported keys {extra}; allowed: {ALLOWED_SPACES}"
            )
        image = _check_index_box(observation_space["image"], "['image']", 3)
        direction = observation_space.spaces.get("direction")
        if direction is not None and not isinstance(direction, spaces.Discrete):
            raise ValueError(f"MiniGridExtractor: observation_space['direction'] must be Discrete, got {direction}")
        mission = observation_space.spaces.get("mission")
        if isinstance(mission, spaces.MultiDiscrete):
            if mission.nvec.ndim != 1 or bool(np.any(mission.start != 0)):
                raise ValueError(
                    f"MiniGridExtractor: a MultiDiscrete observation_space['mission'] must be 1-D and start at 0, "
                    f"got {mission}; allowed: {ALLOWED_SPACES}"
                )
        elif mission is not None:
            mission = _check_index_box(mission, "['mission']", 1)
        return image, direction, mission

    @staticmethod
    def has_pixel_bounds(observation_space: spaces.Space) -> bool:
        """
        Whether SB3 treats the image part of the space as an image (and would divide it by 255 when
        ``normalize_images=True``).

        :param observation_space: The observation space.
        :return: ``True`` if the image is a 0..255 ``uint8`` Box.
        """
        if isinstance(observation_space, spaces.Dict):
            image = observation_space.spaces.get("image")
            return image is not None and is_image_space(image)
        return is_image_space(observation_space)

    def _one_hot_image(self, image: th.Tensor) -> th.Tensor:
        if not self._channels_first:
            image = image.permute(0, 3, 1, 2)
        index = image.long() + self.offsets  # (B, C, H, W)
        batch, _, height, width = index.shape
        planes = th.zeros(batch, self._n_planes, height, width, dtype=th.float32, device=index.device)
        return planes.scatter_(1, index, 1.0)

    def _mission_features(self, mission: th.Tensor, embedding: nn.Linear) -> th.Tensor:
        if self._mission_one_hot:  # (B, sum(nvec)) one-hot slots -> token counts
            counts = mission.reshape(mission.shape[0], -1) @ self.slot_to_token
            return embedding(counts / counts.sum(dim=1, keepdim=True).clamp_(min=1.0))
        tokens = mission.long()
        counts = th.zeros(tokens.shape[0], self._vocab_size, dtype=th.float32, device=tokens.device)
        counts.scatter_add_(1, tokens, (tokens > 0).float())  # padding (id 0) counts for nothing
        return embedding(counts / counts.sum(dim=1, keepdim=True).clamp_(min=1.0))

    def forward(self, observations: th.Tensor | dict[str, th.Tensor]) -> th.Tensor:
        """
        :param observations: Preprocessed observations (SB3's ``preprocess_obs`` output).
        :return: Features, shape ``(batch, features_dim)``.
        """
        if not isinstance(observations, dict):
            return self.linear(self.cnn(self._one_hot_image(observations)))
        image = self.cnn(self._one_hot_image(observations["image"]))
        parts = [image]
        if self._n_direction:  # one-hot, (B, n) from a VecEnv or (B, 1, n) from SB3's Dict buffers
            parts.append(observations["direction"].reshape(image.shape[0], self._n_direction))
        if self.mission_embedding is not None:
            parts.append(self._mission_features(observations["mission"], self.mission_embedding))
        return self.linear(th.cat(parts, dim=1))
