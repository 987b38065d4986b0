"""The agent x env x seed grid of a preset, run in parallel worker processes (or as Ray Tune trials), then reported.

Each cell is one :func:`metarim_sb3.experiments.training.runner.run` call in a worker process (``spawn`` context,
one torch thread per worker; :func:`run_grid`) or in a Ray Tune trial (:func:`run_grid_ray`), writing to
``OUT/runs/<env>/<agent>/seed_<s>``. Cells with a ``done.json`` are skipped and cells with a checkpoint are
resumed, so an interrupted compare continues where it stopped. A run's output goes to ``train.log`` in its run
folder; a failed cell leaves its traceback in ``error.log`` and does not stop the others. With ``seed_batch`` above
1 (``--seed-batch``), a worker trains several seeds of one agent, env and config at once
(:mod:`~metarim_sb3.experiments.grid.seed_packs`), in the same run folders.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
import zipfile
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metarim_sb3.experiments.grid.presets import GridPreset, compare_preset
from metarim_sb3.experiments.grid.progress import eta_text
from metarim_sb3.experiments.grid.seed_packs import Pack, _run_pack, plan_packs, refusal_lines
from metarim_sb3.experiments.training.config import merge, resolve_config
from metarim_sb3.experiments.training.folder import (
    CHECKPOINT,
    DONE,
    ERROR_LOG,
    JOB,
    TRAIN_LOG,
    RunError,
    read_json,
    write_yaml,
)
from metarim_sb3.experiments.training.ownership import check_out_dir, check_out_folder, is_run_dir, mark_run_dir
from metarim_sb3.experiments.training.result import RunResult
from metarim_sb3.experiments.training.run_config import RunConfig
from metarim_sb3.experiments.training.signals import stop_on_signals
from metarim_sb3.experiments.training.yaml_io import YamlValue

__all__ = ["Job", "default_workers", "plan", "prepare_run_dirs", "run_grid", "run_grid_ray"]


@dataclass(frozen=True)
class Job:
    """One cell of the grid.

    :param agent: agent name.
    :param env: environment id.
    :param seed: seed.
    :param config: the resolved config.
    :param out_dir: the run folder.
    """

    agent: str
    env: str
    seed: int
    config: RunConfig
    out_dir: Path

    @property
    def label(self) -> str:
        """Short display name."""
        return f"{self.agent} seed {self.seed} on {self.env}"


def default_workers() -> int:
    """:return: the number of CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def plan(
    preset: str, out: Path, seeds: int | None = None, overrides: Mapping[str, YamlValue] | None = None
) -> list[Job]:
    """
    Resolve and check every run config of a preset before anything runs.

    :param preset: a preset name or YAML file (:func:`~metarim_sb3.experiments.grid.presets.compare_preset`).
    :param out: the results folder.
    :param seeds: number of seeds for every env (``None``: the preset's, which may differ by env).
    :param overrides: a YAML override layer (a nested mapping) applied to every run config last, over the preset's
        ``timesteps``, ``overrides`` and variant overrides (e.g. ``--set``: the command line wins, as in ``train``).
    :return: the jobs, env-major then seed then agent (so a grid stopped part-way leaves paired seeds).
    """
    check_out_folder(out)
    grid = compare_preset(preset)
    jobs: list[Job] = []
    rank: list[int] = []
    for env in grid["envs"]:
        # precedence, lowest first: defaults, the preset's timesteps, variant, grid overrides, env overrides, --set
        preset_layer = merge({"timesteps": grid["timesteps"][env]}, grid["overrides"])
        preset_layer = merge(preset_layer, grid["env_overrides"].get(env, {}))
        configs = {}
        for agent in grid["agents"]:
            variant = grid["variants"].get(agent)
            if variant is None:
                config = resolve_config(agent, env, overrides=merge(preset_layer, overrides or {}))
            else:  # a named preset agent with its own overrides, before the grid's and the user's
                base = merge(merge(variant["overrides"], preset_layer), overrides or {})
                config = resolve_config(variant["agent"], env, overrides=base)
                config = config.with_changes(agent=agent, variant_of=variant["agent"])
            configs[agent] = config
        # Seed-major within an env: a grid stopped part-way leaves whole seeds, paired across its agents.
        for i, seed in enumerate(seed_list(grid, env, seeds)):
            for agent, config in configs.items():
                jobs.append(Job(agent, env, seed, config, out / "runs" / env / agent / f"seed_{seed}"))
                rank.append(i)
    if grid["order"] == "seed":  # seed after seed across the envs (a stable sort keeps env and agent order)
        jobs = [job for _, job in sorted(zip(rank, jobs, strict=True), key=lambda pair: pair[0])]
    return jobs


def seed_list(grid: GridPreset, env: str, seeds: int | None = None) -> list[int]:
    """
    :param grid: a preset from :func:`~metarim_sb3.experiments.grid.presets.compare_preset`.
    :param env: one of its envs.
    :param seeds: number of seeds (``None``: the preset's for ``env``).
    :return: the seeds of ``env``: ``first_seed`` on.
    """
    n = seeds if seeds is not None else grid["seeds"][env]
    return list(range(grid["first_seed"], grid["first_seed"] + n))


def prepare_run_dirs(jobs: list[Job]) -> None:
    """
    Before any run starts: mark the run folder of every job not complete yet and write its ``job.yaml`` (the
    cell's agent, env and seed), whichever backend then runs it. A folder the run may not write into (e.g. it holds
    other files) is left untouched: the run reports the problem itself.

    :param jobs: from :func:`plan`.
    """
    for job in jobs:
        if (job.out_dir / DONE).exists():
            continue
        try:
            check_out_dir(job.out_dir, resume=(job.out_dir / CHECKPOINT).exists(), force=False)
        except RunError:
            continue
        mark_run_dir(job.out_dir)
        write_yaml(job.out_dir / JOB, {"agent": job.agent, "env": job.env, "seed": job.seed})


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # already set if the process ran torch code
        torch.set_num_interop_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # idle workers ignore Ctrl-C; run() handles it while training


def _run_job(job: Job) -> RunResult:
    """
    Worker entry point: one run, its output in ``train.log``; never raises.

    :param job: the cell to run (or resume, from its checkpoint).
    :return: the run's result, or a ``"failed"`` one with the error.
    """
    from metarim_sb3.experiments.training.runner import run

    resume = (job.out_dir / CHECKPOINT).exists()
    try:
        check_out_dir(job.out_dir, resume=resume, force=False)
    except RunError as err:  # e.g. the folder holds other files: write nothing into it
        return {"status": "failed", "error": str(err)}
    mark_run_dir(job.out_dir)
    with open(job.out_dir / TRAIN_LOG, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            # runner.run returns a RunResult (its annotation does not say so yet)
            return run(job.config, job.seed, job.out_dir, resume=resume)
        except RunError as err:  # e.g. another process writes this run: its files are not ours to touch
            return {"status": "failed", "error": str(err)}
        except Exception as err:  # reported by the parent; the other cells go on
            (job.out_dir / ERROR_LOG).write_text(traceback.format_exc())
            return {"status": "failed", "error": f"{type(err).__name__}: {err}"}


def _describe(result: RunResult) -> str:
    """
    :param result: a run's result.
    :return: the result in one line, for the progress line of its run.
    """
    if result.get("status") == "done":
        return (
            f"done, {result['timesteps']} steps in {result['wall_time_s']:.0f} s ({result['fps']:.0f} fps), "
            f"final stage {result['final_stage']}, held-out success {result['heldout_success']:.2f}"
        )
    if result.get("status") == "interrupted":
        return f"interrupted at {result['timesteps']} steps (checkpoint saved)"
    return f"FAILED: {result.get('error', '?')} (see {ERROR_LOG} if there is one)"


def run_grid(
    jobs: list[Job], workers: int | None = None, log: Any = None, seed_batch: int = 1
) -> tuple[list[RunResult], bool]:
    """
    Run the jobs that are not complete yet, ``workers`` at a time.

    With ``seed_batch`` above 1, the cells to run are packed into seed batches of at most that many seeds of one
    agent, env and config, each trained in one worker process
    (:func:`~metarim_sb3.experiments.grid.seed_packs.plan_packs`); cells the seed-batched trainer cannot run go one
    per process, as with 1, after one line per agent and env saying why.

    :param jobs: from :func:`plan`.
    :param workers: worker processes, each running one pack at a time (``None``: :func:`default_workers`), capped by
        the number of packs to run.
    :param log: stream for progress lines (default ``sys.stdout``).
    :param seed_batch: the most seeds per worker process (1: one run per process).
    :return: one result per job (the ``done.json`` of skipped ones) and whether the grid was interrupted.
    """
    log = log or sys.stdout
    results: dict[int, RunResult] = {}
    todo = []
    for i, job in enumerate(jobs):
        if (job.out_dir / DONE).exists():
            results[i] = {**read_json(job.out_dir / DONE), "skipped": True}
            print(f"[skip] {job.label}: complete ({job.out_dir / DONE})", file=log, flush=True)
        else:
            todo.append(i)
    if not todo:
        return [results[i] for i in range(len(jobs))], False
    packs, refused = plan_packs(jobs, seed_batch, checkpoint_step, todo)
    for line in refusal_lines(refused):
        print(line, file=log, flush=True)
    n_workers = max(1, min(workers or default_workers(), len(packs)))
    batches = f", {len(packs)} task(s) of up to {seed_batch} seeds" if seed_batch > 1 else ""
    print(f"running {len(todo)} of {len(jobs)} runs on {n_workers} worker(s){batches}", file=log, flush=True)
    prepare_run_dirs([jobs[i] for i in todo])
    slots = max(1, round(n_workers * len(todo) / len(packs)))  # cells running side by side, for the ETA

    interrupted = False
    executor = ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context("spawn"), initializer=_init_worker)
    futures: dict[Future[Any], Pack] = {}

    def submit(pack: Pack) -> None:
        if pack.batched:
            futures[executor.submit(_run_pack, [jobs[i] for i in pack.cells])] = pack
        else:
            futures[executor.submit(_run_job, jobs[pack.cells[0]])] = pack

    def stop() -> None:
        nonlocal interrupted
        interrupted = True
        for future in list(futures):
            future.cancel()
        for process in list(getattr(executor, "_processes", {}).values()):  # workers may not share our group
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGINT)

    start = time.perf_counter()
    with stop_on_signals(stop, "stopping the runs (they save checkpoints)..."):
        try:
            # At most one pack per worker is submitted at a time: the executor hands submitted work to its workers
            # ahead of time, where cancelling no longer reaches it, so a queue of all packs would go on starting
            # runs after Ctrl-C.
            queue = list(packs)
            finished = len(results)
            while queue and len(futures) < n_workers:
                submit(queue.pop(0))
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                future = next(iter(done))
                pack = futures.pop(future)
                if queue and not interrupted:
                    submit(queue.pop(0))
                if future.cancelled():
                    continue
                try:
                    out = future.result()
                    cell_results = list(out) if pack.batched else [out]
                except Exception as err:  # a worker died (e.g. killed)
                    cell_results = [{"status": "failed", "error": f"{type(err).__name__}: {err}"} for _ in pack.cells]
                for i, result in zip(pack.cells, cell_results, strict=True):
                    results[i] = result
                    finished += 1
                    elapsed = time.perf_counter() - start
                    ran = finished - (len(jobs) - len(todo))  # runs of this call (skipped ones took no time)
                    eta = eta_text(elapsed, ran, len(todo) - ran, slots)
                    line = f"[{finished}/{len(jobs)} {elapsed:5.0f}s{eta}] {jobs[i].label}: {_describe(result)}"
                    print(line, file=log, flush=True)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    for i in range(len(jobs)):
        # RunResult types timesteps as int; a run that never started has None
        results.setdefault(i, {"status": "interrupted", "timesteps": None})
    return [results[i] for i in range(len(jobs))], interrupted


def checkpoint_step(job: Job) -> int | None:
    """
    :param job: a cell of the grid.
    :return: the step its run resumes from: the step count saved in its ``checkpoint.zip`` (read from the
        archive's ``data`` entry, JSON: no model is loaded), ``None`` if it has no checkpoint, or ``-1`` if the
        archive cannot be read.
    """
    path = job.out_dir / CHECKPOINT
    if not path.is_file():
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            steps = json.loads(archive.read("data")).get("num_timesteps")
    except (OSError, KeyError, ValueError, AttributeError, zipfile.BadZipFile):
        return -1
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else -1


def ray_log_file(job: Job) -> Path | None:
    """
    :param job: a cell of the grid.
    :return: where a Ray trial of the cell records its console output: the run folder's ``train.log``, once the
        folder is marked as a run folder (:func:`prepare_run_dirs`), else ``None`` (nothing is written there).
    """
    return job.out_dir / TRAIN_LOG if is_run_dir(job.out_dir) else None


def run_grid_ray(
    jobs: list[Job],
    out: Path,
    address: str | None = None,
    cpus_per_run: int = 1,
    log: Any = None,
    verbose: bool = False,
) -> tuple[list[RunResult], bool]:
    """
    Run the jobs that are not complete yet as Ray Tune trials
    (:func:`~metarim_sb3.experiments.grid.ray_backend.run_grid_on_ray`), each through the same entry point as a local
    worker, so the run folders are the same; complete ones are skipped, interrupted ones resume. Each attempt's
    output goes to the run's ``train.log``; a retry prints one line saying why and from which step it resumes.

    :param jobs: from :func:`plan`.
    :param out: the results folder (Ray's own files go to ``out/.ray``).
    :param address: ``None`` starts Ray on this machine; ``"auto"`` or ``HOST:PORT`` joins a running cluster.
    :param cpus_per_run: CPUs (and torch threads) per run.
    :param log: stream for progress lines (default ``sys.stdout``).
    :param verbose: also Tune's status table, the trials' output and Ray's own tracebacks on the console.
    :return: one result per job (the ``done.json`` of skipped ones) and whether the grid was interrupted.
    :raises RayMissingError: if Ray is not installed (nothing is written then).
    :raises RayConnectionError: if no Ray cluster answers at ``address`` (nothing is written then).
    """
    from metarim_sb3.experiments.grid import ray_backend

    ray_results = ray_backend.run_grid_on_ray(
        jobs,
        _run_job,
        out,
        address=address,
        cpus_per_run=cpus_per_run,
        verbose=2 if verbose else 1,
        log=log,
        prepare=prepare_run_dirs,
        resume_step=checkpoint_step,
        log_file=ray_log_file,
    )
    results: list[RunResult] = list(ray_results)  # RayRunResult items: the result plus where and how often it ran
    return results, any(r.get("status") == "interrupted" for r in results)
