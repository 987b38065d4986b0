"""Grid presets: a name from ``presets/compare.yaml`` or a YAML file with the same keys, checked into the agents,
envs, seeds, budgets and overrides of a grid (:func:`compare_preset`).

:func:`~metarim_sb3.experiments.grid.compare.plan` turns a preset into the run configs of its cells; a preset's
``claims`` are parsed by :func:`~metarim_sb3.experiments.reporting.claims.parse_claims`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from metarim_sb3.experiments.training.config import AGENTS, env_ids, short_repr
from metarim_sb3.experiments.training.yaml_io import ConfigError, load_yaml

__all__ = ["MAX_SEEDS", "compare_preset", "compare_preset_names"]


#: Most seeds per agent and env of a grid (``compare --seeds`` and a preset's ``seeds``).
MAX_SEEDS = 1000


_VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_variants(where: str, variants: object) -> dict[str, dict[str, Any]]:
    """
    :param where: the preset, for messages.
    :param variants: the preset's ``variants`` value.
    :return: ``{name: {"agent": preset agent, "overrides": mapping}}``.
    :raises ConfigError: on a bad name, base agent or overrides.
    """
    if not isinstance(variants, dict):
        raise ConfigError(f"preset {where}: variants must be a mapping name -> {{agent, overrides}}")
    out: dict[str, dict[str, Any]] = {}
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


def compare_preset(name_or_path: str) -> dict[str, Any]:
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
    :return: the preset with every key present; ``seeds`` and ``timesteps`` as mappings env -> int; ``claims`` a
        :class:`~metarim_sb3.experiments.reporting.claims.Claims` or ``None``.
    :raises ConfigError: on an unknown name, a bad file or a bad value.
    """
    names = compare_preset_names()
    if name_or_path in names:
        preset = load_yaml(preset="compare.yaml")[name_or_path]
    elif name_or_path.endswith((".yaml", ".yml")) or Path(name_or_path).is_file():
        preset = load_yaml(name_or_path)
    else:
        raise ConfigError(f"unknown preset {name_or_path!r}; allowed: {', '.join(names)} or a YAML file")
    allowed = {"description", "agents", "envs", "seeds", "first_seed", "order", "timesteps", "overrides", "variants"}
    allowed |= {"claims", "env_overrides"}
    unknown = sorted(set(preset) - allowed)
    if unknown:
        raise ConfigError(f"preset {name_or_path}: unknown keys {unknown}; allowed: {', '.join(sorted(allowed))}")
    out: dict[str, Any] = {"description": "", "overrides": {}, **preset}
    for key in ("agents", "envs"):
        if not isinstance(out.get(key), list) or not out[key]:
            raise ConfigError(f"preset {name_or_path}: {key} must be a non-empty list")
    out["variants"] = _check_variants(name_or_path, out.get("variants") or {})
    bad_agents = [a for a in out["agents"] if a not in AGENTS and a not in out["variants"]]
    if bad_agents:
        allowed_agents = ", ".join((*AGENTS, *out["variants"]))
        raise ConfigError(f"preset {name_or_path}: unknown agents {bad_agents}; allowed: {allowed_agents}")
    if len(set(out["agents"])) != len(out["agents"]):
        raise ConfigError(f"preset {name_or_path}: agents must not repeat, got {out['agents']}")
    bad_envs = [e for e in out["envs"] if e not in env_ids()]
    if bad_envs:
        raise ConfigError(f"preset {name_or_path}: unknown envs {bad_envs}; allowed: {', '.join(env_ids())}")
    seeds = out.get("seeds")
    per_env_seeds = seeds if isinstance(seeds, dict) else dict.fromkeys(out["envs"], seeds)
    if any(
        isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SEEDS
        for v in (per_env_seeds.get(e) for e in out["envs"])
    ):
        raise ConfigError(
            f"preset {name_or_path}: seeds must be a positive integer or a mapping env -> integer, each from 1 to "
            f"{MAX_SEEDS}, got {short_repr(seeds)}"
        )
    out["seeds"] = {e: per_env_seeds[e] for e in out["envs"]}
    first = out.get("first_seed", 0)
    if isinstance(first, bool) or not isinstance(first, int) or not 0 <= first < 2**31:
        raise ConfigError(f"preset {name_or_path}: first_seed must be an integer from 0 to {2**31 - 1}, got {first!r}")
    out["first_seed"] = first
    if out.setdefault("order", "env") not in ("env", "seed"):
        raise ConfigError(f"preset {name_or_path}: order must be env or seed, got {out['order']!r}")
    steps = out.get("timesteps")
    per_env = steps if isinstance(steps, dict) else dict.fromkeys(out["envs"], steps)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in (per_env.get(e) for e in out["envs"])):
        raise ConfigError(f"preset {name_or_path}: timesteps must be a positive integer or a mapping env -> integer")
    out["timesteps"] = {e: per_env[e] for e in out["envs"]}
    if not isinstance(out["overrides"], dict):
        raise ConfigError(f"preset {name_or_path}: overrides must be a mapping")
    env_overrides = out.setdefault("env_overrides", {}) or {}
    if not isinstance(env_overrides, dict) or any(
        e not in out["envs"] or not isinstance(v, dict) for e, v in env_overrides.items()
    ):
        raise ConfigError(f"preset {name_or_path}: env_overrides must map envs of the preset to mappings")
    out["env_overrides"] = env_overrides
    if out.get("claims") is not None:
        from metarim_sb3.experiments.reporting.claims import parse_claims

        try:
            out["claims"] = parse_claims(out["claims"], out["agents"], f"preset {name_or_path}")
        except ValueError as err:
            raise ConfigError(str(err)) from None
    else:
        out["claims"] = None
    return out
