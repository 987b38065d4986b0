"""The generic multi-task, distribution-shifting environment behind every MetaRIM id."""

from __future__ import annotations

import bisect
import contextlib
import io
import itertools
import operator
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from metarim_gym.fast_obs import install_fast_obs
from metarim_gym.rendering import fit_frame
from metarim_gym.schedules import StageSchedule
from metarim_gym.spaces import MAX_MISSION_LEN, MISSION_FORMATS, VIEW_SIZE, MissionTokenizer, observation_space
from metarim_gym.tasks import Stage, StageLike, Task, as_stage

#: The name that selects the held-out stage (``stage="heldout"``, ``set_stage("heldout")``).
HELDOUT = "heldout"
_N_ACTIONS = 7

#: What to do when a wrapper reads token missions as text (MiniGrid's ``FlatObsWrapper`` and
#: ``DictObservationSpaceWrapper`` do).
TEXT_MISSION_FIX = (
    "the mission is an array of token ids (mission_format='tokens', the default), not the mission sentence; "
    "MiniGrid's FlatObsWrapper and DictObservationSpaceWrapper read it as text: make the env with "
    "gym.make(env_id, mission_format='text')"
)
#: ``str`` methods a text-reading wrapper may call on the mission.
_STR_METHODS = frozenset(name for name in dir(str) if not name.startswith("_"))


class MissionTokens(np.ndarray):
    """
    The mission of a ``mission_format="tokens"`` observation: a plain int64 array of token ids for every numeric
    use (spaces, stacking, torch), whose errors name the fix where code takes it for the mission sentence.

    MiniGrid's ``FlatObsWrapper`` compares the mission with a string (``if mission != cached``) and
    ``DictObservationSpaceWrapper`` splits it into words: on a bare array the first ends in numpy's "truth value of
    an array ... is ambiguous", the second in a missing attribute. Here both errors (the same exception types)
    say to make the env with ``mission_format="text"``.
    """

    def __bool__(self) -> bool:
        """
        :return: the truth of a one-element array, as numpy gives it.
        :raises ValueError: for more than one element (as numpy does), naming the text-mission fix.
        """
        if self.size > 1:
            raise ValueError(f"the truth value of a mission token array is ambiguous: {TEXT_MISSION_FIX}")
        return bool(self.view(np.ndarray))

    def __getattr__(self, name: str) -> Any:
        """
        :param name: an attribute ndarray does not have.
        :raises AttributeError: always; for a ``str`` method, naming the text-mission fix.
        """
        if name in _STR_METHODS:
            raise AttributeError(f"mission token array has no attribute {name!r}: {TEXT_MISSION_FIX}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class MultiTaskEnv(gym.Env[dict[str, Any], int]):
    """A set of MiniGrid/BabyAI tasks grouped into stages, with a schedule that shifts between stages.

    At each reset the environment samples a task of the current stage (in proportion to the task weights, with its
    own seeded ``np_random``) and delegates the episode to that task's environment. Task environments are built
    once, at construction, and reused. The stage changes by the chosen schedule (see
    :mod:`metarim_gym.schedules`) or from outside through :meth:`set_stage`; any change takes effect at the next
    reset. Stage ``n_stages`` is the held-out stage.

    Observations follow :func:`metarim_gym.spaces.observation_space`. ``info`` always carries ``task`` (the task
    name) and ``stage`` (the stage index of the running episode) and, on the last step of an episode,
    ``is_success`` (the episode ended by reaching the goal, i.e. terminated with a positive reward). Stepping an
    episode that has ended (terminated or truncated) raises :class:`gymnasium.error.ResetNeeded`, and an invalid
    action raises :class:`ValueError`; neither consumes a step.

    MiniGrid's attributes are exposed from the running task, so MiniGrid's own wrappers work
    (``RGBImgObsWrapper``, ``RGBImgPartialObsWrapper``, ``FullyObsWrapper``, ``ImgObsWrapper``,
    ``OneHotPartialObsWrapper``; ``FlatObsWrapper`` and ``DictObservationSpaceWrapper`` with
    ``mission_format="text"``): :attr:`width` and :attr:`height` are the largest over all tasks, so the
    spaces those wrappers declare hold for every task; :attr:`grid` and full-view :meth:`get_frame` frames of a
    smaller task are padded at the right and bottom (with walls, and black pixels). ``rgb_array`` frames of
    :meth:`render` have one size per environment too: a smaller task's frame is scaled up by a whole factor and
    centred on black. The view size is fixed (7x7, the shared observation space): ``ViewSizeWrapper`` is not
    supported.

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
    :param mission_format: ``"tokens"`` (token ids, the default) or ``"text"`` (the mission sentence, as MiniGrid
        gives it; for MiniGrid's ``FlatObsWrapper`` and ``DictObservationSpaceWrapper``).
    :param fast_obs: compute the task envs' partial views with :func:`metarim_gym.fast_obs.view_image` (the same
        arrays as MiniGrid's ``gen_obs``, faster); ``False`` keeps MiniGrid's own.
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
        mission_format: str = "tokens",
        fast_obs: bool = True,
    ) -> None:
        if isinstance(stages, (str, Stage, Task)) or not isinstance(stages, Sequence) or len(stages) == 0:
            raise ValueError("stages must be a non-empty sequence of stages (each a Stage, a task or a list of tasks)")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        if mission_format not in MISSION_FORMATS:
            raise ValueError(f"mission_format must be one of {MISSION_FORMATS}, got {mission_format!r}")
        if not isinstance(fast_obs, bool):
            raise ValueError(f"fast_obs must be True or False, got {fast_obs!r}")
        self.mission_format = mission_format
        self.fast_obs = fast_obs
        self.stages: tuple[Stage, ...] = tuple(as_stage(s) for s in stages)
        self.heldout: Stage | None = None if heldout is None else as_stage(heldout)
        self.n_stages = len(self.stages)
        self.render_mode = render_mode
        self._schedule = StageSchedule(schedule, self.n_stages, shift_every, cycle, start=self._stage_index(stage))

        self.tokenizer = MissionTokenizer(max_mission_len)
        self.observation_space = observation_space(max_mission_len, mission_format)
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
        # the largest grid over all tasks: MiniGrid wrappers size their spaces from it (see the class docstring)
        self._width = max(int(env.width) for env in self._envs.values())  # type: ignore[attr-defined]
        self._height = max(int(env.height) for env in self._envs.values())  # type: ignore[attr-defined]
        self._tile_size = int(next(iter(self._envs.values())).tile_size)  # type: ignore[attr-defined]

        self._env: gym.Env | None = None
        self._tasks_seeded = False
        self._task: Task | None = None
        self._episode_stage = -1
        self._mission_text: str | None = None
        self._mission_tokens = np.zeros(max_mission_len, dtype=np.int64).view(MissionTokens)
        self._episode_over = False

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
        except (gym.error.Error, AssertionError, TypeError, ValueError) as err:  # MiniGrid checks kwargs by assert
            reason = str(err) or f"{type(err).__name__} raised by the environment's constructor"
            raise ValueError(
                f"task {task.name!r}: cannot make {task.env_id!r} with kwargs {task.kwargs}: {reason}"
            ) from err
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
        if self.fast_obs:
            install_fast_obs(env)
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
        self._episode_over = False
        info["task"] = self._task.name
        info["stage"] = stage
        return self._observe(obs), info

    def step(self, action: int) -> tuple[dict[str, Any], SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the current task.

        :param action: a MiniGrid action, an integer in 0..6.
        :return: observation, reward, terminated, truncated, info.
        :raises gymnasium.error.ResetNeeded: before the first reset, or after the episode ended.
        :raises ValueError: for an action outside 0..6 (the step is not taken).
        """
        if self._env is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self._episode_over:
            raise gym.error.ResetNeeded("the episode has ended (terminated or truncated): call reset() before step()")
        obs, reward, terminated, truncated, info = self._env.step(_check_action(action))
        self._schedule.on_step()
        info["task"] = self._task.name  # type: ignore[union-attr]
        info["stage"] = self._episode_stage
        if terminated or truncated:
            self._episode_over = True
            info["is_success"] = bool(terminated and float(reward) > 0)
            self._schedule.on_episode_end()
        return self._observe(obs), reward, terminated, truncated, info

    def _observe(self, obs: dict[str, Any]) -> dict[str, Any]:
        mission = obs["mission"]
        if self.mission_format == "text":
            return {"image": obs["image"], "direction": obs["direction"], "mission": mission}
        if mission != self._mission_text:
            self._mission_tokens = self.tokenizer.encode(mission).view(MissionTokens)
            self._mission_text = mission
        return {"image": obs["image"], "direction": obs["direction"], "mission": self._mission_tokens.copy()}

    def render(self) -> Any:
        """Render the current task.

        :return: with ``rgb_array``, a uint8 frame of shape :attr:`frame_shape` whatever the task (a smaller
            task's frame is scaled up by a whole factor and centred on black); ``None`` with ``human``.
        """
        if self._env is None:
            raise gym.error.ResetNeeded("call reset() before render()")
        frame = self._env.render()
        if self.render_mode == "rgb_array" and frame is not None:
            return fit_frame(np.asarray(frame), self.frame_shape[:2])
        return frame

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """Shape of every ``rgb_array`` frame: the largest task grid at MiniGrid's tile size."""
        return (self._height * self._tile_size, self._width * self._tile_size, 3)

    # ------------------------------------------------------------------ MiniGrid attributes of the running task
    @property
    def width(self) -> int:
        """Grid width in cells: the largest over all tasks (smaller grids are padded, see :attr:`grid`)."""
        return self._width

    @property
    def height(self) -> int:
        """Grid height in cells: the largest over all tasks."""
        return self._height

    @property
    def tile_size(self) -> int:
        """Pixels per cell of rendered frames (MiniGrid's ``tile_size``)."""
        return self._tile_size

    @property
    def grid(self) -> Any:
        """The running task's ``minigrid`` ``Grid``, padded with walls to :attr:`width` x :attr:`height`."""
        from minigrid.core.grid import Grid
        from minigrid.core.world_object import Wall

        grid = self._running("grid").grid
        if grid.width == self._width and grid.height == self._height:
            return grid
        wall = Wall()
        padded = Grid(self._width, self._height)
        padded.grid = list(
            itertools.chain.from_iterable(
                grid.grid[y * grid.width : (y + 1) * grid.width] + [wall] * (self._width - grid.width)
                if y < grid.height
                else [wall] * self._width
                for y in range(self._height)
            )
        )
        return padded

    def get_frame(self, highlight: bool = True, tile_size: int | None = None, agent_pov: bool = False) -> np.ndarray:
        """MiniGrid's ``get_frame`` of the running task; full views are padded with black to :attr:`width` x
        :attr:`height` cells.

        :param highlight: shade the cells the agent sees.
        :param tile_size: pixels per cell (default :attr:`tile_size`).
        :param agent_pov: render the agent's egocentric view instead of the whole grid.
        :return: an ``(H, W, 3)`` uint8 frame.
        """
        tile = self._tile_size if tile_size is None else int(tile_size)
        frame = self._running("get_frame").get_frame(highlight=highlight, tile_size=tile, agent_pov=agent_pov)
        if agent_pov:
            return frame
        out = np.zeros((self._height * tile, self._width * tile, 3), dtype=np.uint8)
        out[: frame.shape[0], : frame.shape[1]] = frame
        return out

    def _running(self, name: str) -> Any:
        if self._env is None:
            raise gym.error.ResetNeeded(f"call reset() before reading {name!r}: it belongs to the running task")
        return self._env

    agent_pos = property(lambda self: self._running("agent_pos").agent_pos, doc="The agent's cell (x, y).")
    agent_dir = property(lambda self: self._running("agent_dir").agent_dir, doc="The agent's heading (0..3).")
    front_pos = property(lambda self: self._running("front_pos").front_pos, doc="The cell in front of the agent.")
    carrying = property(lambda self: self._running("carrying").carrying, doc="The object the agent carries.")
    mission = property(lambda self: self._running("mission").mission, doc="The mission sentence of the task.")
    step_count = property(lambda self: self._running("step_count").step_count, doc="Steps of this episode.")
    max_steps = property(lambda self: self._running("max_steps").max_steps, doc="Step limit of the running task.")
    highlight = property(lambda self: getattr(self._env, "highlight", True), doc="MiniGrid's ``highlight``.")
    agent_view_size = property(lambda self: VIEW_SIZE, doc="Side of the egocentric view (7).")

    @property
    def actions(self) -> Any:
        """MiniGrid's ``Actions`` enum (the same for every task)."""
        from minigrid.core.actions import Actions

        return Actions

    def close(self) -> None:
        """Close every task environment."""
        for env in self._envs.values():
            env.close()
        super().close()


def _check_action(action: Any) -> int:
    """The action as an ``int`` in ``0..6``; anything else is a :class:`ValueError` (before any step is taken).

    :param action: a Python or NumPy integer, or a 0-d integer array.
    :return: the action.
    """
    try:
        valid = not isinstance(action, (bool, np.bool_)) and 0 <= operator.index(action) < _N_ACTIONS
    except TypeError:
        valid = False
    if not valid:
        raise ValueError(f"action must be an integer in 0..{_N_ACTIONS - 1} (a MiniGrid action), got {action!r}")
    return operator.index(action)


def _prints_on_reset(env: gym.Env) -> bool:
    """Whether ``env`` is a BabyAI level, whose reset prints "Sampling rejected: ..." for every rejected layout.

    :param env: an unwrapped task environment.
    :return: ``True`` for BabyAI ``RoomGridLevel`` environments.
    """
    from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel

    return isinstance(env, RoomGridLevel)
