"""Old import paths: each still works, warns once naming its new path and the removal version, and nothing in the
project imports one (issue 27: the cores in ``metarim_sb3.cores``, the algorithm in ``metarim_sb3.ppo``)."""

from __future__ import annotations

import importlib
import json
import pickle
import pkgutil
import re
import subprocess
import sys
import warnings
from types import ModuleType

import pytest
from repo_paths import ROOT

from metarim_sb3._deprecated import REMOVAL, is_shim, moved_message

#: Old path -> new path (the moves of the cores, the algorithm and the callbacks).
OLD_PATHS = {
    "metarim_sb3.activity": "metarim_sb3.callbacks.activity",
    "metarim_sb3.buffers": "metarim_sb3.ppo.buffers",
    "metarim_sb3.chunked_ppo": "metarim_sb3.ppo.chunked",
    "metarim_sb3.curriculum": "metarim_sb3.callbacks",
    "metarim_sb3.gru_core": "metarim_sb3.cores.gru",
    "metarim_sb3.lstm_core": "metarim_sb3.cores.lstm",
    "metarim_sb3.rim": "metarim_sb3.cores",
    "metarim_sb3.rim._fused": "metarim_sb3.cores.rim._fused",
    "metarim_sb3.rim._pool": "metarim_sb3.cores.rim._pool",
    "metarim_sb3.rim.module": "metarim_sb3.cores.rim.module",
    "metarim_sb3.rim.protocol": "metarim_sb3.cores.protocol",
    "metarim_sb3.rim.reference": "metarim_sb3.cores.rim.reference",
}
#: Old modules that keep their own module object (they re-export or forward names) instead of being an alias.
NOT_ALIASES = {"metarim_sb3.curriculum", "metarim_sb3.rim"}


def _import_fresh(monkeypatch: pytest.MonkeyPatch, old: str) -> tuple[ModuleType, list[warnings.WarningMessage]]:
    """Import ``old`` as if for the first time (it and its old parent package dropped from ``sys.modules``)."""
    for name in {old, "metarim_sb3.rim"} if old.startswith("metarim_sb3.rim") else {old}:
        monkeypatch.delitem(sys.modules, name, raising=False)
    if old.startswith("metarim_sb3.rim."):  # the old package warns first, on its own
        with pytest.warns(DeprecationWarning, match=re.escape("metarim_sb3.rim has moved to metarim_sb3.cores;")):
            __import__("metarim_sb3.rim")
    with pytest.warns(DeprecationWarning, match=re.escape(f"has moved to {OLD_PATHS[old]};")) as record:
        __import__(old)  # a builtin: the warning's frame is this file, as for an `import` statement
    return sys.modules[old], list(record)


def _shims(folder: str) -> set[str]:
    """The deprecated shims among the modules of one folder of the package, found without importing them."""
    prefix = folder.replace("/", ".") + "."
    return {info.name for info in pkgutil.iter_modules([str(ROOT / folder)], prefix=prefix) if is_shim(info)}


def test_every_old_path_is_told_from_its_source() -> None:
    """:func:`is_shim` finds each old path without importing it (the API docs and the import test skip them)."""
    shims = _shims("metarim_sb3") | _shims("metarim_sb3/rim")
    assert shims - {"metarim_sb3.experiments"} == set(OLD_PATHS)
    for new in ("metarim_sb3/cores", "metarim_sb3/cores/rim", "metarim_sb3/ppo", "metarim_sb3/callbacks"):
        assert _shims(new) == set(), new


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_path_warns_naming_the_new_path_and_the_removal(monkeypatch: pytest.MonkeyPatch, old: str) -> None:
    new = importlib.import_module(OLD_PATHS[old])
    module, record = _import_fresh(monkeypatch, old)
    ours = [w for w in record if str(w.message).startswith(f"{old} has moved to ")]
    assert len(ours) == 1, [str(w.message) for w in record]
    message = str(ours[0].message)
    assert message == moved_message(old, OLD_PATHS[old])
    assert f"removed in metarim {REMOVAL}" in message
    assert ours[0].filename == __file__  # the warning points at the import, not at the shim
    if old not in NOT_ALIASES:
        assert module is new


def test_old_rim_package_forwards_its_names(monkeypatch: pytest.MonkeyPatch) -> None:
    import metarim_sb3.cores as cores
    import metarim_sb3.cores.rim.reference as reference

    old, _ = _import_fresh(monkeypatch, "metarim_sb3.rim")
    assert hasattr(old, "__path__")  # still a package: its old submodules are found
    for name in old.__all__:
        assert getattr(old, name) is getattr(cores, name), name
    assert old.reference is reference
    with pytest.raises(AttributeError, match=r"'metarim_sb3\.rim' has no attribute 'nothing'"):
        _ = old.nothing


def test_old_callback_modules_give_the_same_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    from metarim_sb3.callbacks import CurriculumCallback, HeldOutEvalCallback, UnitActivityCallback

    curriculum, _ = _import_fresh(monkeypatch, "metarim_sb3.curriculum")
    activity, _ = _import_fresh(monkeypatch, "metarim_sb3.activity")
    assert curriculum.CurriculumCallback is CurriculumCallback
    assert curriculum.HeldOutEvalCallback is HeldOutEvalCallback
    assert activity.UnitActivityCallback is UnitActivityCallback


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("metarim_sb3.chunked_ppo", "metarim_sb3.ppo.chunked", "ChunkedRecurrentPPO"),
        ("metarim_sb3.buffers", "metarim_sb3.ppo.buffers", "ChunkedRecurrentDictRolloutBuffer"),
        ("metarim_sb3.lstm_core", "metarim_sb3.cores.lstm", "LSTMCore"),
        ("metarim_sb3.rim", "metarim_sb3.cores.rim.module", "RIM"),
        ("metarim_sb3.rim.module", "metarim_sb3.cores.rim.module", "RIM"),
    ],
)
def test_pickles_naming_an_old_path_load_the_same_class(
    monkeypatch: pytest.MonkeyPatch, old: str, new: str, name: str
) -> None:
    """What an older version saved names the old module; it loads as the class of the new one."""
    cls = getattr(importlib.import_module(new), name)
    data = pickle.dumps(cls, protocol=0).replace(f"{new}\n".encode(), f"{old}\n".encode())
    assert f"{old}\n".encode() in data
    for gone in {old, "metarim_sb3.rim"} if old.startswith("metarim_sb3.rim") else {old}:
        monkeypatch.delitem(sys.modules, gone, raising=False)
    with pytest.warns(DeprecationWarning, match="has moved to"):
        assert pickle.loads(data) is cls


_IMPORT_ALL = """
import importlib, json, pkgutil, sys, warnings
from metarim_sb3._deprecated import is_shim

SKIP = ("metarim_sb3.experiments",)
warnings.simplefilter("always")
found, imported = [], []
for package in ("metarim_gym", "metarim_sb3"):
    todo = [package]
    while todo:
        name = todo.pop()
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            module = importlib.import_module(name)
        imported.append(name)
        found += [f"{name}: {w.message}" for w in record if "has moved to" in str(w.message)]
        for info in pkgutil.iter_modules(getattr(module, "__path__", []), prefix=f"{name}."):
            if not is_shim(info) and not info.name.startswith(SKIP):
                todo.append(info.name)
print(json.dumps({"found": found, "imported": imported}))
"""


def test_no_module_of_the_project_imports_an_old_path() -> None:
    """Import every module of both packages in a fresh interpreter: none warns about a moved module."""
    result = subprocess.run([sys.executable, "-c", _IMPORT_ALL], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["found"] == []
    imported = set(report["imported"])
    assert {"metarim_sb3.cores.rim.reference", "metarim_sb3.ppo.chunked", "metarim_sb3.policies"} <= imported
    assert not imported & set(OLD_PATHS)


#: Files that name the old paths on purpose: the deprecation itself and history (the shims name only new paths).
NAMES_OLD_PATHS = {
    "CHANGELOG.md",
    "metarim_sb3/_deprecated.py",
    "tests/project/test_deprecated_paths.py",
    "tests/data/make_legacy_models.py",  # what the legacy zips were written with
    "tests/metarim_sb3/test_save_load.py",  # the same
}


def test_no_tracked_file_names_an_old_path() -> None:
    """Code, docs and configs use the new paths; only the shims, the changelog and the legacy-model notes name the
    old ones."""
    try:
        listed = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    old = "|".join(re.escape(name.removeprefix("metarim_sb3.")) for name in sorted(OLD_PATHS, reverse=True))
    pattern = re.compile(rf"\bmetarim_sb3\.(?:{old})\b(?![\w-])|\bfrom metarim_sb3 import [^\n]*\b(?:{old})\b")
    offenders = []
    for name in listed.splitlines():
        path = ROOT / name
        if (
            name.startswith("results/")
            or name in NAMES_OLD_PATHS
            or path.suffix not in {".py", ".md", ".yml", ".yaml", ".toml", ".cfg", ".txt", ".rst"}
            or not path.is_file()
        ):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []
