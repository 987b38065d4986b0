"""Presets and resolved run configurations: YAML layers in, one checked
:class:`~metarim_sb3.experiments.training.run_config.RunConfig` out.

A run's configuration is built in layers, each a nested mapping merged over the previous one (RL Zoo style):

1. ``presets/common.yaml``: ``default``, then the entry of the environment id (if any);
2. ``presets/agents.yaml``: the agent's ``default``, then its entry for the environment id (if any);
3. a user file (``--config FILE``) and ``--set key=value`` overrides (dotted keys, values parsed as YAML).

Layer 3 may only change keys that layers 1-2 define (a typo fails instead of being silently ignored), except
inside the free-form mappings :data:`OPEN_KEYS`. Values keep the type of the value they replace (an ``int`` may
replace a ``float``). Files are read with ``yaml.safe_load``, within bounds
(:mod:`~metarim_sb3.experiments.training.yaml_io`): nothing in them is evaluated. The grid presets of
``presets/compare.yaml`` are :mod:`metarim_sb3.experiments.grid.presets`. The merged mapping becomes a
:class:`~metarim_sb3.experiments.training.run_config.RunConfig`, which refuses unknown keys and bad values and
fills what no layer sets from the signatures of the constructors each section feeds.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from metarim_sb3.experiments.training.yaml_io import (
    ConfigError,
    YamlTree,
    YamlValue,
    load_yaml,
    safe_yaml,
    short_repr,
)

if TYPE_CHECKING:  # imported where used: the classes' defaults come from torch-based signatures (--help stays light)
    from metarim_sb3.experiments.training.run_config import RunConfig

__all__ = [
    "AGENTS",
    "OPEN_KEYS",
    "RIM_AGENTS",
    "agent_names",
    "apply_overrides",
    "check_device",
    "check_seed",
    "env_ids",
    "merge",
    "parse_set",
    "resolve_config",
    "rim_agent_names",
    "schedule_name",
    "short_repr",
]


#: Mappings whose keys are free (passed through to a constructor): any key may be added below them.
OPEN_KEYS = ("policy_kwargs", "env_kwargs")


def _section(tree: YamlTree, key: str) -> YamlTree:
    """:return: ``tree[key]`` if it is a mapping, else an empty one (a preset without an entry for the env)."""
    value = tree.get(key)
    return value if isinstance(value, dict) else {}


def agent_names(presets: YamlTree) -> tuple[str, ...]:
    """
    :param presets: the mapping of ``presets/agents.yaml`` (or a file of the same form).
    :return: its agents (top-level keys), in file order: the display order of every list of agents.
    :raises ConfigError: if a key is not a string or an entry is not a mapping.
    """
    for name, entry in presets.items():
        if not isinstance(name, str) or not isinstance(entry, Mapping):
            raise ConfigError(f"agent presets: each agent must be a name with a mapping, got {short_repr(name)}")
    return tuple(presets)


def rim_agent_names(presets: YamlTree) -> tuple[str, ...]:
    """
    :param presets: the mapping of ``presets/agents.yaml`` (or a file of the same form).
    :return: the agents whose ``default.policy`` is a RIM policy (a name ending in ``RIMPolicy``), in file order.
    """
    return tuple(
        name
        for name in agent_names(presets)
        if str(_section(_section(presets, name), "default").get("policy", "")).endswith("RIMPolicy")
    )


_AGENT_PRESETS = load_yaml(preset="agents.yaml")
#: The agents defined in ``presets/agents.yaml``, in its order (the display order): read from the file once, the
#: one list of agents (the CLI's choices, the grid's names, the report's order).
AGENTS: tuple[str, ...] = agent_names(_AGENT_PRESETS)
#: The agents of :data:`AGENTS` with a RIM core (their ``policy`` is a ``*RIMPolicy``), in the same order.
RIM_AGENTS: tuple[str, ...] = rim_agent_names(_AGENT_PRESETS)


def env_ids() -> tuple[str, ...]:
    """:return: the environment ids the command accepts (every registered MetaRIM id)."""
    from metarim_gym import ENV_IDS

    return tuple(ENV_IDS)


def _coerce(key: str, old: YamlValue, new: YamlValue) -> YamlValue:
    """Give ``new`` the type of ``old`` where that is lossless; refuse a change of kind."""
    if old is None or new is None:
        return new
    if isinstance(old, bool):
        if isinstance(new, bool):
            return new
        raise ConfigError(f"config key {key}: expected true or false, got {short_repr(new)}")
    if isinstance(old, (int, float)):
        if isinstance(new, str):  # YAML 1.1 reads "3e-4" as a string
            try:
                new = float(new) if not new.strip().lstrip("+-").isdigit() else int(new)
            except ValueError:
                raise ConfigError(f"config key {key}: expected a number, got {short_repr(new)}") from None
        if isinstance(new, bool) or not isinstance(new, (int, float)):
            raise ConfigError(f"config key {key}: expected a number, got {short_repr(new)}")
        if isinstance(old, float):
            new = float(new)
            if not math.isfinite(new):
                raise ConfigError(f"config key {key}: expected a finite number, got {new!r}")
        elif isinstance(new, float):
            if not new.is_integer():
                raise ConfigError(f"config key {key}: expected an integer, got {new!r}")
            new = int(new)
        return new
    if isinstance(old, str) and not isinstance(new, str):
        raise ConfigError(f"config key {key}: expected a string, got {short_repr(new)}")
    if isinstance(old, dict) and not isinstance(new, dict):
        raise ConfigError(f"config key {key}: expected a mapping, got {short_repr(new)}")
    if isinstance(old, list) and not isinstance(new, list):
        raise ConfigError(f"config key {key}: expected a list, got {short_repr(new)}")
    return new


def merge(base: YamlTree, update: Mapping[str, YamlValue], *, strict: bool = False, prefix: str = "") -> YamlTree:
    """
    Deep-merge ``update`` into a copy of ``base``.

    :param base: the lower layer.
    :param update: the upper layer (mappings merge key by key; anything else replaces).
    :param strict: refuse keys that ``base`` does not have (outside :data:`OPEN_KEYS`) and changes of type.
    :param prefix: dotted path of ``base`` (for messages).
    :return: the merged mapping.
    :raises ConfigError: in strict mode, on an unknown key or a value of the wrong kind.
    """
    out = copy.deepcopy(base)
    for key, value in update.items():
        if not isinstance(key, str):
            raise ConfigError(f"config keys must be strings, got {short_repr(key)} under {prefix or 'the top level'}")
        path = f"{prefix}{key}"
        open_here = strict and any(path == k or path.startswith(f"{k}.") for k in OPEN_KEYS)
        if strict and key not in out and not open_here and not _under_open(prefix):
            allowed = ", ".join(sorted(out)) or "(none)"
            raise ConfigError(
                f"unknown config key {path!r}; allowed keys{' under ' + prefix[:-1] if prefix else ''}: {allowed}"
            )
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            out[key] = merge(old, value, strict=strict, prefix=f"{path}.")
        else:
            out[key] = _coerce(path, old, copy.deepcopy(value)) if strict and key in out else copy.deepcopy(value)
    return out


def _under_open(prefix: str) -> bool:
    return any(prefix.startswith(f"{k}.") for k in OPEN_KEYS)


def parse_set(items: list[str] | None) -> YamlTree:
    """
    Turn ``--set key.sub=value`` strings into a nested mapping; values are parsed as YAML (``3``, ``0.5``,
    ``true``, ``[64, 64]``, ``{a: 1}``), anything unparsable stays a string.

    :param items: the ``key=value`` strings.
    :return: the nested mapping.
    :raises ConfigError: on a string without ``=`` or with an empty key, or a value beyond the bounds of
        :func:`~metarim_sb3.experiments.training.yaml_io.safe_yaml`.
    """
    out: YamlTree = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set expects key=value with a dotted key (e.g. ppo.learning_rate=3e-4), got {item!r}")
        try:
            value = safe_yaml(raw, f"--set {key}") if raw.strip() else ""
        except ConfigError as err:
            if isinstance(err.__context__, yaml.YAMLError) or "not valid YAML" in str(err):
                value = raw  # not YAML: a plain string
            else:
                raise  # a bound exceeded (depth, size, aliases)
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r} conflicts with another --set of {part!r}")
            node = child
        node[parts[-1]] = value
    return out


def apply_overrides(config: RunConfig | YamlTree, *layers: Mapping[str, YamlValue] | None) -> RunConfig:
    """
    Apply user layers (config file contents, ``--set`` mappings) to a resolved config, strictly.

    :param config: the resolved config (or its mapping: the merged presets, a ``config.yaml``).
    :param layers: mappings to merge in order (``None`` skipped).
    :return: the new config, checked (:class:`~metarim_sb3.experiments.training.run_config.RunConfig`).
    :raises ConfigError: on an unknown key, a value of the wrong kind or out of bounds, an unknown env or policy.
    """
    from metarim_sb3.experiments.training.run_config import RunConfig

    tree = config.to_dict() if isinstance(config, RunConfig) else config
    for layer in layers:
        if layer:
            tree = merge(tree, layer, strict=True)
    _apply_critic(tree)
    return RunConfig.from_mapping(tree)


def _apply_critic(config: YamlTree) -> None:
    """
    Set the ``policy_kwargs`` of the config's ``critic`` (in place); the ``critic`` key wins over them. A config
    without the key (a run folder saved before it existed) keeps its ``policy_kwargs`` as they are.
    """
    from metarim_sb3.experiments.training.run_config import CRITICS

    critic = config.get("critic")
    if critic is None:
        return
    if critic not in CRITICS:
        raise ConfigError(f"config key critic must be one of {', '.join(CRITICS)}, got {critic!r}")
    kwargs = config.get("policy_kwargs")
    config["policy_kwargs"] = {**(kwargs if isinstance(kwargs, dict) else {}), **CRITICS[str(critic)]}


def check_device(device: str) -> str:
    """
    :param device: a config's ``device`` (checked by the config: one of
        :data:`~metarim_sb3.experiments.training.run_config.DEVICES` or ``cuda:N``).
    :return: the device, if this machine has it (``auto`` and ``cpu`` always pass).
    :raises ConfigError: naming the device if it is not available here (no CUDA GPU, no such GPU index, no MPS).
    """
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device[5:]) if device.startswith("cuda:") else 0
        if index >= count:
            have = f"GPUs 0..{count - 1} (cuda:0..cuda:{count - 1})" if count else "no CUDA GPU"
            raise ConfigError(f"config key device {device} is not available: this machine has {have}; use cpu")
    elif device == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("config key device mps is not available on this machine (no Apple GPU); use cpu")
    return device


def check_seed(seed: object) -> int:
    """
    :param seed: a run seed.
    :return: the seed.
    :raises ConfigError: unless ``0 <= seed < 2**32`` (what numpy and the environments accept).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer from 0 to {2**32 - 1}, got {seed!r}")
    return seed


def schedule_name(config: RunConfig) -> str:
    """
    :param config: a resolved config.
    :return: how the run's stages shift (:attr:`~metarim_sb3.experiments.training.run_config.RunConfig.schedule`).
    """
    return config.schedule


def resolve_config(
    agent: str,
    env: str,
    *,
    config_file: str | Path | None = None,
    overrides: Mapping[str, YamlValue] | None = None,
    timesteps: int | None = None,
) -> RunConfig:
    """
    The full configuration of one run: presets for ``agent`` on ``env``, then the user's layers.

    :param agent: one of :data:`AGENTS`.
    :param env: one of :func:`env_ids`.
    :param config_file: a YAML file of overrides (``--config``).
    :param overrides: a nested mapping of overrides (e.g. from :func:`parse_set`), applied after the file.
    :param timesteps: the training budget, if given (applied last).
    :return: the resolved, checked config (:meth:`RunConfig.to_dict` is the YAML-serialisable mapping).
    :raises ConfigError: on any bad name, file, key or value.
    """
    agents = load_yaml(preset="agents.yaml")
    if agent not in agents:
        raise ConfigError(f"unknown agent {agent!r}; allowed: {', '.join(a for a in AGENTS if a in agents)}")
    if env not in env_ids():
        raise ConfigError(f"unknown env {env!r}; allowed: {', '.join(env_ids())}")
    common = load_yaml(preset="common.yaml")
    config = merge({"agent": agent, "env": env}, _section(common, "default"))
    config = merge(config, _section(common, env))
    agent_presets = _section(agents, agent)
    config = merge(config, _section(agent_presets, "default"))
    config = merge(config, _section(agent_presets, env))
    file_layer = load_yaml(config_file) if config_file is not None else None
    for layer, name in ((file_layer, "--config"), (overrides, "--set")):
        if layer and ("agent" in layer or "env" in layer):
            raise ConfigError(f"{name} may not change agent or env; use --agent / --env")
    top = {"timesteps": timesteps} if timesteps is not None else None
    return apply_overrides(config, file_layer, overrides, top)
