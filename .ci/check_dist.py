"""Check the built wheel and sdist of metarim beyond ``twine check`` (which checks that the metadata is complete and
that the README renders): the metadata says what ``pyproject.toml`` says, and the archives hold what an installed
package needs (both packages, their ``py.typed``, the presets, the license, the ``metarim`` command) and nothing of
the repository that is not the package (tests, results, docs).

Run by ``make dist`` after ``python -m build``; by hand::

    python .ci/check_dist.py dist

Exit status 0 when both archives pass, 1 otherwise (each problem printed on a line).
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: tomli, which build installs there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
#: Files the wheel must hold (beyond the modules).
WHEEL_FILES = (
    "metarim_gym/__init__.py",
    "metarim_gym/py.typed",
    "metarim_sb3/__init__.py",
    "metarim_sb3/py.typed",
    "metarim_sb3/experiments/cli.py",
)
#: Top-level folders of the repository that are not part of the installed package.
NOT_IN_WHEEL = ("tests/", "results/", "docs/", "benchmarks/", "studies/", "examples/", "hyperparams/")


def _requirement(text: str) -> tuple[str, SpecifierSet]:
    """A requirement as (normalised name, specifiers): the order of the specifiers does not matter."""
    requirement = Requirement(text)
    return canonicalize_name(requirement.name), requirement.specifier


def _metadata(text: str) -> Message:
    return HeaderParser().parsestr(text)


def check_metadata(meta: Message, project: dict, where: str) -> list[str]:
    """
    :param meta: the parsed ``METADATA`` / ``PKG-INFO``.
    :param project: the ``[project]`` table of ``pyproject.toml``.
    :param where: the archive's name, for the messages.
    :return: one line per difference.
    """
    problems = []
    expected = {
        "Name": project["name"],
        "Version": project["version"],
        "Requires-Python": project["requires-python"],
        "License-Expression": project["license"],
        "Summary": project["description"],
    }
    for field, value in expected.items():
        if meta.get(field) != value:
            problems.append(f"{where}: {field} is {meta.get(field)!r}, pyproject.toml says {value!r}")
    if meta.get("Description-Content-Type") != "text/markdown":
        problems.append(f"{where}: Description-Content-Type is {meta.get('Description-Content-Type')!r}")
    if "LICENSE" not in (meta.get_all("License-File") or []):
        problems.append(f"{where}: no License-File: LICENSE")
    if meta.get("License"):  # the deprecated free-text field next to License-Expression
        problems.append(f"{where}: a License field besides License-Expression")
    extras = set(meta.get_all("Provides-Extra") or [])
    missing_extras = set(project.get("optional-dependencies", {})) - extras
    if missing_extras:
        problems.append(f"{where}: extras missing: {', '.join(sorted(missing_extras))}")
    requires = {_requirement(r) for r in meta.get_all("Requires-Dist") or [] if ";" not in r}  # extras have a marker
    for dependency in project["dependencies"]:
        if _requirement(dependency) not in requires:
            problems.append(f"{where}: Requires-Dist lacks {dependency!r}")
    return problems


def check_wheel(path: Path, project: dict) -> list[str]:
    """
    :param path: the ``.whl``.
    :param project: the ``[project]`` table of ``pyproject.toml``.
    :return: one line per problem.
    """
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        info = f"{project['name']}-{project['version']}.dist-info"
        problems = [f"{path.name}: no {name}" for name in WHEEL_FILES if name not in names]
        for required in (f"{info}/METADATA", f"{info}/entry_points.txt", f"{info}/licenses/LICENSE"):
            if required not in names:
                problems.append(f"{path.name}: no {required}")
        if problems:
            return problems
        problems += check_metadata(_metadata(archive.read(f"{info}/METADATA").decode()), project, path.name)
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    for name, target in project.get("scripts", {}).items():
        if f"{name} = {target}" not in entry_points:
            problems.append(f"{path.name}: no console script {name} = {target}")
    presets = sorted(p.name for p in (ROOT / "metarim_sb3" / "experiments" / "presets").glob("*.yaml"))
    shipped = sorted(Path(n).name for n in names if n.startswith("metarim_sb3/experiments/presets/"))
    if presets != shipped:
        problems.append(f"{path.name}: presets {shipped}, the repository has {presets}")
    stray = sorted({n.split("/")[0] + "/" for n in names if n.startswith(NOT_IN_WHEEL)})
    if stray:
        problems.append(f"{path.name}: holds {', '.join(stray)} (not part of the package)")
    return problems


def check_sdist(path: Path, project: dict) -> list[str]:
    """
    :param path: the ``.tar.gz``.
    :param project: the ``[project]`` table of ``pyproject.toml``.
    :return: one line per problem.
    """
    top = f"{project['name']}-{project['version']}"
    with tarfile.open(path) as archive:
        names = set(archive.getnames())
        wanted = ("PKG-INFO", "pyproject.toml", "README.md", "LICENSE", "metarim_sb3/experiments/presets/compare.yaml")
        problems = [f"{path.name}: no {name}" for name in wanted if f"{top}/{name}" not in names]
        if f"{top}/PKG-INFO" in names:
            member = archive.extractfile(f"{top}/PKG-INFO")
            assert member is not None
            problems += check_metadata(_metadata(member.read().decode()), project, path.name)
    return problems


def main(argv: list[str] | None = None) -> int:
    """
    :param argv: the arguments (default: ``sys.argv[1:]``).
    :return: the exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dist", type=Path, help="the folder python -m build wrote")
    args = parser.parse_args(argv)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wheels, sdists = sorted(args.dist.glob("*.whl")), sorted(args.dist.glob("*.tar.gz"))
    problems = []
    if len(wheels) != 1 or len(sdists) != 1:
        problems.append(f"{args.dist}: expected one wheel and one sdist, found {[p.name for p in wheels + sdists]}")
    else:
        problems += check_wheel(wheels[0], project) + check_sdist(sdists[0], project)
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print(f"check_dist: {wheels[0].name} and {sdists[0].name}: metadata and contents as pyproject.toml says")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
