"""``.ci/check_dist.py`` (run by ``make dist`` in CI): it passes archives whose metadata and contents match
``pyproject.toml`` and names each difference in archives that do not (built here by hand, without a build)."""

from __future__ import annotations

import importlib.util
import io
import sys
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from repo_paths import ROOT


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_dist", ROOT / ".ci" / "check_dist.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_dist"] = module
    spec.loader.exec_module(module)
    return module


check_dist = _load()
PROJECT = check_dist.tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # tomli on Python 3.10


def _metadata(version: str, license_field: bool = False) -> str:
    lines = [
        "Metadata-Version: 2.4",
        f"Name: {PROJECT['name']}",
        f"Version: {version}",
        f"Summary: {PROJECT['description']}",
        f"License-Expression: {PROJECT['license']}",
        *(["License: MIT"] if license_field else []),
        f"Requires-Python: {PROJECT['requires-python']}",
        "Description-Content-Type: text/markdown",
        "License-File: LICENSE",
        *(f"Requires-Dist: {d}" for d in PROJECT["dependencies"]),
        *(f"Provides-Extra: {extra}" for extra in PROJECT["optional-dependencies"]),
    ]
    return "\n".join(lines) + "\n\nThe README.\n"


def _archives(dist: Path, version: str, presets: bool = True, extra: str = "", license_field: bool = False) -> None:
    """A wheel and an sdist as ``python -m build`` writes them, with ``version`` in their metadata."""
    dist.mkdir()
    name, real = PROJECT["name"], PROJECT["version"]
    info = f"{name}-{real}.dist-info"
    members = {
        **{path: "" for path in check_dist.WHEEL_FILES},
        f"{info}/METADATA": _metadata(version, license_field),
        f"{info}/entry_points.txt": "".join(f"[console_scripts]\n{k} = {v}\n" for k, v in PROJECT["scripts"].items()),
        f"{info}/licenses/LICENSE": "MIT",
    }
    if presets:
        for preset in (ROOT / "metarim_sb3" / "experiments" / "presets").glob("*.yaml"):
            members[f"metarim_sb3/experiments/presets/{preset.name}"] = ""
    if extra:
        members[extra] = ""
    with zipfile.ZipFile(dist / f"{name}-{real}-py3-none-any.whl", "w") as wheel:
        for path, text in members.items():
            wheel.writestr(path, text)
    with tarfile.open(dist / f"{name}-{real}.tar.gz", "w:gz") as sdist:
        files = {"PKG-INFO": _metadata(version, license_field), "pyproject.toml": "", "README.md": "", "LICENSE": ""}
        files["metarim_sb3/experiments/presets/compare.yaml"] = ""
        for path, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"{name}-{real}/{path}")
            member.size = len(data)
            sdist.addfile(member, io.BytesIO(data))


def test_matching_archives_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _archives(tmp_path / "dist", PROJECT["version"])
    assert check_dist.main([str(tmp_path / "dist")]) == 0
    assert "metadata and contents as pyproject.toml says" in capsys.readouterr().out


def test_each_difference_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _archives(tmp_path / "dist", "9.9.9", presets=False, extra="tests/test_x.py", license_field=True)
    assert check_dist.main([str(tmp_path / "dist")]) == 1
    err = capsys.readouterr().err
    wheel = f"{PROJECT['name']}-{PROJECT['version']}-py3-none-any.whl"
    assert f"{wheel}: Version is '9.9.9', pyproject.toml says '{PROJECT['version']}'" in err
    assert f"{wheel}: presets [], the repository has" in err
    assert f"{wheel}: holds tests/ (not part of the package)" in err
    assert f"{wheel}: a License field besides License-Expression" in err
    assert f"{PROJECT['name']}-{PROJECT['version']}.tar.gz: Version is '9.9.9'" in err


def test_missing_archives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dist").mkdir()
    assert check_dist.main([str(tmp_path / "dist")]) == 1
    assert "expected one wheel and one sdist, found []" in capsys.readouterr().err
