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


#: Modules ``--help`` must not import: seconds of start-up for text that needs none of them.
HEAVY = ("torch", "stable_baselines3", "sb3_contrib", "matplotlib", "ray")

#: Run ``main(ARGV)`` in a fresh interpreter and print the heavy modules it imported, on its last line.
_IMPORTED_BY_HELP = """
import sys
from metarim_sb3.experiments.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit_:
    assert exit_.code == 0, exit_.code
print("heavy modules:", *(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("command", ((), *((c,) for c in COMMANDS)), ids=lambda c: " ".join(c) or "metarim")
def test_help_imports_neither_torch_nor_sb3(command: tuple[str, ...]) -> None:
    """``metarim --help`` and ``metarim CMD --help`` answer without importing torch, SB3, matplotlib or Ray."""
    code = _IMPORTED_BY_HELP.format(heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", code, *command, "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage: metarim" in result.stdout
    last = result.stdout.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("heavy modules:"), result.stdout
    assert last.split()[2:] == [], f"--help imported {last}"


def test_package_imports_are_lazy() -> None:
    """``import metarim_sb3`` and ``import metarim_sb3.experiments`` stay light; names still resolve on use."""
    code = (
        "import sys, metarim_sb3, metarim_sb3.experiments as ex\n"
        "assert 'torch' not in sys.modules and 'stable_baselines3' not in sys.modules\n"
        "from metarim_sb3 import RIMPolicy\n"
        "assert RIMPolicy.__module__ == 'metarim_sb3.policies'\n"
        "assert ex.resolve_config.__module__ == 'metarim_sb3.experiments.training.config'\n"
        "assert set(metarim_sb3.__all__) <= set(dir(metarim_sb3)) and set(ex.__all__) <= set(dir(ex))\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_evaluate_help_shows_a_plain_percent_sign() -> None:
    """argparse %-formats a command's help line but not its description: each must read "95%" on screen."""
    for args in (("--help",), ("evaluate", "--help")):
        result = metarim(*args)
        assert result.returncode == 0, result.stderr
        assert "95% CIs" in result.stdout and "%%" not in result.stdout, args
