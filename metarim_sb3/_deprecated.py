"""Old import paths that keep working for a while: each warns once, naming the new path and the removal version.

A moved module's old file is a two-line shim::

    from metarim_sb3._deprecated import alias_module

    alias_module(__name__, "metarim_sb3.cores.lstm")

which makes the old name an alias of the new module (``sys.modules[old] is new``): every name, private ones
included, and every monkeypatch reach the one module object, so classes are not duplicated and pickles that name
the old path still load. Every shim imports from this module, and nothing else does: that is how :func:`is_shim`
tells an old path (the API docs and the tests leave them out) without importing it.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import warnings
from types import ModuleType

__all__ = ["REMOVAL", "alias_module", "is_shim", "moved_message"]

#: The release that removes the old import paths.
REMOVAL = "0.3.0"


def moved_message(old: str, new: str) -> str:
    """
    The text of the warning for a moved module or name.

    :param old: the old import path.
    :param new: the new import path.
    :return: one sentence naming both paths and the removal version.
    """
    return f"{old} has moved to {new}; import it from there (the old path is removed in metarim {REMOVAL})"


def alias_module(old: str, new: str) -> ModuleType:
    """
    Make the module ``old`` an alias of ``new`` and emit a :class:`DeprecationWarning` saying so.

    Call it from the old module's file, with ``__name__`` as ``old``; after it, ``import old`` returns ``new``.

    :param old: the old module's dotted name (its ``__name__``).
    :param new: the dotted name of the module that replaces it.
    :return: the new module.
    """
    warnings.warn(moved_message(old, new), DeprecationWarning, stacklevel=3)
    module = importlib.import_module(new)
    sys.modules[old] = module
    return module


def is_shim(info: pkgutil.ModuleInfo) -> bool:
    """
    Whether a module found by :mod:`pkgutil` is an old import path kept by this module, told from its source
    without importing it (importing it would warn): a shim imports from ``metarim_sb3._deprecated``.

    :param info: the module, from ``pkgutil.iter_modules`` or ``pkgutil.walk_packages``.
    :return: ``True`` for a deprecated module or package.
    """
    spec = info.module_finder.find_spec(info.name, None)
    if spec is None or not spec.origin or not spec.origin.endswith(".py") or info.name == __name__:
        return False
    with open(spec.origin, encoding="utf-8") as file:
        return f"from {__name__} import" in file.read()
