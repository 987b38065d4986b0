"""Seed batches of a grid (``metarim compare --seed-batch S``): the cells still to run, packed into groups of at most
``S`` seeds that one worker process trains together
(:func:`~metarim_sb3.experiments.training.seed_runs.run_seeds`).

A pack holds cells of one agent, env and config that start from the same place: all fresh, or all resuming from a
checkpoint at the same step (``run_seeds`` refuses resumed seeds at different steps). Packs keep the grid's order
(a pack goes where its first cell was). Cells the seed-batched trainer cannot run
(:func:`~metarim_sb3.experiments.training.seed_runs.check_seed_batch`, e.g. ``ppo.chunk_len: null``) or whose
checkpoint cannot be read run one per process, as without ``--seed-batch``.

Each pack's seeds are ordinary run folders ``OUT/runs/<env>/<agent>/seed_<s>``; a seed trained in a pack equals
(up to float rounding) that seed trained by ``run_seeds`` alone, whichever pack it falls in.

This module does not import :mod:`~metarim_sb3.experiments.grid.compare` (which calls it): a cell is anything with
the fields of ``compare.Job`` (:class:`PackCell`), and the step a cell resumes from is read by the caller's
``resume_step`` (``compare.checkpoint_step``).
"""

from __future__ import annotations

import contextlib
import io
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, TypeVar

from metarim_sb3.experiments.training.folder import CHECKPOINT, DONE, ERROR_LOG, TRAIN_LOG, RunError
from metarim_sb3.experiments.training.ownership import check_out_dir, mark_run_dir
from metarim_sb3.experiments.training.result import RunResult
from metarim_sb3.experiments.training.run_config import RunConfig
from metarim_sb3.experiments.training.yaml_io import ConfigError

__all__ = ["SEED_BATCH_DRY_RUN", "Pack", "PackCell", "check_seed_batch_option", "plan_packs", "refusal_lines"]

#: The line ``compare --dry-run --seed-batch S`` adds to its estimate.
SEED_BATCH_DRY_RUN = (
    "--seed-batch: this estimate is for one seed per process; the per-seed cost of seed batches is measured by "
    "benchmarks/bench_seed_batch.py"
)


class PackCell(Protocol):
    """What packing needs to know of a cell (``compare.Job`` fits)."""

    @property
    def agent(self) -> str:
        """Agent name."""

    @property
    def env(self) -> str:
        """Environment id."""

    @property
    def seed(self) -> int:
        """Seed."""

    @property
    def config(self) -> RunConfig:
        """The resolved config."""

    @property
    def out_dir(self) -> Path:
        """The run folder, ``<parent>/seed_<seed>``."""


Cell = TypeVar("Cell", bound=PackCell)


@dataclass(frozen=True)
class Pack:
    """
    One worker task of a grid.

    :param cells: the indices of its cells in the grid's job list, in the grid's order.
    :param batched: trained together by :func:`~metarim_sb3.experiments.training.seed_runs.run_seeds` (``False``:
        one cell, run by the single runner as without seed batches).
    """

    cells: tuple[int, ...]
    batched: bool


def check_seed_batch_option(seed_batch: int, backend: str) -> None:
    """
    :param seed_batch: the value of ``--seed-batch``.
    :param backend: the value of ``--backend``.
    :raises ConfigError: naming ``--seed-batch``, unless it is a positive integer (and 1 with ``--backend ray``).
    """
    if seed_batch < 1:
        raise ConfigError(
            f"--seed-batch must be a positive integer (1: one seed per process; S > 1: up to S seeds of one agent "
            f"and env in one process), got {seed_batch}"
        )
    if seed_batch > 1 and backend != "local":
        raise ConfigError(
            "--seed-batch is an option of --backend local (each Ray trial runs one seed); drop it or use "
            "--backend local"
        )


def plan_packs(
    jobs: Sequence[Cell],
    size: int,
    resume_step: Callable[[Cell], int | None],
    todo: Sequence[int] | None = None,
) -> tuple[list[Pack], dict[tuple[str, str], str]]:
    """
    Pack the cells still to run into seed batches of at most ``size`` seeds.

    Cells share a pack when they have the same agent, env, config (equal :class:`RunConfig`) and run folder parent,
    and the same resume state (``resume_step``: ``None`` fresh, else the checkpoint's step). A pack goes where its
    first cell is in ``todo``. Cells the seed-batched trainer cannot run, and cells whose checkpoint cannot be read
    (``resume_step`` returns a negative number: the single runner reports the damage for that cell alone), are
    packs of one cell, not batched. With ``size`` 1 every cell is such a pack (nothing is read or checked).

    :param jobs: the grid's cells (``compare.plan``).
    :param size: the most seeds per pack (``--seed-batch``), at least 1.
    :param resume_step: the step a cell resumes from (``compare.checkpoint_step``).
    :param todo: the indices of the cells to run, in order (default: every cell without a ``done.json``).
    :return: the packs, and for each agent and env the seed-batched trainer cannot run, why (the
        :class:`ConfigError`'s message).
    """
    if todo is None:
        todo = [i for i, job in enumerate(jobs) if not (job.out_dir / DONE).exists()]
    if size <= 1:
        return [Pack((i,), batched=False) for i in todo], {}
    from metarim_sb3.experiments.training.seed_runs import check_seed_batch

    refused: dict[tuple[str, str], str] = {}
    checked: list[tuple[RunConfig, str | None]] = []  # RunConfig holds dicts: compared, not hashed
    groups: list[tuple[tuple[str, str, RunConfig, Path, int | None], list[int]]] = []  # open packs
    order: list[list[int] | int] = []  # a pack (its list, filled later) or a single cell, in the grid's order
    for i in todo:
        job = jobs[i]
        known = [why for config, why in checked if config == job.config]
        if known:
            reason = known[0]
        else:
            try:
                check_seed_batch(job.config)
                reason = None
            except ConfigError as err:
                reason = str(err)
            checked.append((job.config, reason))
        if reason is not None:
            refused.setdefault((job.agent, job.env), reason)
            order.append(i)
            continue
        step = resume_step(job)
        if (step is not None and step < 0) or job.out_dir.name != f"seed_{job.seed}":
            order.append(i)  # damaged checkpoint or a folder run_seeds would not name: one run, as without packs
            continue
        key = (job.agent, job.env, job.config, job.out_dir.parent, step)
        group = next((cells for k, cells in groups if k == key and len(cells) < size), None)
        if group is None:
            group = []
            groups.append((key, group))
            order.append(group)
        group.append(i)
    packs = [Pack(tuple(item), batched=True) if isinstance(item, list) else Pack((item,), False) for item in order]
    return packs, refused


def refusal_lines(refused: dict[tuple[str, str], str]) -> list[str]:
    """
    :param refused: from :func:`plan_packs`.
    :return: one line per agent and env that runs one seed per process, saying why.
    """
    return [f"{agent} on {env}: one seed per process ({why})" for (agent, env), why in refused.items()]


class _Tee(io.TextIOBase):
    """A text stream that writes to every one of ``files`` (the train.log of each seed of a pack)."""

    def __init__(self, files: Sequence[IO[str]]) -> None:
        super().__init__()
        self.files = list(files)

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for file in self.files:
            file.write(text)
        return len(text)

    def flush(self) -> None:
        for file in self.files:
            file.flush()


def _failed(error: str) -> RunResult:
    return {"status": "failed", "error": error}


def _run_pack(jobs: Sequence[PackCell]) -> list[RunResult]:
    """
    Worker entry point of a seed batch: the cells' seeds trained together in this process (resumed from their
    checkpoints if the first has one), the console output appended to every seed's ``train.log``; never raises.

    A cell whose folder may not be written (e.g. it holds other files) fails alone, with nothing written there; the
    others run. If the batch fails, each of its folders gets the traceback in ``error.log``.

    :param jobs: the pack's cells: one agent, env and config, folders ``<parent>/seed_<s>`` under one parent.
    :return: one result per cell, in order: the run's summary, ``"interrupted"`` (checkpoint saved) after SIGINT or
        SIGTERM, or ``"failed"`` with the error.
    """
    from metarim_sb3.experiments.training.seed_runs import run_seeds

    resume = (jobs[0].out_dir / CHECKPOINT).exists()
    results: dict[int, RunResult] = {}
    ready: list[int] = []
    for k, job in enumerate(jobs):
        try:
            check_out_dir(job.out_dir, resume=resume, force=False)
        except RunError as err:  # e.g. the folder holds other files: write nothing into it
            results[k] = _failed(str(err))
            continue
        mark_run_dir(job.out_dir)
        ready.append(k)
    if ready:
        cells = [jobs[k] for k in ready]
        with contextlib.ExitStack() as stack:
            logs = [stack.enter_context(open(job.out_dir / TRAIN_LOG, "a")) for job in cells]
            tee = _Tee(logs)
            stack.enter_context(contextlib.redirect_stdout(tee))
            stack.enter_context(contextlib.redirect_stderr(tee))
            try:
                ran = run_seeds(cells[0].config, [job.seed for job in cells], cells[0].out_dir.parent, resume=resume)
                results.update(zip(ready, ran, strict=True))
            except RunError as err:  # e.g. another process writes one of the runs: their files are not ours to touch
                results.update((k, _failed(str(err))) for k in ready)
            except Exception as err:  # reported by the parent; the other packs go on
                text = traceback.format_exc()
                for job in cells:
                    with contextlib.suppress(OSError):
                        (job.out_dir / ERROR_LOG).write_text(text)
                results.update((k, _failed(f"{type(err).__name__}: {err}")) for k in ready)
    return [results[k] for k in range(len(jobs))]
