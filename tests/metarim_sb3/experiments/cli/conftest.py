"""Fixtures of the ``metarim`` command tests (helpers in ``tests/cli_helpers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_helpers import ENV_ID, TINY, metarim


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``--config`` file with :data:`TINY`."""
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, tiny_config: Path) -> Path:
    """One complete tiny ``metarim train`` run (shared by the tests that only read it)."""
    out = tmp_path_factory.mktemp("runs") / "rim"
    result = metarim(
        "train", "--agent", "rim", "--env", ENV_ID, "--timesteps", "512", "--seed", "1", "--out", out,
        "--config", tiny_config,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out
