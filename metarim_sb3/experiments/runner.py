"""One training run as a pure function of its inputs: ``run(config, seed, out_dir) -> summary``.

Everything a run needs is in ``config`` (see :func:`metarim_sb3.experiments.config.resolve_config`); everything
it produces goes to ``out_dir`` (layout: :mod:`metarim_sb3.experiments.rundir`). It reads no global state, so a
grid can run it in worker processes here or on other machines. Read it top to bottom: build the envs and the
model (or load the checkpoint), build the callbacks, learn, then save and evaluate.

Interrupts: SIGINT / SIGTERM stop at the next environment step; the run is rolled back to the start of that
rollout (the model is consistent there), a checkpoint is written, and ``run`` returns with status
``"interrupted"``. A second SIGINT aborts at once (``KeyboardInterrupt``). A NaN/inf parameter raises
:class:`~metarim_sb3.experiments.monitoring.NonFiniteError`; the last good checkpoint stays.
"""

from __future__ import annotations

import copy
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from metarim_sb3.experiments.config import ConfigError
from metarim_sb3.experiments.monitoring import (
    CURVE_CSV,
    MASTERY_CSV,
    NonFiniteError,
    RunControl,
    RunRecorder,
    check_finite,
    truncate_csv,
)
from metarim_sb3.experiments.rundir import (
    CHECKPOINT,
    CHECKPOINT_META,
    CONFIG,
    DONE,
    FINAL_EVAL,
    MODEL,
    VERSIONS,
    RunError,
    read_json,
    write_json,
    write_yaml,
)

__all__ = ["run", "versions"]

STATE_ATTR = "metarim_run_state"  # stored inside checkpoint.zip: SB3 pickles the model's public attributes
_CSV_STEP_COLUMNS = {
    CURVE_CSV: "timesteps",
    MASTERY_CSV: "left_at",
    "curriculum.csv": "timestep",
    "heldout_eval.csv": "timesteps",
}


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
    root = Path(metarim_sb3.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode == 0:
            out["git_sha"] = sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _policy_class(name: str) -> type:
    import metarim_sb3

    allowed = [n for n in metarim_sb3.__all__ if n.endswith("Policy") and n != "FastRecurrentPolicy"]
    if name not in allowed:
        raise ConfigError(f"unknown policy {name!r}; allowed: {', '.join(allowed)}")
    return getattr(metarim_sb3, name)


def _make_env(config: dict[str, Any], n_envs: int, seed: int, **kwargs: Any) -> Any:
    from stable_baselines3.common.env_util import make_vec_env

    import metarim_gym  # noqa: F401  (registers the MetaRIM ids)

    try:
        return make_vec_env(config["env"], n_envs=n_envs, seed=seed, env_kwargs={**config["env_kwargs"], **kwargs})
    except (TypeError, ValueError) as err:
        raise ConfigError(f"env {config['env']} with env_kwargs {config['env_kwargs']}: {err}") from err


def _build_model(config: dict[str, Any], env: Any, seed: int) -> Any:
    from sb3_contrib import RecurrentPPO

    policy_kwargs = copy.deepcopy(config["policy_kwargs"])
    try:
        return RecurrentPPO(
            _policy_class(config["policy"]),
            env,
            seed=seed,
            policy_kwargs=policy_kwargs,
            device=config.get("device", "cpu"),
            verbose=0,
            **config["ppo"],
        )
    except (TypeError, ValueError, AssertionError) as err:
        raise ConfigError(f"cannot build {config['policy']} / RecurrentPPO from the config: {err}") from err


def _callbacks(config: dict[str, Any], out_dir: Path, seed: int) -> list[Any]:
    """The algorithm's callbacks, in the order they must run (fast/slow first: its slow step ends a train())."""
    from metarim_sb3.callbacks import CurriculumCallback, FastSlowCallback, HeldOutEvalCallback, UnitActivityCallback

    callbacks: list[Any] = []
    log_dir = str(out_dir)
    try:
        if config.get("fast_slow"):
            callbacks.append(FastSlowCallback(**config["fast_slow"]))
        cur = config["curriculum"]
        if cur["enabled"]:
            kwargs = {k: cur[k] for k in ("threshold", "window", "min_steps", "cycle")}
            callbacks.append(CurriculumCallback(**kwargs, log_dir=log_dir))
        held = config["heldout_eval"]
        if held["enabled"]:
            eval_env = _make_env(config, held["n_envs"], seed + 10_000, stage="heldout")
            callbacks.append(
                HeldOutEvalCallback(
                    eval_env,
                    eval_freq=held["every"],
                    n_eval_episodes=held["episodes"],
                    deterministic=bool(config["deterministic_eval"]),
                    log_dir=log_dir,
                )
            )
        if config.get("activity"):
            callbacks.append(UnitActivityCallback(log_dir=log_dir))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad callback settings in the config: {err}") from err
    return callbacks


@contextmanager
def _stop_on_signals(control: RunControl) -> Iterator[None]:
    """SIGINT/SIGTERM ask the run to stop at the next step; a second SIGINT raises ``KeyboardInterrupt``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if control.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        control.stop_requested = True
        print(f"\n{signal.Signals(signum).name}: stopping; saving a checkpoint (Ctrl-C again aborts)", file=sys.stderr)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _save_checkpoint(model: Any, out_dir: Path, state: dict[str, Any]) -> None:
    """Write ``checkpoint.zip`` atomically, with the run state inside it (one file: never out of step)."""
    check_finite(model)
    setattr(model, STATE_ATTR, state)
    tmp = out_dir / ".checkpoint.tmp.zip"
    model.save(tmp)
    tmp.replace(out_dir / CHECKPOINT)
    write_json(out_dir / CHECKPOINT_META, state)


def _prepare_dir(out_dir: Path, resume: bool) -> dict[str, Any] | None:
    """Check the folder against the request; return the done marker of a finished run being extended."""
    done = read_json(out_dir / DONE) if (out_dir / DONE).exists() else None
    if resume and not (out_dir / CHECKPOINT).is_file():
        raise RunError(f"cannot resume {out_dir}: it has no {CHECKPOINT}")
    if not resume and done is not None:
        raise RunError(f"{out_dir} holds a finished run; use --force to overwrite it or another --out")
    if not resume and (out_dir / CHECKPOINT).exists():
        raise RunError(f"{out_dir} holds an unfinished run; use --resume to continue it or --force to start over")
    return done


def run(
    config: dict[str, Any], seed: int, out_dir: Path, *, resume: bool = False, progress_bar: bool = False
) -> dict[str, Any]:
    """
    Train one agent on one environment and evaluate it zero-shot on the held-out stage.

    :param config: a resolved config (:func:`~metarim_sb3.experiments.config.resolve_config`).
    :param seed: the run's seed (model, environments, evaluation).
    :param out_dir: the run folder (created).
    :param resume: continue from ``out_dir/checkpoint.zip`` (same stage, timestep count and optimizer state)
        up to ``config["timesteps"]``.
    :param progress_bar: show SB3's progress bar.
    :return: the summary also written to ``done.json`` (status ``"done"``), or ``{"status": "interrupted",
        "timesteps": ...}`` after SIGINT/SIGTERM.
    :raises ConfigError: on settings the model, policy or callbacks reject.
    :raises RunError: when ``out_dir`` does not fit the request (see :func:`_prepare_dir`).
    :raises NonFiniteError: when the parameters diverge.
    """
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat

    from metarim_sb3.experiments.evaluate import evaluate_model

    out_dir = Path(out_dir)
    finished = _prepare_dir(out_dir, resume)
    # 1. Build everything (nothing is written before the config has been accepted).
    state: dict[str, Any] = {}
    if resume:
        saved = RecurrentPPO.load(out_dir / CHECKPOINT, device="cpu")  # for its step count and run state
        state, start = getattr(saved, STATE_ATTR, None) or {}, int(saved.num_timesteps)
        if finished is not None and config["timesteps"] <= start:
            raise RunError(f"{out_dir} is complete at {start} steps; pass --timesteps > {start} to continue it")
        env = _make_env(config, config["n_envs"], seed + start)
        for i, stage in enumerate(state.get("stages", [])[: env.num_envs]):
            env.env_method("set_stage", stage, indices=[i])  # the stage the run was in, for every env
        model = RecurrentPPO.load(out_dir / CHECKPOINT, env=env, device=config.get("device", "cpu"))
        model.set_random_seed(seed + start)
    else:
        start = 0
        env = _make_env(config, config["n_envs"], seed)
        model = _build_model(config, env, seed)
    cur = config["curriculum"]
    recorder = RunRecorder(out_dir, float(cur["threshold"]), int(cur["window"]), state.get("recorder"))

    def snapshot(rolled_back: bool = False) -> dict[str, Any]:
        return {
            "timesteps": int(model.num_timesteps),
            "stages": control.rollout_stages if rolled_back else [int(s) for s in env.env_method("get_stage")],
            "recorder": recorder.rollout_start_state if rolled_back else recorder.snapshot(),
            "seed": seed,
        }

    control = RunControl(config["checkpoint"]["every"], lambda: _save_checkpoint(model, out_dir, snapshot()), start)
    # recorder first: it must see a step's episodes before the curriculum moves the envs on that step;
    # control last: its checkpoint must include the slow update that FastSlowCallback applies at rollout start
    callbacks = [recorder, *_callbacks(config, out_dir, seed), control]

    # 2. Prepare the folder: config, versions, logs; drop what a resumed run will write again.
    out_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        for name, column in _CSV_STEP_COLUMNS.items():  # rows written after the checkpoint are replayed
            truncate_csv(out_dir / name, column, start)
        (out_dir / DONE).unlink(missing_ok=True)
    else:
        for stale in (*_CSV_STEP_COLUMNS, "rim_activity.csv", "rim_activity.npz", FINAL_EVAL, MODEL):
            (out_dir / stale).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "tensorboard", ignore_errors=True)
    write_yaml(out_dir / CONFIG, {**config, "seed": seed})
    info = versions()
    history: dict[str, Any] = {"started": info}
    if resume and (out_dir / VERSIONS).exists():
        history = read_json(out_dir / VERSIONS)
    if resume:
        history.setdefault("resumed", []).append({"at_timesteps": start, **info})
    write_json(out_dir / VERSIONS, history)
    csv_name = "progress.csv" if start == 0 else f"progress_from_{start}.csv"
    outputs = [CSVOutputFormat(str(out_dir / csv_name)), TensorBoardOutputFormat(str(out_dir / "tensorboard"))]
    model.set_logger(Logger(str(out_dir), outputs))

    # 3. Learn.
    segment_start = time.perf_counter()
    with _stop_on_signals(control):
        try:
            model.learn(
                max(config["timesteps"] - start, 0),
                callback=callbacks,
                log_interval=config["log_interval"],
                reset_num_timesteps=not resume,
                progress_bar=progress_bar,
            )
        except NonFiniteError:
            raise
        except Exception as err:
            check_finite(model)  # a NaN often surfaces first as an invalid action distribution
            if isinstance(err, ValueError) and model.num_timesteps == start:  # a callback rejected the setup
                raise ConfigError(f"the config was rejected at training start: {err}") from err
            raise

    # 4. Interrupted: roll back to the last rollout boundary and checkpoint there. Complete: save, evaluate.
    if control.stop_requested:
        model.num_timesteps = control.rollout_start  # the half-collected rollout was never trained on
        _save_checkpoint(model, out_dir, snapshot(rolled_back=True))
        env.close()
        return {"status": "interrupted", "timesteps": int(model.num_timesteps), "out_dir": str(out_dir)}

    recorder.finish()
    _save_checkpoint(model, out_dir, snapshot())
    tmp = out_dir / ".model.tmp.zip"
    model.save(tmp)
    tmp.replace(out_dir / MODEL)
    final = evaluate_model(
        model,
        config["env"],
        stage="heldout",
        episodes=config["final_eval"]["episodes"],
        seed=seed + 20_000,
        n_envs=config["final_eval"]["n_envs"],
        env_kwargs=config["env_kwargs"],
        deterministic=bool(config["deterministic_eval"]),
    )
    write_json(out_dir / FINAL_EVAL, final)
    final_stage = int(env.env_method("get_stage", indices=[0])[0])
    env.close()
    wall = recorder.wall_time()
    summary = {
        "status": "done",
        "agent": config["agent"],
        "env": config["env"],
        "seed": seed,
        "timesteps": int(model.num_timesteps),
        "wall_time_s": round(wall, 2),
        "fps": round((model.num_timesteps) / max(wall, 1e-9), 1),
        "this_segment_s": round(time.perf_counter() - segment_start, 2),
        "final_stage": final_stage,
        "heldout_success": final["success_rate"],
        "heldout_success_ci": final["success_ci"],
        "heldout_return": final["mean_return"],
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "out_dir": str(out_dir),
    }
    write_json(out_dir / DONE, summary)
    return summary
