"""Run the cells of a grid as Ray Tune trials, on this machine or on a Ray cluster.

Each cell (one agent x env x seed) is one trial of a function trainable that calls the same single-run entry
point as the local backend, ``run_cell(cell) -> summary``, so a trial writes the same run folder (``cell.out_dir``)
and ``metarim report`` reads it unchanged. Ray's own bookkeeping (experiment state, per-trial ``result.json``)
goes to ``OUT/.ray``, apart from the run folders.

- Cells whose run folder has a ``done.json`` are skipped before anything is submitted.
- A trial that raises (or whose summary says ``"status": "failed"``) is restarted up to ``max_failures`` times;
  ``run_cell`` resumes from the cell's ``checkpoint.zip`` by itself, so a retry continues where the failed
  attempt last saved. Each retry prints one line on the driver: why the attempt failed and the step the next one
  starts from (``resume_step``). Failures that remain are returned, not raised.
- Each attempt's console output (its process's stdout and stderr, file descriptors included) is appended to the
  cell's ``log_file`` (``train.log`` for ``compare``) under a header naming the attempt, node, host and process;
  the driver appends each failed attempt's full error there. Below ``verbose=2`` Ray's and Tune's own tracebacks
  and worker-death messages stay off the console (they are in that file and in ``OUT/.ray``).
- No scheduler stops trials early: every cell of a comparison runs its full budget.
- Each trial reserves ``cpus_per_run`` CPUs and uses that many torch / OpenMP threads (no oversubscription).
  Environments inside a trial should stay in one process (SB3's ``DummyVecEnv``, what the runner builds):
  a ``SubprocVecEnv`` would start processes Ray does not count.
- Trials that do not exit when stopped are killed after :data:`TRIAL_CLEANUP_S` seconds (Tune waits 600 s by
  default), so the last trial cannot keep the grid from finishing.

``metarim compare --backend ray`` calls this through :func:`metarim_sb3.experiments.grid.compare.run_grid_ray`, whose
``prepare`` step writes each run folder's ``job.yaml`` as the local backend does. Ray is an optional dependency:
``pip install metarim[ray]``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypedDict

from metarim_sb3.experiments.grid.progress import eta_text
from metarim_sb3.experiments.grid.ray_output import (
    _ANSI,
    _append,
    _describe,
    _error_text,
    _output_to,
    _resumes,
    _trial_error,
    _trial_error_file,
    _why,
)
from metarim_sb3.experiments.training.folder import DONE, ERROR_LOG, read_json
from metarim_sb3.experiments.training.result import RunResult

__all__ = [
    "TRIAL_CLEANUP_S",
    "GridCell",
    "RayConnectionError",
    "RayMissingError",
    "RayPlacement",
    "RayRunResult",
    "require_ray",
    "run_grid_on_ray",
]


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


class RayPlacement(TypedDict):
    """Where and how often Ray ran a finished cell (the ``ray`` key of its :class:`RayRunResult`)."""

    #: The Ray node of the attempt that finished (``None`` if its report did not say).
    node_id: str | None
    #: The host name of that node (``None`` if its report did not say).
    host: str | None
    #: Attempts made, the one that finished included.
    attempts: int


class RayRunResult(RunResult, total=False):
    """A cell's result from :func:`run_grid_on_ray`: a :class:`~metarim_sb3.experiments.training.result.RunResult`
    plus what Ray adds."""

    #: Where the cell ran (finished cells only).
    ray: RayPlacement
    #: Attempts made (cells that failed every attempt only).
    attempts: int


class _TrialConfig(TypedDict):
    """The config Tune gives a trial: the index of its cell in the grid."""

    cell: int


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
    config: _TrialConfig,
    cells: Sequence[Any] = (),
    run_cell: Callable[[Any], RunResult] | None = None,
    cpus_per_run: int = 1,
    workdir: str = "",
    log_file: Callable[[Any], Path | None] | None = None,
) -> None:
    """
    The function trainable: one cell, one ``run_cell`` call (its output in the cell's ``log_file``), one
    report, which names the node and host that ran it.

    :param config: the trial's config from Tune: which cell.
    :param cells: the grid.
    :param run_cell: the single-run entry point (see :func:`run_grid_on_ray`).
    :param cpus_per_run: the trial's CPUs, and its torch / OpenMP threads.
    :param workdir: the driver's working folder, where the trial runs (relative paths as locally).
    :param log_file: the file that receives the attempt's console output (``None``: none).
    :raises TypeError: if ``run_cell`` does not return a dict.
    :raises RuntimeError: if its result says ``"status": "failed"`` (so that Tune retries the cell).
    """
    import ray
    from ray import tune

    assert run_cell is not None
    _limit_threads(cpus_per_run)
    if workdir and os.path.isdir(workdir):  # Tune starts trials in their Ray folder: relative paths as locally
        os.chdir(workdir)
    index = int(config["cell"])
    cell = cells[index]
    node_id, host = ray.get_runtime_context().get_node_id(), socket.gethostname()
    header = (
        f"== {time.strftime('%Y-%m-%d %H:%M:%S')} {cell.label}: started on Ray node {node_id} "
        f"(host {host}, pid {os.getpid()})\n"
    )
    with _output_to(log_file(cell) if log_file is not None else None, header):
        summary = run_cell(cell)
    if not isinstance(summary, dict):
        raise TypeError(f"run_cell must return a dict, returned {type(summary).__name__}")
    if summary.get("status") == "failed":  # an entry point that catches its own errors: retry it all the same
        raise RuntimeError(f"{cell.label}: {summary.get('error', 'failed')}")
    metrics: dict[str, object] = {
        "cell": index,
        "run_status": summary.get("status"),
        "summary": json.dumps(summary),
        "node_id": node_id,
        "host": host,
    }
    for key in ("timesteps", "heldout_success", "fps"):
        value = summary.get(key)
        if isinstance(value, int | float):
            metrics[key] = value
    tune.report(metrics)


def _progress_callback(
    cells: Sequence[GridCell],
    skipped: int,
    slots: int,
    verbose: int,
    log: Any,
    *,
    max_failures: int = 0,
    resume_step: Callable[[Any], int | None] | None = None,
    log_file: Callable[[Any], Path | None] | None = None,
    multi_node: bool = False,
) -> Any:
    """
    A Tune callback printing one line per finished, failed or retried trial on the driver, as the local backend
    does: ``[finished/total elapsed, ETA] label: result``. A retry's line says why the attempt failed and from which
    step the next one starts; the failed attempt's whole error goes to the cell's ``log_file``.

    :param cells: the grid.
    :param skipped: cells skipped as complete (counted as finished).
    :param slots: trials that run at once (the ETA's parallelism).
    :param verbose: 0 prints nothing.
    :param log: the stream; it is not pickled with the callback (Tune saves its callbacks with the experiment).
    :param max_failures: restarts allowed per trial (for "attempt N of M").
    :param resume_step: the step a cell's next attempt starts from (``None``: from scratch); without it a retry's
        line does not say.
    :param log_file: where a cell's failed attempts are recorded in full (``None``: nowhere).
    :param multi_node: the cluster has several nodes: finished lines name the node that ran the cell.
    """
    from ray import tune

    class Progress(tune.Callback):  # type: ignore[misc]
        def __init__(self, stream: Any) -> None:  # an argument, not a closure variable: not pickled
            self.finished = skipped
            self.start = time.perf_counter()
            self.log = stream
            self.attempts: dict[int, int] = {}  # cell index -> attempts made

        def __getstate__(self) -> dict[str, object]:
            return {**self.__dict__, "log": None}

        def _line(self, text: str) -> None:
            if not verbose:
                return
            elapsed = time.perf_counter() - self.start
            ran = self.finished - skipped
            eta = eta_text(elapsed, ran, len(cells) - self.finished, slots)
            line = f"[{self.finished}/{len(cells)} {elapsed:5.0f}s{eta}] {text}"
            print(line, file=self.log or sys.stdout, flush=True)

        def _record(self, trial: Any, what: str) -> None:
            """Append the attempt's whole error (Tune's ``error.txt``: the traceback) to the cell's log file."""
            if log_file is None:
                return
            cell = cells[trial.config["cell"]]
            detail = _ANSI.sub("", _trial_error_file(trial) or _trial_error(trial, limit=10_000))
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            _append(log_file(cell), f"== {stamp} {cell.label}: {what}\n{detail.rstrip()}\n")

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self.finished += 1
            index = trial.config["cell"]
            self.attempts[index] = trial.num_failures + 1
            last = trial.last_result or {}
            result = json.loads(last.get("summary", "{}"))
            where = f" [node {str(last.get('node_id', '?'))[:8]}]" if multi_node else ""
            self._line(f"{cells[index].label}: {_describe(result)}{where}")

        def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            index = trial.config["cell"]
            self.attempts[index] = trial.num_failures
            step = resume_step(cells[index]) if resume_step is not None else None
            nxt = f"attempt {trial.num_failures + 1} " + (_resumes(step) if resume_step is not None else "starts")
            why = _why(trial)
            self._record(trial, f"attempt {trial.num_failures} failed ({why}); {nxt}")
            self._line(
                f"{cells[index].label}: attempt {trial.num_failures} of {max_failures + 1} failed ({why}); {nxt}"
            )

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self.finished += 1
            index = trial.config["cell"]
            self.attempts[index] = trial.num_failures
            cell = cells[index]
            why = _why(trial)
            self._record(trial, f"attempt {trial.num_failures} failed ({why}); no attempt left")
            where = log_file(cell) if log_file is not None else None
            self._line(
                f"{cell.label}: FAILED after {trial.num_failures} attempt(s): {why} "
                f"(see {where or ''}{' and ' if where else ''}{Path(cell.out_dir) / ERROR_LOG} if there is one)"
            )

    return Progress(log)


class _NoRestoreHint(logging.Filter):
    """Drops Tune's "resume with Tuner.restore(...)" hint after Ctrl-C: a grid resumes by running it again."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore" not in record.getMessage()


class _NoTrialTraceback(logging.Filter):
    """Drops Tune's "Trial task failed" record (a Ray traceback of 20 lines and more): the progress callback prints
    one line for it and the cell's log file keeps the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Trial task failed")


@contextlib.contextmanager
def _without_restore_hint() -> Iterator[None]:
    tune_logger, hint_filter = logging.getLogger("ray.tune.tune"), _NoRestoreHint()
    tune_logger.addFilter(hint_filter)
    try:
        yield
    finally:
        tune_logger.removeFilter(hint_filter)


@contextlib.contextmanager
def _quiet_failures(quiet: bool) -> Iterator[None]:
    """
    With ``quiet``, for the block: no traceback from Tune for a failed trial, and no message from a raylet (Ray's
    per-node daemon) about a worker that died, which the driver would print on stdout; both say what the retry
    line and the cell's log file say. The raylet's messages go through ``ray._private.worker.print_to_stdstream``
    (no public switch): the wrapper is left out if Ray no longer has it.
    """
    if not quiet:
        yield
        return
    controller, trace_filter = logging.getLogger("ray.tune.execution.tune_controller"), _NoTrialTraceback()
    controller.addFilter(trace_filter)
    ray_worker: Any = sys.modules.get("ray._private.worker")  # imported with ray
    original = getattr(ray_worker, "print_to_stdstream", None)
    if original is not None:

        def print_to_stdstream(data: Mapping[str, object], *args: Any, **kwargs: Any) -> None:
            if data.get("pid") != "raylet":
                original(data, *args, **kwargs)

        ray_worker.print_to_stdstream = print_to_stdstream
    try:
        yield
    finally:
        controller.removeFilter(trace_filter)
        if original is not None:
            ray_worker.print_to_stdstream = original


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


def run_grid_on_ray(
    cells: Sequence[GridCell],
    run_cell: Callable[[Any], RunResult],
    out_dir: str | Path,
    address: str | None = None,
    cpus_per_run: int = 1,
    max_failures: int = 2,
    verbose: int = 1,
    *,
    num_cpus: int | None = None,
    log: Any = None,
    prepare: Callable[[list[Any]], None] | None = None,
    resume_step: Callable[[Any], int | None] | None = None,
    log_file: Callable[[Any], Path | None] | None = None,
) -> list[RayRunResult]:
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
    :param verbose: 0 silent, 1 a line per finished or retried trial, 2 also Tune's status table, the trials'
        output and Ray's own tracebacks and worker-death messages.
    :param num_cpus: CPUs of the Ray instance started when ``address`` is ``None`` (default: all of them).
    :param log: stream for the progress lines (default ``sys.stdout``).
    :param prepare: called with the cells to run once Ray is up, before any is submitted (e.g. to mark their run
        folders), so that nothing is written when Ray cannot start or connect.
    :param resume_step: ``resume_step(cell)``, called on the driver after a failed attempt: the step the next
        attempt starts from (``None`` or 0: from scratch), for the retry's line.
    :param log_file: ``log_file(cell)``, called where the cell runs and on the driver: the file that receives
        each attempt's console output and each failed attempt's error (``None``: no such file for that cell).
    :return: one result per cell (:class:`RayRunResult`), in order: the ``done.json`` of skipped cells (with
        ``"skipped": True``), the summary of finished ones with ``"ray": {"node_id", "host", "attempts"}`` added
        (where it ran), ``{"status": "failed", "error": ..., "attempts": ...}`` for cells that failed every
        attempt, and ``{"status": "interrupted"}`` for cells the run did not reach (e.g. Ctrl-C).
    :raises ValueError: on a bad argument.
    :raises RayMissingError: if Ray is not installed.
    :raises RayConnectionError: if no Ray cluster answers at ``address``.
    """
    _check_args(address, cpus_per_run, max_failures, verbose)
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
        raise ValueError(f"num_cpus must be None or an integer >= 1, got {num_cpus!r}")
    log = log or sys.stdout
    cells = list(cells)
    results: dict[int, RayRunResult] = {}
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
            init_kwargs: dict[str, object] = {
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
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        if verbose:
            joined = address or os.environ.get("RAY_ADDRESS")  # ray.init() joins RAY_ADDRESS when given no address
            where = "a local Ray" if owned and not joined else f"the Ray cluster at {joined or 'this process'}"
            print(
                f"running {len(todo)} of {len(cells)} runs on {where} ({cpus} CPUs"
                f"{f' on {nodes} nodes' if nodes > 1 else ''}, {cpus_per_run} per run)",
                file=log,
                flush=True,
            )
        if prepare is not None:
            prepare([cells[i] for i in todo])
        slots = max(1, cpus // cpus_per_run)  # trials at once, for the ETA
        trainable = tune.with_resources(
            tune.with_parameters(
                _trial,
                cells=cells,
                run_cell=run_cell,
                cpus_per_run=cpus_per_run,
                workdir=os.getcwd(),
                log_file=log_file,
            ),
            {"cpu": cpus_per_run},
        )
        progress = _progress_callback(
            cells,
            len(cells) - len(todo),
            slots,
            verbose,
            log,
            max_failures=max_failures,
            resume_step=resume_step,
            log_file=log_file,
            multi_node=nodes > 1,
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
                callbacks=[progress],
                verbose=1 if verbose >= 2 else 0,
            ),
        )
        new_output = "1" if verbose >= 2 else "0"  # Tune's newer console output prints its header even at verbose 0
        with (
            _env_default("TUNE_FORCE_TRIAL_CLEANUP_S", str(TRIAL_CLEANUP_S)),
            _env_default("RAY_AIR_NEW_OUTPUT", new_output),
            _without_restore_hint(),
            _quiet_failures(verbose < 2),
        ):
            grid = tuner.fit()
        for result in (grid[i] for i in range(len(grid))):
            config = result.config or {}
            if "cell" not in config:  # pragma: no cover - a trial Tune could not start at all
                continue
            index = int(config["cell"])
            metrics = result.metrics or {}
            if result.error is None and "summary" in metrics:
                placed: RayPlacement = {
                    "node_id": metrics.get("node_id"),
                    "host": metrics.get("host"),
                    "attempts": progress.attempts.get(index, 1),
                }
                results[index] = {**json.loads(metrics["summary"]), "ray": placed}
            elif result.error is not None:
                results[index] = {"status": "failed", "error": _error_text(result.error), "attempts": max_failures + 1}
    finally:
        if owned and ray.is_initialized():
            ray.shutdown()
    for i in range(len(cells)):
        # RunResult types timesteps as int; a cell the run did not reach has None
        results.setdefault(i, {"status": "interrupted", "timesteps": None})
    return [results[i] for i in range(len(cells))]
