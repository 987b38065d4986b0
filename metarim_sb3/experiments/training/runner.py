"""One training run as a pure function of its inputs: ``run(config, seed, out_dir) -> summary``.

Everything a run needs is in ``config`` (see :func:`metarim_sb3.experiments.training.config.resolve_config`); everything
it produces goes to ``out_dir`` (layout: :mod:`metarim_sb3.experiments.training.folder`). It reads no global state, so a
grid can run it in worker processes here or on other machines. Read it top to bottom: build the envs and the
model (or load the checkpoint), build the callbacks, learn, then save and evaluate. The steps are functions of a
:class:`PreparedRun` (:func:`open_folder`, :func:`build_run`, :func:`take_folder`, :func:`learn_run`,
:func:`finish_run`), so that :func:`~metarim_sb3.experiments.training.seed_runs.run_seeds` can prepare and finish
several runs as ``run`` does and train them together.

Interrupts: SIGINT / SIGTERM stop at the next environment step; the run is rolled back to the start of that
rollout (the model is consistent there), a checkpoint is written, and ``run`` returns with status
``"interrupted"``. A second SIGINT aborts at once (``KeyboardInterrupt``). A NaN/inf parameter raises
:class:`~metarim_sb3.experiments.training.monitoring.NonFiniteError`; the last good checkpoint stays.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from metarim_sb3.experiments.training import generalization
from metarim_sb3.experiments.training.config import check_device, check_seed
from metarim_sb3.experiments.training.envs import make_env
from metarim_sb3.experiments.training.folder import (
    CHECKPOINT,
    CONFIG,
    DONE,
    FINAL_EVAL,
    TENSORBOARD,
    VERSIONS,
    RunError,
    save_model,
)
from metarim_sb3.experiments.training.model import build_callbacks, build_model
from metarim_sb3.experiments.training.monitoring import (
    NonFiniteError,
    RecorderState,
    RunControl,
    RunRecorder,
    check_finite,
)
from metarim_sb3.experiments.training.provenance import git_sha
from metarim_sb3.experiments.training.result import RunResult
from metarim_sb3.experiments.training.resume import apply_ppo, resume_changes
from metarim_sb3.experiments.training.run_config import RunConfig
from metarim_sb3.experiments.training.run_folder import RunFolder
from metarim_sb3.experiments.training.signals import stop_on_signals
from metarim_sb3.experiments.training.yaml_io import ConfigError

if TYPE_CHECKING:
    from metarim_sb3.experiments.training.wandb_logging import WandbRun

__all__ = [
    "PreparedRun",
    "build_run",
    "end_training",
    "evaluate_run",
    "finish_run",
    "learn_errors",
    "learn_run",
    "open_folder",
    "run",
    "take_folder",
    "versions",
]


STATE_ATTR = "metarim_run_state"  # stored inside checkpoint.zip: SB3 pickles the model's public attributes
FAST_SLOW_ATTR = "metarim_fast_slow_state"  # the FastSlowCallback meta-sequence (tensors: not in checkpoint.json)
_FAST_SLOW_KEYS = ("mode", "other", "slow_every")  # a saved meta-sequence continues only under the same settings


class RunState(TypedDict, total=False):
    """The run's state at a checkpoint (stored in ``checkpoint.zip`` and ``checkpoint.json``)."""

    #: Environment steps trained.
    timesteps: int
    #: Every training env's stage.
    stages: list[int]
    #: The :class:`~metarim_sb3.experiments.training.monitoring.RunRecorder`'s state.
    recorder: RecorderState
    #: The curriculum's ``state_dict`` (``None``: no curriculum).
    curriculum: dict[str, object] | None
    #: The run's seed.
    seed: int


class FastSlowCheckpoint(TypedDict):
    """The :class:`~metarim_sb3.callbacks.FastSlowCallback` meta-sequence a checkpoint stores (with its settings: it
    continues only under the same ``mode``, ``other`` and ``slow_every``)."""

    settings: dict[str, object]
    #: The callback's ``state_dict`` (tensors: kept in ``checkpoint.zip`` only).
    state: dict[str, object]


def versions() -> dict[str, str]:
    """:return: versions of python and the libraries a result depends on, and the git commit if available."""
    import gymnasium
    import minigrid
    import numpy
    import sb3_contrib
    import stable_baselines3
    import torch

    import metarim_sb3

    out = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "sb3_contrib": sb3_contrib.__version__,
        "gymnasium": gymnasium.__version__,
        "minigrid": getattr(minigrid, "__version__", "unknown"),
        "numpy": numpy.__version__,
        "metarim": metarim_sb3.__version__,
    }
    sha = git_sha(Path(metarim_sb3.__file__).resolve().parent.parent)
    if sha is not None:
        out["git_sha"] = sha
    return out


def _save_checkpoint(model: Any, folder: RunFolder, state: RunState, fast_slow: FastSlowCheckpoint | None) -> None:
    """
    Write ``checkpoint.zip`` atomically, with the run state inside it (one file: never out of step), and
    ``checkpoint.json`` (:meth:`~metarim_sb3.experiments.training.run_folder.RunFolder.save_checkpoint`).

    :raises RunError: naming the folder if the write fails (e.g. the disk is full); the previous checkpoint stays.
    """
    check_finite(model)
    setattr(model, STATE_ATTR, state)
    setattr(model, FAST_SLOW_ATTR, fast_slow)
    folder.save_checkpoint(model, state)


def run(
    config: RunConfig,
    seed: int,
    out_dir: Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress_bar: bool = False,
    wandb: bool = False,
) -> RunResult:
    """
    Train one agent on one environment and evaluate it zero-shot on the held-out stage.

    Nothing is written before the whole config has been accepted (the environments, model and callbacks are built
    first), and only while this process holds the folder's lock
    (:class:`~metarim_sb3.experiments.training.run_folder.RunFolder`, which owns the folder's layout, lock, checks
    and writes): a second writer fails with :class:`RunError` naming the first.

    :param config: a resolved config (:func:`~metarim_sb3.experiments.training.config.resolve_config`).
    :param seed: the run's seed (model, environments, evaluation), ``0 <= seed < 2**32``.
    :param out_dir: the run folder: new, empty, or a run folder
        (:func:`~metarim_sb3.experiments.training.ownership.check_out_dir`).
    :param resume: continue from ``out_dir/checkpoint.zip`` (same stage, timestep count and optimizer state)
        up to ``config.timesteps``; the ``ppo`` keys
        :data:`~metarim_sb3.experiments.training.resume.RESUME_APPLIED_PPO_KEYS` are applied to the loaded model,
        changes of :data:`~metarim_sb3.experiments.training.resume.RESUME_FIXED_KEYS` are refused.
    :param force: replace the run in ``out_dir`` (its run files only; other files stay).
    :param progress_bar: show progress on stderr: SB3's training bar (steps, fps, ETA), then the final held-out
        evaluation's episodes done / total with an ETA.
    :param wandb: also log the run's scalars and summary to Weights & Biases
        (:mod:`~metarim_sb3.experiments.training.wandb_logging`; needs the ``wandb`` extra, files under
        ``out_dir/wandb/``).
    :return: the summary also written to ``done.json`` (status ``"done"``), or ``{"status": "interrupted",
        "timesteps": ...}`` after SIGINT/SIGTERM.
    :raises ConfigError: on settings the model, policy or callbacks reject, or ``wandb`` without wandb installed.
    :raises RunError: when ``out_dir`` does not fit the request, is locked, or holds damaged files.
    :raises NonFiniteError: when the parameters diverge.
    """
    tracker: WandbRun | None = None
    if wandb:
        from metarim_sb3.experiments.training.wandb_logging import WandbRun

        try:
            tracker = WandbRun(config, seed, Path(out_dir), resume)
        except ModuleNotFoundError as err:
            raise ConfigError(str(err)) from None
    folder = open_folder(config, seed, out_dir, resume=resume, force=force)
    summary: RunResult | None = None
    try:
        summary = _run_locked(
            config, seed, folder, resume=resume, force=force, progress_bar=progress_bar, tracker=tracker
        )
        return summary
    finally:
        folder.release()
        if tracker is not None:
            tracker.finish(summary)


@dataclass(eq=False)
class PreparedRun:
    """
    One run built and ready to learn (:func:`build_run`), then with its folder taken (:func:`take_folder`): what
    :func:`learn_run` (or :func:`~metarim_sb3.experiments.training.seed_runs.run_seeds`, for many seeds at once)
    trains and :func:`finish_run` saves and evaluates.
    """

    config: RunConfig
    seed: int
    folder: RunFolder
    resume: bool
    #: The model (built, or loaded from the checkpoint).
    model: Any
    #: Its training VecEnv.
    env: Any
    recorder: RunRecorder
    #: The run's stop flag (``control.stop_requested``), NaN checks and checkpoints.
    control: RunControl
    #: What ``learn`` is called with: ``[recorder, *run_callbacks, control]``.
    callbacks: list[Any]
    #: The step count the run starts from (``0`` for a new run).
    start: int
    #: Writes a checkpoint (``rolled_back``: of the state at the current rollout's start).
    save: Callable[[bool], None]
    #: The zero-shot test stages to evaluate at the end (``None``: none).
    tests: dict[int | str, str] | None = None
    tracker: WandbRun | None = None
    #: When this process's training segment started (:func:`time.perf_counter`).
    segment_start: float = 0.0
    #: Training wall time (all segments) and this segment's, set by :func:`end_training`.
    train_wall: float = 0.0
    train_segment: float = 0.0

    def request_stop(self) -> None:
        """Stop at the next environment step (as after SIGINT): the run rolls back and checkpoints."""
        self.control.stop_requested = True


def open_folder(config: RunConfig, seed: int, out_dir: Path, *, resume: bool, force: bool) -> RunFolder:
    """
    Check the seed and the device, and the folder for the request; lock the folder if it exists (so that a second
    writer stops before building anything). Release it (:meth:`RunFolder.release`) when done.

    :param config: a resolved config.
    :param seed: the run's seed.
    :param out_dir: the run folder.
    :param resume: continue the run in it.
    :param force: replace the run in it.
    :return: the folder.
    :raises ConfigError: on a bad seed or a device this machine lacks.
    :raises RunError: when the folder does not fit the request or is locked.
    """
    check_seed(seed)
    check_device(config.device)
    # every model the folder writes goes through this module's save_model (a test stands in a full disk for it)
    folder = RunFolder(out_dir, save=save_model)
    folder.check(resume=resume, force=force)
    if folder.exists:  # an existing folder: lock it now, so that a second writer stops before building anything
        folder.acquire()
    return folder


def _run_locked(
    config: RunConfig,
    seed: int,
    folder: RunFolder,
    *,
    resume: bool,
    force: bool,
    progress_bar: bool,
    tracker: WandbRun | None = None,
) -> RunResult:
    prepared = build_run(config, seed, folder, resume=resume, progress_bar=progress_bar, tracker=tracker)
    take_folder(prepared, force=force)
    learn_run(prepared, progress_bar=progress_bar)
    return finish_run(prepared, progress_bar=progress_bar)


def build_run(
    config: RunConfig,
    seed: int,
    folder: RunFolder,
    *,
    resume: bool,
    progress_bar: bool = False,
    tracker: WandbRun | None = None,
) -> PreparedRun:
    """
    Build a run's envs, model (or load its checkpoint) and callbacks, and check them; nothing is written.

    :param config: a resolved config.
    :param seed: the run's seed.
    :param folder: the run folder (checked, and locked if it exists: see :func:`run`).
    :param resume: continue from the folder's checkpoint.
    :param progress_bar: the callbacks show progress.
    :param tracker: the W&B run (``None``: none).
    :return: the run, ready for :func:`take_folder`.
    :raises ConfigError: on settings the model, policy or callbacks reject.
    :raises RunError: when a resumed run is already complete at ``config.timesteps``.
    """
    from metarim_sb3.callbacks import CurriculumCallback, FastSlowCallback

    out_dir = folder.path
    state: RunState = {}
    finished = folder.read_json(DONE) if resume and folder.done.exists() else None
    if resume:
        settings = resume_changes(folder.read_config(), config)
        saved = folder.load_model(CHECKPOINT, device="cpu")  # for its step count and run state
        state, start = cast(RunState, getattr(saved, STATE_ATTR, None) or {}), int(saved.num_timesteps)
        saved_fast_slow = getattr(saved, FAST_SLOW_ATTR, None)
        del saved
        if finished is not None and config.timesteps <= start:
            raise RunError(f"{out_dir} is complete at {start} steps; pass --timesteps > {start} to continue it")
        env = make_env(config.env, config.n_envs, seed + start, config.env_kwargs)
        for i, stage in enumerate(state.get("stages", [])[: env.num_envs]):
            env.env_method("set_stage", stage, indices=[i])  # the stage the run was in, for every env
        model = folder.load_model(CHECKPOINT, env=env, device=config.device)
        apply_ppo(model, settings)
        model.set_random_seed(seed + start)
    else:
        start, saved_fast_slow = 0, None
        env = make_env(config.env, config.n_envs, seed, config.env_kwargs)
        model = build_model(config, env, seed)
    tests = None  # the zero-shot test stages after training (generalization.csv), checked before anything is written
    if generalization.test_stages(config):
        tests = generalization.stage_names(env)
        generalization.check_test_stages(config, tests)
    recorder = RunRecorder(out_dir, config.curriculum.threshold, config.curriculum.window, state.get("recorder"))

    def snapshot(rolled_back: bool = False) -> RunState:
        return {
            "timesteps": int(model.num_timesteps),
            "stages": control.rollout_stages if rolled_back else [int(s) for s in env.env_method("get_stage")],
            "recorder": recorder.rollout_start_state if rolled_back else recorder.snapshot(),
            "curriculum": control.rollout_curriculum if rolled_back or curriculum is None else curriculum.state_dict(),
            "seed": seed,
        }

    run_callbacks = build_callbacks(config, out_dir, seed, progress=progress_bar)
    curriculum = next((c for c in run_callbacks if isinstance(c, CurriculumCallback)), None)
    saved_curriculum = state.get("curriculum")
    if curriculum is not None and saved_curriculum:
        curriculum.load_state_dict(saved_curriculum)  # the same success window as before the interruption
    fast_slow = next((c for c in run_callbacks if isinstance(c, FastSlowCallback)), None)
    fast_slow_settings = {k: getattr(config.fast_slow, k, None) for k in _FAST_SLOW_KEYS}
    if fast_slow is not None and saved_fast_slow and saved_fast_slow.get("settings") == fast_slow_settings:
        fast_slow.load_state_dict(saved_fast_slow["state"])  # finish the meta-sequence the checkpoint was in

    def fast_slow_state() -> FastSlowCheckpoint | None:
        return None if fast_slow is None else {"settings": fast_slow_settings, "state": fast_slow.state_dict()}

    def save(rolled_back: bool = False) -> None:
        # during a rollout the meta-sequence does not change: its state now is the one at the rollout start
        _save_checkpoint(model, folder, snapshot(rolled_back), fast_slow_state())

    control = RunControl(config.checkpoint.every, save, start, curriculum)
    # recorder first: it must see a step's episodes before the curriculum moves the envs on that step;
    # control last: its checkpoint must include the slow update that FastSlowCallback applies at rollout start
    callbacks = [recorder, *run_callbacks, control]
    for callback in callbacks:  # what learn() would refuse at its start, refused before anything is written
        check = getattr(callback, "check_model", None)
        if check is not None:
            try:
                check(model)
            except ValueError as err:
                raise ConfigError(f"the config does not fit the model: {err}") from err
    return PreparedRun(
        config, seed, folder, resume, model, env, recorder, control, callbacks, start, save, tests, tracker
    )


def take_folder(prepared: PreparedRun, *, force: bool) -> None:
    """
    Take a built run's folder: lock it, check it again under the lock, drop what the run will write again, write
    ``config.yaml`` and ``versions.json`` and set the model's logger.

    :param prepared: a run from :func:`build_run`.
    :param force: replace the run in the folder.
    :raises RunError: when the folder does not fit the request or holds damaged logs.
    """
    from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat

    folder, resume, start, model = prepared.folder, prepared.resume, prepared.start, prepared.model
    folder.take(resume=resume, force=force)  # also removes the temporary files an interrupted writer left
    if resume:  # logs checked first (nothing changes if one is damaged), rows after the checkpoint dropped (replayed)
        folder.truncate_for_resume(start)
    else:
        folder.start_fresh(force=force)
    folder.remove(generalization.GENERALIZATION, generalization.GENERALIZATION_EPISODES)  # written again at the end
    written = prepared.config.with_changes(device=str(model.device), seed=prepared.seed)  # the device that runs
    folder.write_yaml(CONFIG, written.to_dict())
    info = versions()
    history = folder.read_json(VERSIONS) if resume and folder.versions.exists() else {"started": info}
    if resume:
        history["resumed"] = [*history.get("resumed", []), {"at_timesteps": start, **info}]
    folder.write_json(VERSIONS, history)
    outputs = [CSVOutputFormat(str(folder.progress(start))), TensorBoardOutputFormat(str(folder.file(TENSORBOARD)))]
    if prepared.tracker is not None:  # the W&B run starts once the folder is taken (its files go to out_dir/wandb/)
        outputs.append(prepared.tracker.start())
    model.set_logger(Logger(str(folder.path), outputs))
    prepared.segment_start = time.perf_counter()


@contextmanager
def learn_errors(runs: Sequence[PreparedRun]) -> Iterator[None]:
    """
    Around ``learn``: an error of the training step becomes what the run reports (a NaN parameter or an overflowing
    policy: :class:`NonFiniteError`; a callback that rejects the setup at the start: :class:`ConfigError`).

    :param runs: the runs being trained.
    """
    try:
        yield
    except (NonFiniteError, RunError):
        raise
    except Exception as err:
        for prepared in runs:
            check_finite(prepared.model)  # a NaN often surfaces first as an invalid action distribution
        steps = max(int(r.model.num_timesteps) for r in runs)
        overflow = (isinstance(err, ValueError) and "invalid values" in str(err)) or (  # torch's checks of the
            isinstance(err, RuntimeError) and "probability tensor contains" in str(err)  # logits, or of the probs
        )
        if overflow:  # finite but overflowing parameters: NaN/inf logits, or inf logits and NaN probabilities
            raise NonFiniteError(
                f"the policy's outputs became NaN/inf at {steps} steps (lower ppo.learning_rate "
                "or ppo.max_grad_norm); the last good checkpoint is kept"
            ) from err
        if isinstance(err, ValueError) and all(r.model.num_timesteps == r.start for r in runs):  # setup rejected
            raise ConfigError(f"the config was rejected at training start: {err}") from err
        raise


def learn_run(prepared: PreparedRun, *, progress_bar: bool) -> None:
    """
    Train a run whose folder is taken up to ``config.timesteps``; SIGINT / SIGTERM stop it at the next step.

    :param prepared: the run (:func:`take_folder` done).
    :param progress_bar: show SB3's progress bar.
    :raises NonFiniteError: when the parameters diverge.
    :raises ConfigError: when a callback rejects the setup at the start.
    """
    config = prepared.config
    prepared.segment_start = time.perf_counter()
    message = "stopping; saving a checkpoint (Ctrl-C again aborts)"
    with stop_on_signals(prepared.request_stop, message), learn_errors([prepared]):
        prepared.model.learn(
            max(config.timesteps - prepared.start, 0),
            callback=prepared.callbacks,
            log_interval=config.log_interval,
            reset_num_timesteps=not prepared.resume,
            progress_bar=progress_bar,
        )


def end_training(prepared: PreparedRun) -> RunResult | None:
    """
    After ``learn``: an interrupted run is rolled back to the last rollout boundary and checkpointed there; a complete
    one has its training time taken, its checkpoint written and ``model.zip`` linked.

    :param prepared: the trained run.
    :return: ``{"status": "interrupted", ...}`` if it was stopped, else ``None`` (go on with :func:`evaluate_run`).
    """
    model, control = prepared.model, prepared.control
    if control.stop_requested:
        model.num_timesteps = control.rollout_start  # the half-collected rollout was never trained on
        prepared.save(True)
        prepared.env.close()
        return {"status": "interrupted", "timesteps": int(model.num_timesteps), "out_dir": str(prepared.folder.path)}
    prepared.recorder.finish()
    prepared.train_wall = prepared.recorder.wall_time()  # training only (all segments); evaluation timed apart
    prepared.train_segment = time.perf_counter() - prepared.segment_start
    prepared.save(False)
    prepared.folder.link_model(model)
    return None


def finish_run(prepared: PreparedRun, *, progress_bar: bool) -> RunResult:
    """
    :param prepared: the trained run.
    :param progress_bar: show the final evaluation's progress.
    :return: what :func:`end_training` returns for an interrupted run, else :func:`evaluate_run`'s summary.
    """
    interrupted = end_training(prepared)
    return interrupted if interrupted is not None else evaluate_run(prepared, progress_bar=progress_bar)


def evaluate_run(prepared: PreparedRun, *, progress_bar: bool) -> RunResult:
    """
    Evaluate a completed run (after :func:`end_training`): ``final_eval.json``, the zero-shot tests, then
    ``done.json``.

    :param prepared: the run.
    :param progress_bar: show the evaluation's progress.
    :return: the summary written to ``done.json``.
    """
    from metarim_sb3.experiments.training.evaluate import evaluate_model

    config, seed, model, folder, env = prepared.config, prepared.seed, prepared.model, prepared.folder, prepared.env
    out_dir, start = folder.path, prepared.start
    eval_start = time.perf_counter()
    final = evaluate_model(
        model,
        config.env,
        stage="heldout",
        episodes=config.final_eval.episodes,
        seed=seed + 20_000,
        n_envs=config.final_eval.n_envs,
        env_kwargs=config.env_kwargs,
        deterministic=config.deterministic_eval,
        progress=progress_bar,
    )
    folder.write_json(FINAL_EVAL, final)
    tested: list[generalization.GeneralizationRow] = []
    if prepared.tests is not None:  # zero-shot on each test stage; the held-out one reuses ``final`` if it ran the same
        results = generalization.evaluate_test_stages(model, config, seed, final=final, progress=progress_bar)
        tested = generalization.write_run_files(out_dir, config, seed, prepared.tests, results)
    eval_s = time.perf_counter() - eval_start
    final_stage = int(env.env_method("get_stage", indices=[0])[0])
    env.close()
    train_wall = prepared.train_wall
    summary: RunResult = {
        "status": "done",
        "agent": config.agent,
        "env": config.env,
        "seed": seed,
        "timesteps": int(model.num_timesteps),
        "wall_time_s": round(train_wall, 2),
        "fps": round((model.num_timesteps) / max(train_wall, 1e-9), 1),
        "this_segment_s": round(prepared.train_segment, 2),
        "this_segment_steps": int(model.num_timesteps) - start,
        "final_eval_s": round(eval_s, 2),
        "final_stage": final_stage,
        "schedule": config.schedule,
        "heldout_success": final["success_rate"],
        "heldout_success_ci": final["success_ci"],
        "heldout_return": final["mean_return"],
        **({"generalization": {r["test_env"]: r["success_rate"] for r in tested}} if tested else {}),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "out_dir": str(out_dir),
    }
    folder.write_json(DONE, summary)  # last: its presence means "complete"
    return summary
