"""Helpers shared by the page generators."""

from __future__ import annotations

from pathlib import Path


def write_if_changed(path: Path, text: str | bytes) -> bool:
    """Write ``text`` to ``path`` unless it already holds exactly that (keeps Sphinx's incremental build quiet).

    :param path: the file.
    :param text: its content.
    :return: whether the file was written.
    """
    data = text.encode() if isinstance(text, str) else text
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def remove_stale(folder: Path, keep: set[Path], pattern: str) -> None:
    """Delete files matching ``pattern`` in ``folder`` that were not generated in this run.

    :param folder: the folder.
    :param keep: the files written (or confirmed) in this run.
    :param pattern: glob pattern of generated files.
    """
    if not folder.is_dir():
        return
    for path in folder.glob(pattern):
        if path.resolve() not in {k.resolve() for k in keep}:
            path.unlink()
