"""Seed-batched layers: ``S`` independent copies of a linear map, a convolution and the MiniGrid features extractor.

Every parameter has a leading seed dimension ``S`` and the same name and trailing shape as in the ordinary module it
stands for (``weight [S, out, in]`` for ``nn.Linear``'s ``weight [out, in]``), so that ``S`` ordinary modules'
parameters stack into it (:mod:`metarim_sb3.seed_batch.stacking`). Inputs and outputs carry the seed dimension
first, ``[S, B, ...]``; seed ``s`` of the output depends only on seed ``s`` of the input and of the parameters.
The computation is native over seeds (one ``baddbmm`` for all seeds' linear maps, one grouped convolution for all
seeds' convolutions), not ``vmap``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarim_sb3.torch_layers import MiniGridExtractor

__all__ = ["SeedConv2d", "SeedLinear", "SeedMiniGridExtractor", "SeedSequential"]


class SeedLinear(nn.Module):
    """``S`` independent ``nn.Linear`` maps: ``y[s] = x[s] @ weight[s].T + bias[s]``.

    Parameters are allocated uninitialised: load them from ordinary modules
    (:func:`~metarim_sb3.seed_batch.stacking.stack_into`).

    :param n_seeds: ``S``.
    :param in_features: input features of each map.
    :param out_features: output features of each map.
    :param bias: whether the maps have a bias.
    """

    def __init__(self, n_seeds: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.n_seeds, self.in_features, self.out_features = n_seeds, in_features, out_features
        self.weight = nn.Parameter(torch.empty(n_seeds, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(n_seeds, out_features)) if bias else None

    @classmethod
    def like(cls, linear: nn.Linear, n_seeds: int) -> SeedLinear:
        """A seed-batched map of ``linear``'s sizes (weights not copied).

        :param linear: the ordinary map.
        :param n_seeds: ``S``.
        :return: the new module, on ``linear``'s device.
        """
        out = cls(n_seeds, linear.in_features, linear.out_features, linear.bias is not None)
        return out.to(linear.weight.device)

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``[S, B, in_features]``.
        :return: ``[S, B, out_features]``."""
        if self.bias is None:
            return torch.bmm(x, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def extra_repr(self) -> str:
        return f"n_seeds={self.n_seeds}, {self.in_features} -> {self.out_features}, bias={self.bias is not None}"


class SeedConv2d(nn.Module):
    """``S`` independent ``nn.Conv2d`` (no padding, no dilation) as one grouped convolution.

    Inputs and outputs are laid out seed-major along channels, ``[B, S * C, H, W]`` (the layout a grouped
    convolution reads), which is what stacking convolutions needs; ``weight`` is ``[S, out, in, kh, kw]``.

    :param conv: an ordinary convolution giving the sizes (``groups=1``, ``padding=0``, ``dilation=1``).
    :param n_seeds: ``S``.
    """

    def __init__(self, conv: nn.Conv2d, n_seeds: int) -> None:
        super().__init__()
        if conv.groups != 1 or conv.padding not in (0, (0, 0)) or conv.dilation != (1, 1):
            raise ValueError(f"SeedConv2d supports groups=1, padding=0, dilation=1 only, got {conv}")
        self.n_seeds, self.stride = n_seeds, conv.stride
        device = conv.weight.device
        self.weight = nn.Parameter(torch.empty(n_seeds, *conv.weight.shape, device=device))
        self.bias = (
            nn.Parameter(torch.empty(n_seeds, conv.out_channels, device=device)) if conv.bias is not None else None
        )

    def forward(self, x: Tensor) -> Tensor:
        """:param x: ``[B, S * in, H, W]``.
        :return: ``[B, S * out, H', W']``."""
        w = self.weight.reshape(-1, *self.weight.shape[2:])
        b = None if self.bias is None else self.bias.reshape(-1)
        return F.conv2d(x, w, b, self.stride, groups=self.n_seeds)


class SeedSequential(nn.Sequential):
    """A seed-batched copy of an ``nn.Sequential`` of ``nn.Linear`` and parameter-free layers (SB3's MLPs).

    Linear layers become :class:`SeedLinear` at the same index (so parameter names match); parameter-free layers
    (activations) are copied. Input and output ``[S, B, features]``.

    :param seq: the ordinary MLP.
    :param n_seeds: ``S``.
    """

    def __init__(self, seq: nn.Sequential, n_seeds: int) -> None:
        layers: list[nn.Module] = []
        for layer in seq:
            if isinstance(layer, nn.Linear):
                layers.append(SeedLinear.like(layer, n_seeds))
            elif next(layer.parameters(), None) is None:
                layers.append(copy.deepcopy(layer))
            else:
                raise TypeError(f"SeedSequential: cannot seed-batch {type(layer).__name__} (Linear or parameter-free)")
        super().__init__(*layers)


class SeedMiniGridExtractor(nn.Module):
    """:class:`~metarim_sb3.torch_layers.MiniGridExtractor` for ``S`` seeds at once (same sizes, same names).

    :param template: an ordinary extractor giving the sizes and the observation layout (its weights are not copied).
    :param n_seeds: ``S``.
    """

    offsets: Tensor
    slot_to_token: Tensor

    def __init__(self, template: MiniGridExtractor, n_seeds: int) -> None:
        super().__init__()
        self.n_seeds = n_seeds
        self.features_dim = template.features_dim
        self._channels_first = template._channels_first
        self._n_planes = template._n_planes
        self._n_direction = template._n_direction
        self._vocab_size = template._vocab_size
        self._mission_one_hot = template._mission_one_hot
        self.register_buffer("offsets", template.offsets.clone(), persistent=False)
        if self._mission_one_hot:
            self.register_buffer("slot_to_token", template.slot_to_token.clone(), persistent=False)
        conv1, conv2 = template.cnn[0], template.cnn[2]
        assert isinstance(conv1, nn.Conv2d) and isinstance(conv2, nn.Conv2d)
        self.cnn = nn.Sequential(SeedConv2d(conv1, n_seeds), nn.ReLU(), SeedConv2d(conv2, n_seeds), nn.ReLU())
        self.mission_embedding = (
            None if template.mission_embedding is None else SeedLinear.like(template.mission_embedding, n_seeds)
        )
        self.linear = SeedSequential(template.linear, n_seeds)

    def _one_hot_image(self, image: Tensor) -> Tensor:
        """``[S * B, H, W, C]`` (or channels first) indices -> ``[B, S * planes, H, W]`` one-hot planes."""
        if not self._channels_first:
            image = image.permute(0, 3, 1, 2)
        index = image.long() + self.offsets
        sb, _, height, width = index.shape
        b = sb // self.n_seeds
        planes = torch.zeros(b, self.n_seeds, self._n_planes, height, width, dtype=torch.float32, device=index.device)
        planes.scatter_(2, index.view(self.n_seeds, b, -1, height, width).transpose(0, 1), 1.0)
        return planes.view(b, self.n_seeds * self._n_planes, height, width)

    def _mission_counts(self, mission: Tensor) -> Tensor:
        """Normalised token counts ``[S * B, vocab]``, as :class:`MiniGridExtractor` computes them."""
        if self._mission_one_hot:
            counts = mission.reshape(mission.shape[0], -1) @ self.slot_to_token
        else:
            tokens = mission.long()
            counts = torch.zeros(tokens.shape[0], self._vocab_size, dtype=torch.float32, device=tokens.device)
            counts.scatter_add_(1, tokens, (tokens > 0).float())
        return counts / counts.sum(dim=1, keepdim=True).clamp_(min=1.0)

    def forward(self, observations: Tensor | dict[str, Tensor]) -> Tensor:
        """:param observations: preprocessed observations (SB3's ``preprocess_obs``), seed-major ``[S * B, ...]``.
        :return: features ``[S, B, features_dim]``."""
        s = self.n_seeds
        image = observations["image"] if isinstance(observations, dict) else observations
        planes = self._one_hot_image(image)
        b = planes.shape[0]
        parts = [self.cnn(planes).reshape(b, s, -1).transpose(0, 1)]
        if isinstance(observations, dict):
            if self._n_direction:
                parts.append(observations["direction"].reshape(s, b, self._n_direction))
            if self.mission_embedding is not None:
                parts.append(self.mission_embedding(self._mission_counts(observations["mission"]).view(s, b, -1)))
        return self.linear(torch.cat(parts, dim=2))
