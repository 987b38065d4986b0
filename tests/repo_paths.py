"""Paths of the repository for the tests, at any depth under ``tests/``: import them, never count ``parents[N]``.

Importable by its bare name from every test folder: ``tests/`` is on ``sys.path`` (``pythonpath`` in
``pyproject.toml``), as is :mod:`cli_helpers`.
"""

from __future__ import annotations

from pathlib import Path

#: The repository's root (the folder of ``pyproject.toml``).
ROOT = Path(__file__).resolve().parents[1]
#: The tests' committed data files (``tests/data/``).
DATA = ROOT / "tests" / "data"
