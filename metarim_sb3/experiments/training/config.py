"""Presets and resolved run configurations: YAML in, one plain ``dict`` out, every key checked.

A run's configuration is built in layers, each a nested mapping merged over the previous one (RL Zoo style):

1. ``presets/common.yaml``: ``default``, then the entry of the environment id (if any);
2. ``presets/agents.yaml``: the agent's ``default``, then its entry for the environment id (if any);
3. a user file (``--config FILE``) and ``--set key=value`` overrides (dotted keys, values parsed as YAML).

Layer 3 may only change keys that layers 1-2 define (a typo fails instead of being silently ignored), except
inside the free-form mappings :data:`OPEN_KEYS`. Values keep the type of the value they replace (an ``int`` may
replace a ``float``). Files are read with ``yaml.safe_load``, within bounds
(:mod:`~metarim_sb3.experiments.training.yaml_io`): nothing in them is evaluated. The grid presets of
``presets/compare.yaml`` are :mod:`metarim_sb3.experiments.grid.presets`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from metarim_sb3.experiments.training.yaml_io import ConfigError, load_yaml, safe_yaml

__all__ = [
    "AGENTS",
    "CRITICS",
    "DEVICES",
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


#: Longest value shown in a message (a long value is cut).
_MAX_SHOWN = 80


def short_repr(value: Any) -> str:
    """
    :param value: a value to name in a message.
    :return: ``repr(value)``, cut to :data:`_MAX_SHOWN` characters.
    """
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[: _MAX_SHOWN - 3]}..."


def agent_names(presets: Mapping[str, Any]) -> tuple[str, ...]:
    """
    :param presets: the mapping of ``presets/agents.yaml`` (or a file of the same form).
    :return: its agents (top-level keys), in file order: the display order of every list of agents.
    :raises ConfigError: if a key is not a string or an entry is not a mapping.
    """
    for name, entry in presets.items():
        if not isinstance(name, str) or not isinstance(entry, Mapping):
            raise ConfigError(f"agent presets: each agent must be a name with a mapping, got {short_repr(name)}")
    return tuple(presets)


def rim_agent_names(presets: Mapping[str, Any]) -> tuple[str, ...]:
    """
    :param presets: the mapping of ``presets/agents.yaml`` (or a file of the same form).
    :return: the agents whose ``default.policy`` is a RIM policy (a name ending in ``RIMPolicy``), in file order.
    """
    return tuple(
        name
        for name in agent_names(presets)
        if str((presets[name].get("default") or {}).get("policy", "")).endswith("RIMPolicy")
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


def _coerce(key: str, old: Any, new: Any) -> Any:
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


def merge(base: dict[str, Any], update: Mapping[str, Any], *, strict: bool = False, prefix: str = "") -> dict[str, Any]:
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


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """
    Turn ``--set key.sub=value`` strings into a nested mapping; values are parsed as YAML (``3``, ``0.5``,
    ``true``, ``[64, 64]``, ``{a: 1}``), anything unparsable stays a string.

    :param items: the ``key=value`` strings.
    :return: the nested mapping.
    :raises ConfigError: on a string without ``=`` or with an empty key, or a value beyond the bounds of
        :func:`~metarim_sb3.experiments.training.yaml_io.safe_yaml`.
    """
    out: dict[str, Any] = {}
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
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r} conflicts with another --set of {part!r}")
        node[parts[-1]] = value
    return out


def apply_overrides(config: dict[str, Any], *layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """
    Apply user layers (config file contents, ``--set`` mappings) to a resolved config, strictly.

    :param config: the resolved config.
    :param layers: mappings to merge in order (``None`` skipped).
    :return: the new config.
    """
    for layer in layers:
        if layer:
            config = merge(config, layer, strict=True)
    _apply_critic(config)
    _check(config)
    return config


#: ``critic`` values and the ``policy_kwargs`` each sets (``shared_lstm``, ``enable_critic_lstm``,
#: ``shared_critic_gradient``).
CRITICS: dict[str, dict[str, bool]] = {
    "shared-detached": {"shared_lstm": True, "enable_critic_lstm": False, "shared_critic_gradient": False},
    "shared": {"shared_lstm": True, "enable_critic_lstm": False, "shared_critic_gradient": True},
    "separate": {"shared_lstm": False, "enable_critic_lstm": True, "shared_critic_gradient": False},
}


def _apply_critic(config: dict[str, Any]) -> None:
    """
    Set the ``policy_kwargs`` of the config's ``critic`` (in place); the ``critic`` key wins over them. A config
    without the key (a run folder saved before it existed) keeps its ``policy_kwargs`` as they are.
    """
    if "critic" not in config:
        return
    critic = config["critic"]
    if critic not in CRITICS:
        raise ConfigError(f"config key critic must be one of {', '.join(CRITICS)}, got {critic!r}")
    config["policy_kwargs"] = {**(config.get("policy_kwargs") or {}), **CRITICS[critic]}


#: ``(low, high, low_open)`` of each numeric key :func:`_check` bounds; ``None`` bounds are open ends.
_BOUNDS: dict[str, tuple[float | None, float | None, bool]] = {
    "timesteps": (1, None, False),
    "n_envs": (1, 256, False),
    "log_interval": (1, None, False),
    "ppo.learning_rate": (0, None, True),
    "ppo.n_steps": (1, 65_536, False),
    "ppo.batch_size": (2, None, False),
    "ppo.n_epochs": (1, None, False),
    "ppo.gamma": (0, 1, False),
    "ppo.gae_lambda": (0, 1, False),
    "ppo.clip_range": (0, None, True),
    "ppo.ent_coef": (0, None, False),
    "ppo.vf_coef": (0, None, False),
    "ppo.max_grad_norm": (0, None, True),
    "curriculum.threshold": (0, 1, True),
    "curriculum.window": (1, None, False),
    "curriculum.min_steps": (0, None, False),
    "curriculum.every": (1, None, False),
    "curriculum.first": (1, None, False),
    "heldout_eval.every": (1, None, False),
    "heldout_eval.episodes": (1, None, False),
    "heldout_eval.n_envs": (1, 256, False),
    "stage_eval.every": (1, None, False),
    "stage_eval.episodes": (1, None, False),
    "stage_eval.n_envs": (1, None, False),
    "adaptation.horizon": (1, None, False),
    "final_eval.episodes": (1, None, False),
    "final_eval.n_envs": (1, 256, False),
    "generalization.episodes": (1, None, False),
    "generalization.n_envs": (1, 256, False),
    "checkpoint.every": (1, None, False),
    "fast_slow.slow_every": (1, None, False),
}
#: Bounded keys that may also be null (the feature is off).
_NULLABLE_KEYS = ("curriculum.every", "curriculum.first")
_REAL_KEYS = ("rate", "gamma", "lambda", "range", "coef", "norm", "threshold")
_INTEGER_KEYS = {k for k in _BOUNDS if not k.endswith(_REAL_KEYS)}
#: Devices a config may name (``cuda:N`` too).
DEVICES = ("cpu", "cuda", "mps", "auto")
#: Most steps one rollout may hold (``n_envs * ppo.n_steps``): the rollout buffer is allocated at once.
MAX_ROLLOUT = 1 << 18
#: Largest sizes of the recurrent core (``policy_kwargs``): ``(low, high)`` each, and the most state a RIM core may
#: hold (``n_units * unit_size``); the weights grow with their squares.
_SIZE_BOUNDS = {"n_units": (1, 64), "unit_size": (1, 1024), "k": (1, 64), "lstm_hidden_size": (1, 4096)}
MAX_RIM_STATE = 4096


def check_device(device: str) -> str:
    """
    :param device: a config's ``device`` (checked by the config: one of :data:`DEVICES` or ``cuda:N``).
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


def _lookup(config: dict[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _check(config: dict[str, Any]) -> None:
    """Checks of values (types are checked by the strict merge): each bad value named with what is allowed."""
    if config.get("env") not in env_ids():
        raise ConfigError(f"unknown env {config.get('env')!r}; allowed: {', '.join(env_ids())}")
    for key, (low, high, low_open) in _BOUNDS.items():
        present, value = _lookup(config, key)
        if not present or (value is None and (key.startswith("fast_slow.") or key in _NULLABLE_KEYS)):
            continue
        integer = key in _INTEGER_KEYS
        kind = "an integer" if integer else "a number"
        allowed = " and ".join(
            part
            for part in (
                None if low is None else f"{'>' if low_open else '>='} {low}",
                None if high is None else f"<= {high}",
            )
            if part
        )
        ok = isinstance(value, int) if integer else isinstance(value, (int, float)) and math.isfinite(value)
        ok = ok and not isinstance(value, bool)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value <= high
        if not ok:
            raise ConfigError(f"config key {key} must be {kind} {allowed}, got {short_repr(value)}")
    device = config.get("device", "cpu")
    if not isinstance(device, str) or not (device in DEVICES or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError(f"config key device must be one of {', '.join(DEVICES)} or cuda:N, got {short_repr(device)}")
    ppo = config.get("ppo", {})
    rollout = ppo.get("n_steps", 1) * config.get("n_envs", 1)
    if rollout > MAX_ROLLOUT:
        raise ConfigError(
            f"config keys n_envs * ppo.n_steps must be <= {MAX_ROLLOUT} (one rollout's buffer), got "
            f"{config.get('n_envs', 1)} * {ppo.get('n_steps', 1)} = {rollout}"
        )
    _check_sizes(config)
    if isinstance(ppo.get("batch_size"), int) and ppo["batch_size"] > rollout:
        raise ConfigError(
            f"config key ppo.batch_size must be <= n_envs * ppo.n_steps = {rollout}, got {ppo['batch_size']}"
        )
    _check_chunk_len(config)
    _check_fast_slow(config.get("fast_slow"))
    others = _lookup(config, "stage_eval.others")[1]
    if others is not None and others not in ("every", "shifts"):
        raise ConfigError(f"config key stage_eval.others must be every or shifts, got {others!r}")
    _check_schedule(config)
    _check_test_stages(config)


def _check_fast_slow(fast_slow: Any) -> None:
    """The callback's own checks of ``fast_slow`` (mode, other, slow_lr or slow_fraction): one list of the values."""
    if not isinstance(fast_slow, Mapping):
        return
    from metarim_sb3.callbacks.fast_slow import check_fast_slow_settings

    settings = {k: fast_slow[k] for k in ("mode", "other", "slow_lr", "slow_fraction") if fast_slow.get(k) is not None}
    try:
        check_fast_slow_settings(**settings)
    except ValueError as err:
        raise ConfigError(f"config key fast_slow: {str(err).removeprefix('FastSlowCallback: ')}") from None


def _check_test_stages(config: dict[str, Any]) -> None:
    """``generalization.stages``: a list of distinct stage indices and/or ``heldout`` (checked against the family's
    stage count when the run builds its env)."""
    present, stages = _lookup(config, "generalization.stages")
    if not present:
        return
    ok = isinstance(stages, list) and all(
        s == "heldout" or (isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 1000) for s in stages
    )
    if not ok or len(set(map(str, stages))) != len(stages):  # type: ignore[arg-type]
        raise ConfigError(
            "config key generalization.stages must be a list of distinct stage indices (0, 1, ...) and/or heldout, "
            f"e.g. [0, 1, 2, heldout]; got {short_repr(stages)}"
        )


def _check_sizes(config: dict[str, Any]) -> None:
    """The sizes of the recurrent core in ``policy_kwargs`` (a free mapping): bounded before any weight exists."""
    kwargs = config.get("policy_kwargs") or {}
    if not isinstance(kwargs, dict):
        return
    for key, (low, high) in _SIZE_BOUNDS.items():
        if key not in kwargs:
            continue
        value = kwargs[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(
                f"config key policy_kwargs.{key} must be an integer from {low} to {high}, got {short_repr(value)}"
            )
    units, size = kwargs.get("n_units"), kwargs.get("unit_size")
    if isinstance(units, int) and isinstance(size, int) and units * size > MAX_RIM_STATE:
        raise ConfigError(
            f"config keys policy_kwargs.n_units * policy_kwargs.unit_size must be <= {MAX_RIM_STATE}, got "
            f"{units} * {size} = {units * size}"
        )


def _check_chunk_len(config: dict[str, Any]) -> None:
    """``ppo.chunk_len``: ``null`` (sb3-contrib's padded whole sequences) or a length that cuts rollouts and
    minibatches into whole chunks (:class:`~metarim_sb3.ppo.chunked.ChunkedRecurrentPPO`)."""
    present, chunk_len = _lookup(config, "ppo.chunk_len")
    if not present or chunk_len is None:
        return
    n_steps, batch_size = _lookup(config, "ppo.n_steps")[1], _lookup(config, "ppo.batch_size")[1]
    ok = isinstance(chunk_len, int) and not isinstance(chunk_len, bool) and chunk_len >= 1
    if ok and isinstance(n_steps, int) and isinstance(batch_size, int):
        ok = n_steps % chunk_len == 0 and batch_size % chunk_len == 0
    if not ok:
        common = math.gcd(n_steps, batch_size) if isinstance(n_steps, int) and isinstance(batch_size, int) else 0
        lengths = [d for d in range(1, common + 1) if common % d == 0]
        listed = f" ({', '.join(map(str, lengths))})" if lengths else ""
        raise ConfigError(
            f"config key ppo.chunk_len must be null (whole padded sequences) or a positive integer that divides "
            f"ppo.n_steps={n_steps} and ppo.batch_size={batch_size}{listed}, got {chunk_len!r}"
        )


#: ``env_kwargs.schedule`` values that shift stages on their own (fixed schedules for studies).
FIXED_SCHEDULES = ("steps", "episodes")


def _check_schedule(config: dict[str, Any]) -> None:
    """A fixed env schedule and the curriculum both move stages: the curriculum would reset the schedule's counter."""
    schedule = (config.get("env_kwargs") or {}).get("schedule")
    if schedule in FIXED_SCHEDULES and config.get("curriculum", {}).get("enabled"):
        raise ConfigError(
            f"config key env_kwargs.schedule {schedule!r} needs curriculum.enabled false "
            "(the curriculum would reset the schedule's counter)"
        )


def schedule_name(config: Mapping[str, Any]) -> str:
    """
    :param config: a resolved config.
    :return: how the run's stages shift: ``threshold`` (the curriculum), ``fixed`` (the curriculum's fixed
        schedule, ``curriculum.every``), ``steps`` or ``episodes`` (a fixed env schedule) or ``manual`` (none).
    """
    schedule = (config.get("env_kwargs") or {}).get("schedule")
    if schedule in FIXED_SCHEDULES:
        return str(schedule)
    curriculum = config.get("curriculum", {})
    if not curriculum.get("enabled"):
        return "manual"
    return "fixed" if curriculum.get("every") is not None else "threshold"


def resolve_config(
    agent: str,
    env: str,
    *,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    timesteps: int | None = None,
) -> dict[str, Any]:
    """
    The full configuration of one run: presets for ``agent`` on ``env``, then the user's layers.

    :param agent: one of :data:`AGENTS`.
    :param env: one of :func:`env_ids`.
    :param config_file: a YAML file of overrides (``--config``).
    :param overrides: a nested mapping of overrides (e.g. from :func:`parse_set`), applied after the file.
    :param timesteps: the training budget, if given (applied last).
    :return: the resolved config: a plain, YAML-serialisable ``dict`` with ``agent`` and ``env`` set.
    :raises ConfigError: on any bad name, file, key or value.
    """
    agents = load_yaml(preset="agents.yaml")
    if agent not in agents:
        raise ConfigError(f"unknown agent {agent!r}; allowed: {', '.join(a for a in AGENTS if a in agents)}")
    if env not in env_ids():
        raise ConfigError(f"unknown env {env!r}; allowed: {', '.join(env_ids())}")
    common = load_yaml(preset="common.yaml")
    config = merge({"agent": agent, "env": env}, common.get("default", {}))
    config = merge(config, common.get(env) or {})
    config = merge(config, agents[agent].get("default", {}))
    config = merge(config, agents[agent].get(env) or {})
    file_layer = load_yaml(config_file) if config_file is not None else None
    for layer, name in ((file_layer, "--config"), (overrides, "--set")):
        if layer and ("agent" in layer or "env" in layer):
            raise ConfigError(f"{name} may not change agent or env; use --agent / --env")
    top = {"timesteps": timesteps} if timesteps is not None else None
    return apply_overrides(config, file_layer, overrides, top)
