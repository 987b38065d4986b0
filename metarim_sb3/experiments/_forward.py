"""Attribute forwarding for the old modules of ``metarim_sb3.experiments`` that were split between several new
ones (PEP 562). Each such old module warns itself, with :func:`metarim_sb3._deprecated.moved_message`, then takes
its ``__getattr__``, ``__dir__`` and ``__all__`` from :func:`forwarder`. (A module that moved whole is an alias of
its new module instead: :func:`metarim_sb3._deprecated.alias_module`.)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["forwarder"]


def forwarder(
    old: str, homes: Sequence[str], renamed: Mapping[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """
    The names of a split module, looked up in the modules that now define them.

    :param old: the old module's dotted name (its ``__name__``).
    :param homes: the new modules, searched in this order for a name.
    :param renamed: old names that are called differently now: old name -> ``"new.module:new_name"``.
    :return: the old module's ``__getattr__`` and ``__dir__``, and its ``__all__`` (the public names of every home).
    """
    modules = [importlib.import_module(home) for home in homes]
    renames = dict(renamed or {})

    def getattr_(name: str) -> Any:
        if name in renames:
            home, new = renames[name].split(":")
            return getattr(importlib.import_module(home), new)
        for module in modules:
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r} (its names moved to {', '.join(homes)})")

    names = sorted({name for module in modules for name in getattr(module, "__all__", ())})

    def dir_() -> list[str]:
        return sorted({*names, *renames})

    return getattr_, dir_, names
