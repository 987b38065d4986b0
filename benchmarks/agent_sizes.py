"""The recurrent-core sizes of the agents, read from ``presets/agents.yaml`` (the one place they are defined), so
that the training benchmarks time the networks the agents train instead of sizes of their own."""

from __future__ import annotations

from metarim_sb3.experiments.training.config import resolve_config

#: Any MetaRIM id: the agents' core sizes do not depend on the environment.
_ENV = "MetaRIM-MultiRoom-v0"


def rim_sizes() -> dict[str, int]:
    """:return: the ``meta-rim`` agent's RIM sizes: ``n_units``, ``unit_size`` and ``k``."""
    kwargs = resolve_config("meta-rim", _ENV).policy_kwargs
    return {key: int(kwargs[key]) for key in ("n_units", "unit_size", "k")}  # type: ignore[arg-type]


def lstm_hidden_size() -> int:
    """:return: the ``lstm`` agent's hidden size (the GRU agent's too: the RIM agents' total state)."""
    return int(resolve_config("lstm", _ENV).policy_kwargs["lstm_hidden_size"])  # type: ignore[arg-type]
