"""Reading YAML safely: config files, ``--set`` values, run configs and the package's preset files.

Files are read only if they are regular files (a FIFO, device or folder is refused before it is read) of at most
:data:`MAX_YAML_BYTES`; the YAML is parsed with ``yaml.SafeLoader`` (nothing in it is evaluated), and refused beyond
:data:`MAX_YAML_DEPTH` levels of nesting or :data:`MAX_YAML_NODES` values once aliases are expanded, before anything
is built. Every problem is a :class:`ConfigError` whose message is one line.
"""

from __future__ import annotations

import copy
import os
import stat
from importlib import resources
from pathlib import Path
from typing import Any, TypeAlias, Union

import yaml

__all__ = [
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "ConfigError",
    "YamlTree",
    "YamlValue",
    "load_yaml",
    "read_text_file",
    "safe_yaml",
    "short_repr",
]


#: A value YAML data may hold once read safely: a scalar, a list of values or a mapping of strings to values.
YamlValue: TypeAlias = Union[bool, int, float, str, list["YamlValue"], dict[str, "YamlValue"], None]  # noqa: UP007
#: A YAML mapping (a config file, a preset, a ``config.yaml``): strings to :data:`YamlValue`.
YamlTree: TypeAlias = dict[str, YamlValue]


#: Longest value shown in a message (a long value is cut).
_MAX_SHOWN = 80


def short_repr(value: object) -> str:
    """
    :param value: a value to name in a message.
    :return: ``repr(value)``, cut to :data:`_MAX_SHOWN` characters.
    """
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[: _MAX_SHOWN - 3]}..."


class ConfigError(ValueError):
    """A bad preset name, config file or override: the message is one line naming the problem and what is allowed."""


def _preset_text(name: str) -> str:
    return resources.files("metarim_sb3.experiments").joinpath("presets", name).read_text(encoding="utf-8")


#: Largest YAML file read (bytes), deepest nesting, and most nodes after expanding aliases: a config is small, and
#: a bigger one (``/dev/zero``, a 20,000-deep list, an alias bomb) is refused before it is parsed or expanded.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 100_000


def read_text_file(path: str | Path, what: str, limit: int = MAX_YAML_BYTES) -> str:
    """
    Read a small UTF-8 text file that must be a regular file (a FIFO, device or folder is refused before it is read).

    :param path: the file.
    :param what: how the message names it (e.g. ``config file cfg.yaml``).
    :param limit: the largest size allowed, in bytes.
    :return: its text.
    :raises ConfigError: if it cannot be opened, is not a regular file, is larger than ``limit`` or is not UTF-8.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    except OSError as err:
        raise ConfigError(f"cannot read {what}: {err.strerror or err}") from err
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"cannot read {what}: not a regular file (a folder, FIFO or device); give a YAML file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(f"cannot read {what}: larger than {limit} bytes (a config is a few kB)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"cannot read {what}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _yaml_error(where: str, err: yaml.YAMLError) -> ConfigError:
    mark = getattr(err, "problem_mark", None)
    line = f" (line {mark.line + 1})" if mark is not None else ""
    return ConfigError(f"{where} is not valid YAML{line}: {getattr(err, 'problem', None) or err}")


def safe_yaml(text: str, where: str) -> Any:
    """
    ``yaml.safe_load`` with bounds checked before anything is built: at most :data:`MAX_YAML_BYTES` of text,
    :data:`MAX_YAML_DEPTH` levels of nesting and :data:`MAX_YAML_NODES` nodes once aliases are expanded.

    :param text: the YAML text.
    :param where: how the message names it.
    :return: the parsed value.
    :raises ConfigError: on invalid YAML or a bound exceeded, naming the bound.
    """
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{where} is larger than {MAX_YAML_BYTES} bytes (a config is a few kB)")
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):  # streaming: no recursion, nothing built
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise ConfigError(f"{where} nests deeper than {MAX_YAML_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _count_nodes(node, {}, where)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise _yaml_error(where, err) from None


def _count_nodes(node: yaml.Node, seen: dict[int, int], where: str) -> int:
    """:return: the nodes under ``node`` with aliases expanded (shared nodes counted once per use, each visited
    once); :raises ConfigError: beyond :data:`MAX_YAML_NODES`."""
    if id(node) in seen:
        return seen[id(node)]
    seen[id(node)] = MAX_YAML_NODES + 1  # a node inside itself (a recursive alias) counts as too many
    if isinstance(node, yaml.SequenceNode):
        children: list[yaml.Node] = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    total = 1
    for child in children:
        total += _count_nodes(child, seen, where)
        if total > MAX_YAML_NODES:
            raise ConfigError(f"{where} expands to more than {MAX_YAML_NODES} values (YAML aliases); refused")
    seen[id(node)] = total
    return total


def load_yaml(path: str | Path | None = None, *, preset: str | None = None) -> YamlTree:
    """
    Read a YAML mapping with ``yaml.safe_load``.

    :param path: a file to read.
    :param preset: instead of ``path``, the name of a file in the package's ``presets`` folder.
    :return: the mapping (empty for an empty file).
    :raises ConfigError: if the file cannot be read, is not a regular file, is not valid YAML, exceeds the bounds of
        :func:`safe_yaml`, or is not a mapping.
    """
    where = f"preset {preset}" if preset is not None else f"config file {path}"
    if preset is not None:
        try:
            text = _preset_text(preset)
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read {where}: {err.strerror if isinstance(err, OSError) else err}") from err
    else:
        text = read_text_file(Path(path), where)  # type: ignore[arg-type]
    data = safe_yaml(text, where)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a YAML mapping (key: value lines), got a {type(data).__name__}")
    return copy.deepcopy(data)  # YAML aliases share objects; never let a merge mutate two places
