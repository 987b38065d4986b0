"""Use a trained model: evaluate it on one stage with confidence intervals, or render it to a GIF or an MP4.

Success rate: Wilson score 95 % interval (episodes are Bernoulli trials). Mean return: percentile bootstrap 95 %
interval over episodes. Episodes run in ``n_envs`` parallel environments, split evenly between them, through
:func:`metarim_sb3.evaluation.run_episodes` (the one evaluation loop: it carries the recurrent state and resets it at
episode starts; an episode end without ``info["is_success"]`` is refused).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from metarim_sb3.evaluation import run_episodes
from metarim_sb3.experiments.reporting.stats import bootstrap_ci, wilson_interval
from metarim_sb3.experiments.training.config import check_seed
from metarim_sb3.experiments.training.config_sections import FinalEvalSettings
from metarim_sb3.experiments.training.envs import make_env
from metarim_sb3.experiments.training.folder import (
    RunError,
    eval_files,
    fallback_hint,
    find_model,
    load_model_file,
    read_run_config,
    write_csv,
    write_json,
)
from metarim_sb3.experiments.training.monitoring import episode_progress
from metarim_sb3.experiments.training.ownership import check_run_entries, check_writable_file
from metarim_sb3.experiments.training.result import EvalResult, EvalSummary
from metarim_sb3.experiments.training.run_config import RunConfig
from metarim_sb3.experiments.training.yaml_io import YamlValue

__all__ = [
    "evaluate_model",
    "evaluate_run",
    "format_table",
    "load_model",
    "load_policy_weights",
    "parse_stage",
    "policy_frames",
    "render_gif",
]


def parse_stage(stage: str | int) -> int | str:
    """
    :param stage: ``"heldout"`` or a stage index (as text or int).
    :return: ``"heldout"`` or the index.
    :raises RunError: for anything else.
    """
    if stage == "heldout" or (isinstance(stage, int) and not isinstance(stage, bool) and stage >= 0):
        return stage
    if isinstance(stage, str) and stage.isascii() and stage.isdigit() and len(stage) <= 6:
        return int(stage)
    raise RunError(f"bad --stage {stage!r}; allowed: heldout or a stage index 0, 1, ...")


def evaluate_model(
    model: Any,
    env_id: str,
    *,
    stage: int | str = "heldout",
    episodes: int = FinalEvalSettings.episodes,
    seed: int = 10_000,
    n_envs: int = FinalEvalSettings.n_envs,
    env_kwargs: Mapping[str, YamlValue] | None = None,
    deterministic: bool = False,
    progress: bool = False,
) -> EvalResult:
    """
    Run ``episodes`` episodes of ``model`` on one stage of ``env_id``.

    :param model: a trained (recurrent) SB3 model.
    :param env_id: a MetaRIM id.
    :param stage: ``"heldout"`` or a training stage index.
    :param episodes: number of episodes.
    :param seed: seed of the evaluation environments.
    :param n_envs: parallel environments (at most ``episodes``).
    :param env_kwargs: extra ``gymnasium.make`` arguments (the run's ``env_kwargs``).
    :param deterministic: greedy actions instead of sampled ones.
    :param progress: show episodes done / total with an ETA on stderr.
    :return: ``stage, episodes, success_rate, success_ci, mean_return, return_ci, mean_length`` and the
        per-episode lists ``successes, returns, lengths``.
    :raises ValueError: if an episode ends without ``info["is_success"]`` (naming the env).
    """
    env = make_env(env_id, max(1, min(n_envs, episodes)), seed, env_kwargs, stage=stage)
    bar = episode_progress(episodes, f"evaluating ({stage})", progress)
    try:
        successes, returns, lengths = run_episodes(
            model, env, episodes, deterministic, on_episode=lambda: bar.update(1), warn=True
        )
    finally:
        bar.close()
        env.close()
    returns_a, lengths_a = np.asarray(returns, dtype=float), np.asarray(lengths, dtype=float)
    n_success = int(sum(successes))
    return {
        "stage": stage,
        "episodes": len(successes),
        "deterministic": deterministic,
        "success_rate": n_success / max(len(successes), 1),
        "success_ci": list(wilson_interval(n_success, len(successes))),
        "mean_return": float(returns_a.mean()),
        "return_ci": list(bootstrap_ci(returns_a, seed=seed)),
        "mean_length": float(lengths_a.mean()),
        "successes": [int(s) for s in successes],
        "returns": returns_a.tolist(),
        "lengths": lengths_a.astype(int).tolist(),
    }


#: Largest ``policy.pth`` read from a model zip (uncompressed bytes): the policies here are a few MB.
MAX_POLICY_BYTES = 1 << 30


def load_model(run_dir: str | Path, device: str = "cpu", trust: bool = False) -> tuple[Any, RunConfig]:
    """
    The run's model, for acting: by default rebuilt from the run's own ``config.yaml`` with only the policy's
    weights read from the zip (:func:`load_policy_weights`: nothing is unpickled); with ``trust``, the whole SB3
    zip loaded (its ``data`` may hold pickles, which run code: only for folders you trust).

    :param run_dir: a run folder.
    :param device: torch device.
    :param trust: load the full SB3 zip.
    :return: the run's final model (or latest checkpoint) and its config.
    :raises RunError: if the folder holds no run, or its model file is damaged or does not fit its config.
    """
    config = read_run_config(run_dir)
    path = find_model(run_dir)
    if trust:
        return load_model_file(path, device=device), config
    return load_policy_weights(config, path, device), config


def load_policy_weights(config: RunConfig, path: str | Path, device: str = "cpu") -> Any:
    """
    Build the model a config describes (checked as ``train`` checks it), then load the policy's weights from an
    SB3 zip's ``policy.pth`` with ``torch.load(weights_only=True)``: tensors only, no pickle of the zip is opened.

    :param config: the run's config (:func:`~metarim_sb3.experiments.training.folder.read_run_config`).
    :param path: ``model.zip`` or ``checkpoint.zip``.
    :param device: torch device.
    :return: the model (its optimizer state and run state are not loaded: enough to act, not to resume).
    :raises RunError: if the config is refused, or the zip is damaged or holds weights of another network.
    """
    import io
    import zipfile

    import torch

    from metarim_sb3.experiments.training.model import build_model
    from metarim_sb3.experiments.training.yaml_io import ConfigError

    try:
        checked = config.with_changes(device=device).check_buildable()
    except ConfigError as err:
        raise RunError(f"{Path(path).parent}/config.yaml is refused: {err}") from None
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("policy.pth")
            if info.file_size > MAX_POLICY_BYTES:
                raise RunError(f"{path}: policy.pth is larger than {MAX_POLICY_BYTES} bytes; refused")
            data = archive.read(info)
        state = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except RunError:
        raise
    except Exception as err:  # a damaged zip, no policy.pth, or something else than tensors
        hint = fallback_hint(path)
        raise RunError(f"{path} is damaged or holds no policy weights ({type(err).__name__}){hint}") from None
    env = make_env(checked.env, 1, 0, checked.env_kwargs)
    try:
        model = build_model(checked, env, 0)
        model.policy.load_state_dict(state)
    except (ConfigError, RuntimeError, TypeError, KeyError) as err:
        raise RunError(
            f"{path} does not fit the run's config.yaml ({type(err).__name__}); if you trust the folder, "
            "--trust-model loads the whole zip"
        ) from None
    finally:
        env.close()
    model.policy.set_training_mode(False)
    return model


def evaluate_run(
    run_dir: str | Path,
    stage: str | int = "heldout",
    episodes: int = 100,
    seed: int = 10_000,
    n_envs: int = 8,
    progress: bool = False,
    trust: bool = False,
) -> EvalSummary:
    """
    Evaluate a run's model and write ``eval_<stage>.json`` (summary) and ``eval_<stage>_episodes.csv``.

    :param run_dir: the run folder.
    :param stage: ``"heldout"`` or a training stage index.
    :param episodes: number of episodes.
    :param seed: seed of the evaluation environments.
    :param n_envs: parallel environments.
    :param progress: show episodes done / total with an ETA on stderr.
    :param trust: load the whole SB3 zip (pickles: only a folder you trust), not only the policy's weights
        (:func:`load_model`).
    :return: the summary (as :func:`evaluate_model`, without the per-episode lists, plus ``run``, ``agent``, ``env``).
    """
    if episodes < 1:
        raise RunError(f"--episodes must be a positive integer, got {episodes}")
    if not 1 <= n_envs <= 256:
        raise RunError(f"--n-envs must be an integer from 1 to 256, got {n_envs}")
    check_seed(seed)
    stage = parse_stage(stage)
    check_run_entries(run_dir)  # the eval files are written into it: never through a link
    model, config = load_model(run_dir, device=config_device(run_dir), trust=trust)
    result = evaluate_model(
        model,
        config.env,
        stage=stage,
        episodes=episodes,
        seed=seed,
        n_envs=n_envs,
        env_kwargs=config.env_kwargs,
        deterministic=config.deterministic_eval,
        progress=progress,
    )
    run_dir = Path(run_dir)
    summary_name, episodes_name = eval_files(stage)
    rows: list[list[Any]] = [["episode", "success", "return", "length"]]
    columns = zip(result["successes"], result["returns"], result["lengths"], strict=True)
    rows += [[i, *row] for i, row in enumerate(columns)]
    write_csv(run_dir / episodes_name, rows)
    summary: EvalSummary = {
        "run": str(run_dir),
        "agent": config.agent,
        "env": config.env,
        "seed": seed,
        "stage": result["stage"],
        "episodes": result["episodes"],
        "deterministic": result["deterministic"],
        "success_rate": result["success_rate"],
        "success_ci": result["success_ci"],
        "mean_return": result["mean_return"],
        "return_ci": result["return_ci"],
        "mean_length": result["mean_length"],
    }
    write_json(run_dir / summary_name, summary)
    return summary


def config_device(run_dir: str | Path) -> str:
    """
    :param run_dir: a run folder.
    :return: the device of the run's config (``cpu`` if unset).
    """
    return read_run_config(run_dir).device


def format_table(summary: EvalSummary) -> str:
    """
    :param summary: an :func:`evaluate_run` result.
    :return: a small aligned text table.
    """
    lo, hi = summary["success_ci"]
    rlo, rhi = summary["return_ci"]
    rows = [
        ("run", summary["run"]),
        ("agent / env", f"{summary['agent']} / {summary['env']}"),
        ("stage", str(summary["stage"])),
        ("episodes", str(summary["episodes"])),
        ("success rate", f"{summary['success_rate']:.3f}  [{lo:.3f}, {hi:.3f}]  (95% Wilson)"),
        ("mean return", f"{summary['mean_return']:.3f}  [{rlo:.3f}, {rhi:.3f}]  (95% bootstrap)"),
        ("mean length", f"{summary['mean_length']:.1f}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def render_gif(
    out: str | Path,
    env_id: str | None = None,
    run_dir: str | Path | None = None,
    stage: str | int = 0,
    steps: int = 200,
    seed: int = 0,
    fps: int = 8,
    progress: bool = False,
    trust: bool = False,
) -> Path:
    """
    Record an episode stream to a GIF or an MP4 video (by the suffix of ``out``; one frame per step): the run's
    model acting (sampled actions), or random actions without one.

    :param out: the ``.gif`` or ``.mp4`` file (MP4 needs the ``video`` extra, imageio-ffmpeg).
    :param env_id: a MetaRIM id (default: the run's env).
    :param run_dir: a run folder whose model acts; ``None`` for random actions.
    :param stage: ``"heldout"`` or a stage index.
    :param steps: frames to record.
    :param seed: seed of the environment and actions.
    :param fps: frame rate.
    :param progress: show frames recorded / total with an ETA on stderr.
    :param trust: load the run's whole SB3 zip, not only the policy's weights (:func:`load_model`).
    :return: the written path.
    """
    from metarim_gym.rendering import ANIMATION_SUFFIXES, save_animation

    stage = parse_stage(stage)
    check_seed(seed)
    check_writable_file(out)
    if Path(out).suffix.lower() not in ANIMATION_SUFFIXES:
        allowed = " or ".join(ANIMATION_SUFFIXES)
        raise RunError(f"--out {out}: render writes a GIF or an MP4 video; give a file name ending in {allowed}")
    model, env_kwargs = None, {}
    if run_dir is not None:
        model, config = load_model(run_dir, trust=trust)
        env_id, env_kwargs = env_id or config.env, config.env_kwargs
    if env_id is None:
        raise RunError("render needs --env or --model")
    env = make_env(env_id, 1, seed, env_kwargs, stage=stage, render_mode="rgb_array")
    try:
        frames = policy_frames(env, model, steps, seed, progress=progress)
    finally:
        env.close()
    try:
        return save_animation(frames, out, fps=fps)
    except ImportError as err:  # MP4 without imageio-ffmpeg: the message names the extra
        raise RunError(str(err)) from None


def policy_frames(env: Any, model: Any | None, steps: int, seed: int = 0, progress: bool = False) -> list[np.ndarray]:
    """
    Step a one-env ``VecEnv`` (``render_mode="rgb_array"``) with a recurrent model and collect its frames.
    ``metarim_gym.rendering.record_frames`` takes a stateless policy of the observation; a recurrent model needs
    its state carried and reset at episode starts, which ``model.predict`` does here (SB3's ``VecEnv`` resets
    finished episodes itself).

    :param env: the ``VecEnv`` with one environment.
    :param model: a (recurrent) SB3 model with sampled actions, or ``None`` for uniformly random actions.
    :param steps: steps to take.
    :param seed: seed of the random actions.
    :param progress: show steps done / total with an ETA on stderr.
    :return: the frames, one per step plus the first.
    """
    obs = env.reset()
    frames = [env.get_images()[0]]
    state, start = None, np.ones(1, dtype=bool)
    rng = np.random.default_rng(seed)
    bar = episode_progress(steps, "frames", progress)
    for _ in range(steps):
        if model is not None:
            action, state = model.predict(obs, state=state, episode_start=start, deterministic=False)
        else:
            action = rng.integers(env.action_space.n, size=1)
        obs, _, start, _ = env.step(action)
        frames.append(env.get_images()[0])
        bar.update(1)
    bar.close()
    return frames
