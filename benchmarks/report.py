"""Collect the JSON files written by the benchmarks into one Markdown report with each target and whether it is met.

Run by ``make bench`` after the benchmarks; by hand::

    python benchmarks/report.py [--dir results/bench]

Reads ``bench_env.json``, ``bench_rim.json``, ``bench_train.json``, ``bench_study.json``, ``bench_compile.json``,
``bench_callbacks.json`` and ``bench_seed_batch.json`` (any missing file is reported as "not run"), and
``bench_study_full.json`` if present (``make bench-study-full``) and writes ``report.md`` beside them. Every number
comes from those files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: The targets each benchmark is held to.
ENV_TARGET = 0.95
RIM_TARGET = 1.5  # fused training case vs nn.LSTM of equal total hidden, 2 threads, every batch size
TRAIN_TARGET_LSTM, TRAIN_TARGET_PPO = 2.5, 0.5
STUDY_TARGET_MS = 0.8  # CPU ms per environment step of the RIM agents, evaluations included
CALLBACK_TARGET = 0.05
#: ``bench_train`` rows that use a second core (not counted as a one-core layout).
TRAIN_MORE_CPU = ("rim_shared_chunked_subproc", "rim_shared_chunked_2threads")


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _train_sizes(meta: dict[str, Any]) -> str:
    """:return: the cores' sizes of a ``bench_train.json`` (recorded since they are the agents'), or nothing."""
    rim, hidden = meta.get("rim"), meta.get("lstm_hidden_size")
    if not rim or not hidden:
        return ""
    return (
        f" Core sizes: the agents' (`presets/agents.yaml`): RIM {rim['n_units']} units x {rim['unit_size']}, "
        f"k {rim['k']}; LSTM and GRU hidden size {hidden}."
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def env_section(data: dict[str, Any] | None) -> list[str]:
    """:param data: ``bench_env.json``. :return: Markdown lines."""
    lines = ["## Environments: `bench_env.py`", ""]
    if data is None:
        return [*lines, "Not run.", ""]
    rows = [[f"`{r['id']}`", r["task"], f"{r['metarim_sps']:.0f}", f"{r['raw_sps']:.0f}", f"{r['ratio']:.3f}",
             f"{r['fast_obs_gain']:.2f}x" if "fast_obs_gain" in r else "not measured"]
            for r in data["rows"]]  # fmt: skip
    worst = min(r["ratio"] for r in data["rows"])
    lines += [
        f"Steps/s of each id fixed at stage 0 vs the raw MiniGrid task, {data['steps']} random-action steps, "
        f"{data['repeats']} alternating repeats: medians of steps/s, ratio = median of the per-repeat ratios. "
        f"Target: ratio >= {ENV_TARGET} — "
        f"{_verdict(worst >= ENV_TARGET)} (worst {worst:.3f}).",
        "",
    ]
    return lines + _table(["id", "raw task", "MetaRIM steps/s", "raw steps/s", "ratio", "fast_obs gain"], rows)


def rim_section(data: dict[str, Any] | None) -> list[str]:
    """:param data: ``bench_rim.json``. :return: Markdown lines."""
    lines = ["## RIM core: `bench_rim.py`", ""]
    if data is None:
        return [*lines, "Not run.", ""]
    rows = [[r["case"], r["ref"], str(r["threads"]), f"{r['rim_ms']:.3f}", f"{r['ref_ms']:.3f}",
             f"{r['ratio_median']:.2f}"] for r in data["results"]]  # fmt: skip
    train = [r["ratio_median"] for r in data["results"]
             if r["case"].startswith("train") and r.get("fused", True) and r["threads"] == 2]  # fmt: skip
    verdict = f"{_verdict(max(train) <= RIM_TARGET)} (worst {max(train):.2f})" if train else "not measured"
    lines += [
        "RIM (6 units x 64, k 4) vs `nn.LSTM(64, 384)` (equal total hidden, 6 x 64 = 384): forward + backward over "
        "T=32 with the fused kernel and without it (`unfused` rows: what the kernel buys), and one no-grad rollout "
        f"step; ratio = median of per-repeat ratios over {data['repeats']} repeats. Target: fused training ratio <= "
        f"{RIM_TARGET} at every batch size with 2 threads — {verdict}.",
        "",
    ]
    return lines + _table(["case", "reference", "threads", "RIM ms", "reference ms", "ratio"], rows)


def train_section(data: dict[str, Any] | None) -> list[str]:
    """:param data: ``bench_train.json``. :return: Markdown lines."""
    lines = ["## Training throughput: `bench_train.py`", ""]
    if data is None:
        return [*lines, "Not run.", ""]
    res, meta = data["results"], data["meta"]
    if not all(name in res for name in ("rim", "lstm_sb3", "ppo")):
        return [*lines, "Incomplete: the `rim`, `lstm_sb3` and `ppo` rows are needed for the targets.", ""]
    lstm, ppo = res["lstm_sb3"]["fps"], res["ppo"]["fps"]
    rim = res["rim"]["fps"]
    one_core = [name for name in res if name.startswith("rim") and name not in TRAIN_MORE_CPU]
    best = max(one_core, key=lambda name: res[name]["fps"])
    fast = res[best]["fps"]
    more = [
        f"`{name}` runs at {res[name]['fps'] / res['rim_shared_chunked']['fps']:.2f}x `rim_shared_chunked`"
        for name in TRAIN_MORE_CPU
        if name in res and "rim_shared_chunked" in res
    ]
    rows = [[f"`{name}`", f"{r['fps']:.0f}", f"{r['rollout_s']:.2f}", f"{r['train_s']:.2f}", f"{r['fps'] / lstm:.2f}",
             f"{r['fps'] / ppo:.2f}"] for name, r in res.items()]  # fmt: skip
    lines += [
        f"RecurrentPPO on `{meta['env_id']}` stage 0, {meta['n_envs']} envs, n_steps {meta['n_steps']}, batch "
        f"{meta['batch_size']}, {meta['n_epochs']} epochs, {meta['timesteps']} steps x {meta['repeats']} "
        f"interleaved repeats, {meta['threads']} torch thread(s); medians.{_train_sizes(meta)} "
        f"Targets: `rim` >= {TRAIN_TARGET_LSTM}x "
        f"`lstm_sb3` — {_verdict(rim / lstm >= TRAIN_TARGET_LSTM)} ({rim / lstm:.2f}x); `rim` >= "
        f"{TRAIN_TARGET_PPO}x `ppo` — {_verdict(rim / ppo >= TRAIN_TARGET_PPO)} ({rim / ppo:.2f}x). The fastest "
        f"RIM layout, `{best}`: {fast / lstm:.2f}x `lstm_sb3` ({_verdict(fast / lstm >= TRAIN_TARGET_LSTM)}), "
        f"{fast / ppo:.2f}x `ppo` ({_verdict(fast / ppo >= TRAIN_TARGET_PPO)}).",
        "",
    ]
    if more:
        lines += [
            "Using a second core for one run (envs in a `SubprocVecEnv`, or 2 torch threads; not counted as a "
            f"layout above): {'; '.join(more)}.",
            "",
        ]
    return lines + _table(["row", "FPS", "rollout s", "train s", "x lstm_sb3", "x ppo"], rows)


def study_section(data: dict[str, Any] | None, full: dict[str, Any] | None = None) -> list[str]:
    """
    :param data: ``bench_study.json`` (short runs, ``make bench``).
    :param full: ``bench_study_full.json`` (whole runs at a preset's full budget, ``make bench-study-full``), if any.
    :return: Markdown lines.
    """
    lines = ["## Cost of a study run: `bench_study.py`", ""]
    if data is None:
        return [*lines, "Not run.", ""]
    meta, results = data["meta"], data["rows"]
    rows = [[f"`{r['agent']}`", f"`{r['env']}`", f"{r['cpu_ms']:.3f}", f"{r['wall_ms']:.3f}",
             f"{r['final_eval_share']:.0%}", (_verdict(r["cpu_ms"] <= STUDY_TARGET_MS) if r["rim"] else "-")]
            for r in results]  # fmt: skip
    rim = [r["cpu_ms"] for r in results if r["rim"]]
    verdict = f"{_verdict(max(rim) <= STUDY_TARGET_MS)} (worst {max(rim):.3f})" if rim else "no RIM agent measured"
    scaled = "scaled to the budget" if meta.get("scaled_evals", True) else "at the preset's intervals"
    lines += [
        f"CPU milliseconds per environment step of whole runs (`metarim train` in-process: training, evaluations "
        f"{scaled}, checkpoints) on the `{meta['preset']}` preset's settings, {meta['timesteps']} steps per run x "
        f"{meta['repeats']} interleaved repeats, {meta['torch_threads']} torch thread(s); medians. Target: RIM "
        f"agents <= {STUDY_TARGET_MS} ms — {verdict}. These figures, written to `presets/costs.yaml` by "
        "`bench_study.py --write-costs`, are what `metarim compare --preset NAME --dry-run` estimates a grid's "
        "CPU core-hours and wall hours from.",
        "",
    ]
    lines += _table(["agent", "env", "CPU ms/step", "wall ms/step", "final eval (wall)", "target"], rows)
    if full is not None:
        meta = full["meta"]
        figures = ", ".join(f"`{r['agent']}` {r['cpu_ms']:.3f}" for r in full["rows"])
        envs = ", ".join(sorted({f"`{r['env']}`" for r in full["rows"]}))
        worst = max((r["cpu_ms"] for r in full["rows"] if r["rim"]), default=None)
        verdict = "no RIM agent measured" if worst is None else _verdict(worst <= STUDY_TARGET_MS)
        lines += [
            f"Whole runs at the `{meta['preset']}` preset's full budget ({meta['timesteps']} steps on "
            f"{envs}, {meta['repeats']} run(s) per agent, "
            f"commit {meta['commit'][:7]}; `{meta['command']}`), where setup is spread over the whole run: CPU ms per "
            f"step {figures}; RIM agents <= {STUDY_TARGET_MS} ms — {verdict}.",
            "",
        ]
    return lines


def compile_section(data: dict[str, Any] | None) -> list[str]:
    """:param data: ``bench_compile.json``. :return: Markdown lines."""
    lines = ["## `torch.compile`: `bench_compile.py`", ""]
    if data is None:
        return [*lines, "Not run.", ""]
    meta = data["meta"]
    rows = [[r["case"], f"{r['eager_ms']:.3f}", f"{r['compiled_ms']:.3f}", f"{r['ratio']:.2f}", f"{r['compile_s']:.1f}"]
            for r in data["results"]]  # fmt: skip
    paying = [r["case"] for r in data["results"] if r["ratio"] <= meta["pays"]]
    lines += [
        f"Eager vs `torch.compile` on CPU, {meta['threads']} torch thread(s), {meta['repeats']} alternating "
        "repeats; ratio = median of per-repeat compiled / eager (below 1: compiling pays). The core rows compare "
        "the fused kernel (eager) with the compiled plain-torch reference loop; the policy row compiles "
        "`evaluate_actions` around the eager core; the training row times whole `learn()` runs (ms per step) whose "
        "rollout RIM steps run eagerly or compiled, its compile s being the first whole run. Compiling pays (ratio "
        f"<= {meta['pays']}) in: "
        f"{', '.join(paying) if paying else 'no case'}; the project compiles nothing by default.",
        "",
    ]
    return lines + _table(["case", "eager ms", "compiled ms", "ratio", "compile s"], rows)


def callbacks_section(data: dict[str, Any] | None) -> list[str]:
    """:param data: ``bench_callbacks.json``. :return: Markdown lines."""
    lines = ["## Meta-RIMs callbacks: `bench_callbacks.py`", ""]
    if data is None:
        return [*lines, "Not run.", ""]
    rows = [[r["variant"], f"{r['median_s']:.2f}", f"{r['steps_per_s']:.0f}", f"{r['ratio']:.3f}"]
            for r in data["rows"]]  # fmt: skip
    ok = data["overhead"] <= CALLBACK_TARGET
    lines += [
        f"`learn()` of {data['timesteps']} steps on `{data['env']}` with no callback vs FastSlowCallback + "
        f"CurriculumCallback + UnitActivityCallback, {data['repeats']} alternating repeats. Target: overhead <= "
        f"{CALLBACK_TARGET:.0%} — {_verdict(ok)} ({data['overhead']:+.1%} wall time; the callbacks' own measured "
        f"time is {data['self_time']:.2%} of `learn()`).",
        "",
    ]
    return lines + _table(["callbacks", "median s", "steps/s", "ratio"], rows)


def seed_batch_section(data: dict[str, Any] | None) -> list[str]:
    """:param data: ``bench_seed_batch.json``. :return: Markdown lines."""
    lines = ["## Many seeds in one process: `bench_seed_batch.py`", ""]
    if data is None:
        return [*lines, "Not run.", ""]

    def mem(r: dict[str, Any]) -> str:
        m = r.get("peak_mib_per_seed") or {}
        return "-" if m.get("batched") is None else f"{m['batched']:.0f} / {m['separate']:.0f}"

    good = [r for r in data["rows"] if "ratio_median" in r]
    rows = [[r["agent"], str(r["seeds"]), f"{r['ratio_median']:.2f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})",
             f"{r['ratio_rollout']:.2f}", f"{r['ratio_update']:.2f}", f"{r['separate']['total_s']:.3f}",
             f"{r['batched']['total_s']:.3f}", mem(r)] for r in good]  # fmt: skip
    at = [r["ratio_median"] for r in good if r["seeds"] == data["target_seeds"]]
    verdict = f"{_verdict(max(at) <= data['target'])} (worst {max(at):.2f})" if at else "not measured"
    lines += [
        f"`learn_seed_batch` over S models vs S separate `model.learn` runs of the same frames ({data['n_envs']} envs, "
        f"n_steps {data['n_steps']}, {data['n_epochs']} epochs, {data['iterations']} iterations), CPU time per seed, "
        f"one thread; ratio = batched / separate, median (min-max) over {data['repeats']} alternating repeats. "
        f"Target: ratio <= {data['target']} at S = {data['target_seeds']} — {verdict}.",
        "",
    ]
    header = ["agent", "S", "ratio", "rollout ratio", "update ratio", "separate s/seed", "batched s/seed",
              "peak MiB/seed (batched / separate)"]  # fmt: skip
    return [
        *lines,
        *_table(header, rows),
        "Where a seed's time goes (per category, separate vs batched, at S = 8): `profile_seed_batch.txt`, written by "
        "`benchmarks/profile_seed_batch.py`.",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("results/bench"), help="folder (default: %(default)s)")
    args = parser.parse_args()
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (each benchmark alone on an otherwise idle machine, then "
        "`python benchmarks/report.py`); the raw figures are in the JSON files of this folder. Every comparison "
        "is a ratio measured side by side in one process.",
        "",
    ]
    full = _load(args.dir, "bench_study_full")

    def study(data: dict[str, Any] | None) -> list[str]:
        return study_section(data, full)

    sections = ((env_section, "bench_env"), (rim_section, "bench_rim"), (train_section, "bench_train"),
                (study, "bench_study"), (compile_section, "bench_compile"),
                (callbacks_section, "bench_callbacks"), (seed_batch_section, "bench_seed_batch"))  # fmt: skip
    for section, name in sections:
        lines += section(_load(args.dir, name))
    names = [name for _, name in sections] + (["bench_study_full"] if full is not None else [])
    lines += ["Raw data, per benchmark: " + ", ".join(f"`{n}.json`" for n in names) + ".", ""]
    out = args.dir / "report.md"
    out.write_text("\n".join(lines))
    print(out)


if __name__ == "__main__":
    main()
