"""Where a seed's time goes in ``learn_seed_batch`` against a separate ``model.learn``: CPU seconds per category.

``bench_seed_batch.py`` gives the per-seed ratio (batched over separate); this says which parts of the work shrink
with ``S`` and which do not (the floor on that ratio). For one agent (built as ``bench_seed_batch.py`` builds it,
with its callbacks) it trains the same frames as ``S`` separate ``model.learn`` runs and as one ``learn_seed_batch``
over ``S`` models, alternating which goes first over the repeats, in one process with ``torch.set_num_threads(1)``.

Attribution: the functions below are wrapped (on their class, module or instance) for the run; CPU time
(``time.process_time``) between wrapped calls goes to the innermost category open, so every second counts once:

* ``env: step`` (``DummyVecEnv.step_async``, ``step_wait``, ``reset``) and ``env: obs to tensor``
  (``obs_as_tensor`` in ``collect_rollouts``; ``_stack_obs`` in the batch);
* ``rollout: policy forward`` (the policy's ``forward`` in a rollout; the seed-batched policy's ``forward``);
* ``rollout: timeout values`` (the policy's ``obs_to_tensor`` and ``predict_values`` in a rollout: the value of
  each timed-out episode's terminal observation, one environment at a time, by each seed's own policy in both
  modes; in a separate run also the last values of each rollout, which the batch gets from its batched forward);
* ``rollout: buffer`` (the rollout buffer's ``add``, ``reset``, ``compute_returns_and_advantage``);
* ``rollout: bookkeeping`` (the rest of ``collect_rollouts``, of the trainer's ``_collect``: per-step Python);
* ``callbacks`` (``BaseCallback.on_*`` and ``update_locals``);
* ``update: forward, loss, rest`` (the rest of ``model.train``, of ``train_seed_batch``), ``update: backward``
  (``Tensor.backward``), ``update: optimizer step`` (gradient clipping and Adam; the fast/slow hooks and slow step,
  which a separate run does in the callback's optimizer hooks), ``update: write-back and logs`` (the rest of the
  trainer's ``_train``: weights and Adam state back into each model, ``train/*`` logs), ``stacking`` (the trainer's
  ``_build_batch``);
* ``other``: the rest of ``learn`` (setup, ``dump_logs``, the loop).

The wrappers cost a few microseconds per call, alike in both modes. Then each mode runs once more under
``cProfile``: its most expensive functions (own time) with calls per seed, to tell per-seed Python loops (calls
that grow with ``S`` in the batch) from batched ops (calls per seed falling as ``1/S``).

Usage::

    python benchmarks/profile_seed_batch.py [--agent meta-rim] [--seeds 8] [--iterations 3] [--repeats 3]
        [--rows 25] [--no-cprofile] [--out results/bench/profile_seed_batch.txt] [--json FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from sb3_contrib.ppo_recurrent import ppo_recurrent
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_seed_batch as bench  # the models, callbacks and settings

from metarim_sb3.callbacks.fast_slow import FastSlowCallback
from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO
from metarim_sb3.seed_batch import ppo as seed_ppo
from metarim_sb3.seed_batch import trainer as seed_trainer
from metarim_sb3.seed_batch.policy import SeedBatchPolicy
from metarim_sb3.seed_batch.ppo import SeedAdam

ENV_STEP, OBS = "env: step", "env: obs to tensor"
FORWARD, BUFFER, BOOKKEEPING = "rollout: policy forward", "rollout: buffer", "rollout: bookkeeping"
TIMEOUT = "rollout: timeout values"
CALLBACKS = "callbacks"
UPD_REST, UPD_BACKWARD, UPD_OPT = "update: forward, loss, rest", "update: backward", "update: optimizer step"
WRITE_BACK, STACKING, OTHER = "update: write-back and logs", "stacking", "other"
#: Report order.
CATEGORIES = (ENV_STEP, OBS, FORWARD, TIMEOUT, BUFFER, BOOKKEEPING, CALLBACKS, UPD_REST, UPD_BACKWARD, UPD_OPT,
              WRITE_BACK, STACKING, OTHER)  # fmt: skip
_CALLBACK_METHODS = ("on_step", "on_rollout_start", "on_rollout_end", "on_training_start", "on_training_end",
                     "update_locals")  # fmt: skip


class Attribution:
    """Exclusive CPU seconds per category: the time between two events goes to the innermost open category."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)
        self.stack = [OTHER]
        self.last = time.process_time()

    def _switch(self) -> None:
        now = time.process_time()
        self.seconds[self.stack[-1]] += now - self.last
        self.last = now

    def wrap(self, fn: Callable[..., Any], category: str, only_in: tuple[str, ...] = ()) -> Callable[..., Any]:
        """
        :param fn: the function to time.
        :param category: where its time (less that of wrapped calls inside it) goes.
        :param only_in: if given, count it only when called inside one of these categories (else it stays in its
            caller's category).
        :return: the wrapper.
        """

        def timed(*args: Any, **kwargs: Any) -> Any:
            if only_in and self.stack[-1] not in only_in:
                return fn(*args, **kwargs)
            self._switch()
            self.stack.append(category)
            try:
                return fn(*args, **kwargs)
            finally:
                self._switch()
                self.stack.pop()

        return timed


@contextmanager
def patched(attribution: Attribution, models: list[ChunkedRecurrentPPO], batched: bool) -> Iterator[None]:
    """Wrap the functions of :data:`CATEGORIES` (classes and modules restored on exit; the models' instances keep
    their wrappers, they are thrown away after the run).

    :param attribution: the accumulator.
    :param models: the models about to be trained (their policies, buffers and, separate, ``collect_rollouts`` and
        ``train`` are wrapped on the instance).
    :param batched: wrap the trainer's functions (else the models' own).
    """
    wrap = attribution.wrap
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, category: str, only_in: tuple[str, ...] = ()) -> None:
        saved.append((owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)))
        setattr(owner, name, wrap(getattr(owner, name), category, only_in))

    for name in ("step_async", "step_wait", "reset"):
        patch(DummyVecEnv, name, ENV_STEP)
    for name in _CALLBACK_METHODS:
        patch(BaseCallback, name, CALLBACKS)
    patch(torch.Tensor, "backward", UPD_BACKWARD)
    patch(FastSlowCallback, "_slow_update", UPD_OPT)
    if batched:
        patch(seed_trainer, "_stack_obs", OBS)
        patch(seed_trainer, "_collect", BOOKKEEPING)
        patch(seed_trainer, "_train", WRITE_BACK)
        patch(seed_trainer, "train_seed_batch", UPD_REST)
        patch(seed_trainer, "_build_batch", STACKING)
        patch(seed_ppo, "clip_grad_norm_per_seed", UPD_OPT)
        patch(SeedAdam, "step", UPD_OPT)
        patch(SeedBatchPolicy, "forward", FORWARD, (BOOKKEEPING,))
    else:
        patch(ppo_recurrent, "obs_as_tensor", OBS, (BOOKKEEPING,))
        patch(torch.nn.utils, "clip_grad_norm_", UPD_OPT)
    for given in models:
        model: Any = given
        policy = model.policy
        policy.forward = wrap(policy.forward, FORWARD, (BOOKKEEPING,))
        for name in ("predict_values", "obs_to_tensor"):
            setattr(policy, name, wrap(getattr(policy, name), TIMEOUT, (BOOKKEEPING,)))
        buffer = model.rollout_buffer
        for name in ("add", "reset", "compute_returns_and_advantage"):
            setattr(buffer, name, wrap(getattr(buffer, name), BUFFER))
        if not batched:
            model.collect_rollouts = wrap(model.collect_rollouts, BOOKKEEPING)
            model.train = wrap(model.train, UPD_REST)
            policy.optimizer.step = wrap(policy.optimizer.step, UPD_OPT)
    try:
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


def run(agent: str, n_seeds: int, cfg: dict[str, Any], batched: bool, first_seed: int) -> dict[str, float]:
    """Train fresh models once (building not counted).

    :param agent: one of ``bench_seed_batch.AGENTS``.
    :param n_seeds: ``S``.
    :param cfg: ``bench_seed_batch``'s configuration (``frames``, ``n_envs``, ...).
    :param batched: ``learn_seed_batch`` (else ``S`` separate ``model.learn``).
    :param first_seed: the models' seeds are ``first_seed ...``.
    :return: CPU seconds per category (all ``S`` seeds), and ``total``.
    """
    models = [bench.build(agent, first_seed + s, cfg) for s in range(n_seeds)]
    attribution = Attribution()
    with patched(attribution, models, batched):
        attribution.last = start = time.process_time()
        if batched:
            bench.run_batched(models, agent, cfg["frames"])
        else:
            bench.run_separate(models, agent, cfg["frames"])
        attribution._switch()
        total = time.process_time() - start
    for model in models:
        model.env.close()  # type: ignore[union-attr]
    return {**attribution.seconds, "total": total}


def cprofile_table(agent: str, n_seeds: int, cfg: dict[str, Any], batched: bool, rows: int) -> str:
    """
    :param agent: the agent.
    :param n_seeds: ``S``.
    :param cfg: the configuration.
    :param batched: which mode.
    :param rows: how many functions.
    :return: the functions with the most own time, their calls per seed, own and cumulative seconds per seed.
    """
    models = [bench.build(agent, 1000 + s, cfg) for s in range(n_seeds)]
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    if batched:
        bench.run_batched(models, agent, cfg["frames"])
    else:
        bench.run_separate(models, agent, cfg["frames"])
    profiler.disable()
    for model in models:
        model.env.close()  # type: ignore[union-attr]
    stats = pstats.Stats(profiler, stream=io.StringIO())
    entries = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    lines = [f"{'calls/seed':>11} {'own s/seed':>10} {'cum s/seed':>10} {'own %':>6}  function"]
    for (file, line, name), (_, ncalls, own, cum, _) in entries[:rows]:
        where = f"{Path(file).name}:{line}" if line else file
        lines.append(
            f"{ncalls / n_seeds:11.1f} {own / n_seeds:10.4f} {cum / n_seeds:10.4f} {100 * own / total:6.1f}  "
            f"{name} ({where})"
        )
    return "\n".join(lines)


def report(agent: str, n_seeds: int, cfg: dict[str, Any], runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """
    :param agent: the agent.
    :param n_seeds: ``S``.
    :param cfg: the configuration.
    :param runs: per mode (``separate``, ``batched``), the per-repeat seconds of :func:`run`.
    :return: per category, the median per-seed seconds of each mode and their ratio; totals.
    """
    rows: dict[str, dict[str, float | None]] = {}
    for cat in (*CATEGORIES, "total"):
        sep = statistics.median(r[cat] for r in runs["separate"]) / n_seeds
        bat = statistics.median(r[cat] for r in runs["batched"]) / n_seeds
        rows[cat] = {"separate_s": sep, "batched_s": bat, "ratio": bat / sep if sep > 0 else None}
    ratios = [b["total"] / s["total"] for b, s in zip(runs["batched"], runs["separate"], strict=True)]
    return {"agent": agent, "seeds": n_seeds, "frames_per_seed": cfg["frames"], "categories": rows,
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}  # fmt: skip


def format_report(result: dict[str, Any], cfg: dict[str, Any], repeats: int) -> list[str]:
    """
    :param result: :func:`report`'s.
    :param cfg: the configuration.
    :param repeats: timed repeats.
    :return: the text table.
    """
    n = result["seeds"]
    rows = result["categories"]
    sep_total = rows["total"]["separate_s"]
    lines = [
        f"agent {result['agent']}, S = {n}: {n} separate model.learn vs one learn_seed_batch, {cfg['frames']} frames "
        f"per seed ({cfg['n_envs']} envs, n_steps {cfg['n_steps']}, {cfg['n_epochs']} epochs), CPU s per seed, "
        f"one thread, median of {repeats} alternating repeats; load average {os.getloadavg()[0]:.2f}.",
        "share: of the separate per-seed total; floor: batched per-seed s of the category over the separate "
        "per-seed total (what the category alone adds to the ratio).",
        "",
        f"{'category':<30} {'separate s':>10} {'batched s':>10} {'ratio':>7} {'share':>6} {'floor':>6}",
    ]
    for cat in (*CATEGORIES, "total"):
        r = rows[cat]
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:7.3f}"
        lines.append(
            f"{cat:<30} {r['separate_s']:10.4f} {r['batched_s']:10.4f} {ratio:>7} "
            f"{r['separate_s'] / sep_total:6.1%} {r['batched_s'] / sep_total:6.3f}"
        )
    lines.append(
        f"per-seed ratio (total): median {result['ratio_median']:.3f} (min {result['ratio_min']:.3f}, "
        f"max {result['ratio_max']:.3f}); target {bench.TARGET} at S = {bench.TARGET_SEEDS}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    """
    :param argv: the command line (``None``: ``sys.argv``).
    :return: the exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="meta-rim", choices=bench.AGENTS)
    parser.add_argument("--seeds", type=int, default=8, help="S (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per mode (default 3)")
    parser.add_argument("--iterations", type=int, default=3, help="rollout+update iterations (default 3)")
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--n-steps", type=int, default=32)
    parser.add_argument("--n-epochs", type=int, default=4)
    parser.add_argument("--rows", type=int, default=25, help="cProfile rows per mode (default 25)")
    parser.add_argument("--no-cprofile", action="store_true", help="skip the cProfile tables")
    parser.add_argument("--out", type=Path, default=None, help="write the report here (default: stdout)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg: dict[str, Any] = dict(n_envs=args.n_envs, n_steps=args.n_steps, n_epochs=args.n_epochs, device="cpu")
    cfg["frames"] = args.iterations * args.n_steps * args.n_envs
    warm = {**cfg, "frames": args.n_steps * args.n_envs}
    run(args.agent, 1, warm, True, 900)  # lazy initialisation, not kept
    run(args.agent, 1, warm, False, 900)
    runs: dict[str, list[dict[str, float]]] = {"separate": [], "batched": []}
    for r in range(args.repeats):
        for mode in ("batched", "separate") if r % 2 == 0 else ("separate", "batched"):
            runs[mode].append(run(args.agent, args.seeds, cfg, mode == "batched", 100 * r))
    result = report(args.agent, args.seeds, cfg, runs)
    lines = ["# profile_seed_batch.py: " + " ".join(sys.argv[1:] if argv is None else argv), ""]
    lines += format_report(result, cfg, args.repeats)
    if not args.no_cprofile:
        for mode in ("separate", "batched"):
            lines += ["", f"cProfile, {mode} (own time; per seed):"]
            lines.append(cprofile_table(args.agent, args.seeds, cfg, mode == "batched", args.rows))
    text = "\n".join(lines) + "\n"
    if args.out is None:
        print(text, end="")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(text, end="")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**result, "config": cfg, "repeats": args.repeats}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
