"""Run the cells of a grid as Ray Tune trials, on this machine or on a Ray cluster.

Each cell (one agent x env x seed) is one trial of a function trainable that calls the same single-run entry
point as the local backend, ``run_cell(cell) -> summary``, so a trial writes the same run folder (``cell.out_dir``)
and ``metarim report`` reads it unchanged. Ray's own bookkeeping (experiment state, per-trial ``result.json``)
goes to ``OUT/.ray``, apart from the run folders.

- Cells whose run folder has a ``done.json`` are skipped before anything is submitted.
- A trial that raises (or whose summary says ``"status": "failed"``) is restarted up to ``max_failures`` times;
  ``run_cell`` resumes from the cell's ``checkpoint.zip`` by itself, so a retry continues where the failed
  attempt last saved. Failures that remain are returned, not raised.
- No scheduler stops trials early: every cell of a comparison runs its full budget.
- Each trial reserves ``cpus_per_run`` CPUs and uses that many torch / OpenMP threads (no oversubscription).
  Environments inside a trial should stay in one process (SB3's ``DummyVecEnv``, what the runner builds):
  a ``SubprocVecEnv`` would start processes Ray does not count.
- Trials that do not exit when stopped are killed after :data:`TRIAL_CLEANUP_S` seconds (Tune waits 600 s by
  default), so the last trial cannot keep the grid from finishing.

``metarim compare --backend ray`` calls this through :func:`metarim_sb3.experiments.compare.run_grid_ray`, whose
``prepare`` step writes each run folder's ``job.yaml`` as the local backend does. Ray is an optional dependency:
``pip install metarim[ray]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from metarim_sb3.experiments.rundir import DONE, ERROR_LOG, read_json

__all__ = ["TRIAL_CLEANUP_S", "GridCell", "RayConnectionError", "RayMissingError", "require_ray", "run_grid_on_ray"]

#: Seconds Tune gives a stopping trial before killing its process (``TUNE_FORCE_TRIAL_CLEANUP_S``).
TRIAL_CLEANUP_S = 30
INSTALL_HINT = "pip install metarim[ray]"
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class GridCell(Protocol):
    """What the backend needs to know of a cell (``compare.Job`` fits); the rest is for ``run_cell``."""

    @property
    def out_dir(self) -> Path:
        """The cell's run folder."""
        ...

    @property
    def label(self) -> str:
        """A short name for progress lines."""
        ...


class RayMissingError(ImportError):
    """Ray is not installed."""


class RayConnectionError(ConnectionError):
    """No Ray cluster answers at the address given."""


def require_ray() -> Any:
    """
    :return: the ``ray`` module.
    :raises RayMissingError: if Ray (with Tune) is not installed, with the line that installs it.
    """
    try:
        import ray
        from ray import tune  # noqa: F401  (the extra installs ray[tune])
    except ImportError as err:
        raise RayMissingError(f"--backend ray needs Ray (with Tune): {INSTALL_HINT}") from err
    return ray


def _check_args(address: str | None, cpus_per_run: int, max_failures: int, verbose: int) -> None:
    if isinstance(cpus_per_run, bool) or not isinstance(cpus_per_run, int) or cpus_per_run < 1:
        raise ValueError(f"cpus_per_run must be an integer >= 1, got {cpus_per_run!r}")
    if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0:
        raise ValueError(f"max_failures must be an integer >= 0, got {max_failures!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ValueError(f"address must be None (start Ray here), 'auto' or HOST:PORT, got {address!r}")


def _limit_threads(cpus_per_run: int) -> None:
    """One trial's process: as many torch / OpenMP threads as the CPUs it reserved."""
    import torch

    for var in _THREAD_VARS:
        os.environ[var] = str(cpus_per_run)
    torch.set_num_threads(cpus_per_run)
    with contextlib.suppress(RuntimeError):  # already set once this process ran torch code
        torch.set_num_interop_threads(cpus_per_run)


def _trial(
    config: dict[str, Any],
    cells: Sequence[Any] = (),
    run_cell: Callable[[Any], dict[str, Any]] | None = None,
    cpus_per_run: int = 1,
    workdir: str = "",
) -> None:
    """The function trainable: one cell, one ``run_cell`` call, one report."""
    from ray import tune

    assert run_cell is not None
    _limit_threads(cpus_per_run)
    if workdir and os.path.isdir(workdir):  # Tune starts trials in their Ray folder: relative paths as locally
        os.chdir(workdir)
    index = int(config["cell"])
    summary = run_cell(cells[index])
    if not isinstance(summary, dict):
        raise TypeError(f"run_cell must return a dict, returned {type(summary).__name__}")
    if summary.get("status") == "failed":  # an entry point that catches its own errors: retry it all the same
        raise RuntimeError(f"{cells[index].label}: {summary.get('error', 'failed')}")
    metrics: dict[str, Any] = {"cell": index, "run_status": summary.get("status"), "summary": json.dumps(summary)}
    for key in ("timesteps", "heldout_success", "fps"):
        if isinstance(summary.get(key), int | float):
            metrics[key] = summary[key]
    tune.report(metrics)


def _describe(result: dict[str, Any]) -> str:
    status = result.get("status")
    if status == "done":
        parts = [f"done, {result.get('timesteps', '?')} steps"]
        if isinstance(result.get("wall_time_s"), int | float):
            parts.append(f"in {result['wall_time_s']:.0f} s")
        if isinstance(result.get("heldout_success"), int | float):
            parts.append(f"held-out success {result['heldout_success']:.2f}")
        return ", ".join(parts)
    if status == "interrupted":
        return f"interrupted at {result.get('timesteps')} steps (checkpoint saved)"
    return f"FAILED: {result.get('error', '?')}"


def _progress_callback(cells: Sequence[GridCell], skipped: int, slots: int, verbose: int, log: Any) -> Any:
    """
    A Tune callback printing one line per finished, failed or retried trial on the driver, as the local backend
    does: ``[finished/total elapsed, ETA] label: result``.

    :param cells: the grid.
    :param skipped: cells skipped as complete (counted as finished).
    :param slots: trials that run at once (the ETA's parallelism).
    :param verbose: 0 prints nothing.
    :param log: the stream; it is not pickled with the callback (Tune saves its callbacks with the experiment).
    """
    from ray import tune

    from metarim_sb3.experiments.compare import _eta

    class Progress(tune.Callback):  # type: ignore[misc]
        def __init__(self, stream: Any) -> None:  # an argument, not a closure variable: not pickled
            self.finished = skipped
            self.start = time.perf_counter()
            self.log = stream

        def __getstate__(self) -> dict[str, Any]:
            return {**self.__dict__, "log": None}

        def _line(self, text: str) -> None:
            if not verbose:
                return
            elapsed = time.perf_counter() - self.start
            ran = self.finished - skipped
            eta = _eta(elapsed, ran, len(cells) - self.finished, slots)
            line = f"[{self.finished}/{len(cells)} {elapsed:5.0f}s{eta}] {text}"
            print(line, file=self.log or sys.stdout, flush=True)

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self.finished += 1
            index = trial.config["cell"]
            result = json.loads(trial.last_result.get("summary", "{}")) if trial.last_result else {}
            self._line(f"{cells[index].label}: {_describe(result)}")

        def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self._line(
                f"{cells[trial.config['cell']].label}: attempt {trial.num_failures} failed "
                f"({_trial_error(trial)}), retrying from its checkpoint"
            )

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self.finished += 1
            cell = cells[trial.config["cell"]]
            self._line(
                f"{cell.label}: FAILED after {trial.num_failures} attempt(s): {_trial_error(trial)} "
                f"(see {Path(cell.out_dir) / ERROR_LOG} if there is one)"
            )

    return Progress(log)


class _NoRestoreHint(logging.Filter):
    """Drops Tune's "resume with Tuner.restore(...)" hint after Ctrl-C: a grid resumes by running it again."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore" not in record.getMessage()


@contextlib.contextmanager
def _without_restore_hint() -> Iterator[None]:
    tune_logger, hint_filter = logging.getLogger("ray.tune.tune"), _NoRestoreHint()
    tune_logger.addFilter(hint_filter)
    try:
        yield
    finally:
        tune_logger.removeFilter(hint_filter)


@contextlib.contextmanager
def _env_default(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the block unless the user set it."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _trial_error(trial: Any, limit: int = 160) -> str:
    """The last line of a trial's latest exception, read from the file Tune just wrote on the driver (its copy in
    the storage folder comes later), cut to ``limit`` characters, or ``"?"`` when there is none."""
    text = "?"
    try:
        if trial.pickled_error_file and os.path.exists(trial.pickled_error_file):
            from ray import cloudpickle

            with open(trial.pickled_error_file, "rb") as file:
                text = _error_text(cloudpickle.load(file))
        elif trial.error_file and os.path.exists(trial.error_file):
            with open(trial.error_file) as file:
                text = ([line.strip() for line in file if line.strip()] or ["?"])[-1]
    except Exception:  # pragma: no cover - an error file Tune could not read back
        pass
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_text(error: BaseException | None) -> str:
    if error is None:
        return "no result (the trial did not finish)"
    cause = getattr(error, "cause", None) or error  # Tune wraps the trial's exception
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}".strip()


def run_grid_on_ray(
    cells: Sequence[GridCell],
    run_cell: Callable[[Any], dict[str, Any]],
    out_dir: str | Path,
    address: str | None = None,
    cpus_per_run: int = 1,
    max_failures: int = 2,
    verbose: int = 1,
    *,
    num_cpus: int | None = None,
    log: Any = None,
    prepare: Callable[[list[Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """
    Run the cells that are not complete yet as Ray Tune trials, as many at a time as the cluster's CPUs allow.

    :param cells: the grid; each has ``out_dir`` (its run folder) and ``label`` (see :class:`GridCell`) and must
        pickle (it travels to the machine that runs it).
    :param run_cell: the single-run entry point, ``run_cell(cell) -> summary`` (the same callable the local
        backend uses): trains or resumes the cell in ``cell.out_dir`` and returns its summary. It must be
        importable on every machine of the cluster (a module-level function of an installed package).
    :param out_dir: the results folder; Ray's own files go to ``out_dir/.ray``. On a multi-machine cluster it
        must be on storage every machine mounts at the same path.
    :param address: ``None`` starts a Ray instance on this machine for the call; ``"auto"`` or ``HOST:PORT``
        connects to a running cluster (``ray start --head``). Ignored when Ray is already initialised in this
        process (that instance is used and left running).
    :param cpus_per_run: CPUs reserved by each trial, and its torch / OpenMP threads.
    :param max_failures: restarts of a failed trial before it is reported as failed.
    :param verbose: 0 silent, 1 a line per finished or retried trial, 2 also Tune's status table and the
        trials' output.
    :param num_cpus: CPUs of the Ray instance started when ``address`` is ``None`` (default: all of them).
    :param log: stream for the progress lines (default ``sys.stdout``).
    :param prepare: called with the cells to run once Ray is up, before any is submitted (e.g. to mark their run
        folders), so that nothing is written when Ray cannot start or connect.
    :return: one result per cell, in order: the ``done.json`` of skipped cells (with ``"skipped": True``), the
        summary of finished ones, ``{"status": "failed", "error": ..., "attempts": ...}`` for cells that failed
        every attempt, and ``{"status": "interrupted"}`` for cells the run did not reach (e.g. Ctrl-C).
    :raises ValueError: on a bad argument.
    :raises RayMissingError: if Ray is not installed.
    :raises RayConnectionError: if no Ray cluster answers at ``address``.
    """
    _check_args(address, cpus_per_run, max_failures, verbose)
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
        raise ValueError(f"num_cpus must be None or an integer >= 1, got {num_cpus!r}")
    log = log or sys.stdout
    cells = list(cells)
    results: dict[int, dict[str, Any]] = {}
    todo = []
    for i, cell in enumerate(cells):
        if (Path(cell.out_dir) / DONE).exists():
            results[i] = {**read_json(Path(cell.out_dir) / DONE), "skipped": True}
            if verbose:
                print(f"[skip] {cell.label}: complete ({Path(cell.out_dir) / DONE})", file=log, flush=True)
        else:
            todo.append(i)
    if not todo:
        return [results[i] for i in range(len(cells))]

    ray = require_ray()
    from ray import tune

    owned = not ray.is_initialized()
    thread_env = {var: str(cpus_per_run) for var in _THREAD_VARS}
    try:
        if owned:
            init_kwargs: dict[str, Any] = {
                "runtime_env": {"env_vars": thread_env},
                "log_to_driver": verbose >= 2,
                "logging_level": "INFO" if verbose >= 2 else "WARNING",
                "configure_logging": True,
            }
            if address is None:
                init_kwargs.update(num_cpus=num_cpus, include_dashboard=False)
            else:
                init_kwargs["address"] = address
            try:
                ray.init(**init_kwargs)
            except ConnectionError as err:
                first = (str(err).strip().splitlines() or [""])[0]
                raise RayConnectionError(
                    f"no Ray cluster at address {address!r} ({first}); start one with `ray start --head`, "
                    "or leave the address out to start Ray on this machine"
                ) from err
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if verbose:
            joined = address or os.environ.get("RAY_ADDRESS")  # ray.init() joins RAY_ADDRESS when given no address
            where = "a local Ray" if owned and not joined else f"the Ray cluster at {joined or 'this process'}"
            print(
                f"running {len(todo)} of {len(cells)} runs on {where} ({cpus} CPUs, {cpus_per_run} per run)",
                file=log,
                flush=True,
            )
        if prepare is not None:
            prepare([cells[i] for i in todo])
        slots = max(1, cpus // cpus_per_run)  # trials at once, for the ETA
        trainable = tune.with_resources(
            tune.with_parameters(
                _trial, cells=cells, run_cell=run_cell, cpus_per_run=cpus_per_run, workdir=os.getcwd()
            ),
            {"cpu": cpus_per_run},
        )
        storage = (Path(out_dir) / ".ray").resolve()
        storage.mkdir(parents=True, exist_ok=True)
        tuner = tune.Tuner(
            trainable,
            param_space={"cell": tune.grid_search(todo)},
            tune_config=tune.TuneConfig(
                reuse_actors=False,  # a fresh process per cell: no torch or env state carried over
                trial_dirname_creator=lambda trial: f"cell_{trial.config['cell']}",
            ),
            run_config=tune.RunConfig(
                name=time.strftime("grid-%Y%m%d-%H%M%S"),
                storage_path=str(storage),
                failure_config=tune.FailureConfig(max_failures=max_failures),
                checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
                callbacks=[_progress_callback(cells, len(cells) - len(todo), slots, verbose, log)],
                verbose=1 if verbose >= 2 else 0,
            ),
        )
        new_output = "1" if verbose >= 2 else "0"  # Tune's newer console output prints its header even at verbose 0
        with (
            _env_default("TUNE_FORCE_TRIAL_CLEANUP_S", str(TRIAL_CLEANUP_S)),
            _env_default("RAY_AIR_NEW_OUTPUT", new_output),
            _without_restore_hint(),
        ):
            grid = tuner.fit()
        for result in (grid[i] for i in range(len(grid))):
            config = result.config or {}
            if "cell" not in config:  # pragma: no cover - a trial Tune could not start at all
                continue
            index = int(config["cell"])
            metrics = result.metrics or {}
            if result.error is None and "summary" in metrics:
                results[index] = json.loads(metrics["summary"])
            elif result.error is not None:
                results[index] = {"status": "failed", "error": _error_text(result.error), "attempts": max_failures + 1}
    finally:
        if owned and ray.is_initialized():
            ray.shutdown()
    for i in range(len(cells)):
        results.setdefault(i, {"status": "interrupted", "timesteps": None})
    return [results[i] for i in range(len(cells))]
