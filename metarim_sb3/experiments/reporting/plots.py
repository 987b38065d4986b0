"""The report figures, drawn with matplotlib's object API on the Agg canvas (no pyplot, no display needed)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from metarim_sb3.experiments.reporting.formatting import MIN_SEEDS_FOR_INTERVAL
from metarim_sb3.experiments.reporting.sections.adaptation import AdaptationRow, shift_kms
from metarim_sb3.experiments.reporting.stats import bootstrap_ci, curve_band
from metarim_sb3.experiments.training.config import AGENTS

if TYPE_CHECKING:
    from metarim_sb3.experiments.reporting.runs import RunData

__all__ = ["adaptation", "adaptation_auc", "drift", "learning_curves", "stage_heatmaps", "unit_activity", "zero_shot"]

COLORS = {"meta-rim": "#1b9e77", "rim": "#7570b3", "reversed": "#d95f02", "lstm": "#666666"}
GRID_POINTS = 120


def _color(agent: str) -> str:
    return COLORS.get(agent, f"C{abs(hash(agent)) % 10}")


def _agents(runs: list[RunData]) -> list[str]:
    names = {r.agent for r in runs}
    return sorted(names, key=lambda a: (AGENTS.index(a) if a in AGENTS else len(AGENTS), a))


def _envs(runs: list[RunData]) -> list[str]:
    return sorted({r.env for r in runs})


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def _smooth(success: np.ndarray, episodes: np.ndarray, k: int = 5) -> np.ndarray:
    """Episode-weighted moving average over ``k`` rollouts (rollouts without episodes carry no weight)."""
    w = np.nan_to_num(episodes)
    s = np.nan_to_num(success) * w
    kernel = np.ones(k)
    num, den = np.convolve(s, kernel)[: len(s)], np.convolve(w, kernel)[: len(w)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _interp(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(y)
    if ok.sum() < 1:
        return np.full_like(grid, np.nan)
    out = np.interp(grid, x[ok], y[ok])
    out[grid > x[ok].max()] = np.nan
    return out


def learning_curves(runs: list[RunData], path: Path) -> Path:
    """
    Training success rate against frames (left) and training wall time (right), one row per env.

    :param runs: loaded runs.
    :param path: the PNG to write.
    :return: ``path``.
    """
    envs = _envs(runs)
    fig = Figure(figsize=(11, 3.4 * len(envs)), layout="constrained")
    axes = fig.subplots(len(envs), 2, squeeze=False)
    for row, env in enumerate(envs):
        env_runs = [r for r in runs if r.env == env and r.curve["timesteps"].size]
        for col, (key, scale, label) in enumerate((("timesteps", 1.0, "frames"), ("time_s", 60.0, "wall time (min)"))):
            ax = axes[row][col]
            end = max((r.curve[key][-1] / scale for r in env_runs), default=1.0)
            grid = np.linspace(0, end, GRID_POINTS)
            for agent in _agents(env_runs):
                group = [r for r in env_runs if r.agent == agent]
                curves = np.array(
                    [
                        _interp(r.curve[key] / scale, _smooth(r.curve["success_rate"], r.curve["episodes"]), grid)
                        for r in group
                    ]
                )
                mean, low, high = curve_band(curves)
                ax.plot(grid, mean, color=_color(agent), label=f"{agent} (n={len(group)})")
                ax.fill_between(grid, low, high, color=_color(agent), alpha=0.2, linewidth=0)
                for r in group:  # shift ticks
                    xs = np.array(r.shifts, dtype=float)
                    if col == 1 and xs.size:
                        xs = np.interp(xs, r.curve["timesteps"], r.curve["time_s"]) / scale
                    ax.plot(xs, np.full(xs.shape, -0.03), "|", color=_color(agent), markersize=9)
            ax.set_ylim(-0.06, 1.02)
            ax.set_xlim(0, end)
            ax.set_xlabel(label)
            ax.set_ylabel("training success rate")
            ax.set_title(f"{env}: success vs {label.split(' (')[0]}")
            ax.grid(alpha=0.3)
        axes[row][0].legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def adaptation(runs: list[RunData], path: Path) -> Path:
    """
    Kaplan–Meier curves of the frames to reach the success threshold after a shift, one line per agent.

    :param runs: loaded runs.
    :param path: the PNG to write.
    :return: ``path``.
    """
    kms = shift_kms(runs)
    envs = _envs(runs)
    fig = Figure(figsize=(8, 3.6 * len(envs)), layout="constrained")
    axes = fig.subplots(len(envs), 1, squeeze=False)
    for row, env in enumerate(envs):
        ax = axes[row][0]
        for agent in _agents([r for r in runs if r.env == env]):
            km = kms.get((env, agent))
            if km is None:
                continue
            x = np.concatenate([[0.0], km.times])
            label = f"{agent} ({km.n_events}/{km.n} mastered)"
            ax.step(x, np.concatenate([[1.0], km.survival]), where="post", color=_color(agent), label=label)
            low, high = np.concatenate([[1.0], km.low]), np.concatenate([[1.0], km.high])
            ax.fill_between(x, low, high, step="post", color=_color(agent), alpha=0.15)
            ax.axvline(km.tau, color="grey", linestyle=":", linewidth=1)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no shifts in these runs", ha="center", transform=ax.transAxes)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("frames since the shift")
        ax.set_ylabel("visits not yet at threshold")
        ax.set_title(f"{env}: frames to threshold after a shift (Kaplan-Meier; dotted: tau)")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def adaptation_auc(rows: Sequence[AdaptationRow], path: Path) -> Path:
    """
    Success AUC after a shift per agent, first visits and revisits apart (rows of
    :func:`metarim_sb3.experiments.reporting.sections.adaptation.adaptation_auc_rows`).

    :param rows: the AUC rows.
    :param path: the PNG to write.
    :return: ``path``.
    """
    envs = sorted({r["env"] for r in rows}) or ["(no runs)"]
    fig = Figure(figsize=(8, 3.4 * len(envs)), layout="constrained")
    axes = fig.subplots(len(envs), 1, squeeze=False)
    kinds = ["first visit", "revisit"]
    for row, env in enumerate(envs):
        ax = axes[row][0]
        env_rows = [r for r in rows if r["env"] == env]
        agents = list(dict.fromkeys(r["agent"] for r in env_rows))
        width = 0.8 / max(len(agents), 1)
        for j, agent in enumerate(agents):
            for r in (r for r in env_rows if r["agent"] == agent):
                point, low, high = r["estimate"]
                if np.isnan(point):
                    continue
                x = kinds.index(r["kind"]) - 0.4 + width * (j + 0.5)
                ax.bar(x, point, width, color=_color(agent), label=agent if r["kind"] == kinds[0] else None)
                if r["seeds"] >= MIN_SEEDS_FOR_INTERVAL:
                    ax.errorbar(x, point, yerr=[[point - low], [high - point]], color="black", capsize=3)
        if not any(r["defined"] for r in env_rows):
            ax.text(0.5, 0.5, "stage_eval.csv not recorded in these runs", ha="center", transform=ax.transAxes)
        ax.set_xticks(range(len(kinds)), kinds)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("success AUC over the horizon")
        ax.set_title(f"{env}: adaptation AUC (IQM over seeds; 95% CI, drawn with {MIN_SEEDS_FOR_INTERVAL}+ seeds)")
        ax.grid(axis="y", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return _save(fig, path)


def drift(runs: list[RunData], groups: list[str], path: Path) -> Path:
    """
    Parameter drift (``drift.csv``) against frames, one panel per group, one line per (env, agent): mean over the
    seeds that recorded it, on a common frame grid.

    :param runs: loaded runs.
    :param groups: the parameter groups to draw.
    :param path: the PNG to write.
    :return: ``path``.
    """
    fig = Figure(figsize=(4.2 * max(len(groups), 1), 3.4), layout="constrained")
    axes = fig.subplots(1, max(len(groups), 1), squeeze=False)[0]
    if not groups:
        axes[0].text(0.5, 0.5, "drift.csv not recorded in these runs", ha="center", transform=axes[0].transAxes)
    for ax, group in zip(axes, groups, strict=False):
        column = f"drift_{group}"
        for env in _envs(runs):
            for agent in _agents([r for r in runs if r.env == env]):
                tables = [r.drift for r in runs if r.env == env and r.agent == agent and r.drift and column in r.drift]
                tables = [t for t in tables if t is not None and t["timesteps"].size]
                if not tables:
                    continue
                end = min(float(t["timesteps"].max()) for t in tables)
                grid = np.linspace(min(float(t["timesteps"].min()) for t in tables), end, GRID_POINTS)
                mean = np.mean([np.interp(grid, t["timesteps"], t[column]) for t in tables], axis=0)
                label = agent if len(_envs(runs)) == 1 else f"{agent} ({env})"
                ax.plot(grid, mean, color=_color(agent), label=f"{label}, {len(tables)} seed(s)")
        ax.set_title(f"drift: {group}")
        ax.set_xlabel("frames")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _save(fig, path)


def stage_heatmaps(runs: list[RunData], path: Path) -> Path:
    """
    Success on every stage (rows) at every evaluation frame (columns) from ``stage_eval.csv``, one panel per
    (env, agent), mean over seeds (``nan``, blank, where no seed evaluated).

    :param runs: loaded runs.
    :param path: the PNG to write.
    :return: ``path``.
    """
    panels = []
    for env in _envs(runs):
        for agent in _agents([r for r in runs if r.env == env]):
            tables = [r.stage_eval for r in runs if r.env == env and r.agent == agent and r.stage_eval is not None]
            if tables:
                panels.append((env, agent, [t for t in tables if t is not None]))
    fig = Figure(figsize=(7, 2.8 * max(len(panels), 1)), layout="constrained")
    axes = fig.subplots(max(len(panels), 1), 1, squeeze=False)
    if not panels:
        ax = axes[0][0]
        ax.text(0.5, 0.5, "stage_eval.csv not recorded in these runs", ha="center", transform=ax.transAxes)
    for (env, agent, tables), ax in zip(panels, axes[:, 0], strict=False):
        stages = np.unique(np.concatenate([t["stage"] for t in tables]))
        times = np.unique(np.concatenate([t["timesteps"] for t in tables]))
        stack = np.full((len(tables), stages.size, times.size), np.nan)
        for k, t in enumerate(tables):
            stack[k, np.searchsorted(stages, t["stage"]), np.searchsorted(times, t["timesteps"])] = t["success_rate"]
        with np.errstate(all="ignore"):
            counts = np.sum(~np.isnan(stack), axis=0)
            mean = np.where(counts > 0, np.nansum(stack, axis=0) / np.maximum(counts, 1), np.nan)
        image = ax.imshow(mean, aspect="auto", origin="lower", vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
        ticks = np.linspace(0, times.size - 1, min(times.size, 6)).round().astype(int)
        ax.set_xticks(ticks, [f"{times[i] / 1e3:g}k" for i in ticks])
        ax.set_yticks(range(stages.size), [str(int(s)) for s in stages])
        ax.set_xlabel("frames")
        ax.set_ylabel("stage")
        ax.set_title(f"{env}: {agent} ({len(tables)} seed(s)), success per stage")
        fig.colorbar(image, ax=ax, label="success")
    return _save(fig, path)


def zero_shot(runs: list[RunData], path: Path) -> Path:
    """
    Held-out success per agent after training: mean over seeds with a bootstrap CI, and each seed as a dot.

    :param runs: loaded runs.
    :param path: the PNG to write.
    :return: ``path``.
    """
    envs = _envs(runs)
    fig = Figure(figsize=(4 + 1.2 * len(_agents(runs)), 3.4 * len(envs)), layout="constrained")
    axes = fig.subplots(len(envs), 1, squeeze=False)
    for row, env in enumerate(envs):
        ax = axes[row][0]
        agents = _agents([r for r in runs if r.env == env])
        for i, agent in enumerate(agents):
            values = [r.final_eval["success_rate"] for r in runs if r.env == env and r.agent == agent and r.final_eval]
            if not values:
                continue
            mean = float(np.mean(values))
            low, high = bootstrap_ci(values)
            ax.bar(i, mean, 0.6, color=_color(agent), alpha=0.85)
            ax.errorbar(i, mean, yerr=[[mean - low], [high - mean]], color="black", capsize=4, linewidth=1)
            jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(i + jitter, values, color="black", s=14, zorder=3)
        ax.set_xticks(range(len(agents)), agents)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("held-out success rate")
        ax.set_title(f"{env}: zero-shot on the held-out stage")
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def unit_activity(runs: list[RunData], path: Path) -> Path:
    """
    Unit x task activation heatmaps of the actor RIM, one row per (env, agent), one column per seed (up to 4).

    :param runs: loaded runs.
    :param path: the PNG to write.
    :return: ``path``.
    """
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for r in runs:
        if r.activity is not None and "actor_fraction" in r.activity:
            groups[(r.env, r.agent)].append(r)
    keys = sorted(groups, key=lambda k: (k[0], AGENTS.index(k[1]) if k[1] in AGENTS else len(AGENTS), k[1]))
    if not keys:
        fig = Figure(figsize=(6, 2))
        fig.text(0.5, 0.5, "no unit activity recorded (no RIM agent among these runs)", ha="center", va="center")
        return _save(fig, path)
    n_cols = min(4, max(len(v) for v in groups.values()))
    fig = Figure(figsize=(3.4 * n_cols + 1, 2.6 * len(keys)), layout="constrained")
    axes = fig.subplots(len(keys), n_cols, squeeze=False)
    image = None
    for row, key in enumerate(keys):
        group = sorted(groups[key], key=lambda r: r.seed)[:n_cols]
        for col in range(n_cols):
            ax = axes[row][col]
            if col >= len(group):
                ax.set_axis_off()
                continue
            r = group[col]
            matrix, tasks = r.activity["actor_fraction"], [str(t) for t in r.activity["tasks"]]
            image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            ax.set_xticks(range(matrix.shape[1]), [f"u{u}" for u in range(matrix.shape[1])])
            ax.set_yticks(range(len(tasks)), tasks, fontsize=7)
            for (i, j), v in np.ndenumerate(matrix):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 else "black")
            ax.set_title(f"{key[1]} seed {r.seed}", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="fraction of steps active")
    return _save(fig, path)
