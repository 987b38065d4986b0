"""StageEvalCallback: evaluations at the configured frames, at shifts (fixed schedule and set from outside), on
the current stage and every stage seen; the CSV; common episodes across evaluations; bad input."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

import metarim_gym  # noqa: F401  (registers the MetaRIM ids)
from metarim_sb3 import MultiInputRIMPolicy
from metarim_sb3.callbacks.stage_eval import StageEvalCallback, run_episodes

ENV_ID = "MetaRIM-MultiRoom-v0"  # 3 training stages of short episodes (40, 60, 80 steps at most)
TINY_RIM = dict(n_units=3, unit_size=4, k=2, input_key_size=8, comm_key_size=4, comm_value_size=4, comm_heads=2)
TINY_EXTRACTOR = dict(features_dim=16, cnn_channels=(4, 4), mission_embedding_dim=4)


def tiny_model(env_kwargs: dict[str, Any] | None = None) -> RecurrentPPO:
    """2 envs, rollouts of 2 x 8 = 16 frames."""
    env = make_vec_env(ENV_ID, n_envs=2, seed=0, env_kwargs=env_kwargs)
    policy_kwargs = dict(**TINY_RIM, features_extractor_kwargs=TINY_EXTRACTOR, net_arch=dict(pi=[8], vf=[8]))
    return RecurrentPPO(MultiInputRIMPolicy, env, n_steps=8, batch_size=16, n_epochs=1, seed=0,
                        policy_kwargs=policy_kwargs)  # fmt: skip


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def by_time(rows: list[dict[str, Any]]) -> dict[int, list[tuple[int, int]]]:
    """timesteps -> [(stage, current)] in row order."""
    out: dict[int, list[tuple[int, int]]] = {}
    for r in rows:
        out.setdefault(int(r["timesteps"]), []).append((int(r["stage"]), int(r["current"])))
    return out


def test_fixed_schedule_evaluates_at_the_configured_frames_on_the_seen_stages(tmp_path: Path) -> None:
    # steps schedule: each env shifts after 16 of its own steps = every 32 frames of the 2 envs together
    kwargs = dict(schedule="steps", shift_every=16)
    model = tiny_model(kwargs)
    cb = StageEvalCallback(ENV_ID, every=32, episodes=2, n_envs=2, log_dir=str(tmp_path), env_kwargs=kwargs)
    assert cb.eval_env.env_method("get_stage") == [0, 0]  # the eval envs do not shift on their own
    model.learn(96, callback=cb)
    rows = read_rows(tmp_path / "stage_eval.csv")
    assert tuple(rows[0]) == StageEvalCallback.CSV_HEADER
    assert by_time(rows) == {
        0: [(0, 1)],
        32: [(1, 1), (0, 0)],  # the current stage first, then every stage seen
        64: [(2, 1), (0, 0), (1, 0)],
        96: [(2, 1), (0, 0), (1, 0)],  # the last stage stays (no cycle); training end adds no duplicate
    }
    for r in rows:
        assert int(r["episodes"]) == 2 and 0 <= int(r["successes"]) <= 2
        assert float(r["success_rate"]) == pytest.approx(int(r["successes"]) / 2)
        assert 0.0 <= float(r["mean_return"]) <= 1.0
    assert len(cb.evaluations) == len(rows) and cb.seen == {0, 1, 2}
    assert cb.eval_env.env_method("get_stage") == [1, 1]  # left on the last stage evaluated
    cb.close()


class ShiftAt(BaseCallback):
    """Moves every training env to stage 1 once the timestep count reaches ``at`` (like a curriculum)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def _on_step(self) -> bool:
        if self.num_timesteps == self.at:
            self.training_env.env_method("set_stage", 1)
        return True


def test_a_shift_is_evaluated_at_the_next_rollout_end(tmp_path: Path) -> None:
    model = tiny_model()
    cb = StageEvalCallback(ENV_ID, every=1000, episodes=2, n_envs=2, log_dir=str(tmp_path))
    model.learn(48, callback=[ShiftAt(20), cb])  # rollouts end at 16, 32, 48
    assert by_time(cb.evaluations) == {0: [(0, 1)], 32: [(1, 1), (0, 0)], 48: [(1, 1), (0, 0)]}
    assert len(read_rows(tmp_path / "stage_eval.csv")) == 5


def test_same_episodes_at_every_evaluation_and_resume_keeps_the_stages_seen(tmp_path: Path) -> None:
    model = tiny_model()
    cb = StageEvalCallback(ENV_ID, every=16, episodes=2, n_envs=2, deterministic=True, log_dir=str(tmp_path))
    model.learn(16, callback=cb)
    first = cb.evaluate()  # after learn(): the same parameters, the same reseeded episodes
    assert first[0]["mean_return"] == cb.evaluations[-2]["mean_return"]
    model.env.env_method("set_stage", 2)  # type: ignore[union-attr]
    again = StageEvalCallback(ENV_ID, every=16, episodes=2, n_envs=2, log_dir=str(tmp_path))
    model.learn(16, callback=again, reset_num_timesteps=False)
    assert again.seen == {0, 2}  # 0 from the CSV of the first session
    assert [r["stage"] for r in again.evaluations if r["timesteps"] == 32] == [2, 0]


def test_run_episodes_spreads_episodes_over_the_envs() -> None:
    model = tiny_model()
    env = make_vec_env(ENV_ID, n_envs=2, seed=1)
    result = run_episodes(model, env, n_episodes=3, deterministic=False)
    assert len(result.returns) == len(result.lengths) == len(result.successes) == 3
    assert all(1 <= n <= 40 for n in result.lengths)  # stage 0: at most 40 steps
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(every=0), "every"),
        (dict(episodes=0), "episodes"),
        (dict(n_envs=True), "n_envs"),
        (dict(csv_name=""), "csv_name"),
        (dict(eval_env_id=""), "eval_env_id"),
        (dict(eval_env_id="CartPole-v1"), "no stages"),
        (dict(eval_env_id="NoSuchEnv-v0"), "cannot make"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    kwargs = {"eval_env_id": ENV_ID, **kwargs}
    with pytest.raises(ValueError, match=name):
        StageEvalCallback(**kwargs)


def test_training_is_the_same_with_or_without_the_evaluations(tmp_path: Path) -> None:
    plain = tiny_model()  # each model seeds torch's global generator when built: build and train one at a time
    plain.learn(32)
    evaluated = tiny_model()
    evaluated.learn(32, callback=StageEvalCallback(ENV_ID, every=16, episodes=2, log_dir=str(tmp_path)))
    for a, b in zip(plain.policy.parameters(), evaluated.policy.parameters(), strict=True):
        assert a.detach().equal(b.detach())
