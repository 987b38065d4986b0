"""One run folder as one object: its files, its lock, its checks and its writes.

:class:`RunFolder` is what :func:`~metarim_sb3.experiments.training.runner.run` talks to. It owns

- the layout: the path of every run file (names of :mod:`~metarim_sb3.experiments.training.folder`);
- the lock: a :class:`~metarim_sb3.experiments.training.ownership.RunLock`, taken and released through the folder
  (:meth:`RunFolder.acquire`, :meth:`RunFolder.release`, a context manager), :attr:`RunFolder.held` saying whether
  this process holds it;
- the checks: :func:`~metarim_sb3.experiments.training.ownership.check_out_dir` before the lock and again under it;
- the writes: atomic JSON / YAML / model files, ``model.zip`` linked to ``checkpoint.zip``, the logs truncated for a
  resume, stale temporary files removed, a fresh start, the marker.

The loose functions of ``folder.py`` and ``ownership.py`` stay the implementation (the class calls them); the class
adds no file and no step of its own, so a run writes what it wrote before, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metarim_sb3.experiments.training.folder import (
    CHECKPOINT,
    CHECKPOINT_META,
    CONFIG,
    DONE,
    FINAL_EVAL,
    LOCK,
    MARKER,
    MASTERY_MODEL,
    MODEL,
    STEP_COLUMNS,
    VERSIONS,
    ZERO_SHOT_MASTERY,
    RunError,
    clean_stale_temp_files,
    link_file,
    load_model_file,
    progress_csv,
    read_json,
    read_run_config,
    save_model,
    truncate_csv,
    write_json,
    write_yaml,
)
from metarim_sb3.experiments.training.ownership import RunLock, check_out_dir, mark_run_dir, start_fresh
from metarim_sb3.experiments.training.resume import check_resume_files, has_rows

if TYPE_CHECKING:
    from metarim_sb3.experiments.training.run_config import RunConfig

__all__ = ["ModelSaver", "RunFolder"]

#: Writes a model to a file atomically: ``save(model, path)``
#: (:func:`~metarim_sb3.experiments.training.folder.save_model`).
ModelSaver = Callable[[Any, Path], None]


class RunFolder:
    """
    The folder of one run: its file paths, its lock, its checks and its atomic writes.

    Creating the object touches nothing on disk. Nothing should be written before the run holds the lock
    (:meth:`acquire` or :meth:`take`); the writes themselves do not check it, as the loose functions did not.

    :param path: the run folder (it need not exist yet).
    :param save: writes a model to a file atomically (default
        :func:`~metarim_sb3.experiments.training.folder.save_model`); every model the folder writes goes through it.
    """

    def __init__(self, path: str | Path, *, save: ModelSaver = save_model) -> None:
        self.path = Path(path)
        self._lock = RunLock(self.path)
        self._save = save

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r}, held={self.held})"

    # ------------------------------------------------------------------------------------------ layout
    def file(self, name: str) -> Path:
        """
        :param name: a file name of the layout (e.g. :data:`~metarim_sb3.experiments.training.folder.CURVE`).
        :return: its path in this folder.
        """
        return self.path / name

    @property
    def config(self) -> Path:
        """``config.yaml``: the resolved config the run trains with."""
        return self.file(CONFIG)

    @property
    def versions(self) -> Path:
        """``versions.json``: the versions of the libraries, at the start and at every resume."""
        return self.file(VERSIONS)

    @property
    def checkpoint(self) -> Path:
        """``checkpoint.zip``: the latest checkpoint."""
        return self.file(CHECKPOINT)

    @property
    def checkpoint_meta(self) -> Path:
        """``checkpoint.json``: a readable copy of the checkpoint's run state."""
        return self.file(CHECKPOINT_META)

    @property
    def model(self) -> Path:
        """``model.zip``: the final model."""
        return self.file(MODEL)

    @property
    def done(self) -> Path:
        """``done.json``: the summary, written last (its presence means "complete")."""
        return self.file(DONE)

    @property
    def final_eval(self) -> Path:
        """``final_eval.json``: the held-out evaluation after training."""
        return self.file(FINAL_EVAL)

    @property
    def marker(self) -> Path:
        """``.metarim-run``: the marker that ``metarim train`` made the folder."""
        return self.file(MARKER)

    @property
    def lock_file(self) -> Path:
        """``.metarim.lock``: the file the lock is held on."""
        return self.file(LOCK)

    def progress(self, start: int) -> Path:
        """
        :param start: the step count a training segment starts at.
        :return: SB3's progress file of that segment (:func:`~metarim_sb3.experiments.training.folder.progress_csv`).
        """
        return self.file(progress_csv(start))

    @property
    def exists(self) -> bool:
        """Whether the folder exists (as a folder)."""
        return self.path.is_dir()

    # ------------------------------------------------------------------------------------------ lock
    @property
    def held(self) -> bool:
        """Whether this object holds the folder's lock."""
        return self._lock.held

    def acquire(self) -> RunFolder:
        """
        Take the folder's lock, creating the folder if needed; nothing happens if this object holds it already.

        :return: ``self``.
        :raises RunError: naming the holder, if another process (or another lock object) holds it.
        """
        if not self._lock.held:
            self._lock.acquire()
        return self

    def release(self) -> None:
        """Release the lock if this object holds it (the lock file stays; unlocked, it means a free folder)."""
        self._lock.release()

    def __enter__(self) -> RunFolder:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ------------------------------------------------------------------------------------------ checks
    def check(self, *, resume: bool, force: bool) -> None:
        """
        Check that a run may write the folder
        (:func:`~metarim_sb3.experiments.training.ownership.check_out_dir`): before the lock, a lock held by another
        process is reported; under the lock (:attr:`held`), the folder is checked again as it is now.

        :param resume: the run continues the one in the folder.
        :param force: the run replaces the one in the folder.
        :raises RunError: if the folder does not fit the request.
        """
        check_out_dir(self.path, resume=resume, force=force, locked=self.held)

    def take(self, *, resume: bool, force: bool) -> None:
        """
        Take the folder for a run: lock it (:meth:`acquire`), check it again under the lock (:meth:`check`), and
        remove the temporary files an interrupted writer left (:meth:`clean_stale_temp_files`).

        :param resume: the run continues the one in the folder.
        :param force: the run replaces the one in the folder.
        :raises RunError: if another process holds the lock or the folder does not fit the request.
        """
        self.acquire()
        self.check(resume=resume, force=force)
        self.clean_stale_temp_files()

    # ------------------------------------------------------------------------------------------ reading
    def read_json(self, name: str) -> Any:
        """
        :param name: a JSON file of the folder.
        :return: its content.
        :raises RunError: naming the file if it cannot be read or is damaged.
        """
        return read_json(self.file(name))

    def read_config(self) -> RunConfig:
        """
        :return: the folder's ``config.yaml``
            (:func:`~metarim_sb3.experiments.training.folder.read_run_config`).
        :raises RunError: if it is missing, unreadable or refused.
        """
        return read_run_config(self.path)

    def load_model(self, name: str = CHECKPOINT, **kwargs: Any) -> Any:
        """
        Load a model zip of the folder in full (a pickle inside: only folders you trust).

        :param name: ``checkpoint.zip`` or ``model.zip``.
        :param kwargs: passed to :func:`~metarim_sb3.experiments.training.folder.load_model_file` (``env``,
            ``device``...).
        :return: the model.
        :raises RunError: naming the file if it is damaged.
        """
        return load_model_file(self.file(name), **kwargs)

    # ------------------------------------------------------------------------------------------ writes
    def write_json(self, name: str, data: Any) -> Path:
        """
        Write a JSON file of the folder atomically.

        :param name: the file name.
        :param data: JSON-serialisable data.
        :return: the file's path.
        """
        path = self.file(name)
        write_json(path, data)
        return path

    def write_yaml(self, name: str, data: Any) -> Path:
        """
        Write a YAML file of the folder atomically, keys in insertion order.

        :param name: the file name.
        :param data: YAML-serialisable data.
        :return: the file's path.
        """
        path = self.file(name)
        write_yaml(path, data)
        return path

    def save_model(self, model: Any, name: str) -> Path:
        """
        Save a model into the folder atomically (through the folder's ``save``).

        :param model: the SB3 model.
        :param name: the ``.zip`` file name.
        :return: the file's path.
        """
        path = self.file(name)
        self._save(model, path)
        return path

    def save_checkpoint(self, model: Any, state: Any) -> None:
        """
        Write ``checkpoint.zip`` (the model, with its run state inside), then ``checkpoint.json`` (a readable copy
        of ``state``), each atomically.

        :param model: the model, its run state already set on it.
        :param state: the run state (JSON-serialisable).
        :raises RunError: naming the folder if a write fails (e.g. the disk is full); the previous checkpoint stays.
        """
        try:
            self.save_model(model, CHECKPOINT)
            self.write_json(CHECKPOINT_META, state)
        except OSError as err:
            raise RunError(
                f"cannot write a checkpoint in {self.path}: {err.strerror or err}; the previous {CHECKPOINT} is kept "
                "(free some space, then continue with --resume)"
            ) from err

    def link_model(self, model: Any) -> Path:
        """
        Make ``model.zip`` the finished run's checkpoint without a second copy on disk.

        ``checkpoint.zip`` was just written (atomically, fsynced) from the same model, so ``model.zip`` becomes a
        hard link to it, put in place by an atomic rename
        (:func:`~metarim_sb3.experiments.training.folder.link_file`). Later checkpoints replace ``checkpoint.zip``
        by rename too, so a resumed run never changes ``model.zip`` behind the link. Where links are not supported
        the model is saved again.

        :param model: the trained model (saved in full if the link fails).
        :return: the path of ``model.zip``.
        """
        try:
            link_file(self.checkpoint, self.model)
        except OSError:
            self.save_model(model, MODEL)
        return self.model

    def remove(self, *names: str) -> None:
        """
        Delete files of the folder if they exist.

        :param names: the file names.
        """
        for name in names:
            self.file(name).unlink(missing_ok=True)

    def clean_stale_temp_files(self) -> list[Path]:
        """
        Remove the temporary files an interrupted writer left (hold the lock).

        :return: the removed files.
        """
        return clean_stale_temp_files(self.path)

    def truncate_for_resume(self, start: int) -> None:
        """
        Prepare the folder for a resume from the checkpoint at ``start`` steps (hold the lock): check the logs first
        (:func:`~metarim_sb3.experiments.training.resume.check_resume_files`: nothing is changed if one is damaged),
        drop the rows written after the checkpoint (they are replayed), drop ``mastery.zip`` if
        ``zero_shot_mastery.csv`` keeps no row (mastered after the checkpoint: replayed, or never), drop
        ``done.json``, and mark the folder.

        :param start: the checkpoint's step count.
        :raises RunError: naming a damaged log.
        """
        check_resume_files(self.path, start)
        for name, column in STEP_COLUMNS.items():
            truncate_csv(self.file(name), column, start)
        if not has_rows(self.file(ZERO_SHOT_MASTERY)):
            self.remove(MASTERY_MODEL)
        self.remove(DONE)
        self.mark()

    def start_fresh(self, *, force: bool) -> None:
        """
        Prepare the folder for a run from step 0 (hold the lock;
        :func:`~metarim_sb3.experiments.training.ownership.start_fresh`): with ``force`` clear the old run, else drop
        the outputs a run that never checkpointed may have left; then mark the folder.

        :param force: replace a run.
        """
        start_fresh(self.path, force=force)

    def mark(self) -> None:
        """Create the folder if needed and write the run marker (hold the lock)."""
        mark_run_dir(self.path)
