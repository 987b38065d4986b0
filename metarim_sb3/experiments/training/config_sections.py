"""The sections of a run's configuration (:class:`~metarim_sb3.experiments.training.run_config.RunConfig`): one
frozen dataclass per section of ``config.yaml``, whose fields are the parameters of the constructor the section
feeds, with that constructor's defaults read from its signature (:func:`default_of`), and the machinery that reads a
section from YAML strictly (:class:`Section`: unknown keys refused, values converted to the field's type or
refused, bounds checked, each problem one line naming the key and what is allowed).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from metarim_sb3.experiments.training.yaml_io import ConfigError, YamlValue, short_repr

__all__ = [
    "SECTIONS",
    "AdaptationSettings",
    "CheckpointSettings",
    "CurriculumSettings",
    "FastSlowSettings",
    "FinalEvalSettings",
    "GeneralizationSettings",
    "HeldoutEvalSettings",
    "PPOSettings",
    "Section",
    "StageEvalSettings",
    "check_bounds",
    "convert_value",
    "default_of",
    "field_types",
    "plain_yaml",
    "setting",
]


# ------------------------------------------------------------------------------------------- defaults and bounds
def default_of(target: Callable[..., object], name: str) -> Any:
    """
    :param target: a class or function.
    :param name: one of its parameters.
    :return: the parameter's default in ``target``'s signature (the one place that default is defined).
    :raises TypeError: if the parameter has no default (a mistake in this module, caught by its tests).
    """
    default = inspect.signature(target).parameters[name].default
    if default is inspect.Parameter.empty:
        raise TypeError(f"{getattr(target, '__name__', target)}.{name} has no default")
    return default


def setting(
    default: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    choices: tuple[str, ...] = (),
) -> Any:
    """
    A dataclass field with its bounds, checked by :meth:`Section.__post_init__`.

    :param default: an immutable default (read from a constructor's signature with :func:`default_of` where one is fed).
    :param low: the smallest value allowed (``None``: no bound).
    :param high: the largest value allowed (``None``: no bound).
    :param low_open: ``low`` itself is not allowed.
    :param choices: the allowed strings (empty: any).
    :return: the field.
    """
    metadata = {"low": low, "high": high, "low_open": low_open, "choices": choices}
    return field(default=default, metadata=metadata)


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _kinds(hint: Any) -> tuple[Any, ...]:
    """The alternatives of a field's type: ``int | None`` -> ``(int, NoneType)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def convert_value(path: str, value: object, hint: Any) -> object:
    """
    :param path: the dotted key (for messages).
    :param value: a value read from YAML.
    :param hint: the field's type.
    :return: ``value`` as that type (an ``int`` for a ``float`` field becomes a ``float``, an integral ``float`` for
        an ``int`` field an ``int``, a numeric string a number: YAML 1.1 reads ``3e-4`` as a string).
    :raises ConfigError: naming the key and the type expected.
    """
    kinds = _kinds(hint)
    if value is None:
        if type(None) in kinds:
            return None
        raise ConfigError(f"config key {path}: expected {_kind_name(kinds)}, got null")
    if bool in kinds:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {path}: expected true or false, got {short_repr(value)}")
    if int in kinds or float in kinds:
        number = _number(path, value, kinds)
        if number is not None:
            return number
    if str in kinds and isinstance(value, str):
        return value
    for kind in kinds:
        origin = typing.get_origin(kind) or kind
        if origin in (list, tuple) and isinstance(value, (list, tuple)):
            return list(value)
        if origin in (dict, Mapping) and isinstance(value, Mapping):
            return dict(value)
    raise ConfigError(f"config key {path}: expected {_kind_name(kinds)}, got {short_repr(value)}")


def _number(path: str, value: object, kinds: tuple[Any, ...]) -> float | int | None:
    """``value`` as the number ``kinds`` asks for, ``None`` if it is not a number (a string field may take it)."""
    if isinstance(value, str):
        try:
            value = int(value) if value.strip().lstrip("+-").isdigit() else float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if float in kinds:
        number = float(value)
        if not math.isfinite(number):
            raise ConfigError(f"config key {path}: expected a finite number, got {number!r}")
        return number
    if isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"config key {path}: expected an integer, got {value!r}")
        return int(value)
    return value


def _kind_name(kinds: tuple[Any, ...]) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    parts = [names.get(k) or ("a list" if (typing.get_origin(k) or k) in (list, tuple) else "a mapping") for k in kinds]
    if int in kinds and float in kinds:
        parts.remove("an integer")
    return " or ".join(dict.fromkeys(parts))


def check_bounds(path: str, value: object, meta: Mapping[str, Any]) -> None:
    """Refuse a value outside its field's bounds or choices, naming what is allowed."""
    choices = meta.get("choices") or ()
    if choices and value is not None and value not in choices:
        raise ConfigError(f"config key {path} must be one of {', '.join(choices)}, got {short_repr(value)}")
    low, high, low_open = meta.get("low"), meta.get("high"), meta.get("low_open", False)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or (low is None and high is None):
        return
    ok = (low is None or (value > low if low_open else value >= low)) and (high is None or value <= high)
    if not ok:
        kind = "an integer" if isinstance(value, int) else "a number"
        allowed = " and ".join(
            part
            for part in (
                None if low is None else f"{'>' if low_open else '>='} {low}",
                None if high is None else f"<= {high}",
            )
            if part
        )
        raise ConfigError(f"config key {path} must be {kind} {allowed}, got {short_repr(value)}")


@dataclass(frozen=True)
class Section:
    """A section of the config: fields typed, bounded (:func:`setting`) and read from a mapping strictly."""

    #: The section's key in ``config.yaml``.
    KEY: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = field_types(type(self))
        for spec in dataclasses.fields(self):
            path = f"{self.KEY}.{spec.name}"
            value = convert_value(path, getattr(self, spec.name), hints[spec.name])
            object.__setattr__(self, spec.name, value)
            check_bounds(path, value, spec.metadata)

    @classmethod
    def from_mapping(cls, data: object) -> Any:
        """
        :param data: the section's mapping (from YAML).
        :return: the section; keys left out take their defaults.
        :raises ConfigError: on a key the section does not have (naming the allowed ones) or a bad value.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"config key {cls.KEY}: expected a mapping, got {short_repr(data)}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [str(k) for k in data if k not in names]
        if unknown:
            raise ConfigError(
                f"unknown config key {cls.KEY}.{unknown[0]}; allowed keys under {cls.KEY}: {', '.join(sorted(names))}"
            )
        return cls(**{str(k): v for k, v in data.items()})

    def to_dict(self) -> dict[str, YamlValue]:
        """:return: the section as written to ``config.yaml`` (fields in order)."""
        return {f.name: plain_yaml(getattr(self, f.name)) for f in dataclasses.fields(self)}


def plain_yaml(value: object) -> YamlValue:
    """A field value as YAML data (copies of lists and mappings)."""
    if isinstance(value, Mapping):
        return {str(k): plain_yaml(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_yaml(v) for v in value]
    return value  # type: ignore[return-value]  # None, bool, int, float or str: checked by the fields' types


# --------------------------------------------------------------------------------------------------- sections
def _ppo_default(name: str) -> Any:
    from sb3_contrib import RecurrentPPO

    return default_of(RecurrentPPO, name)


@dataclass(frozen=True)
class PPOSettings(Section):
    """``ppo``: the arguments of sb3-contrib's ``RecurrentPPO`` (defaults: its signature's)."""

    KEY: ClassVar[str] = "ppo"

    learning_rate: float = setting(_ppo_default("learning_rate"), low=0, low_open=True)
    n_steps: int = setting(_ppo_default("n_steps"), low=1, high=65_536)
    batch_size: int = setting(_ppo_default("batch_size"), low=2)
    #: ``None``: sb3-contrib's ``RecurrentPPO`` (padded whole sequences); an integer: ``ChunkedRecurrentPPO``'s
    #: ``chunk_len`` (fixed-length chunks; must divide ``n_steps`` and ``batch_size``).
    chunk_len: int | None = setting(None)
    n_epochs: int = setting(_ppo_default("n_epochs"), low=1)
    gamma: float = setting(_ppo_default("gamma"), low=0, high=1)
    gae_lambda: float = setting(_ppo_default("gae_lambda"), low=0, high=1)
    clip_range: float = setting(_ppo_default("clip_range"), low=0, low_open=True)
    ent_coef: float = setting(_ppo_default("ent_coef"), low=0)
    vf_coef: float = setting(_ppo_default("vf_coef"), low=0)
    max_grad_norm: float = setting(_ppo_default("max_grad_norm"), low=0, low_open=True)

    def __post_init__(self) -> None:
        chunk_len = self.chunk_len  # any value that is not a positive integer: the layout's message, not a type's
        if chunk_len is not None and (not isinstance(chunk_len, int) or isinstance(chunk_len, bool) or chunk_len < 1):
            self._refuse_chunk_len()
        super().__post_init__()  # the other keys' types and bounds first: their messages name them
        if self.chunk_len is not None and (self.n_steps % self.chunk_len or self.batch_size % self.chunk_len):
            self._refuse_chunk_len()

    def _refuse_chunk_len(self) -> None:
        """Refuse ``chunk_len`` with what the layout needs and the lengths allowed."""
        n_steps, batch_size = self.n_steps, self.batch_size
        common = math.gcd(n_steps, batch_size) if isinstance(n_steps, int) and isinstance(batch_size, int) else 0
        lengths = [str(d) for d in range(1, common + 1) if common % d == 0]
        listed = f" ({', '.join(lengths)})" if lengths else ""
        raise ConfigError(
            f"config key ppo.chunk_len must be null (whole padded sequences) or a positive integer that divides "
            f"ppo.n_steps={n_steps} and ppo.batch_size={batch_size}{listed}, got {self.chunk_len!r}"
        )


def _callback_default(name: str, parameter: str) -> Any:
    from metarim_sb3 import callbacks

    return default_of(getattr(callbacks, name), parameter)


@dataclass(frozen=True)
class FastSlowSettings(Section):
    """``fast_slow``: the arguments of :class:`~metarim_sb3.callbacks.FastSlowCallback` (defaults: its signature's);
    the section is ``null`` for an agent without the split (LSTM, GRU)."""

    KEY: ClassVar[str] = "fast_slow"

    #: Checked by the callback's own rules (``check_fast_slow_settings``), as ``other`` and ``slow_fraction``.
    mode: str = setting(_callback_default("FastSlowCallback", "mode"))
    fast_lr: float | None = setting(_callback_default("FastSlowCallback", "fast_lr"), low=0, low_open=True)
    slow_lr: float | None = setting(_callback_default("FastSlowCallback", "slow_lr"), low=0)
    #: rho, the slow learning rate as a fraction of the fast one (the absolute slow rate is derived from it).
    slow_fraction: float | None = setting(_callback_default("FastSlowCallback", "slow_fraction"))
    slow_lr_scale: str | float = setting(_callback_default("FastSlowCallback", "slow_lr_scale"))
    slow_every: int = setting(_callback_default("FastSlowCallback", "slow_every"), low=1)
    other: str = setting(_callback_default("FastSlowCallback", "other"))

    def __post_init__(self) -> None:
        super().__post_init__()
        from metarim_sb3.callbacks.fast_slow import check_fast_slow_settings

        try:  # the callback's own checks (slow_lr and slow_fraction together, ...): one list of the rules
            check_fast_slow_settings(
                mode=self.mode, other=self.other, slow_lr=self.slow_lr, slow_fraction=self.slow_fraction
            )
        except ValueError as err:
            raise ConfigError(f"config key fast_slow: {str(err).removeprefix('FastSlowCallback: ')}") from None

    def callback_kwargs(self) -> dict[str, YamlValue]:
        """:return: the keyword arguments of :class:`~metarim_sb3.callbacks.FastSlowCallback`."""
        return self.to_dict()


@dataclass(frozen=True)
class CurriculumSettings(Section):
    """``curriculum``: the arguments of :class:`~metarim_sb3.callbacks.CurriculumCallback` (defaults: its
    signature's), and whether it runs."""

    KEY: ClassVar[str] = "curriculum"

    enabled: bool = setting(True)
    threshold: float = setting(_callback_default("CurriculumCallback", "threshold"), low=0, high=1, low_open=True)
    window: int = setting(_callback_default("CurriculumCallback", "window"), low=1)
    min_steps: int = setting(_callback_default("CurriculumCallback", "min_steps"), low=0)
    cycle: bool = setting(_callback_default("CurriculumCallback", "cycle"))
    #: An integer: a fixed schedule, a shift every this many steps whatever the success; ``None``: shift on mastery.
    every: int | None = setting(_callback_default("CurriculumCallback", "every"), low=1)
    #: With ``every``: the steps of the first visit; ``None``: ``every``.
    first: int | None = setting(_callback_default("CurriculumCallback", "first"), low=1)

    def callback_kwargs(self) -> dict[str, YamlValue]:
        """
        :return: the keyword arguments of :class:`~metarim_sb3.callbacks.CurriculumCallback` (the fixed schedule's
            only when set).
        """
        kwargs = {k: v for k, v in self.to_dict().items() if k != "enabled"}
        return {k: v for k, v in kwargs.items() if v is not None or k not in ("every", "first")}


@dataclass(frozen=True)
class HeldoutEvalSettings(Section):
    """``heldout_eval``: the periodic zero-shot evaluation, :class:`~metarim_sb3.callbacks.HeldOutEvalCallback`
    (``every`` is its ``eval_freq``, ``episodes`` its ``n_eval_episodes``; the defaults are its signature's)."""

    KEY: ClassVar[str] = "heldout_eval"

    enabled: bool = setting(True)
    every: int = setting(_callback_default("HeldOutEvalCallback", "eval_freq"), low=1)
    episodes: int = setting(_callback_default("HeldOutEvalCallback", "n_eval_episodes"), low=1)
    #: Evaluation envs stepped as one batch (the episodes are spread evenly over them).
    n_envs: int = setting(4, low=1, high=256)


@dataclass(frozen=True)
class StageEvalSettings(Section):
    """``stage_eval``: the periodic evaluation of the stages seen, :class:`~metarim_sb3.callbacks.StageEvalCallback`
    (defaults: its signature's)."""

    KEY: ClassVar[str] = "stage_eval"

    enabled: bool = setting(True)
    every: int = setting(_callback_default("StageEvalCallback", "every"), low=1)
    episodes: int = setting(_callback_default("StageEvalCallback", "episodes"), low=1)
    n_envs: int = setting(_callback_default("StageEvalCallback", "n_envs"), low=1)
    others: str = setting(_callback_default("StageEvalCallback", "others"), choices=("every", "shifts"))


@dataclass(frozen=True)
class FinalEvalSettings(Section):
    """``final_eval``: the held-out evaluation after training (the arguments of
    :func:`~metarim_sb3.experiments.training.evaluate.evaluate_model`, whose defaults are these)."""

    KEY: ClassVar[str] = "final_eval"

    episodes: int = setting(100, low=1)
    #: Evaluation envs stepped as one batch (the episodes are spread evenly over them).
    n_envs: int = setting(8, low=1, high=256)


@dataclass(frozen=True)
class GeneralizationSettings(Section):
    """``generalization``: zero-shot tests after training (``stages: []`` is off)."""

    KEY: ClassVar[str] = "generalization"

    #: The family's stages to test on: distinct indices and/or ``heldout``.
    stages: list[int | str] = field(default_factory=list)
    #: Episodes per test stage, and the evaluation envs they are spread over (as ``final_eval``'s).
    episodes: int = setting(FinalEvalSettings.episodes, low=1)
    n_envs: int = setting(FinalEvalSettings.n_envs, low=1, high=256)

    def __post_init__(self) -> None:
        super().__post_init__()
        stages = self.stages
        ok = all(s == "heldout" or (isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 1000) for s in stages)
        if not ok or len(set(map(str, stages))) != len(stages):
            raise ConfigError(
                "config key generalization.stages must be a list of distinct stage indices (0, 1, ...) and/or "
                f"heldout, e.g. [0, 1, 2, heldout]; got {short_repr(stages)}"
            )


@dataclass(frozen=True)
class AdaptationSettings(Section):
    """``adaptation``: read by the report, the frames after each shift its adaptation measures integrate over."""

    KEY: ClassVar[str] = "adaptation"

    #: ``None``: not recorded (a config of an earlier version).
    horizon: int | None = setting(None, low=1)


@dataclass(frozen=True)
class CheckpointSettings(Section):
    """``checkpoint``: how often the run writes ``checkpoint.zip``."""

    KEY: ClassVar[str] = "checkpoint"

    every: int = setting(20_000, low=1)


#: The sections of :class:`RunConfig` and their classes.
SECTIONS: dict[str, type[Section]] = {
    cls.KEY: cls
    for cls in (
        PPOSettings,
        CurriculumSettings,
        HeldoutEvalSettings,
        FinalEvalSettings,
        StageEvalSettings,
        GeneralizationSettings,
        AdaptationSettings,
        CheckpointSettings,
        FastSlowSettings,
    )
}
