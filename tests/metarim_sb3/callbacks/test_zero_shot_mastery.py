"""ZeroShotAtMasteryCallback: one held-out evaluation at the first mastery of the last training stage (the
curriculum's or its own window rule), the CSV and the saved model, a resumed run, a run that never masters it."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

import metarim_gym  # noqa: F401  (registers the MetaRIM ids)
from metarim_sb3 import MultiInputRIMPolicy
from metarim_sb3.callbacks import CurriculumCallback, ZeroShotAtMasteryCallback

ENV_ID = "MetaRIM-GoTo-v0"  # 3 training stages of short episodes: a random policy succeeds now and then
LAST = 2
TINY_RIM = dict(n_units=3, unit_size=4, k=2, input_key_size=8, comm_key_size=4, comm_value_size=4, comm_heads=2)
TINY_EXTRACTOR = dict(features_dim=16, cnn_channels=(4, 4), mission_embedding_dim=4)


def tiny_model(stage: int = 0) -> RecurrentPPO:
    """2 envs, rollouts of 2 x 16 = 32 frames."""
    env = make_vec_env(ENV_ID, n_envs=2, seed=0, env_kwargs=dict(stage=stage))
    policy_kwargs = dict(**TINY_RIM, features_extractor_kwargs=TINY_EXTRACTOR, net_arch=dict(pi=[8], vf=[8]))
    return RecurrentPPO(MultiInputRIMPolicy, env, n_steps=16, batch_size=32, n_epochs=1, seed=0,
                        policy_kwargs=policy_kwargs)  # fmt: skip


def held_out_env() -> Any:
    return make_vec_env(ENV_ID, n_envs=2, seed=5, env_kwargs=dict(stage="heldout"))


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


class Spy(BaseCallback):
    """Records the first step on which the curriculum marks the last stage mastered, and every episode end."""

    def __init__(self, curriculum: CurriculumCallback | None = None) -> None:
        super().__init__()
        self.curriculum, self.mastered_at = curriculum, None
        self.episodes: list[tuple[int, int, bool]] = []  # (timesteps, stage, success)

    def _on_step(self) -> bool:
        for i in np.flatnonzero(self.locals["dones"]):
            info = self.locals["infos"][i]
            self.episodes.append((self.num_timesteps, int(info["stage"]), bool(info["is_success"])))
        if self.curriculum is not None and self.mastered_at is None and self.curriculum.state_dict()["done"]:
            self.mastered_at = self.num_timesteps
        return True


def test_fires_once_when_the_curriculum_masters_the_last_stage(tmp_path: Path) -> None:
    model = tiny_model()
    curriculum = CurriculumCallback(threshold=0.1, window=2, start_stage=LAST)
    cb = ZeroShotAtMasteryCallback(held_out_env(), n_eval_episodes=3, curriculum=curriculum, log_dir=str(tmp_path))
    spy = Spy(curriculum)
    calls: list[int] = []
    evaluate = cb.evaluate
    cb.evaluate = lambda: calls.append(cb.num_timesteps) or evaluate()  # type: ignore[method-assign]
    model.learn(640, callback=[curriculum, cb, spy])
    assert spy.mastered_at is not None, "the tiny curriculum should master stage 2 within 640 steps"
    assert calls == [spy.mastered_at]  # once, on the step the curriculum marked it mastered
    rows = read_rows(tmp_path / "zero_shot_mastery.csv")
    assert len(rows) == 1 and tuple(rows[0]) == ZeroShotAtMasteryCallback.CSV_HEADER
    row = rows[0]
    assert int(row["timesteps"]) == spy.mastered_at and int(row["stage"]) == LAST and int(row["episodes"]) == 3
    assert float(row["success_rate"]) == pytest.approx(int(row["successes"]) / 3)
    saved = RecurrentPPO.load(tmp_path / "mastery.zip")
    assert saved.num_timesteps == spy.mastered_at
    assert cb.result is not None and cb.result["timesteps"] == spy.mastered_at


def test_own_window_rule_without_a_curriculum_and_resume(tmp_path: Path) -> None:
    model = tiny_model(stage=LAST)
    cb = ZeroShotAtMasteryCallback(held_out_env(), n_eval_episodes=2, threshold=0.5, window=2, log_dir=str(tmp_path))
    spy = Spy()
    model.learn(640, callback=[cb, spy])
    # expected: the first episode end at which the last 2 episodes of stage 2 hold >= 1 success
    results = [s for _, stage, s in spy.episodes if stage == LAST]
    steps = [t for t, stage, _ in spy.episodes if stage == LAST]
    expected = next(steps[i] for i in range(1, len(results)) if results[i - 1] + results[i] >= 1)
    rows = read_rows(tmp_path / "zero_shot_mastery.csv")
    assert [int(r["timesteps"]) for r in rows] == [expected]
    before = (tmp_path / "zero_shot_mastery.csv").read_bytes(), (tmp_path / "mastery.zip").stat().st_mtime_ns

    # a resumed run (a new callback, the same folder) keeps the row and never evaluates again
    again = ZeroShotAtMasteryCallback(held_out_env(), n_eval_episodes=2, threshold=0.5, window=2, log_dir=str(tmp_path))
    again.evaluate = lambda: pytest.fail("evaluated again after a resume")  # type: ignore[method-assign]
    model.learn(320, callback=again, reset_num_timesteps=False)
    assert again.result is not None and int(again.result["timesteps"]) == expected
    assert ((tmp_path / "zero_shot_mastery.csv").read_bytes(), (tmp_path / "mastery.zip").stat().st_mtime_ns) == before


def test_resume_after_the_curriculum_mastered_without_a_row_does_not_evaluate_a_later_model(tmp_path: Path) -> None:
    curriculum = CurriculumCallback(threshold=0.1, window=1)
    curriculum.load_state_dict({"stage": LAST, "results": [], "stage_start": 0, "done": True, "shifts": []})
    cb = ZeroShotAtMasteryCallback(held_out_env(), curriculum=curriculum, log_dir=str(tmp_path))
    cb.evaluate = lambda: pytest.fail("evaluated a model later than the mastery")  # type: ignore[method-assign]
    tiny_model(stage=LAST).learn(64, callback=[curriculum, cb])
    assert read_rows(tmp_path / "zero_shot_mastery.csv") == []


def test_never_mastered_leaves_a_header_and_no_model(tmp_path: Path) -> None:
    model = tiny_model()
    curriculum = CurriculumCallback(threshold=1.0, window=50)
    cb = ZeroShotAtMasteryCallback(held_out_env(), curriculum=curriculum, log_dir=str(tmp_path))
    model.learn(64, callback=[curriculum, cb])
    assert cb.result is None
    assert (tmp_path / "zero_shot_mastery.csv").read_text().splitlines() == [
        ",".join(ZeroShotAtMasteryCallback.CSV_HEADER)
    ]
    assert not (tmp_path / "mastery.zip").exists()


def test_training_is_the_same_with_or_without_it(tmp_path: Path) -> None:
    plain = tiny_model(stage=LAST)  # each model seeds torch's global generator when built: one at a time
    plain.learn(320)
    evaluated = tiny_model(stage=LAST)
    cb = ZeroShotAtMasteryCallback(held_out_env(), n_eval_episodes=2, threshold=0.5, window=1, log_dir=str(tmp_path))
    evaluated.learn(320, callback=cb)
    assert cb.result is not None  # it did evaluate
    for a, b in zip(plain.policy.parameters(), evaluated.policy.parameters(), strict=True):
        assert a.detach().equal(b.detach())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(eval_env="MetaRIM-GoTo-v0"), "eval_env"),
        (dict(n_eval_episodes=0), "n_eval_episodes"),
        (dict(threshold=0.0), "threshold"),
        (dict(window=0), "window"),
        (dict(stage=-1), "stage"),
        (dict(seed=-1), "seed"),
        (dict(csv_name=""), "csv_name"),
        (dict(model_name=""), "model_name"),
        (dict(curriculum=object()), "curriculum"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    env = held_out_env()
    with pytest.raises(ValueError, match=name):
        ZeroShotAtMasteryCallback(**{"eval_env": env, **kwargs})
    env.close()
