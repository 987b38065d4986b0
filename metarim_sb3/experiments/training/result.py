"""What one run returns (and writes to ``done.json``): :class:`RunResult`; what one evaluation returns (and writes to
``final_eval.json``): :class:`EvalResult`. Both are typed mappings.

:func:`~metarim_sb3.experiments.training.runner.run` returns a :class:`RunResult` with ``status`` ``"done"`` (every
key below but ``error`` and ``skipped``) or ``"interrupted"`` (``status``, ``timesteps``, ``out_dir``). A grid adds
``"failed"`` results (``status`` and ``error``) and marks the ``done.json`` of a run it skipped (``skipped``). It stays
a plain ``dict`` at run time, so ``done.json`` is written and read as before.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = ["EvalResult", "EvalStats", "EvalSummary", "RunResult", "done_lines"]


class RunResult(TypedDict, total=False):
    """The summary of one run (``done.json``); which keys a result has depends on its ``status``."""

    #: ``"done"``, ``"interrupted"`` or ``"failed"``.
    status: str
    #: Why the run failed (``status`` ``"failed"`` only).
    error: str
    #: The result was read from a complete run's ``done.json`` instead of being run again.
    skipped: bool
    agent: str
    env: str
    seed: int
    #: Environment steps trained (all envs together); ``None`` for a grid's run that never started.
    timesteps: int | None
    #: Training time of all segments, seconds (the final evaluation excluded).
    wall_time_s: float
    #: Training frames per second over :attr:`wall_time_s`.
    fps: float
    #: Time and steps of this process's segment (a resumed run has several).
    this_segment_s: float
    this_segment_steps: int
    #: The final held-out evaluation's time, seconds.
    final_eval_s: float
    #: The stage of env 0 at the end of training.
    final_stage: int
    #: How the stages shifted (:func:`~metarim_sb3.experiments.training.config.schedule_name`).
    schedule: str
    #: Held-out success rate of the final evaluation, its 95 % interval and mean return.
    heldout_success: float
    heldout_success_ci: list[float]
    heldout_return: float
    #: Success rate per zero-shot test stage (only when ``generalization.stages`` is set).
    generalization: dict[str, float]
    finished_at: str
    out_dir: str


class EvalStats(TypedDict):
    """What an evaluation of one stage measured (the part :class:`EvalResult` and :class:`EvalSummary` share)."""

    #: ``"heldout"`` or a training stage index.
    stage: int | str
    #: Episodes run.
    episodes: int
    #: Greedy (true) or sampled (false) actions.
    deterministic: bool
    #: Share of the episodes that succeeded, and its 95 % Wilson interval ``[low, high]``.
    success_rate: float
    success_ci: list[float]
    #: Mean episode return, and its 95 % bootstrap interval ``[low, high]``.
    mean_return: float
    return_ci: list[float]
    #: Mean episode length, steps.
    mean_length: float


class EvalResult(EvalStats):
    """The result of :func:`~metarim_sb3.experiments.training.evaluate.evaluate_model`: episodes of one stage."""

    #: Per episode, in order: success (0/1), return, length.
    successes: list[int]
    returns: list[float]
    lengths: list[int]


class EvalSummary(EvalStats):
    """What ``metarim evaluate`` writes to ``eval_<stage>.json``: an :class:`EvalResult` without its per-episode lists,
    with the run it evaluated."""

    #: The run folder, its agent, env, and the evaluation envs' seed.
    run: str
    agent: str
    env: str
    seed: int


def done_lines(result: RunResult, out: object) -> list[str]:
    """
    :param result: a complete run's summary (status ``"done"``).
    :param out: its run folder (as printed).
    :return: the lines ``metarim train`` prints at the end of the run: steps, training and evaluation time, final
        stage and held-out success; then the zero-shot success by test env, if the run has zero-shot tests.
    """
    steps, train_s = result["this_segment_steps"], result["this_segment_s"]
    low, high = result["heldout_success_ci"]
    lines = [
        f"done: {steps} steps in {train_s:.1f} s training ({steps / max(train_s, 1e-9):.0f} fps) + "
        f"{result['final_eval_s']:.1f} s evaluation; {result['timesteps']} steps in all; "
        f"final stage {result['final_stage']}; held-out success {result['heldout_success']:.2f} "
        f"[{low:.2f}, {high:.2f}] -> {out}"
    ]
    if result.get("generalization"):  # the zero-shot tests of config generalization.stages (generalization.csv)
        tests = ", ".join(f"{name} {rate:.2f}" for name, rate in result["generalization"].items())
        lines.append(f"zero-shot success by test env: {tests} (generalization.csv)")
    return lines
