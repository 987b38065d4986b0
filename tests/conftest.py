"""Shared pytest configuration: one torch thread per test process, GPU tests skipped without CUDA."""

from __future__ import annotations

import os

import pytest

# headless rendering for pygame (minigrid's "human" mode) in every test process
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

try:
    import torch
except ImportError:  # pragma: no cover - torch is a hard dependency, kept optional for env-only checks
    torch = None  # type: ignore[assignment]
else:
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` when no CUDA device is available."""
    has_cuda = torch is not None and torch.cuda.is_available()
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
