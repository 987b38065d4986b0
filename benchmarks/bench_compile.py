"""Does ``torch.compile`` pay anywhere on the training path? Eager vs compiled, side by side, on CPU.

Cases (the RIM of ``bench_rim.py``: input 64, 6 units x 64, k 4; one torch thread unless ``--threads``):

* ``core train T=32 B=16`` / ``B=64``: forward + backward of the RIM core. Eager is the fused kernel (the default);
  compiled is ``torch.compile`` of the plain-torch reference loop (``fused=False``): the fused kernel itself is
  opaque to the compiler (its scratch pool cannot be traced; compiled callers run it eagerly, see
  :func:`metarim_sb3.cores.rim.module._run`), so the question is whether inductor's code for the reference beats it;
* ``core rollout T=1 B=8``: one no-grad step, the fused no-grad kernel vs the compiled reference loop;
* ``policy update``: one minibatch of ``ChunkedRecurrentPPO`` on ``MetaRIM-GoTo-v0`` (shared RIM, chunks of 16,
  batch 128): ``policy.evaluate_actions`` + backward, eager vs ``torch.compile(policy.evaluate_actions)`` (the
  extractor, heads and distribution compiled; the RIM core runs eagerly inside);
* ``training, compiled rollout core``: whole ``learn()`` runs (``bench_train.py``'s ``rim_shared_chunked`` setup)
  whose rollout steps run the RIM by the eager no-grad kernel or by the compiled reference loop (patched in for
  the measurement): does the rollout case's gain survive a real run? Times in ms per environment step; the
  ``compile s`` column is the whole first (compiling) run of 1024 steps.

Each case times eager and compiled calls back to back, alternating which goes first, after warm-up calls (the
first compiled call, which compiles, is timed separately as ``compile s``, with an empty compile cache); the table
shows medians of the per-repeat ratios (compiled / eager: below 1 means compiling pays). The project compiles
nothing by default; these figures are why.

    python benchmarks/bench_compile.py [--quick] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# A cold compile cache of our own, so that ``compile s`` is what a first compile costs (inductor keeps compiled
# code on disk between processes); removed at exit.
_CACHE = tempfile.mkdtemp(prefix="bench_compile_")
os.environ["TORCHINDUCTOR_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)

import torch  # noqa: E402  (after the cache location is set)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_rim import HIDDEN, INPUT, UNIT_SIZE, UNITS, K, compare  # noqa: E402  (this folder: the same RIM)

from metarim_sb3.cores.rim import RIM  # noqa: E402
from metarim_sb3.cores.rim.reference import rim_sequence  # noqa: E402

#: Compiling counts as paying when the compiled call takes at most this fraction of the eager one.
PAYS = 0.95


def side_by_side(eager: Callable[[], object], compiled: Callable[[], object], n: int, repeats: int) -> dict[str, float]:
    """
    :param eager: the eager call.
    :param compiled: the compiled call (already compiled).
    :param n: calls per timing.
    :param repeats: timings of each, alternating which goes first.
    :return: median ms of each and the median of the per-repeat ratios compiled / eager.
    """
    timed = compare(compiled, eager, n, repeats)  # bench_rim's alternating timer: candidate first, then reference
    return {"eager_ms": timed["ref_ms"], "compiled_ms": timed["rim_ms"], "ratio": timed["ratio_median"]}


def _compile_first(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def core_train(batch: int, n: int, repeats: int) -> dict[str, float]:
    """The fused RIM's forward + backward vs the compiled reference loop, ``T=32``."""
    torch.manual_seed(0)
    fused = RIM(INPUT, UNITS, UNIT_SIZE, K)
    reference = RIM(INPUT, UNITS, UNIT_SIZE, K, fused=False)
    reference.load_state_dict(fused.state_dict())
    compiled = torch.compile(reference)
    x = torch.randn(32, batch, INPUT, requires_grad=True)
    state = (torch.zeros(1, batch, HIDDEN), torch.zeros(1, batch, HIDDEN))

    def run(core: Callable[..., Any]) -> Callable[[], None]:
        def call() -> None:
            out, _ = core(x, state)
            out.sum().backward()

        return call

    compile_s = _compile_first(run(compiled))
    return {**side_by_side(run(fused), run(compiled), n, repeats), "compile_s": compile_s}


def core_rollout(n: int, repeats: int) -> dict[str, float]:
    """One no-grad step of the fused RIM (its no-grad kernel) vs the compiled reference loop, ``B=8``."""
    torch.manual_seed(0)
    fused = RIM(INPUT, UNITS, UNIT_SIZE, K).eval()
    x = torch.randn(1, 8, INPUT)
    h0, c0 = torch.zeros(8, HIDDEN), torch.zeros(8, HIDDEN)
    keep = torch.ones(1, 8)
    # without gradients a RIM always runs the kernel, so the reference loop is called directly here
    compiled = torch.compile(rim_sequence)

    @torch.no_grad()
    def eager() -> None:
        fused(x, (h0[None], c0[None]), 1.0 - keep)

    @torch.no_grad()
    def reference() -> None:
        compiled(fused, x, h0, c0, keep)

    compile_s = _compile_first(reference)
    return {**side_by_side(eager, reference, n, repeats), "compile_s": compile_s}


def policy_update(n: int, repeats: int) -> dict[str, float]:
    """One chunked minibatch's ``evaluate_actions`` + backward, eager vs compiled."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    import metarim_gym  # noqa: F401  (registers the ids)
    from metarim_sb3 import MiniGridExtractor, MultiInputRIMPolicy
    from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO

    env = DummyVecEnv([lambda: gym.make("MetaRIM-GoTo-v0") for _ in range(8)])
    kwargs = dict(features_extractor_class=MiniGridExtractor, normalize_images=False, shared_lstm=True,
                  enable_critic_lstm=False)  # fmt: skip
    model = ChunkedRecurrentPPO(
        MultiInputRIMPolicy, env, chunk_len=16, n_steps=128, batch_size=128, n_epochs=1, policy_kwargs=kwargs, seed=0
    )
    model.learn(1024)  # fills the rollout buffer
    batch = next(model.rollout_buffer.get(128))
    compiled = torch.compile(model.policy.evaluate_actions)

    def run(fn: Callable[..., Any]) -> Callable[[], None]:
        def call() -> None:
            values, log_prob, entropy = fn(batch.observations, batch.actions, batch.lstm_states, batch.episode_starts)
            (values.sum() + log_prob.sum() + entropy.sum()).backward()

        return call

    compile_s = _compile_first(run(compiled))
    result = side_by_side(run(model.policy.evaluate_actions), run(compiled), n, repeats)
    env.close()
    return {**result, "compile_s": compile_s}


def training_with_compiled_rollout(timesteps: int, repeats: int) -> dict[str, float]:
    """A whole ``learn()`` (MultiRoom stage 0, the ``rim_shared_chunked`` setup of ``bench_train.py``) with the
    rollout's no-grad RIM step run by the eager kernel vs by the compiled reference loop; times in ms per step."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    import metarim_gym  # noqa: F401  (registers the ids)
    import metarim_sb3.cores.rim.module as rim_module
    from metarim_sb3 import MiniGridExtractor, MultiInputRIMPolicy
    from metarim_sb3.ppo.chunked import ChunkedRecurrentPPO

    kernel = rim_module._kernel
    compiled = torch.compile(rim_sequence)

    def compiled_kernel(cores: tuple[RIM, ...], cfg: Any, needs_grad: bool, rows: torch.Tensor, kq: torch.Tensor,
                        keep: Any, drop: Any, h0: torch.Tensor, c0: torch.Tensor) -> Any:  # fmt: skip
        if needs_grad or len(cores) > 1:
            return kernel(cores, cfg, needs_grad, rows, kq, keep, drop, h0, c0)
        return compiled(cores[0], rows.view(kq.shape[0], kq.shape[2], -1), h0, c0, keep, drop)

    def learn(use: Callable[..., Any], steps: int) -> float:
        env = DummyVecEnv([lambda: gym.make("MetaRIM-MultiRoom-v0", stage=0) for _ in range(8)])
        kwargs = dict(features_extractor_class=MiniGridExtractor, normalize_images=False, n_units=6, unit_size=32,
                      k=4, shared_lstm=True, enable_critic_lstm=False)  # fmt: skip
        model = ChunkedRecurrentPPO(MultiInputRIMPolicy, env, policy_kwargs=kwargs, seed=0, chunk_len=16, n_steps=128,
                                    batch_size=128, n_epochs=10)  # fmt: skip
        rim_module._kernel = use  # type: ignore[assignment]
        try:
            start = time.perf_counter()
            model.learn(steps)
            return (time.perf_counter() - start) / model.num_timesteps * 1e3
        finally:
            rim_module._kernel = kernel
            env.close()

    compile_s = learn(compiled_kernel, 1024) * 1024 / 1e3  # the first call compiles; counted whole
    learn(kernel, 1024)
    te: list[float] = []
    tc: list[float] = []
    for r in range(repeats):
        for use in (kernel, compiled_kernel) if r % 2 == 0 else (compiled_kernel, kernel):
            (te if use is kernel else tc).append(learn(use, timesteps))
    return {
        "eager_ms": statistics.median(te),
        "compiled_ms": statistics.median(tc),
        "ratio": statistics.median(c / e for c, e in zip(tc, te, strict=True)),
        "compile_s": compile_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run, noisy)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a study run)")
    parser.add_argument("--repeats", type=int, default=None, help="timings per case (default 7, quick 2)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 7)
    n_train, n_roll, n_update = (1, 20, 2) if args.quick else (3, 200, 10)
    torch.set_num_threads(args.threads)

    rows: list[dict[str, Any]] = []
    for batch in (16, 64):
        rows.append(dict(case=f"core train T=32 B={batch}", **core_train(batch, n_train, repeats)))
        print(f"  {rows[-1]['case']}: {rows[-1]['ratio']:.2f}", flush=True)
    rows.append(dict(case="core rollout T=1 B=8", **core_rollout(n_roll, repeats)))
    print(f"  {rows[-1]['case']}: {rows[-1]['ratio']:.2f}", flush=True)
    rows.append(dict(case="policy update (chunked minibatch 128)", **policy_update(n_update, repeats)))
    print(f"  {rows[-1]['case']}: {rows[-1]['ratio']:.2f}", flush=True)
    steps = 2048 if args.quick else 4096
    training = training_with_compiled_rollout(steps, max(2, repeats // 2))  # half the repeats: whole runs
    rows.append(dict(case="training, compiled rollout core", steps=steps, **training))

    head = f"{'case':<40} {'eager ms':>9} {'compiled ms':>12} {'ratio':>6} {'compile s':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['case']:<40} {r['eager_ms']:>9.3f} {r['compiled_ms']:>12.3f} {r['ratio']:>6.2f} "
              f"{r['compile_s']:>10.1f}")  # fmt: skip
    paying = [r["case"] for r in rows if r["ratio"] <= PAYS]
    print(f"compiling pays (ratio <= {PAYS}) in: {', '.join(paying) if paying else 'no case'}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if args.json is not None:
        meta = dict(torch=torch.__version__, cpus=os.cpu_count(), load_average=load, platform=platform.platform(),
                    threads=args.threads, repeats=repeats, pays=PAYS)  # fmt: skip
        args.json.write_text(json.dumps(dict(meta=meta, results=rows), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
