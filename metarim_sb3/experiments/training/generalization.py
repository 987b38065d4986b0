"""Zero-shot tests of a run trained on one stage: the end-of-training evaluation on a list of stages, and its files.

**In a run** (config section ``generalization: {stages, episodes, n_envs}``; ``stages: []`` is off): after training,
the model is evaluated, without further training, on every listed stage of its family (stage indices and/or
``heldout``): ``episodes`` episodes each on ``n_envs`` environments stepped as one batch, the environments seeded
with the run seed + :data:`SEED_OFFSET`, so every agent with the same run seed meets the same episodes (layouts).
The rows go to ``generalization.csv`` in the run folder (one per test stage, with a 95 % Wilson interval) and the
episodes to ``generalization_episodes.csv``. The held-out stage is the final evaluation's (``final_eval.json``: same
seed) when its episodes and environments are the same, not run twice.

The report's section on these files is :mod:`metarim_sb3.experiments.reporting.sections.generalization`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

from metarim_sb3.experiments.training.result import EvalResult
from metarim_sb3.experiments.training.run_config import RunConfig
from metarim_sb3.experiments.training.yaml_io import ConfigError

__all__ = [
    "GENERALIZATION",
    "GENERALIZATION_EPISODES",
    "HELDOUT",
    "RUN_COLUMNS",
    "SEED_OFFSET",
    "GeneralizationRow",
    "check_test_stages",
    "evaluate_test_stages",
    "stage_names",
    "test_stages",
    "train_stage",
    "write_run_files",
]


#: The run folder's table of test stages and its per-episode file.
GENERALIZATION = "generalization.csv"
GENERALIZATION_EPISODES = "generalization_episodes.csv"
#: The test environments are seeded with the run seed plus this (the final held-out evaluation's seed).
SEED_OFFSET = 20_000
#: Columns of the run folder's ``generalization.csv``.
RUN_COLUMNS = (
    "train_stage",
    "train_env",
    "test_stage",
    "test_env",
    "in_distribution",
    "eval_seed",
    "episodes",
    "successes",
    "success_rate",
    "success_low",
    "success_high",
    "mean_return",
    "return_low",
    "return_high",
    "mean_length",
)


HELDOUT = "heldout"


class GeneralizationRow(TypedDict):
    """A row of a run's ``generalization.csv`` (:data:`RUN_COLUMNS`): one test stage's zero-shot result."""

    #: The stage trained on (``env_kwargs.stage``) and its env name.
    train_stage: int | str
    train_env: str
    #: The stage tested on (an index or ``heldout``) and its env name.
    test_stage: int | str
    test_env: str
    #: 1 if the test stage is the training stage, else 0.
    in_distribution: int
    #: The test envs' seed (the run seed + :data:`SEED_OFFSET`).
    eval_seed: int
    #: Episodes run and episodes that succeeded.
    episodes: int
    successes: int
    #: Share of successes and its 95 % Wilson interval.
    success_rate: float
    success_low: float
    success_high: float
    #: Mean return and its 95 % bootstrap interval.
    mean_return: float
    return_low: float
    return_high: float
    #: Mean episode length, steps.
    mean_length: float


def test_stages(config: RunConfig) -> list[int | str]:
    """
    :param config: a resolved run config.
    :return: its ``generalization.stages`` (empty when the section is off or absent: configs of earlier versions).
    """
    return list(config.generalization.stages)


def train_stage(config: RunConfig) -> int | str:
    """
    :param config: a resolved run config.
    :return: the stage the run trains on without a curriculum: ``env_kwargs.stage`` (default 0).
    """
    stage = config.env_kwargs.get("stage", 0)
    return stage if isinstance(stage, (int, str)) else 0


def stage_names(env: Any) -> dict[int | str, str]:
    """
    :param env: the run's ``VecEnv`` of a MetaRIM family (its stage list is read from the first environment).
    :return: the name of every stage: index -> name, ``"heldout"`` -> the held-out stage's name (if it has one).
    """
    stages = env.get_attr("stages", indices=[0])[0]
    heldout = env.get_attr("heldout", indices=[0])[0]
    names: dict[int | str, str] = {i: str(stage.name) for i, stage in enumerate(stages)}
    if heldout is not None:
        names[HELDOUT] = str(heldout.name)
    return names


def check_test_stages(config: RunConfig, names: dict[int | str, str]) -> None:
    """
    Refuse test stages the env does not have, before anything is written.

    :param config: the run config.
    :param names: from :func:`stage_names`.
    :raises ConfigError: naming the stage and the ones allowed.
    """
    for stage in test_stages(config):
        if stage not in names:
            allowed = ", ".join(str(k) for k in names)
            raise ConfigError(
                f"config key generalization.stages: {config.env} has no stage {stage!r} (with these env_kwargs); "
                f"allowed: {allowed}"
            )


def _same_as_final(config: RunConfig, final: EvalResult) -> bool:
    """Whether the final held-out evaluation ran the episodes the held-out test would (same seed by design)."""
    gen, fin = config.generalization, config.final_eval
    return (
        final.get("stage") == HELDOUT
        and int(final.get("episodes", -1)) == gen.episodes
        and min(fin.n_envs, gen.episodes) == min(gen.n_envs, gen.episodes)
    )


def evaluate_test_stages(
    model: Any, config: RunConfig, seed: int, *, final: EvalResult | None = None, progress: bool = False
) -> list[EvalResult]:
    """
    Evaluate a trained model on every test stage of its config.

    :param model: the trained model.
    :param config: the run config (with a ``generalization`` section).
    :param seed: the run seed (the test environments get ``seed + SEED_OFFSET``).
    :param final: the final held-out evaluation, reused for ``heldout`` when it ran the same episodes.
    :param progress: show each evaluation's episodes on stderr.
    :return: one :func:`~metarim_sb3.experiments.training.evaluate.evaluate_model` result per test stage, in order.
    """
    from metarim_sb3.experiments.training.evaluate import evaluate_model

    gen = config.generalization
    results = []
    for stage in test_stages(config):
        if stage == HELDOUT and final is not None and _same_as_final(config, final):
            results.append(final)
            continue
        results.append(
            evaluate_model(
                model,
                config.env,
                stage=stage,
                episodes=gen.episodes,
                seed=seed + SEED_OFFSET,
                n_envs=gen.n_envs,
                env_kwargs=config.env_kwargs,
                deterministic=config.deterministic_eval,
                progress=progress,
            )
        )
    return results


def write_run_files(
    out_dir: Path, config: RunConfig, seed: int, names: dict[int | str, str], results: list[EvalResult]
) -> list[GeneralizationRow]:
    """
    Write ``generalization.csv`` and ``generalization_episodes.csv`` into the run folder (atomically).

    :param out_dir: the run folder.
    :param config: the run config.
    :param seed: the run seed.
    :param names: from :func:`stage_names`.
    :param results: from :func:`evaluate_test_stages`.
    :return: the rows of ``generalization.csv`` as mappings.
    """
    from metarim_sb3.experiments.training.folder import write_csv

    trained = train_stage(config)
    rows: list[GeneralizationRow] = []
    episodes: list[list[Any]] = [["test_stage", "test_env", "episode", "success", "return", "length"]]
    for stage, result in zip(test_stages(config), results, strict=True):
        low, high = result["success_ci"]
        rlow, rhigh = result["return_ci"]
        rows.append(
            {
                "train_stage": trained,
                "train_env": names.get(trained, str(trained)),
                "test_stage": stage,
                "test_env": names[stage],
                "in_distribution": int(str(stage) == str(trained)),
                "eval_seed": seed + SEED_OFFSET,
                "episodes": result["episodes"],
                "successes": int(sum(result["successes"])),
                "success_rate": result["success_rate"],
                "success_low": low,
                "success_high": high,
                "mean_return": result["mean_return"],
                "return_low": rlow,
                "return_high": rhigh,
                "mean_length": result["mean_length"],
            }
        )
        columns = zip(result["successes"], result["returns"], result["lengths"], strict=True)
        episodes += [[stage, names[stage], i, *row] for i, row in enumerate(columns)]
    write_csv(out_dir / GENERALIZATION, [list(RUN_COLUMNS), *([dict(r)[c] for c in RUN_COLUMNS] for r in rows)])
    write_csv(out_dir / GENERALIZATION_EPISODES, episodes)
    return rows
