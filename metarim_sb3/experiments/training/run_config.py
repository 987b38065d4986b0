"""The typed run configuration: :class:`RunConfig`, one frozen dataclass per section of ``config.yaml``.

A run's settings travel as a :class:`RunConfig` from the command line (or a script, or a grid) to the model, the
callbacks, the evaluations and the report. Each section feeds one library constructor, and its fields are that
constructor's parameters, with the constructor's defaults read from its signature:

========================  =============================================================================
section                   feeds
========================  =============================================================================
``ppo``                   sb3-contrib ``RecurrentPPO`` (with ``chunk_len``:
                          :class:`~metarim_sb3.ppo.chunked.ChunkedRecurrentPPO`)
``fast_slow``             :class:`~metarim_sb3.callbacks.FastSlowCallback`
``curriculum``            :class:`~metarim_sb3.callbacks.CurriculumCallback` (``enabled``: whether it runs)
``heldout_eval``          :class:`~metarim_sb3.callbacks.HeldOutEvalCallback` (``every`` is its ``eval_freq``,
                          ``episodes`` its ``n_eval_episodes``; ``n_envs``: the evaluation envs)
``stage_eval``            :class:`~metarim_sb3.callbacks.StageEvalCallback`
``final_eval``            :func:`~metarim_sb3.experiments.training.evaluate.evaluate_model` after training
``generalization``        the zero-shot tests of :mod:`~metarim_sb3.experiments.training.generalization`
``adaptation``            the report (frames integrated after each shift)
``checkpoint``            the run's checkpoints
``policy_kwargs``         the policy class named by ``policy`` (checked against its signature)
========================  =============================================================================

The presets (``presets/common.yaml``, ``presets/agents.yaml``) are layered over these defaults by
:func:`~metarim_sb3.experiments.training.config.resolve_config`. :meth:`RunConfig.from_mapping` refuses an unknown
key naming the allowed ones, converts each value to its field's type (or refuses it), and checks bounds: every
problem is a :class:`~metarim_sb3.experiments.training.yaml_io.ConfigError` of one line. :meth:`RunConfig.to_dict`
gives the mapping written to ``config.yaml``; every older ``config.yaml`` loads (a key added since takes its default,
the renamed ``policy_kwargs.rim_dropout`` is read as ``dropout``). The section classes, and how a section reads and
checks its keys, are :mod:`~metarim_sb3.experiments.training.config_sections`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metarim_sb3.experiments.training.config_sections import (
    SECTIONS,
    AdaptationSettings,
    CheckpointSettings,
    CurriculumSettings,
    FastSlowSettings,
    FinalEvalSettings,
    GeneralizationSettings,
    HeldoutEvalSettings,
    PPOSettings,
    Section,
    StageEvalSettings,
    check_bounds,
    convert_value,
    field_types,
    plain_yaml,
    setting,
)
from metarim_sb3.experiments.training.yaml_io import ConfigError, YamlValue, short_repr

__all__ = [
    "CRITICS",
    "DEVICES",
    "FIXED_SCHEDULES",
    "MAX_RIM_STATE",
    "MAX_ROLLOUT",
    "RunConfig",
    "policy_classes",
    "policy_parameters",
]

#: Devices a config may name (``cuda:N`` too).
DEVICES = ("cpu", "cuda", "mps", "auto")
#: Most steps one rollout may hold (``n_envs * ppo.n_steps``): the rollout buffer is allocated at once.
MAX_ROLLOUT = 1 << 18
#: Largest sizes of the recurrent core (``policy_kwargs``), ``(low, high)`` each, and the most state a RIM core may
#: hold (``n_units * unit_size``); the weights grow with their squares.
_SIZE_BOUNDS = {"n_units": (1, 64), "unit_size": (1, 1024), "k": (1, 64), "lstm_hidden_size": (1, 4096)}
MAX_RIM_STATE = 4096
#: ``policy_kwargs`` keys renamed since older run folders were written: old name -> new name.
RENAMED_POLICY_KWARGS = {"rim_dropout": "dropout"}
#: The constructor parameters a policy's ``policy_kwargs`` may not set (the algorithm passes them).
_POLICY_FIXED = ("self", "observation_space", "action_space", "lr_schedule")


# ------------------------------------------------------------------------------------------------ the whole run
#: ``critic`` values and the ``policy_kwargs`` each sets (``shared_lstm``, ``enable_critic_lstm``,
#: ``shared_critic_gradient``).
CRITICS: dict[str, dict[str, bool]] = {
    "shared-detached": {"shared_lstm": True, "enable_critic_lstm": False, "shared_critic_gradient": False},
    "shared": {"shared_lstm": True, "enable_critic_lstm": False, "shared_critic_gradient": True},
    "separate": {"shared_lstm": False, "enable_critic_lstm": True, "shared_critic_gradient": False},
}


def policy_parameters(policy: type) -> tuple[str, ...]:
    """
    :param policy: a policy class.
    :return: the keyword arguments its ``policy_kwargs`` may hold: the parameters of its ``__init__`` and of each
        base class's that it passes ``**kwargs`` on to, less those the algorithm passes itself.
    """
    names: dict[str, None] = {}
    for cls in policy.__mro__:
        if "__init__" not in vars(cls):
            continue
        params = inspect.signature(vars(cls)["__init__"]).parameters
        names.update(dict.fromkeys(n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)))
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            break
    return tuple(n for n in names if n not in _POLICY_FIXED)


def policy_classes() -> dict[str, type]:
    """:return: the policy classes a config's ``policy`` may name (those :mod:`metarim_sb3` exports), by name."""
    import metarim_sb3

    return {
        n: getattr(metarim_sb3, n) for n in metarim_sb3.__all__ if n.endswith("Policy") and n != "FastRecurrentPolicy"
    }


@dataclass(frozen=True)
class RunConfig:
    """
    Everything one run needs but its seed and folder: frozen, typed, checked on construction.

    Build it with :func:`~metarim_sb3.experiments.training.config.resolve_config` (presets, a file, ``--set``) or
    :meth:`from_mapping` (a ``config.yaml``); change it with :meth:`with_changes`.
    """

    #: The agent's name (:data:`~metarim_sb3.experiments.training.config.AGENTS`, or a grid's variant name).
    agent: str
    #: The environment id.
    env: str
    #: The policy class, by name (one of :func:`policy_classes`).
    policy: str
    #: Environment steps to train (all envs together).
    timesteps: int = setting(None, low=1)
    #: Training envs, stepped as one ``DummyVecEnv``.
    n_envs: int = setting(None, low=1, high=256)
    #: Passed to ``gymnasium.make`` (e.g. ``stage``, ``stages``, ``schedule``).
    env_kwargs: dict[str, YamlValue] = field(default_factory=dict)
    #: How the critic uses the recurrent core (:data:`CRITICS`); it sets ``policy_kwargs``. ``None``: a config of an
    #: earlier version, whose ``policy_kwargs`` say it.
    critic: str | None = setting(None, choices=tuple(CRITICS))
    #: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``.
    device: str = setting("cpu")
    ppo: PPOSettings = field(default_factory=PPOSettings)
    curriculum: CurriculumSettings = field(default_factory=CurriculumSettings)
    heldout_eval: HeldoutEvalSettings = field(default_factory=HeldoutEvalSettings)
    final_eval: FinalEvalSettings = field(default_factory=FinalEvalSettings)
    stage_eval: StageEvalSettings = field(default_factory=StageEvalSettings)
    generalization: GeneralizationSettings = field(default_factory=GeneralizationSettings)
    adaptation: AdaptationSettings = field(default_factory=AdaptationSettings)
    #: Greedy actions in evaluations (sampled if false).
    deterministic_eval: bool = setting(False)
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    #: Rollouts between SB3 log dumps.
    log_interval: int = setting(1, low=1)
    #: The policy's keyword arguments (checked against its signature by :meth:`check_buildable`).
    policy_kwargs: dict[str, YamlValue] = field(default_factory=dict)
    fast_slow: FastSlowSettings | None = None
    #: Record which RIM units are active on which task.
    activity: bool = setting(False)
    #: The run's seed, written to a run folder's ``config.yaml`` (``None`` in a config not yet run).
    seed: int | None = setting(None, low=0, high=2**32 - 1)
    #: A grid's variant: the preset agent this one modifies.
    variant_of: str | None = setting(None)

    def __post_init__(self) -> None:
        hints = field_types(type(self))
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            section = SECTIONS.get(spec.name)
            if section is not None:
                if value is None and spec.name == "fast_slow":
                    continue
                if not isinstance(value, section):
                    raise ConfigError(f"config key {spec.name}: expected a mapping, got {short_repr(value)}")
                continue
            value = convert_value(spec.name, value, hints[spec.name])
            object.__setattr__(self, spec.name, value)
            check_bounds(spec.name, value, spec.metadata)
        self._check_device()
        self._check_rollout()
        self._check_sizes()
        schedule = self.env_kwargs.get("schedule")
        if schedule in FIXED_SCHEDULES and self.curriculum.enabled:
            raise ConfigError(
                f"config key env_kwargs.schedule {schedule!r} needs curriculum.enabled false "
                "(the curriculum would reset the schedule's counter)"
            )

    def _check_device(self) -> None:
        device = self.device
        if not (device in DEVICES or (device.startswith("cuda:") and device[5:].isdigit())):
            raise ConfigError(
                f"config key device must be one of {', '.join(DEVICES)} or cuda:N, got {short_repr(device)}"
            )

    def _check_rollout(self) -> None:
        rollout = self.ppo.n_steps * self.n_envs
        if rollout > MAX_ROLLOUT:
            raise ConfigError(
                f"config keys n_envs * ppo.n_steps must be <= {MAX_ROLLOUT} (one rollout's buffer), got "
                f"{self.n_envs} * {self.ppo.n_steps} = {rollout}"
            )
        if self.ppo.batch_size > rollout:
            raise ConfigError(
                f"config key ppo.batch_size must be <= n_envs * ppo.n_steps = {rollout}, got {self.ppo.batch_size}"
            )

    def _check_sizes(self) -> None:
        """The sizes of the recurrent core in ``policy_kwargs``: bounded before any weight exists."""
        kwargs = self.policy_kwargs
        for key, (low, high) in _SIZE_BOUNDS.items():
            value = kwargs.get(key, low)
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

    def check_buildable(self) -> RunConfig:
        """
        The checks that need this installation: the env is registered, the policy exists and takes every key of
        ``policy_kwargs`` (a reader of a run's files alone, such as the report, skips them).

        :return: the config.
        :raises ConfigError: naming the allowed envs, policies or keys.
        """
        from metarim_gym import ENV_IDS

        if self.env not in ENV_IDS:
            raise ConfigError(f"unknown env {self.env!r}; allowed: {', '.join(ENV_IDS)}")
        classes = policy_classes()
        if self.policy not in classes:
            raise ConfigError(f"unknown policy {self.policy!r}; allowed: {', '.join(classes)}")
        allowed = policy_parameters(classes[self.policy])
        unknown = [k for k in self.policy_kwargs if k not in allowed]
        if unknown:
            raise ConfigError(
                f"unknown config key policy_kwargs.{unknown[0]} for {self.policy}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        return self

    @classmethod
    def from_mapping(cls, data: object, *, buildable: bool = True) -> RunConfig:
        """
        :param data: a config mapping (a ``config.yaml``, or the layers merged by
            :func:`~metarim_sb3.experiments.training.config.resolve_config`).
        :param buildable: also run :meth:`check_buildable` (``False``: a reader of a run's files alone).
        :return: the config; keys left out take their defaults, ``policy_kwargs.rim_dropout`` is read as ``dropout``.
        :raises ConfigError: on an unknown key (naming the allowed ones), a missing ``agent``, ``env`` or ``policy``,
            or a bad value.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a run config must be a mapping, got {short_repr(data)}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [str(k) for k in data if k not in names]
        if unknown:
            raise ConfigError(f"unknown config key {unknown[0]!r}; allowed keys: {', '.join(sorted(names))}")
        missing = [k for k in ("agent", "env", "policy") if k not in data]
        if missing:
            raise ConfigError(f"a run config needs {', '.join(missing)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            section = SECTIONS.get(str(key))
            if section is not None and not (key == "fast_slow" and value is None):
                value = section.from_mapping(value)
            elif key == "policy_kwargs" and isinstance(value, Mapping):
                value = {RENAMED_POLICY_KWARGS.get(str(k), str(k)): v for k, v in value.items()}
            values[str(key)] = value
        config = cls(**values)
        return config.check_buildable() if buildable else config

    def to_dict(self) -> dict[str, YamlValue]:
        """:return: the mapping written to ``config.yaml`` (``seed`` and ``variant_of`` only when set)."""
        out: dict[str, YamlValue] = {}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if spec.name in ("seed", "variant_of") and value is None:
                continue
            out[spec.name] = value.to_dict() if isinstance(value, Section) else plain_yaml(value)
        return out

    def with_changes(self, **changes: object) -> RunConfig:
        """
        :param changes: fields to replace (a section as a section object or a mapping of some of its keys).
        :return: a new, checked config.
        """
        data = self.to_dict()
        for key, value in changes.items():
            new = value.to_dict() if isinstance(value, Section) else plain_yaml(value)
            current = data.get(key)
            data[key] = {**current, **new} if isinstance(current, dict) and isinstance(new, dict) else new
        return RunConfig.from_mapping(data, buildable=False)

    @property
    def schedule(self) -> str:
        """How the run's stages shift: ``threshold`` (the curriculum), ``fixed`` (the curriculum's fixed schedule,
        ``curriculum.every``), ``steps`` or ``episodes`` (a fixed env schedule) or ``manual`` (none)."""
        schedule = self.env_kwargs.get("schedule")
        if schedule in FIXED_SCHEDULES:
            return str(schedule)
        if not self.curriculum.enabled:
            return "manual"
        return "fixed" if self.curriculum.every is not None else "threshold"


#: ``env_kwargs.schedule`` values that shift stages on their own (fixed schedules for studies).
FIXED_SCHEDULES = ("steps", "episodes")
