"""The generic multi-task, distribution-shifting environment behind every MetaRIM id."""

from __future__ import annotations

import bisect
import contextlib
import io
import itertools
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from metarim_gym.schedules import StageSchedule
from metarim_gym.spaces import MAX_MISSION_LEN, VIEW_SIZE, MissionTokenizer, observation_space
from metarim_gym.tasks import Stage, StageLike, Task, as_stage

#: The name that selects the held-out stage (``stage="heldout"``, ``set_stage("heldout")``).
HELDOUT = "heldout"
_N_ACTIONS = 7


class MultiTaskEnv(gym.Env[dict[str, Any], int]):
    """A set of MiniGrid/BabyAI tasks grouped into stages, with a schedule that shifts between stages.

    At each reset the environment samples a task of the current stage (in proportion to the task weights, with its
    own seeded ``np_random``) and delegates the episode to that task's environment. Task environments are built
    once, at construction, and reused. The stage changes by the chosen schedule (see
    :mod:`metarim_gym.schedules`) or from outside through :meth:`set_stage`; any change takes effect at the next
    reset. Stage ``n_stages`` is the held-out stage.

    Observations follow :func:`metarim_gym.spaces.observation_space`. ``info`` always carries ``task`` (the task
    name) and ``stage`` (the stage index of the running episode) and, on the last step of an episode,
    ``is_success`` (the episode ended by reaching the goal, i.e. terminated with a positive reward).

    :param stages: the training stages, easiest first: :class:`~metarim_gym.tasks.Stage` objects, or a task id /
        task / sequence of tasks each.
    :param heldout: the held-out stage (optional).
    :param schedule: ``"manual"``, ``"steps"`` or ``"episodes"``.
    :param shift_every: steps or episodes between shifts (for ``steps`` / ``episodes``).
    :param cycle: return to stage 0 after the last training stage (to measure forgetting).
    :param stage: the stage to start in: an index ``0..n_stages - 1``, or ``"heldout"``. With the ``manual``
        schedule it stays fixed until :meth:`set_stage` is called, which is how to evaluate on one stage.
    :param render_mode: ``None``, ``"rgb_array"`` or ``"human"``.
    :param max_mission_len: number of mission tokens in the observation.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(
        self,
        stages: Sequence[StageLike],
        heldout: StageLike | None = None,
        schedule: str = "manual",
        shift_every: int | None = None,
        cycle: bool = False,
        stage: int | str = 0,
        render_mode: str | None = None,
        max_mission_len: int = MAX_MISSION_LEN,
    ) -> None:
        if isinstance(stages, (str, Stage, Task)) or not isinstance(stages, Sequence) or len(stages) == 0:
            raise ValueError("stages must be a non-empty sequence of stages (each a Stage, a task or a list of tasks)")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.stages: tuple[Stage, ...] = tuple(as_stage(s) for s in stages)
        self.heldout: Stage | None = None if heldout is None else as_stage(heldout)
        self.n_stages = len(self.stages)
        self.render_mode = render_mode
        self._schedule = StageSchedule(schedule, self.n_stages, shift_every, cycle, start=self._stage_index(stage))

        self.tokenizer = MissionTokenizer(max_mission_len)
        self.observation_space = observation_space(max_mission_len)
        self.action_space = spaces.Discrete(_N_ACTIONS)  # type: ignore[assignment]

        all_stages = self.stages if self.heldout is None else (*self.stages, self.heldout)
        self._envs: dict[tuple[str, str], gym.Env] = {}
        for task in itertools.chain.from_iterable(s.tasks for s in all_stages):
            if task.key not in self._envs:
                self._envs[task.key] = self._build(task)
        # per stage: tasks, their env instances and cumulative probabilities for sampling
        self._stage_envs = [[self._envs[t.key] for t in s.tasks] for s in all_stages]
        # BabyAI levels print every rejected layout sample to stdout during reset; those resets run muted
        self._stage_muted = [[_prints_on_reset(self._envs[t.key]) for t in s.tasks] for s in all_stages]
        self._stage_cum = [np.cumsum(s.probabilities).tolist() for s in all_stages]

        self._env: gym.Env | None = None
        self._tasks_seeded = False
        self._task: Task | None = None
        self._episode_stage = -1
        self._mission_text: str | None = None
        self._mission_tokens = np.zeros(max_mission_len, dtype=np.int64)

    # ------------------------------------------------------------------ construction helpers
    def _stage_index(self, stage: int | str) -> int:
        if stage == HELDOUT:
            if self.heldout is None:
                raise ValueError("stage='heldout' was requested but this environment has no held-out stage")
            return self.n_stages
        if isinstance(stage, bool) or not isinstance(stage, (int, np.integer)):
            raise ValueError(f"stage must be an integer in 0..{self.n_stages - 1} or 'heldout', got {stage!r}")
        top = self.n_stages if self.heldout is not None else self.n_stages - 1
        if not 0 <= int(stage) <= top:
            raise ValueError(f"stage must be in 0..{self.n_stages - 1} or 'heldout' (= {self.n_stages}), got {stage!r}")
        return int(stage)

    def _build(self, task: Task) -> gym.Env:
        import minigrid  # noqa: F401  (registers the MiniGrid and BabyAI ids)

        try:
            env = gym.make(task.env_id, render_mode=self.render_mode, **task.kwargs).unwrapped
        except gym.error.Error as err:
            raise ValueError(f"task {task.name!r}: cannot make {task.env_id!r} with {task.kwargs}: {err}") from err
        obs_space = env.observation_space
        image = obs_space.spaces.get("image") if isinstance(obs_space, spaces.Dict) else None
        if image is None or image.shape != (VIEW_SIZE, VIEW_SIZE, 3) or "direction" not in obs_space.spaces:  # type: ignore[attr-defined]
            raise ValueError(
                f"task {task.name!r} ({task.env_id}) does not fit the shared observation space: it needs a Dict "
                f"with a {VIEW_SIZE}x{VIEW_SIZE}x3 'image' and 'direction' (got {obs_space})"
            )
        if not isinstance(env.action_space, spaces.Discrete) or env.action_space.n != _N_ACTIONS:
            raise ValueError(f"task {task.name!r} must have Discrete({_N_ACTIONS}) actions, got {env.action_space}")
        with contextlib.redirect_stdout(io.StringIO()):  # BabyAI's rejected-sample prints (see _prints_on_reset)
            probe, _ = env.reset(seed=0)
        self.tokenizer.encode(probe["mission"])  # unknown mission words fail here, at construction
        return env

    # ------------------------------------------------------------------ stages
    def get_stage(self) -> int:
        """The stage the next episode will use (``n_stages`` = held out).

        :return: the stage index.
        """
        return self._schedule.stage

    def set_stage(self, stage: int | str) -> None:
        """Move to ``stage`` at the next reset; restarts the schedule's shift counter.

        :param stage: a training stage index, or ``"heldout"`` / ``n_stages`` for the held-out stage.
        """
        self._schedule.set_stage(self._stage_index(stage))

    @property
    def heldout_stage(self) -> int | None:
        """Index of the held-out stage, or ``None`` if there is none."""
        return None if self.heldout is None else self.n_stages

    @property
    def task(self) -> Task | None:
        """The task of the running episode."""
        return self._task

    @property
    def task_env(self) -> gym.Env | None:
        """The (unwrapped) MiniGrid environment of the running episode."""
        return self._env

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict]:
        """Start an episode on a task sampled from the current stage.

        :param seed: seeds this environment's ``np_random`` (the task choice) and, from it, every task
            environment's generator; later resets without a seed continue all these streams.
        :param options: ``{"stage": i}`` sets the stage before sampling.
        :return: observation and info.
        """
        super().reset(seed=seed)
        if seed is not None or not self._tasks_seeded:  # task envs draw from ours; later resets continue streams
            self._tasks_seeded = True
            for env in self._envs.values():
                env.np_random = np.random.default_rng(int(self.np_random.integers(2**63 - 1)))
        if options and "stage" in options:
            self.set_stage(options["stage"])
        stage = self._schedule.stage
        cum = self._stage_cum[stage]
        idx = bisect.bisect_right(cum, self.np_random.random() * cum[-1]) if len(cum) > 1 else 0
        idx = min(idx, len(cum) - 1)
        self._episode_stage = stage
        self._env = self._stage_envs[stage][idx]
        self._task = (self.stages[stage] if stage < self.n_stages else self.heldout).tasks[idx]  # type: ignore[union-attr]
        if self._stage_muted[stage][idx]:
            with contextlib.redirect_stdout(io.StringIO()):
                obs, info = self._env.reset()
        else:
            obs, info = self._env.reset()
        info["task"] = self._task.name
        info["stage"] = stage
        return self._observe(obs), info

    def step(self, action: int) -> tuple[dict[str, Any], SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the current task.

        :param action: a MiniGrid action (0..6).
        :return: observation, reward, terminated, truncated, info.
        """
        if self._env is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        obs, reward, terminated, truncated, info = self._env.step(action)
        self._schedule.on_step()
        info["task"] = self._task.name  # type: ignore[union-attr]
        info["stage"] = self._episode_stage
        if terminated or truncated:
            info["is_success"] = bool(terminated and float(reward) > 0)
            self._schedule.on_episode_end()
        return self._observe(obs), reward, terminated, truncated, info

    def _observe(self, obs: dict[str, Any]) -> dict[str, Any]:
        mission = obs["mission"]
        if mission != self._mission_text:
            self._mission_tokens = self.tokenizer.encode(mission)
            self._mission_text = mission
        return {"image": obs["image"], "direction": obs["direction"], "mission": self._mission_tokens.copy()}

    def render(self) -> Any:
        """Render the current task (``rgb_array``: an ``(H, W, 3)`` uint8 frame)."""
        if self._env is None:
            raise gym.error.ResetNeeded("call reset() before render()")
        return self._env.render()

    def close(self) -> None:
        """Close every task environment."""
        for env in self._envs.values():
            env.close()
        super().close()


def _prints_on_reset(env: gym.Env) -> bool:
    """Whether ``env`` is a BabyAI level, whose reset prints "Sampling rejected: ..." for every rejected layout.

    :param env: an unwrapped task environment.
    :return: ``True`` for BabyAI ``RoomGridLevel`` environments.
    """
    from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel

    return isinstance(env, RoomGridLevel)
