"""Grid presets: a name from ``presets/compare.yaml`` or a YAML file with the same keys, checked into the agents,
envs, seeds, budgets and overrides of a grid (:func:`compare_preset`).

:func:`~metarim_sb3.experiments.grid.compare.plan` turns a preset into the run configs of its cells; a preset's
``claims`` are parsed by :func:`~metarim_sb3.experiments.reporting.claims.parse_claims`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from metarim_sb3.experiments.training.config import AGENTS, env_ids, short_repr
from metarim_sb3.experiments.training.yaml_io import ConfigError, YamlTree, load_yaml

if TYPE_CHECKING:
    from metarim_sb3.experiments.reporting.claims import Claims

__all__ = ["MAX_SEEDS", "GridPreset", "PresetVariant", "compare_preset", "compare_preset_names"]


#: Most seeds per agent and env of a grid (``compare --seeds`` and a preset's ``seeds``).
MAX_SEEDS = 1000


_VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class PresetVariant(TypedDict):
    """A named agent of a preset (its ``variants``): a preset agent with its own overrides."""

    #: The preset agent it is made from (one of :data:`~metarim_sb3.experiments.training.config.AGENTS`).
    agent: str
    #: A YAML override layer (a nested mapping, without ``agent`` or ``env``), applied to the variant's run
    #: configs before the grid's overrides.
    overrides: YamlTree


class GridPreset(TypedDict):
    """A checked grid preset (:func:`compare_preset`), every key present. It stays a plain ``dict`` at run time."""

    #: The preset's text (``""`` when it has none).
    description: str
    #: Agent names: preset agents and names of :attr:`variants`, without repeats.
    agents: list[str]
    #: Environment ids.
    envs: list[str]
    #: env -> number of seeds.
    seeds: dict[str, int]
    #: The first seed of every env: the seeds are ``first_seed, first_seed + 1, ...``.
    first_seed: int
    #: ``"env"``: the runs of one env after another; ``"seed"``: seed after seed across the envs.
    order: Literal["env", "seed"]
    #: env -> timesteps of each run.
    timesteps: dict[str, int]
    #: A YAML override layer (a nested mapping) applied to every run config.
    overrides: YamlTree
    #: env -> a YAML override layer applied to that env's runs after :attr:`overrides`.
    env_overrides: dict[str, YamlTree]
    #: name -> variant (empty without variants).
    variants: dict[str, PresetVariant]
    #: The paper's claims the report gives a verdict on, or ``None``.
    claims: Claims | None


def _check_variants(where: str, variants: object) -> dict[str, PresetVariant]:
    """
    :param where: the preset, for messages.
    :param variants: the preset's ``variants`` value.
    :return: ``{name: {"agent": preset agent, "overrides": mapping}}``.
    :raises ConfigError: on a bad name, base agent or overrides.
    """
    if not isinstance(variants, dict):
        raise ConfigError(f"preset {where}: variants must be a mapping name -> {{agent, overrides}}")
    out: dict[str, PresetVariant] = {}
    for name, spec in variants.items():
        if not isinstance(name, str) or not _VARIANT_NAME.fullmatch(name) or name in AGENTS:
            raise ConfigError(
                f"preset {where}: variant name {name!r} must be letters, digits, '.', '_' or '-' and not an agent's"
            )
        if not isinstance(spec, dict) or set(spec) - {"agent", "overrides"} or spec.get("agent") not in AGENTS:
            raise ConfigError(
                f"preset {where}: variant {name} must be {{agent: one of {', '.join(AGENTS)}, overrides: mapping}}"
            )
        overrides = spec.get("overrides") or {}
        if not isinstance(overrides, dict) or "agent" in overrides or "env" in overrides:
            raise ConfigError(f"preset {where}: variant {name}: overrides must be a mapping without agent or env")
        out[name] = {"agent": spec["agent"], "overrides": overrides}
    return out


def compare_preset_names() -> tuple[str, ...]:
    """:return: the names of the grid presets in ``presets/compare.yaml``."""
    return tuple(load_yaml(preset="compare.yaml"))


def compare_preset(name_or_path: str) -> GridPreset:
    """
    A grid preset: a name from ``presets/compare.yaml`` or a YAML file with the same keys.

    Keys: ``agents`` (list), ``envs`` (list), ``seeds`` and ``timesteps`` (each an int, or a mapping env -> int),
    ``first_seed`` (the seeds are ``first_seed, first_seed + 1, ...``; default 0), ``order`` (``env``: the runs of
    one env after another, the default; ``seed``: seed after seed across the envs, so a grid stopped part-way
    leaves whole seeds of every env),
    ``overrides`` (a nested mapping applied to every run config), ``env_overrides`` (env -> a nested mapping applied
    to that env's runs after ``overrides``), ``description`` (text), and ``variants``: named
    agents made from a preset agent and overrides, ``{name: {agent: meta-rim, overrides: {...}}}``, usable in
    ``agents`` like the preset agents (a sweep over an agent's settings is a grid of variants). ``claims``: the
    paper's claims the report gives a verdict on (:mod:`~metarim_sb3.experiments.reporting.claims`).

    :param name_or_path: the preset name or a file path.
    :return: the preset with every key present (:class:`GridPreset`); ``seeds`` and ``timesteps`` as mappings
        env -> int; ``claims`` a :class:`~metarim_sb3.experiments.reporting.claims.Claims` or ``None``.
    :raises ConfigError: on an unknown name, a bad file (or a preset that is not a mapping) or a bad value.
    """
    names = compare_preset_names()
    loaded: object
    if name_or_path in names:
        loaded = load_yaml(preset="compare.yaml")[name_or_path]
    elif name_or_path.endswith((".yaml", ".yml")) or Path(name_or_path).is_file():
        loaded = load_yaml(name_or_path)
    else:
        raise ConfigError(f"unknown preset {name_or_path!r}; allowed: {', '.join(names)} or a YAML file")
    if not isinstance(loaded, dict):
        raise ConfigError(f"preset {name_or_path} must be a mapping")
    preset: dict[str, object] = loaded
    allowed = {"description", "agents", "envs", "seeds", "first_seed", "order", "timesteps", "overrides", "variants"}
    allowed |= {"claims", "env_overrides"}
    unknown = sorted(set(preset) - allowed)
    if unknown:
        raise ConfigError(f"preset {name_or_path}: unknown keys {unknown}; allowed: {', '.join(sorted(allowed))}")
    agents = _non_empty_list(name_or_path, "agents", preset.get("agents"))
    envs = _non_empty_list(name_or_path, "envs", preset.get("envs"))
    variants = _check_variants(name_or_path, preset.get("variants") or {})
    bad_agents = [a for a in agents if a not in AGENTS and a not in variants]
    if bad_agents:
        allowed_agents = ", ".join((*AGENTS, *variants))
        raise ConfigError(f"preset {name_or_path}: unknown agents {bad_agents}; allowed: {allowed_agents}")
    if len(set(agents)) != len(agents):
        raise ConfigError(f"preset {name_or_path}: agents must not repeat, got {agents}")
    bad_envs = [e for e in envs if e not in env_ids()]
    if bad_envs:
        raise ConfigError(f"preset {name_or_path}: unknown envs {bad_envs}; allowed: {', '.join(env_ids())}")
    seeds = _per_env_ints(preset.get("seeds"), envs, 1, MAX_SEEDS)
    if seeds is None:
        raise ConfigError(
            f"preset {name_or_path}: seeds must be a positive integer or a mapping env -> integer, each from 1 to "
            f"{MAX_SEEDS}, got {short_repr(preset.get('seeds'))}"
        )
    first = preset.get("first_seed", 0)
    if isinstance(first, bool) or not isinstance(first, int) or not 0 <= first < 2**31:
        raise ConfigError(f"preset {name_or_path}: first_seed must be an integer from 0 to {2**31 - 1}, got {first!r}")
    order = preset.get("order", "env")
    if order not in ("env", "seed"):
        raise ConfigError(f"preset {name_or_path}: order must be env or seed, got {order!r}")
    timesteps = _per_env_ints(preset.get("timesteps"), envs, 1, None)
    if timesteps is None:
        raise ConfigError(f"preset {name_or_path}: timesteps must be a positive integer or a mapping env -> integer")
    overrides = preset.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"preset {name_or_path}: overrides must be a mapping")
    env_overrides = preset.get("env_overrides") or {}
    if not isinstance(env_overrides, dict) or any(
        e not in envs or not isinstance(v, dict) for e, v in env_overrides.items()
    ):
        raise ConfigError(f"preset {name_or_path}: env_overrides must map envs of the preset to mappings")
    claims = None
    if preset.get("claims") is not None:
        from metarim_sb3.experiments.reporting.claims import parse_claims

        try:
            claims = parse_claims(preset["claims"], agents, f"preset {name_or_path}")
        except ValueError as err:
            raise ConfigError(str(err)) from None
    description = preset.get("description")
    return {
        "description": "" if description is None else str(description),
        "agents": agents,
        "envs": envs,
        "seeds": seeds,
        "first_seed": first,
        "order": order,
        "timesteps": timesteps,
        "overrides": overrides,
        "env_overrides": env_overrides,
        "variants": variants,
        "claims": claims,
    }


def _non_empty_list(where: str, key: str, value: object) -> list[str]:
    """
    :param where: the preset, for messages.
    :param key: ``agents`` or ``envs``.
    :param value: the preset's value of ``key``.
    :return: ``value``, a non-empty list (the caller checks its items: names of agents or envs).
    :raises ConfigError: if it is not.
    """
    if not isinstance(value, list) or not value:
        raise ConfigError(f"preset {where}: {key} must be a non-empty list")
    return value


def _per_env_ints(value: object, envs: list[str], low: int, high: int | None) -> dict[str, int] | None:
    """
    :param value: a preset's ``seeds`` or ``timesteps``: an integer for every env, or a mapping env -> integer.
    :param envs: the preset's envs.
    :param low: the smallest value allowed.
    :param high: the largest value allowed (``None``: no limit).
    :return: env -> integer for each of ``envs``, or ``None`` if one is missing, not an integer (a bool is not) or
        out of bounds.
    """
    per_env = value if isinstance(value, dict) else dict.fromkeys(envs, value)
    out: dict[str, int] = {}
    for env in envs:
        v = per_env.get(env)
        if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v > high):
            return None
        out[env] = v
    return out
