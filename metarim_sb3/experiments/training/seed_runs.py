"""Many seeds of one configuration in one process: ``run_seeds(config, seeds, out_dir) -> [summary, ...]``.

Each seed is an ordinary run folder, ``out_dir/seed_<s>``, with its own lock, ``config.yaml`` (its seed), logs,
callbacks and checkpoints: resume, evaluate, render and report read it as a single run's. The runs are built and
their folders taken as :func:`~metarim_sb3.experiments.training.runner.run` does, then trained together by one
:func:`~metarim_sb3.seed_batch.trainer.learn_seed_batch` call (one batched forward per environment step, one batched
PPO update per rollout), then each is finished (checkpoint, ``model.zip``, final evaluation, ``done.json``) as a
single run is.

What differs from ``S`` separate runs of :func:`~metarim_sb3.experiments.training.runner.run`:

* **Random streams.** Each seed samples its actions and minibatch order from its own generators seeded with the run
  seed (a resumed run: ``seed + start``, as the single runner reseeds on resume), and its callbacks and final
  evaluation (which sample actions) run with process-global streams of their own, seeded the same way
  (:class:`OwnStreams`); a single run draws all of these from the global streams as building the model left them.
  Envs, initial weights and evaluation envs are seeded as in a single run, but the learning curves are not bitwise
  those of :func:`~.runner.run`; a seed's folder equals (up to float rounding) that of ``run_seeds`` with that seed
  alone: the seeds do not depend on each other.
* **Time.** ``wall_time_s``, ``fps`` and ``this_segment_s`` of every seed are the shared training time of the batch.
* **Limits** (refused with a :class:`~metarim_sb3.experiments.training.yaml_io.ConfigError` before anything is
  written): ``ChunkedRecurrentPPO`` only (``ppo.chunk_len`` an integer), the CPU only, distinct seeds, resumed seeds
  at one step count; no progress bar and no Weights & Biases logging.

Interrupts: SIGINT / SIGTERM stop every seed at the next environment step; each is rolled back to the start of that
rollout and checkpointed as a single run, and its result has status ``"interrupted"``. ``resume=True`` continues
every seed folder from its checkpoint.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from metarim_sb3.experiments.training.result import RunResult
from metarim_sb3.experiments.training.run_config import RunConfig
from metarim_sb3.experiments.training.runner import (
    PreparedRun,
    build_run,
    end_training,
    evaluate_run,
    learn_errors,
    open_folder,
    take_folder,
)
from metarim_sb3.experiments.training.signals import stop_on_signals
from metarim_sb3.experiments.training.yaml_io import ConfigError

__all__ = ["OwnStreams", "check_seed_batch", "check_seeds", "parse_seeds", "run_seeds", "seed_folder"]

#: The ``chunk_len`` the RIM agents' presets set (named in the refusal of ``ppo.chunk_len: null``).
PRESET_CHUNK_LEN = 32
_MAX_SEED = 2**32 - 1


def seed_folder(out_dir: Path, seed: int) -> Path:
    """
    :param out_dir: the folder of the seeds' run folders.
    :param seed: a seed.
    :return: its run folder, ``out_dir/seed_<seed>``.
    """
    return Path(out_dir) / f"seed_{seed}"


def check_seeds(seeds: Sequence[object], option: str = "seeds") -> list[int]:
    """
    :param seeds: the seeds of a batch.
    :param option: what to call them in the error (e.g. ``--seeds``).
    :return: the seeds, as a list.
    :raises ConfigError: unless they are one or more distinct integers from 0 to ``2**32 - 1``.
    """
    allowed = f"one or more distinct integers from 0 to {_MAX_SEED}, e.g. 0,1,2,3"
    given: list[int] = []
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
            raise ConfigError(f"{option} must be {allowed}; got {seed!r}")
        given.append(seed)
    if not given:
        raise ConfigError(f"{option} must be {allowed}; got none")
    repeated = sorted({s for s in given if given.count(s) > 1})
    if repeated:
        raise ConfigError(f"{option} must be {allowed}; {', '.join(map(str, repeated))} given twice")
    return given


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """
    :param text: comma-separated seeds, e.g. ``"0,1,2,3"``.
    :param option: what to call them in the error.
    :return: the seeds (:func:`check_seeds`).
    :raises ConfigError: naming ``option`` and what is allowed, on anything else.
    """
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise ConfigError(
            f"{option} must be comma-separated distinct integers from 0 to {_MAX_SEED}, e.g. 0,1,2,3; got {text!r}"
        )
    return check_seeds([int(p) for p in parts], option)


def check_seed_batch(config: RunConfig) -> None:
    """
    :param config: a resolved config.
    :raises ConfigError: naming the key, unless the seed-batched trainer can run it (``ppo.chunk_len`` an integer,
        device ``cpu`` or ``auto``).
    """
    if config.ppo.chunk_len is None:
        raise ConfigError(
            "several seeds in one process need ChunkedRecurrentPPO: set ppo.chunk_len (an integer dividing "
            f"ppo.n_steps and ppo.batch_size, e.g. {PRESET_CHUNK_LEN}, the RIM agents' preset value); "
            "ppo.chunk_len null (sb3-contrib's RecurrentPPO) runs one seed at a time"
        )
    if config.device not in ("cpu", "auto"):
        raise ConfigError(
            f"config key device must be cpu for several seeds in one process (the seed-batched trainer runs on "
            f"the CPU), got {config.device}"
        )


class OwnStreams(BaseCallback):
    """
    A seed's callbacks, run with the process-global random streams (``random``, ``numpy``, ``torch``) of their own
    seed: what they draw (e.g. the sampled actions of an evaluation callback) does not depend on the other seeds of
    the batch. Its :meth:`streams` context gives the same streams to other work of the seed (its final evaluation).
    (Not a ``CallbackList``: the trainer flattens those.)

    :param callbacks: the seed's callbacks, in order.
    :param seed: the streams' seed.
    """

    def __init__(self, callbacks: list[Any], seed: int) -> None:
        super().__init__()
        self.inner = CallbackList(callbacks)
        self._torch = torch.Generator().manual_seed(seed).get_state()
        self._numpy: Any = np.random.RandomState(seed % 2**32).get_state()
        self._random = random.Random(seed).getstate()

    @contextmanager
    def streams(self) -> Iterator[None]:
        """Inside, the global streams are this seed's (continued where they were left); outside, the caller's."""
        saved = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        torch.set_rng_state(self._torch)
        np.random.set_state(self._numpy)
        random.setstate(self._random)
        try:
            yield
        finally:
            self._torch, self._numpy, self._random = torch.get_rng_state(), np.random.get_state(), random.getstate()
            torch.set_rng_state(saved[0])
            np.random.set_state(saved[1])
            random.setstate(saved[2])

    def _init_callback(self) -> None:
        with self.streams():
            self.inner.init_callback(self.model)

    def _on_training_start(self) -> None:
        with self.streams():
            self.inner.on_training_start(self.locals, self.globals)

    def _on_rollout_start(self) -> None:
        with self.streams():
            self.inner.on_rollout_start()

    def _on_step(self) -> bool:
        with self.streams():
            return self.inner.on_step()

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        self.inner.update_locals(locals_)

    def _on_rollout_end(self) -> None:
        with self.streams():
            self.inner.on_rollout_end()

    def _on_training_end(self) -> None:
        with self.streams():
            self.inner.on_training_end()


def run_seeds(
    config: RunConfig, seeds: Sequence[int], out_dir: Path, *, resume: bool = False, force: bool = False
) -> list[RunResult]:
    """
    Train one configuration with several seeds in one process, each in its own ordinary run folder
    ``out_dir/seed_<s>`` (:func:`seed_folder`), and evaluate each as
    :func:`~metarim_sb3.experiments.training.runner.run` does.

    Nothing is written before every seed's run has been built and accepted; every folder is locked from then on
    (a second writer fails with :class:`~metarim_sb3.experiments.training.folder.RunError` naming the first).

    :param config: a resolved config with ``ppo.chunk_len`` an integer (:func:`check_seed_batch`).
    :param seeds: the seeds, distinct, ``0 <= seed < 2**32``.
    :param out_dir: the folder of the seeds' run folders (each new, empty, or a run folder).
    :param resume: continue every seed's folder from its checkpoint (all at the same step count) up to
        ``config.timesteps``.
    :param force: replace the runs in the seeds' folders.
    :return: each seed's summary, in the order of ``seeds``: what ``done.json`` holds (status ``"done"``), or
        ``{"status": "interrupted", "timesteps": ..., "out_dir": ...}`` after SIGINT/SIGTERM.
    :raises ConfigError: on seeds, settings or resumed step counts the batch cannot run, or settings the model,
        policy or callbacks reject.
    :raises RunError: when a seed's folder does not fit the request, is locked, or holds damaged files.
    :raises NonFiniteError: when the parameters of a seed diverge.
    """
    seeds = check_seeds(seeds)
    check_seed_batch(config)
    with ExitStack() as held:
        folders = []
        for seed in seeds:
            folder = open_folder(config, seed, seed_folder(out_dir, seed), resume=resume, force=force)
            held.callback(folder.release)
            folders.append(folder)
        runs = [build_run(config, s, f, resume=resume) for s, f in zip(seeds, folders, strict=True)]
        _check_runs(runs)
        for prepared in runs:  # (a folder that take_folder creates is released at the end as well)
            take_folder(prepared, force=force)
        own = _learn(runs)
        ended = [end_training(prepared) for prepared in runs]  # every seed's training time taken before evaluating
        results: list[RunResult] = []
        for prepared, result, streams in zip(runs, ended, own, strict=True):
            if result is None:
                with streams.streams():  # the evaluation samples from its seed's streams, not the other seeds'
                    result = evaluate_run(prepared, progress_bar=False)
            results.append(result)
        return results


def _check_runs(runs: Sequence[PreparedRun]) -> None:
    """:raises ConfigError: unless the built runs start at one step count, on the CPU."""
    starts = {prepared.seed: prepared.start for prepared in runs}
    if len(set(starts.values())) > 1:
        at = ", ".join(f"seed {s} at {n}" for s, n in starts.items())
        raise ConfigError(
            f"--resume of several seeds needs their checkpoints at one step count, got {at}; resume each "
            "seed_<s> folder alone (metarim train --resume --out DIR/seed_<s>) to bring them level"
        )
    for prepared in runs:
        if prepared.model.device.type != "cpu":
            raise ConfigError(
                f"config key device must be cpu for several seeds in one process, got {prepared.model.device}"
            )


def _learn(runs: Sequence[PreparedRun]) -> list[OwnStreams]:
    """
    Train the runs together up to ``config.timesteps``; SIGINT / SIGTERM stop every seed at the next step.

    :param runs: the runs, their folders taken.
    :return: each run's callbacks with their random streams (:class:`OwnStreams`), for its evaluation.
    """
    from metarim_sb3.callbacks import FastSlowCallback
    from metarim_sb3.seed_batch.trainer import learn_seed_batch

    first = runs[0]
    config = first.config

    def stop() -> None:
        for prepared in runs:
            prepared.request_stop()

    message = "stopping every seed; saving their checkpoints (Ctrl-C again aborts)"
    rng_seeds = [prepared.seed + prepared.start if prepared.resume else prepared.seed for prepared in runs]
    own, callbacks = [], []
    for prepared, rng_seed in zip(runs, rng_seeds, strict=True):
        # the FastSlowCallback stays visible to the trainer (which takes it out of the chain and runs its schedule)
        fast_slow = [c for c in prepared.callbacks if isinstance(c, FastSlowCallback)]
        own.append(OwnStreams([c for c in prepared.callbacks if c not in fast_slow], rng_seed))
        callbacks.append([own[-1], *fast_slow])
    now = time.perf_counter()
    for prepared in runs:
        prepared.segment_start = now
    with stop_on_signals(stop, message), learn_errors(runs):
        learn_seed_batch(
            [prepared.model for prepared in runs],
            max(config.timesteps - first.start, 0),
            callbacks=callbacks,
            log_interval=config.log_interval,
            reset_num_timesteps=not first.resume,
            rng_seeds=rng_seeds,
        )
    return own
