"""Move weights between ``S`` ordinary modules and one seed-batched module.

A seed-batched module of this package names its parameters as the ordinary module does and shapes them
``[S, *shape]``: seed ``s``'s slice is the ordinary parameter of the same name. :func:`stack_into` copies ``S``
ordinary modules into a batched one, :func:`unstack_into` copies seed ``s`` back out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["check_names", "stack_into", "stack_state_dicts", "unstack_into", "unstack_state_dict"]


def _params(module: nn.Module) -> dict[str, nn.Parameter]:
    return dict(module.named_parameters())


def check_names(batched: nn.Module, module: nn.Module) -> None:
    """Check that ``batched`` has exactly ``module``'s parameters, each with a leading seed dimension.

    :param batched: the seed-batched module.
    :param module: one ordinary module.
    :raises ValueError: naming the parameters that differ.
    """
    _check_params(_params(batched), _params(module))


def _check_params(ours: dict[str, nn.Parameter], theirs: dict[str, nn.Parameter]) -> None:
    """Check the parameters as :func:`check_names` does, from the modules' parameter dicts (read once by callers
    that check many modules).

    :param ours: the seed-batched module's parameters by name.
    :param theirs: one ordinary module's parameters by name.
    :raises ValueError: naming the parameters that differ.
    """
    missing, extra = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
    if missing or extra:
        raise ValueError(f"parameter names differ: missing in the batched module {missing}, extra {extra}")
    bad = [n for n, p in ours.items() if tuple(p.shape[1:]) != tuple(theirs[n].shape)]
    if bad:
        raise ValueError(f"parameter shapes differ (batched [S, *shape] vs shape): {bad}")


def stack_state_dicts(state_dicts: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Stack equal-keyed state dicts along a new leading dimension.

    :param state_dicts: ``S`` state dicts with the same keys and shapes.
    :return: ``{key: tensor [S, *shape]}``.
    """
    keys = list(state_dicts[0])
    if any(list(sd) != keys for sd in state_dicts):
        raise ValueError("stack_state_dicts: the state dicts have different keys")
    return {k: torch.stack([sd[k] for sd in state_dicts]) for k in keys}


def unstack_state_dict(state: dict[str, Tensor], seed: int) -> dict[str, Tensor]:
    """Seed ``seed``'s slice of a stacked state dict (copies).

    :param state: ``{key: tensor [S, *shape]}``.
    :param seed: the index ``s`` in ``0 .. S-1``.
    :return: ``{key: tensor [*shape]}``.
    """
    return {k: v[seed].clone() for k, v in state.items()}


def stack_into(batched: nn.Module, modules: Sequence[nn.Module]) -> None:
    """Copy ``S`` ordinary modules' parameters into the seed-batched module (seed ``s`` from ``modules[s]``).

    :param batched: the seed-batched module (parameters ``[S, *shape]``).
    :param modules: ``S`` ordinary modules with the same parameter names.
    """
    ours = _params(batched)
    theirs = [_params(module) for module in modules]
    for params in theirs:
        _check_params(ours, params)
    with torch.no_grad():
        for s, params in enumerate(theirs):
            for name, p in params.items():
                if ours[name].shape[0] != len(modules):
                    raise ValueError(f"{name} holds {ours[name].shape[0]} seeds, {len(modules)} modules given")
                ours[name][s].copy_(p)


def unstack_into(batched: nn.Module, modules: Sequence[nn.Module]) -> None:
    """Copy seed ``s`` of the batched module's parameters into ``modules[s]``, for each ``s``.

    :param batched: the seed-batched module.
    :param modules: ``S`` ordinary modules with the same parameter names.
    """
    ours = _params(batched)
    theirs = [_params(module) for module in modules]
    for params in theirs:  # every module checked before any is written
        _check_params(ours, params)
    with torch.no_grad():
        for s, params in enumerate(theirs):
            for name, p in params.items():
                p.copy_(ours[name][s])
