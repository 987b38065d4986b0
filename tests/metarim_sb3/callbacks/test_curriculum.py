"""CurriculumCallback (scripted success streams, every env of Dummy/SubprocVecEnv, CSV, bad input) and
HeldOutEvalCallback; a slow end-to-end run with FastSlowCallback that passes a shift."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger, configure
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

import metarim_gym  # noqa: F401  (registers the MetaRIM ids)
from metarim_sb3 import MultiInputRIMPolicy
from metarim_sb3.callbacks import CurriculumCallback, FastSlowCallback, HeldOutEvalCallback

ENV_ID = "metarim_gym:MetaRIM-DoorKey-v0"  # 3 training stages; the module prefix imports it in subprocesses
TINY_RIM = dict(n_units=3, unit_size=4, k=2, input_key_size=8, comm_key_size=4, comm_value_size=4, comm_heads=2)
TINY_EXTRACTOR = dict(features_dim=16, cnn_channels=(4, 4), mission_embedding_dim=4)


class FakeModel:
    """What a callback reads from a model: the env, a logger and the timestep count."""

    def __init__(self, env: VecEnv, log_dir: Path) -> None:
        self.env, self.num_timesteps = env, 0
        self.logger = Logger(folder=str(log_dir), output_formats=[])

    def get_env(self) -> VecEnv:
        return self.env


def start(callback: CurriculumCallback, env: VecEnv, log_dir: Path) -> FakeModel:
    model = FakeModel(env, log_dir)
    callback.init_callback(model)  # type: ignore[arg-type]
    callback.on_training_start({}, {})
    return model


def feed(callback: CurriculumCallback, model: FakeModel, episodes: dict[int, tuple[int, bool]]) -> None:
    """One vec-env step: ``episodes`` maps env index -> (stage, success) of an episode that ends now."""
    n = model.env.num_envs
    dones = np.array([i in episodes for i in range(n)])
    infos: list[dict[str, Any]] = [{} for _ in range(n)]
    for i, (stage, success) in episodes.items():
        infos[i] = {"stage": stage, "is_success": success, "task": "t"}
    model.num_timesteps += n
    callback.update_locals({"dones": dones, "infos": infos})
    assert callback.on_step()


@pytest.fixture
def vec_env() -> Any:
    env = make_vec_env(ENV_ID, n_envs=3)
    yield env
    env.close()


def test_shifts_exactly_at_the_threshold_and_ignore_old_stage_episodes(vec_env: VecEnv, tmp_path: Path) -> None:
    cb = CurriculumCallback(threshold=0.75, window=4)
    model = start(cb, vec_env, tmp_path)
    for success in (True, False, True):
        feed(cb, model, {0: (0, success)})
    assert cb.stage == 0  # window not full yet
    feed(cb, model, {1: (0, True)})  # 3 of 4: 0.75
    assert cb.stage == 1 and vec_env.env_method("get_stage") == [1, 1, 1]
    assert cb.shifts == [dict(timestep=12, from_stage=0, to_stage=1, success_rate=0.75)]
    feed(cb, model, {0: (0, True), 2: (0, True)})  # finished under the old stage: not counted
    for success in (False, True, False, True, True):  # F T F T: 0.5; then the window slides to T F T T: 0.75
        feed(cb, model, {2: (1, success)})
        assert cb.stage == 1 or success
    assert cb.stage == 2 and cb.shifts[-1]["timestep"] == 30
    with open(cb.csv_path or "") as file:  # written (and closed) at each shift
        rows = list(csv.DictReader(file))
    assert [(int(r["from_stage"]), int(r["to_stage"])) for r in rows] == [(0, 1), (1, 2)]
    assert cb.csv_path == str(tmp_path / "curriculum.csv")


def test_several_episodes_in_one_step(vec_env: VecEnv, tmp_path: Path) -> None:
    cb = CurriculumCallback(threshold=1.0, window=2)
    model = start(cb, vec_env, tmp_path)
    feed(cb, model, {0: (0, True), 1: (0, True), 2: (0, False)})  # env 0 and 1 fill the window: shift
    assert cb.stage == 1 and cb.success_rate != cb.success_rate  # empty window after a shift (nan)
    feed(cb, model, {0: (1, False)})
    assert cb.success_rate == 0.0


def test_min_steps_delays_the_shift(vec_env: VecEnv, tmp_path: Path) -> None:
    cb = CurriculumCallback(threshold=0.5, window=2, min_steps=30)
    model = start(cb, vec_env, tmp_path)
    feed(cb, model, {0: (0, True), 1: (0, True)})
    while model.num_timesteps < 30:
        assert cb.stage == 0
        feed(cb, model, {})
    assert cb.stage == 1 and cb.shifts[0]["timestep"] == 30


@pytest.mark.parametrize("cycle", [False, True])
def test_last_stage_stays_or_cycles(vec_env: VecEnv, tmp_path: Path, cycle: bool) -> None:
    cb = CurriculumCallback(threshold=1.0, window=1, cycle=cycle, start_stage=1)
    model = start(cb, vec_env, tmp_path)
    assert vec_env.env_method("get_stage") == [1, 1, 1]
    feed(cb, model, {0: (1, True)})
    feed(cb, model, {0: (2, True)})
    assert cb.stage == (0 if cycle else 2)
    assert len(cb.shifts) == (2 if cycle else 1)


def test_fixed_schedule_shifts_on_frames_whatever_the_success(vec_env: VecEnv, tmp_path: Path) -> None:
    # every visit lasts `every` steps (the first `first`), mastered or not: no visit ends early because of its outcome
    cb = CurriculumCallback(threshold=0.5, window=1, every=9, first=15, cycle=True)
    model = start(cb, vec_env, tmp_path)
    stages = []
    for step in range(14):
        feed(cb, model, {0: (cb.stage, True)} if step % 2 else {})  # all successes: the mastery rule would shift
        stages.append(cb.stage)
    # 3 envs: 3 steps per call; the first visit ends at 15 steps, the next ones every 9 steps, cycling to 0
    assert [row["timestep"] for row in cb.shifts] == [15, 24, 33, 42]
    assert [row["to_stage"] for row in cb.shifts] == [1, 2, 0, 1]
    assert stages[:6] == [0, 0, 0, 0, 1, 1]
    assert not cb.last_stage_mastered
    assert vec_env.env_method("get_stage") == [1, 1, 1]


def test_fixed_schedule_does_not_shift_on_the_last_step_of_training(vec_env: VecEnv, tmp_path: Path) -> None:
    cb = CurriculumCallback(every=6, cycle=True)
    model = start(cb, vec_env, tmp_path)
    model._total_timesteps = 12  # type: ignore[attr-defined]  (what learn() sets on a model)
    for _ in range(4):
        feed(cb, model, {})
    assert [row["timestep"] for row in cb.shifts] == [6]  # not at 12, where training ends


def test_fixed_schedule_without_cycle_stays_in_the_last_stage(vec_env: VecEnv, tmp_path: Path) -> None:
    cb = CurriculumCallback(every=3, start_stage=1)
    model = start(cb, vec_env, tmp_path)
    for _ in range(4):
        feed(cb, model, {})
    assert [row["to_stage"] for row in cb.shifts] == [2]
    assert cb.stage == 2 and not cb.last_stage_mastered


@pytest.mark.parametrize("vec_cls", [DummyVecEnv, SubprocVecEnv])
def test_shift_reaches_every_env(vec_cls: type, tmp_path: Path) -> None:
    env = make_vec_env(ENV_ID, n_envs=2, vec_env_cls=vec_cls)
    try:
        cb = CurriculumCallback(threshold=0.5, window=1)
        model = start(cb, env, tmp_path)
        feed(cb, model, {1: (0, True)})
        assert env.env_method("get_stage") == [1, 1]
        env.reset()  # effective at the next reset
        assert {info["stage"] for info in env.reset_infos} == {1}
    finally:
        env.close()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(threshold=0.0), "threshold"),
        (dict(threshold=1.5), "threshold"),
        (dict(threshold=True), "threshold"),
        (dict(threshold=float("nan")), "threshold"),
        (dict(window=np.bool_(True)), "window"),
        (dict(cycle="no"), "cycle"),
        (dict(window=0), "window"),
        (dict(window=2.0), "window"),
        (dict(min_steps=-1), "min_steps"),
        (dict(start_stage=-1), "start_stage"),
        (dict(csv_name=""), "csv_name"),
        (dict(every=0), "every"),
        (dict(every=1.5), "every"),
        (dict(every=10, first=0), "first"),
        (dict(first=10), "first"),
    ],
)
def test_curriculum_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CurriculumCallback(**kwargs)


def test_state_dict_round_trip_keeps_the_window(vec_env: VecEnv, tmp_path: Path) -> None:
    cb = CurriculumCallback(threshold=0.75, window=4)
    model = start(cb, vec_env, tmp_path)
    for success in (True, False, True):
        feed(cb, model, {0: (0, success)})
    state = cb.state_dict()
    assert state["results"] == [True, False, True] and state["stage"] == 0
    resumed = CurriculumCallback(threshold=0.75, window=4)
    resumed.load_state_dict(state)
    model2 = start(resumed, vec_env, tmp_path)
    model2.num_timesteps = model.num_timesteps
    feed(resumed, model2, {1: (0, True)})  # the fourth episode of the same window: 3 of 4 shifts
    assert resumed.stage == 1 and vec_env.env_method("get_stage") == [1, 1, 1]


def test_curriculum_accepts_numpy_scalars() -> None:
    cb = CurriculumCallback(threshold=np.float32(0.5), window=np.int64(4), min_steps=np.int32(0), cycle=np.bool_(True))
    assert (cb.threshold, cb.window, cb.min_steps, cb.cycle) == (0.5, 4, 0, True)
    assert (type(cb.window), type(cb.cycle)) == (int, bool)


def test_curriculum_bad_environments(vec_env: VecEnv, tmp_path: Path) -> None:
    cartpole = make_vec_env("CartPole-v1", n_envs=1)
    with pytest.raises(ValueError, match="get_stage"):
        start(CurriculumCallback(), cartpole, tmp_path)
    with pytest.raises(ValueError, match="not a training stage"):
        start(CurriculumCallback(start_stage=3), vec_env, tmp_path)  # 3 = the held-out stage


def tiny_model(env: VecEnv, seed: int = 0, **kwargs: Any) -> RecurrentPPO:
    policy_kwargs = dict(**TINY_RIM, features_extractor_kwargs=TINY_EXTRACTOR, net_arch=dict(pi=[8], vf=[8]))
    return RecurrentPPO(MultiInputRIMPolicy, env, n_steps=8, batch_size=8, n_epochs=1, seed=seed,
                        policy_kwargs=policy_kwargs, **kwargs)  # fmt: skip


def test_heldout_eval_logs_and_writes_csv(tmp_path: Path) -> None:
    model = tiny_model(make_vec_env("MetaRIM-MultiRoom-v0", n_envs=2, seed=0))
    model.set_logger(configure(str(tmp_path / "log"), ["csv"]))
    cb = HeldOutEvalCallback("MetaRIM-MultiRoom-v0", eval_freq=16, n_eval_episodes=2, log_dir=str(tmp_path))
    assert cb.eval_env.env_method("get_stage") == cb.eval_env.get_attr("heldout_stage")
    model.learn(48, callback=cb)
    assert [row["timesteps"] for row in cb.evaluations] == [16, 32, 48]
    assert all(row["n_episodes"] == 2 and 0.0 <= row["success_rate"] <= 1.0 for row in cb.evaluations)
    with open(tmp_path / "heldout_eval.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 3 and set(HeldOutEvalCallback.CSV_HEADER) == set(rows[0])
    with open(tmp_path / "log" / "progress.csv") as file:
        logged = list(csv.DictReader(file))
    assert len(logged) == 3 and all(float(r["eval_heldout/n_episodes"]) == 2 for r in logged)
    assert all(r["eval_heldout/success_rate"] != "" for r in logged)
    row = cb.evaluate()  # usable after learn()
    assert row["n_episodes"] == 2 and len(cb.evaluations) == 4


def test_heldout_eval_accepts_an_env(tmp_path: Path) -> None:
    model = tiny_model(make_vec_env("MetaRIM-MultiRoom-v0", n_envs=2, seed=0))
    cb = HeldOutEvalCallback(gym.make("MetaRIM-MultiRoom-v0", stage=1), eval_freq=100, n_eval_episodes=1)
    model.learn(16, callback=cb)
    assert cb.evaluations == []  # not due yet
    assert cb.evaluate()["n_episodes"] == 1


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(eval_freq=0), "eval_freq"),
        (dict(eval_freq=True), "eval_freq"),
        (dict(n_eval_episodes=0), "n_eval_episodes"),
        (dict(eval_env=3), "eval_env"),
    ],
)
def test_heldout_eval_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    kwargs = {"eval_env": "MetaRIM-MultiRoom-v0", **kwargs}
    with pytest.raises(ValueError, match=name):
        HeldOutEvalCallback(**kwargs)


@pytest.mark.slow
def test_meta_rims_pass_a_curriculum_shift(tmp_path: Path) -> None:
    """Meta-RIMs learn LavaGap-S5 (stage 0 of LavaCrossing; a random policy succeeds ~5 % of the time) well
    enough to move on: ~7k steps, about a minute on 2 shared cores; the budget allows 60k."""
    env = make_vec_env("MetaRIM-LavaCrossing-v0", n_envs=8, seed=0)
    policy_kwargs = dict(n_units=4, unit_size=16, k=2)
    model = RecurrentPPO(MultiInputRIMPolicy, env, n_steps=64, batch_size=256, seed=0, policy_kwargs=policy_kwargs)
    fast_slow = FastSlowCallback(fast_lr=7e-4, slow_lr=3e-4, slow_every=2)
    curriculum = CurriculumCallback(threshold=0.6, window=40, log_dir=str(tmp_path))
    model.learn(60_000, callback=[fast_slow, curriculum, StopAfterShift(curriculum)])
    assert curriculum.shifts and curriculum.shifts[0]["from_stage"] == 0
    assert curriculum.shifts[0]["success_rate"] >= 0.6
    assert fast_slow.slow_updates > 0
    assert env.env_method("get_stage") == [1] * 8
    assert (tmp_path / "curriculum.csv").exists()


class StopAfterShift(BaseCallback):
    def __init__(self, curriculum: CurriculumCallback) -> None:
        super().__init__()
        self.curriculum = curriculum

    def _on_step(self) -> bool:
        return not self.curriculum.shifts


def test_heldout_eval_progress_bar_counts_episodes(capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_model(make_vec_env("MetaRIM-GoTo-v0", n_envs=2, seed=0))
    quiet = HeldOutEvalCallback("MetaRIM-GoTo-v0", eval_freq=16, n_eval_episodes=2)
    model.learn(16, callback=quiet)
    assert "held-out evaluation" not in capsys.readouterr().err
    shown = HeldOutEvalCallback("MetaRIM-GoTo-v0", eval_freq=16, n_eval_episodes=2, progress=True)
    model.learn(16, callback=shown, reset_num_timesteps=False)
    err = capsys.readouterr().err
    assert "held-out evaluation at 32 steps" in err and "/2 " in err  # episodes done / total
    with pytest.raises(ValueError, match="progress must be True or False"):
        HeldOutEvalCallback("MetaRIM-GoTo-v0", progress="yes")  # type: ignore[arg-type]


def test_an_episode_end_without_is_success_is_refused_naming_the_env(vec_env: VecEnv, tmp_path: Path) -> None:
    """The one rule of metarim_sb3.evaluation: a training episode without info["is_success"] is neither skipped nor
    counted as a failure."""
    cb = CurriculumCallback(threshold=0.75, window=4)
    model = start(cb, vec_env, tmp_path)
    model.num_timesteps += 3
    cb.update_locals({"dones": np.array([False, True, False]), "infos": [{}, {"stage": 0}, {}]})
    with pytest.raises(ValueError, match=r"CurriculumCallback: an episode of MetaRIM-DoorKey-v0 ended without"):
        cb.on_step()
