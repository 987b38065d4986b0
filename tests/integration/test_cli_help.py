"""The console script exists and every option's help states its default."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import metarim

COMMANDS = ("train", "evaluate", "compare", "report", "render")


def test_console_script() -> None:
    script = Path(sys.executable).parent / "metarim"
    if not script.exists():
        pytest.skip("the console script is not installed next to this interpreter (pip install -e .)")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert all(c in result.stdout for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_defaults(command: str) -> None:
    result = metarim(command, "--help")
    assert result.returncode == 0, result.stderr
    options = re.split(r"\n  (?=-)", result.stdout.split("options:", 1)[1])[1:]
    for option in options:
        if option.startswith("-h, --help"):
            continue
        assert "default" in option or "required" in option, option


@pytest.mark.parametrize("command", COMMANDS)
def test_help_starts_with_a_one_line_description(command: str) -> None:
    result = metarim(command, "--help")
    assert result.returncode == 0, result.stderr
    after_usage = result.stdout.split("\n\n", 2)[1]
    assert "\n" not in after_usage.strip()
    assert after_usage[0].isupper() and after_usage.rstrip().endswith(".")
