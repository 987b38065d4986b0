"""``CITATION.cff`` and the distribution's license metadata agree with ``pyproject.toml``."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from repo_paths import ROOT


def _pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_citation_names_the_project_and_both_papers() -> None:
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    project = _pyproject()
    assert cff["cff-version"] == "1.2.0"
    assert cff["type"] == "software" and cff["message"] and cff["authors"]
    assert cff["version"] == project["version"]
    assert cff["license"] == project["license"]
    references = {ref["title"]: ref for ref in cff["references"]}
    assert set(references) == {
        "Fast and Slow Learning of Recurrent Independent Mechanisms",
        "Recurrent Independent Mechanisms",
    }
    arxiv = {
        title: {i["value"] for i in ref["identifiers"] if i["type"] == "other"} for title, ref in references.items()
    }
    assert arxiv["Fast and Slow Learning of Recurrent Independent Mechanisms"] == {"arXiv:2105.08710"}
    assert arxiv["Recurrent Independent Mechanisms"] == {"arXiv:1909.10893"}
    assert (
        references["Fast and Slow Learning of Recurrent Independent Mechanisms"]["authors"][0]["family-names"]
        == "Madan"
    )
    assert references["Recurrent Independent Mechanisms"]["authors"][0]["family-names"] == "Goyal"


def test_license_is_an_spdx_string_with_its_file() -> None:
    """The form setuptools 77+ reads without a deprecation warning: ``license = "MIT"`` and ``license-files``."""
    project = _pyproject()
    assert project["license"] == "MIT"
    for name in project["license-files"]:
        assert (ROOT / name).is_file(), name
    assert "MIT License" in (ROOT / "LICENSE").read_text()
