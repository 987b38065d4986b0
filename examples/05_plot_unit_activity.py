"""Which RIM units work on which task: record the units' activation masks while training, then draw the
unit x task heatmap of ``metarim report``.

    python examples/05_plot_unit_activity.py [--timesteps 10000] [--env MetaRIM-MultiTask-v0] [--stage 1]
    python examples/05_plot_unit_activity.py --from runs/03_meta_rim [--out unit_activity.png]

The first form trains a small RIM agent on one stage (a mixture of four tasks in ``MetaRIM-MultiTask-v0``) with
``UnitActivityCallback``; the second reads the ``rim_activity.npz`` that example 03 or ``metarim train`` wrote.
Each cell is the fraction of that task's steps on which the unit was active (a row sums to ``k``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.env_util import make_vec_env

import metarim_gym  # noqa: F401  (registers the MetaRIM ids)
from metarim_sb3 import MultiInputRIMPolicy, UnitActivityCallback
from metarim_sb3.experiments.reporting.plots import unit_activity
from metarim_sb3.experiments.reporting.runs import RunData, load_run
from metarim_sb3.experiments.training.config import resolve_config
from metarim_sb3.experiments.training.run_config import RunConfig


def train_activity(env_id: str, stage: int, timesteps: int, n_envs: int, seed: int) -> dict[str, np.ndarray]:
    """Train a RIM agent with :class:`UnitActivityCallback`; return its matrix as ``rim_activity.npz`` holds it."""
    n_steps = min(64, max(16, timesteps // n_envs))
    model = RecurrentPPO(
        MultiInputRIMPolicy,
        make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs={"stage": stage}),
        n_steps=n_steps,
        batch_size=min(256, n_envs * n_steps),
        ent_coef=0.01,
        policy_kwargs={"n_units": 6, "unit_size": 16, "k": 3, "shared_lstm": True, "enable_critic_lstm": False},
        seed=seed,
        device="cpu",
    )
    activity = UnitActivityCallback()  # no log folder: the matrix is read from the callback, not from files
    model.learn(timesteps, callback=activity)
    tasks, matrix = activity.activation_matrix()
    return {"tasks": np.array(tasks, dtype=str), "actor_fraction": matrix}


def load_activity(folder: Path) -> RunData:
    """A run folder of ``metarim train`` (with its config), or any folder holding ``rim_activity.npz``."""
    if (folder / "config.yaml").exists():
        return load_run(folder)
    with np.load(folder / "rim_activity.npz") as data:
        activity = {key: data[key] for key in data.files}
    return RunData(folder, _labels(folder.name, "?"), None, {}, [], None, activity)


def _labels(agent: str, env: str, seed: int | None = None) -> RunConfig:
    """The run config the plot labels its panel with (the rim agent's presets, named ``agent`` on ``env``)."""
    return resolve_config("rim", "MetaRIM-MultiTask-v0").with_changes(agent=agent, env=env, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="MetaRIM-MultiTask-v0", help="a MetaRIM id (default: %(default)s)")
    parser.add_argument("--stage", type=int, default=1, help="training stage (default: %(default)s)")
    parser.add_argument("--timesteps", type=int, default=10_000, help="training steps (default: %(default)s)")
    parser.add_argument("--n-envs", type=int, default=8, help="parallel envs (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    parser.add_argument("--from", dest="from_dir", type=Path, help="read rim_activity.npz from this folder instead")
    parser.add_argument("--out", type=Path, default=Path("unit_activity.png"), help="PNG (default: %(default)s)")
    args = parser.parse_args()

    if args.from_dir is not None:
        if not (args.from_dir / "rim_activity.npz").exists():
            parser.error(f"{args.from_dir} has no rim_activity.npz (run example 03 or metarim train with a RIM agent)")
        run = load_activity(args.from_dir)
    else:
        activity = train_activity(args.env, args.stage, args.timesteps, args.n_envs, args.seed)
        run = RunData(Path("."), _labels("rim", args.env, args.seed), None, {}, [], None, activity)
    assert run.activity is not None
    tasks, matrix = [str(t) for t in run.activity["tasks"]], run.activity["actor_fraction"]
    print("fraction of steps active (rows: tasks, columns: units)")
    print(" " * 28 + " ".join(f"{f'u{u}':>5}" for u in range(matrix.shape[1])))
    for task, row in zip(tasks, matrix, strict=True):
        print(f"{task:28s}" + " ".join(f"{v:5.2f}" for v in row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(f"heatmap: {unit_activity([run], args.out)}")


if __name__ == "__main__":
    main()
