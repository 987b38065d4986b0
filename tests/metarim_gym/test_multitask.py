"""The generic multi-task env: sampling, stages, info contract, bad input, docstrings, GIFs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import metarim_gym
from metarim_gym import FAMILIES, MultiTaskEnv, Task
from metarim_gym.envs import DOC_SECTIONS
from metarim_gym.rendering import record_frames, save_gif


def test_tasks_sampled_by_weight_and_instances_reused() -> None:
    env = MultiTaskEnv([[Task("MiniGrid-DoorKey-5x5-v0", weight=3), Task("MiniGrid-LavaGapS5-v0", weight=1)]])
    counts: Counter[str] = Counter()
    envs = set()
    env.reset(seed=1)
    for _ in range(2000):
        _, info = env.reset()
        counts[info["task"]] += 1
        envs.add(id(env.task_env))
    assert len(envs) == 2
    assert 0.70 < counts["DoorKey-5x5"] / 2000 < 0.80


def _place_next_to(env: gym.Env, cell_type: str) -> None:
    """Put the agent on a free cell beside the first ``cell_type`` cell, facing it."""
    inner = env.unwrapped.task_env
    for x in range(inner.width):
        for y in range(inner.height):
            cell = inner.grid.get(x, y)
            if cell is None or cell.type != cell_type:
                continue
            for direction, (dx, dy) in enumerate(((1, 0), (0, 1), (-1, 0), (0, -1))):
                if inner.grid.get(x - dx, y - dy) is None:
                    inner.agent_pos, inner.agent_dir = (x - dx, y - dy), direction
                    return
    raise AssertionError(f"no free cell next to a {cell_type}")


def test_info_contract_and_success() -> None:
    env = gym.make("MetaRIM-DoorKey-v0")
    _, info = env.reset(seed=0)
    assert info == {"task": "DoorKey-5x5", "stage": 0}
    _place_next_to(env, "goal")
    _, reward, terminated, _, info = env.step(2)
    assert terminated and reward > 0 and info["is_success"] is True and info["stage"] == 0


def test_lava_is_failure_and_timeout_is_failure() -> None:
    env = gym.make("MetaRIM-LavaCrossing-v0")
    env.reset(seed=0)
    _place_next_to(env, "lava")
    _, reward, terminated, _, info = env.step(2)
    assert terminated and reward == 0 and info["is_success"] is False
    env.reset(seed=0)
    truncated, steps = False, 0
    while not truncated:
        _, _, terminated, truncated, info = env.step(0)  # turning in place never ends the episode
        steps += 1
        assert "is_success" not in info or truncated
    assert info["is_success"] is False and steps == env.unwrapped.task_env.max_steps


def test_fixed_and_heldout_stages() -> None:
    env = gym.make("MetaRIM-MultiRoom-v0", stage=2)
    _, info = env.reset(seed=0)
    assert info["stage"] == 2 and info["task"] == "MultiRoom-N4-S5"
    env = gym.make("MetaRIM-MultiRoom-v0", stage="heldout")
    for _ in range(3):
        _, info = env.reset()
        assert info["task"] == "MultiRoom-N6-S6" and info["stage"] == 3
    env.unwrapped.set_stage(1)
    assert env.unwrapped.get_stage() == 1
    _, info = env.reset(options={"stage": 0})
    assert info["stage"] == 0


def test_mission_conditioned_goto_changes_tokens() -> None:
    env = gym.make("MetaRIM-GoTo-v0", stage=1)
    missions = set()
    env.reset(seed=0)
    for _ in range(20):
        obs, _ = env.reset()
        missions.add(env.unwrapped.tokenizer.decode(obs["mission"]))
    assert len(missions) > 3 and all(m.startswith("go to") for m in missions)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stages": []}, "stages"),
        ({"stages": [[]]}, "empty stage"),
        ({"stages": [[{"env_id": "MiniGrid-DoorKey-5x5-v0", "weight": 0}]]}, "weight"),
        ({"stages": [[{"env_id": "MiniGrid-DoorKey-5x5-v0", "weight": -1}]]}, "weight"),
        ({"stages": ["MiniGrid-DoorKey-5x5-v0"], "schedule": "sometimes"}, "schedule"),
        ({"stages": ["MiniGrid-DoorKey-5x5-v0"], "schedule": "steps", "shift_every": 0}, "shift_every"),
        ({"stages": ["MiniGrid-DoorKey-5x5-v0"], "stage": 4}, "stage"),
        ({"stages": ["MiniGrid-DoorKey-5x5-v0"], "stage": "heldout"}, "held-out"),
        ({"stages": ["MiniGrid-DoorKey-5x5-v0"], "render_mode": "ascii"}, "render_mode"),
        ({"stages": ["CartPole-v1"]}, "does not fit the shared observation space"),
        ({"stages": [{"env_id": "MiniGrid-DoorKey-5x5-v0", "colour": 1}]}, "unknown task keys"),
        ({"stages": ["MiniGrid-DoorKey-5x5-v0"], "max_mission_len": 4}, "max_len"),
        ({"stages": [[{"env_id": "MiniGrid-DoorKey-5x5-v0", "weight": True}]]}, "weight"),
        ({"stages": [[{"env_id": "MiniGrid-DoorKey-5x5-v0", "weight": float("nan")}]]}, "weight"),
        ({"stages": [{"env_id": "MiniGrid-DoorKey-5x5-v0", "kwargs": {"size": -3}}]}, "cannot make.*size"),
        ({"stages": [{"env_id": "MiniGrid-DoorKey-5x5-v0", "kwargs": {"colour": 1}}]}, "cannot make.*colour"),
        ({"stages": ["MiniGrid-DoorKey-5x5-v0"], "cycle": "no"}, "cycle"),
        ({"stages": ["MiniGrid-DoorKey-5x5-v0"], "schedule": "steps", "shift_every": float("inf")}, "shift_every"),
        ({"stages": ["MiniGrid-DoorKey-5x5-v0"], "shift_every": 1.5}, "shift_every"),
        ({"stages": ["MiniGrid-DoorKey-5x5-v0"], "mission_format": "chars"}, "mission_format"),
    ],
)
def test_bad_input_raises_at_construction(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MultiTaskEnv(**kwargs)


def test_numpy_scalars_are_accepted() -> None:
    env = MultiTaskEnv(
        [[Task("MiniGrid-DoorKey-5x5-v0", weight=np.float32(0.5)), Task("MiniGrid-LavaGapS5-v0", weight=np.int64(2))]],
        schedule="episodes",
        shift_every=np.int64(2),
        stage=np.int64(0),
        max_mission_len=np.int64(16),
    )
    obs, _ = env.reset(seed=0)
    assert obs["mission"].shape == (16,)
    obs, *_ = env.step(np.int64(1))
    assert env.step(np.array(2))[0]["mission"].shape == (16,)


def test_step_after_the_episode_ended_raises_and_is_not_counted() -> None:
    env = gym.make("MetaRIM-LavaCrossing-v0", schedule="episodes", shift_every=2).unwrapped
    env.reset(seed=0)
    _place_next_to(env, "lava")
    assert env.step(2)[2]  # terminated
    for _ in range(3):
        with pytest.raises(gym.error.ResetNeeded, match="call reset"):
            env.step(2)
    assert env._schedule.count == 1 and env.get_stage() == 0  # one finished episode, not four
    env.reset()
    truncated = False
    while not truncated:
        truncated = env.step(0)[3]
    with pytest.raises(gym.error.ResetNeeded, match="episode has ended"):
        env.step(0)
    assert env.get_stage() == 1  # exactly two finished episodes moved the stage


@pytest.mark.parametrize("action", [7, -1, 2.0, "2", True, None, np.array([1, 2])])
def test_invalid_action_raises_without_taking_a_step(action: object) -> None:
    env = gym.make("MetaRIM-DoorKey-v0", schedule="steps", shift_every=1).unwrapped
    env.reset(seed=0)
    before = env.task_env.step_count
    with pytest.raises(ValueError, match=r"action must be an integer in 0\.\.6"):
        env.step(action)
    assert env.task_env.step_count == before and env.get_stage() == 0
    env.step(0)
    assert env.task_env.step_count == before + 1 and env.get_stage() == 1


def test_set_stage_rejects_unknown_stage() -> None:
    env = gym.make("MetaRIM-DoorKey-v0").unwrapped
    with pytest.raises(ValueError, match="stage"):
        env.set_stage(7)
    with pytest.raises(ValueError, match="stage"):
        env.set_stage("last")


@pytest.mark.parametrize("env_id", sorted(metarim_gym.ENV_IDS))
def test_family_docstrings_have_all_sections(env_id: str) -> None:
    cls = type(gym.make(env_id).unwrapped)
    doc = cls.__doc__ or ""
    positions = [doc.find(f"## {section}\n") for section in DOC_SECTIONS]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)
    assert f'gym.make("{env_id}")' in doc
    family = FAMILIES[metarim_gym.ENV_IDS[env_id][1]]
    for stage in (*family.stages, family.heldout):
        for task in stage.tasks:
            assert task.name in doc and task.env_id in doc


def test_gif(tmp_path: Path) -> None:
    frames = record_frames("MetaRIM-DoorKey-v0", steps=5)
    assert len(frames) == 6 and frames[0].shape[2] == 3
    path = save_gif(frames, tmp_path / "sub" / "doorkey.gif")
    assert path.read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    with pytest.raises(ValueError, match="render_mode"):
        record_frames(gym.make("MetaRIM-DoorKey-v0"), steps=2)


def test_unseeded_envs_differ_and_seeded_envs_agree() -> None:
    layouts = set()
    for _ in range(4):
        env = gym.make("MetaRIM-DoorKey-v0")
        obs, _ = env.reset()
        layouts.add(obs["image"].tobytes() + bytes(env.unwrapped.task_env.agent_pos))
    assert len(layouts) > 1
    a, b = gym.make("MetaRIM-DoorKey-v0"), gym.make("MetaRIM-DoorKey-v0")
    a.reset()
    b.reset()
    for seed in (5, None, None, None):  # after a seeded reset, unseeded resets continue identical streams
        oa, ob = a.reset(seed=seed)[0], b.reset(seed=seed)[0]
        assert all(np.array_equal(oa[k], ob[k]) for k in oa)


def test_babyai_rejected_samples_are_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """BabyAI prints "Sampling rejected: ..." for rejected layouts; MetaRIM's resets keep stdout clean."""

    def run(env: gym.Env) -> str:
        env.reset(seed=0)
        for _ in range(200):
            env.reset()
        return capsys.readouterr().out

    env = gym.make("MetaRIM-GoTo-v0", stage="heldout")
    assert run(env) == ""
    env.unwrapped._stage_muted = [[False] * len(row) for row in env.unwrapped._stage_muted]
    assert "Sampling rejected" in run(env)  # the same resets do print when not muted: the check above can fail


def test_multitask_frames_have_one_size_and_make_a_gif(tmp_path: Path) -> None:
    env = gym.make("MetaRIM-MultiTask-v0", render_mode="rgb_array")
    frames = record_frames(env, steps=60, seed=0)  # resets after 20-step episodes: both tasks of stage 0 appear
    tasks = {e.unwrapped.width for e in env.unwrapped._envs.values()}
    assert len(tasks) > 1
    assert {f.shape for f in frames} == {env.unwrapped.frame_shape}
    small = gym.make("MiniGrid-DoorKey-5x5-v0", render_mode="rgb_array")
    small.reset(seed=0)
    mixed = [frames[0], small.render()]  # frames of other sources are fitted by save_gif
    assert save_gif(mixed, tmp_path / "mixed.gif").stat().st_size > 0


def test_fit_frame_scales_by_a_whole_factor_and_centres() -> None:
    from metarim_gym.rendering import fit_frame

    frame = np.full((2, 3, 3), 200, dtype=np.uint8)
    out = fit_frame(frame, (7, 7))
    assert out.shape == (7, 7, 3)
    assert (out > 0).sum() == 4 * 6 * 3  # scaled by 2 (a 3rd copy would not fit the width)
    assert out[0].sum() == 0 and out[1, 0].all() and out[1, 6].sum() == 0  # centred: rows 1..4, columns 0..5
    assert fit_frame(np.zeros((10, 4, 3), np.uint8), (5, 5)).shape == (5, 5, 3)
    with pytest.raises(ValueError, match="shape"):
        fit_frame(frame, (0, 5))
