"""Lazy public names for a package (PEP 562): each is imported from the module that defines it on first use, so
that importing the package (and ``metarim --help``) does not import torch or Stable-Baselines3."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, str], names: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """
    The module-level ``__getattr__`` and ``__dir__`` of a package whose public names load on first use.

    :param package: the package's ``__name__``.
    :param homes: public name -> the module that defines it.
    :param names: the package's ``__all__``.
    :return: ``(__getattr__, __dir__)``, to assign at the package's top level.
    """

    def getattr_(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[package], name, value)  # the next lookup is direct
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return getattr_, dir_
