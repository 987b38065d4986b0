"""What a ``compare`` grid will cost, from measured run times: CPU core-hours and wall hours at a number of workers.

The measurements live in ``presets/costs.yaml``, written by ``benchmarks/bench_study.py --write-costs`` (never by
hand): for each agent and environment it measured, the CPU and wall milliseconds per environment step of a whole
run, evaluations and checkpoints included, with one torch thread; its ``measured`` header names the command,
commit, date, machine and thread count. The estimate of a grid is the sum over its runs of
``timesteps x ms per step (agent, env)``:

- an environment the file has no figure for falls back to the most expensive environment measured for that agent,
  and the estimate says so;
- an agent the file has no figure for (or no file at all) gives "no measurement" instead of a number;
- wall hours replay the grid's order on ``workers`` processes, each run starting on the first free one (as
  :func:`~metarim_sb3.experiments.grid.compare.run_grid` does), with one core per worker.

``metarim compare --preset NAME --dry-run`` prints :func:`describe_plan`.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from metarim_sb3.experiments.training.yaml_io import ConfigError

__all__ = [
    "COSTS_FILE",
    "CellCost",
    "Costs",
    "Estimate",
    "costs_from_runs",
    "describe_plan",
    "estimate",
    "load_costs",
    "package_costs_path",
    "wall_makespan",
    "write_costs",
]

#: The file name of the measured costs in the package's ``presets`` folder.
COSTS_FILE = "costs.yaml"
#: Keys of the ``measured`` header :func:`write_costs` requires.
HEADER_KEYS = ("command", "commit", "date", "machine", "torch_threads")
_FIGURES = ("cpu_ms", "wall_ms")


@dataclass(frozen=True)
class Costs:
    """Measured milliseconds per environment step.

    :param agents: agent -> environment id -> ``{"cpu_ms": ..., "wall_ms": ...}``.
    :param measured: the header: how, where and when the figures were measured (the keys :data:`HEADER_KEYS`, as
        the file gives them, and any further keys).
    :param source: where the figures were read from (for messages).
    """

    agents: dict[str, dict[str, dict[str, float]]]
    measured: dict[str, object]
    source: str

    def lookup(self, agent: str, env: str) -> tuple[dict[str, float] | None, str | None]:
        """
        :param agent: an agent name.
        :param env: an environment id.
        :return: the figures and the environment they were measured on: ``env`` itself, else the agent's most
            expensive measured environment (CPU ms), else ``(None, None)`` when the agent has no figures.
        """
        per_env = self.agents.get(agent) or {}
        if env in per_env:
            return per_env[env], env
        if not per_env:
            return None, None
        worst = max(per_env, key=lambda e: (per_env[e]["cpu_ms"], e))
        return per_env[worst], worst


def package_costs_path() -> Path:
    """:return: the path of ``presets/costs.yaml`` inside the installed package (it may not exist)."""
    return Path(str(resources.files("metarim_sb3.experiments").joinpath("presets", COSTS_FILE)))


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _check(data: Any, where: str) -> Costs:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a YAML mapping with keys measured and agents")
    measured, agents = data.get("measured"), data.get("agents")
    if not isinstance(measured, dict) or any(key not in measured for key in HEADER_KEYS):
        raise ConfigError(f"{where}: measured must be a mapping with keys {', '.join(HEADER_KEYS)}")
    if not isinstance(agents, dict):
        raise ConfigError(f"{where}: agents must be a mapping agent -> env id -> {{cpu_ms, wall_ms}}")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for agent, per_env in agents.items():
        if not isinstance(per_env, dict):
            raise ConfigError(f"{where}: agents.{agent} must be a mapping env id -> {{cpu_ms, wall_ms}}")
        out[str(agent)] = {}
        for env, figures in per_env.items():
            if not isinstance(figures, dict) or not all(_positive_number(figures.get(k)) for k in _FIGURES):
                raise ConfigError(f"{where}: agents.{agent}.{env} must hold positive numbers cpu_ms and wall_ms")
            out[str(agent)][str(env)] = {k: float(figures[k]) for k in _FIGURES}
    return Costs(out, dict(measured), where)


def load_costs(path: str | Path | None = None) -> Costs | None:
    """
    Read measured costs.

    :param path: a costs file; ``None``: the package's ``presets/costs.yaml``.
    :return: the costs, or ``None`` when the file does not exist.
    :raises ConfigError: when the file exists but cannot be read or does not have the expected shape.
    """
    file = Path(path) if path is not None else package_costs_path()
    if not file.is_file():
        return None
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read the costs file {file}: {err}") from err
    return _check(data, f"costs file {file}")


def costs_from_runs(paths: Iterable[str | Path]) -> Costs:
    """
    Costs measured by finished runs instead of the benchmark: for each agent (a variant counts as the agent it
    was made from) and environment, the median over complete runs of ``wall_time_s / timesteps`` in ``done.json``.
    Runs record wall time only; ``metarim`` runs use one process and one torch thread each, so the CPU figure is
    set to the wall figure, which is right when every run had a core to itself (as with ``--workers`` at most the
    number of cores) and too high when runs waited for one.

    :param paths: run folders, or folders containing them (as ``metarim report`` takes).
    :return: the costs, with a header naming the runs' commits, the last finish time and the machine.
    :raises ConfigError: if no complete run is found.
    """
    from statistics import median

    from metarim_sb3.experiments.reporting.runs import find_runs
    from metarim_sb3.experiments.training.folder import CONFIG, DONE, VERSIONS, RunError, read_json

    paths = [Path(p) for p in paths]
    try:
        folders = find_runs(paths)
    except RunError as err:
        raise ConfigError(f"--costs-from: {err}") from None
    per_cell: dict[tuple[str, str], list[float]] = {}
    commits, finished, machines = set(), [], set()
    for folder in folders:
        if not (folder / DONE).is_file():
            continue
        done = read_json(folder / DONE)
        config = yaml.safe_load((folder / CONFIG).read_text(encoding="utf-8")) or {}
        if not _positive_number(done.get("wall_time_s")) or not _positive_number(done.get("timesteps")):
            continue
        agent = str(config.get("variant_of", config.get("agent", done.get("agent"))))
        env = str(config.get("env", done.get("env")))
        per_cell.setdefault((agent, env), []).append(1e3 * float(done["wall_time_s"]) / float(done["timesteps"]))
        finished.append(str(done.get("finished_at", "")))
        if (folder / VERSIONS).is_file():
            started = read_json(folder / VERSIONS).get("started", {})
            commits.add(str(started.get("git_sha", "unknown")))
            machines.add(str(started.get("platform", "unknown")))
    if not per_cell:
        raise ConfigError(f"--costs-from: no complete run (with {DONE}) under {', '.join(map(str, paths))}")
    agents: dict[str, dict[str, dict[str, float]]] = {}
    for (agent, env), values in sorted(per_cell.items()):
        ms = median(values)
        agents.setdefault(agent, {})[env] = {"cpu_ms": ms, "wall_ms": ms}
    measured = {
        "command": f"costs_from_runs of {sum(map(len, per_cell.values()))} complete runs under "
        + ", ".join(map(str, paths)),
        "commit": ", ".join(sorted(commits)) or "unknown",
        "date": max(finished),
        "machine": ", ".join(sorted(machines)) or "unknown",
        "torch_threads": 1,
    }
    return _check({"measured": measured, "agents": agents}, "runs under " + ", ".join(map(str, paths)))


def write_costs(
    path: str | Path, agents: Mapping[str, Mapping[str, Mapping[str, float]]], measured: Mapping[str, object]
) -> Path:
    """
    Write a costs file (what ``benchmarks/bench_study.py --write-costs`` calls); it replaces any previous one.

    :param path: the file to write.
    :param agents: agent -> environment id -> ``{"cpu_ms": ..., "wall_ms": ...}``.
    :param measured: the header; must hold :data:`HEADER_KEYS` (further keys are kept).
    :return: the path written.
    :raises ConfigError: when a figure or a header key is missing or not a positive number.
    """
    figures = {a: {e: {k: round(float(f[k]), 4) for k in _FIGURES} for e, f in p.items()} for a, p in agents.items()}
    header = {k: v if v is None or isinstance(v, (bool, int, float)) else str(v) for k, v in measured.items()}
    data = {"measured": header, "agents": figures}
    _check(data, "the costs to write")
    comment = (
        "# Measured milliseconds per environment step (CPU and wall) of whole runs, evaluations included,\n"
        "# with the torch threads of the header. Written by benchmarks/bench_study.py --write-costs;\n"
        "# do not edit by hand (re-run it). Read by `metarim compare --dry-run` (metarim_sb3.experiments.grid.cost).\n"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(comment + yaml.safe_dump(data, sort_keys=False, width=1000), encoding="utf-8")
    return path


@dataclass(frozen=True)
class CellCost:
    """The runs of one agent on one environment.

    :param agent: agent name.
    :param env: environment id.
    :param runs: number of runs (seeds).
    :param timesteps: environment steps per run.
    :param cpu_ms: CPU ms per step used, or ``None`` (no measurement).
    :param wall_ms: wall ms per step used, or ``None``.
    :param measured_env: the environment the figures were measured on (``env``, a fallback, or ``None``).
    """

    agent: str
    env: str
    runs: int
    timesteps: int
    cpu_ms: float | None
    wall_ms: float | None
    measured_env: str | None

    @property
    def frames(self) -> int:
        """Environment steps of all the cell's runs."""
        return self.runs * self.timesteps

    @property
    def fallback(self) -> bool:
        """Whether the figures come from another environment of the same agent."""
        return self.measured_env is not None and self.measured_env != self.env

    @property
    def core_hours(self) -> float | None:
        """CPU core-hours of all the cell's runs, or ``None`` without a measurement."""
        return None if self.cpu_ms is None else self.frames * self.cpu_ms / 3.6e6


@dataclass(frozen=True)
class Estimate:
    """The cost of a grid.

    :param cells: one entry per agent and environment, in the grid's order.
    :param workers: worker processes the wall time is computed for.
    :param wall_hours: the wall time at ``workers`` (``None`` when a cell has no measurement).
    :param costs: the measurements used (``None``: no costs file).
    """

    cells: list[CellCost]
    workers: int
    wall_hours: float | None
    costs: Costs | None

    @property
    def runs(self) -> int:
        """Runs in the grid."""
        return sum(c.runs for c in self.cells)

    @property
    def frames(self) -> int:
        """Environment steps of the whole grid."""
        return sum(c.frames for c in self.cells)

    @property
    def core_hours(self) -> float | None:
        """CPU core-hours of the grid, or ``None`` when any cell has no measurement."""
        hours = [c.core_hours for c in self.cells]
        return None if any(h is None for h in hours) else sum(h for h in hours if h is not None)

    @property
    def unmeasured_agents(self) -> list[str]:
        """Agents without any measurement, in grid order."""
        return list(dict.fromkeys(c.agent for c in self.cells if c.cpu_ms is None))


def wall_makespan(durations: Iterable[float], workers: int) -> float:
    """
    :param durations: run durations, in the order the runs are submitted.
    :param workers: worker processes; each run starts on the first one free.
    :return: when the last run ends.
    :raises ValueError: if ``workers`` is not a positive integer or a duration is negative.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    free = [0.0] * workers
    end = 0.0
    for duration in durations:
        if duration < 0:
            raise ValueError(f"durations must be >= 0, got {duration}")
        start = heapq.heappop(free)
        end = max(end, start + duration)
        heapq.heappush(free, start + duration)
    return end


def estimate(runs: Iterable[tuple[str, str, int]], workers: int, costs: Costs | None) -> Estimate:
    """
    The cost of a grid of runs.

    :param runs: ``(agent, env, timesteps)`` of each run, in the order the grid submits them.
    :param workers: worker processes (capped by the number of runs, as the grid does).
    :param costs: the measurements (:func:`load_costs`), or ``None`` when there are none.
    :return: the estimate.
    :raises ValueError: if ``workers`` is not a positive integer or a run's timesteps are not positive.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    order: list[tuple[str, str, int]] = []
    for agent, env, timesteps in runs:
        if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
            raise ValueError(f"timesteps must be a positive integer, got {timesteps!r} ({agent} on {env})")
        order.append((agent, env, timesteps))
    cells: dict[tuple[str, str, int], CellCost] = {}
    counts = Counter(order)  # keys in first-appearance order
    for key, count in counts.items():
        agent, env, timesteps = key
        figures, measured_env = costs.lookup(agent, env) if costs is not None else (None, None)
        cpu_ms, wall_ms = (None, None) if figures is None else (figures["cpu_ms"], figures["wall_ms"])
        cells[key] = CellCost(agent, env, count, timesteps, cpu_ms, wall_ms, measured_env)
    n_workers = max(1, min(workers, len(order)))
    per_run = [cells[key].wall_ms for key in order]
    wall_hours = None
    if all(ms is not None for ms in per_run):
        hours = [key[2] * float(ms or 0.0) / 3.6e6 for key, ms in zip(order, per_run, strict=True)]
        wall_hours = wall_makespan(hours, n_workers)
    return Estimate(list(cells.values()), n_workers, wall_hours, costs)


def _hours(value: float | None) -> str:
    return "no measurement" if value is None else f"{value:.2f} h"


def describe_plan(runs: Iterable[tuple[str, str, int]], workers: int, costs: Costs | None) -> str:
    """
    The text ``metarim compare --dry-run`` prints: one line per agent and environment, then the totals.

    :param runs: ``(agent, env, timesteps)`` of each run, in the grid's order.
    :param workers: worker processes.
    :param costs: the measurements, or ``None``.
    :return: the text (no trailing newline).
    """
    est = estimate(runs, workers, costs)
    lines = [f"{'agent':<10} {'env':<26} {'runs':>4} {'steps/run':>10} {'frames':>12} {'CPU ms/step':>11}  core-hours"]
    for c in est.cells:
        ms = "-" if c.cpu_ms is None else f"{c.cpu_ms:.3f}"
        note = " (measured on " + str(c.measured_env) + ")" if c.fallback else ""
        hours = "no measurement" if c.core_hours is None else f"{c.core_hours:.2f}{note}"
        lines.append(f"{c.agent:<10} {c.env:<26} {c.runs:>4} {c.timesteps:>10,} {c.frames:>12,} {ms:>11}  {hours}")
    lines.append(f"total: {est.runs} runs, {est.frames:,} frames")
    if est.costs is None:
        lines.append(
            "estimate: no measurement (no costs file; write one with python benchmarks/bench_study.py --write-costs)"
        )
        return "\n".join(lines)
    core = "no measurement" if est.core_hours is None else f"{est.core_hours:.1f} CPU core-hours"
    wall = _hours(est.wall_hours)
    if est.unmeasured_agents:
        missing = ", ".join(est.unmeasured_agents)
        lines.append(f"estimate: no measurement (agent(s) {missing} not in {est.costs.source})")
        return "\n".join(lines)
    lines.append(f"estimate: {core}; wall {wall} on {est.workers} worker(s) (one free core each, else slower)")
    fallbacks = sorted({(c.agent, c.env, str(c.measured_env)) for c in est.cells if c.fallback})
    if fallbacks:
        lines.append(
            "  not measured, costed as the agent's most expensive measured env: "
            + "; ".join(f"{a} on {e} (as {m})" for a, e, m in fallbacks)
        )
    m = est.costs.measured
    lines.append(
        f"  from {est.costs.source}: measured {m['date']} at commit {m['commit']} on {m['machine']}, "
        f"{m['torch_threads']} torch thread(s), by: {m['command']}"
    )
    return "\n".join(lines)
