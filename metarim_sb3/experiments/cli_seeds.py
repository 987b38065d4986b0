"""``metarim train --seeds 0,1,2,3 --out DIR``: several seeds of one configuration in one process, each in its
ordinary run folder ``DIR/seed_<s>`` (:func:`~metarim_sb3.experiments.training.seed_runs.run_seeds`)."""

from __future__ import annotations

import argparse
import shlex
import sys

__all__ = ["train_seeds"]


def train_seeds(args: argparse.Namespace) -> int:
    """
    The ``train --seeds`` path of ``metarim train`` (its other options checked by the caller).

    :param args: the parsed ``train`` arguments, ``args.seeds`` given.
    :return: the exit code: 0, or 130 if the seeds were interrupted (each saved a checkpoint).
    :raises RunError: on options that do not go with ``--seeds``, or a folder that does not fit the request.
    :raises ConfigError: on bad ``--seeds`` values or a config the seed-batched trainer cannot run.
    """
    import torch
    import yaml

    from metarim_sb3.experiments.training.config import AGENTS, apply_overrides, parse_set, resolve_config
    from metarim_sb3.experiments.training.folder import RunError, read_run_config
    from metarim_sb3.experiments.training.ownership import check_out_dir
    from metarim_sb3.experiments.training.result import done_lines
    from metarim_sb3.experiments.training.seed_runs import check_seed_batch, parse_seeds, run_seeds, seed_folder
    from metarim_sb3.experiments.training.yaml_io import load_yaml

    if args.seed is not None:
        raise RunError("--seeds and --seed exclude each other: give the seeds as --seeds 0,1,2,3 (or one --seed)")
    seeds = parse_seeds(args.seeds)
    if args.out is None:
        raise RunError("--seeds needs --out DIR (the seeds' run folders are written to DIR/seed_<s>)")
    if args.wandb:
        raise RunError("--wandb is not available with --seeds (train the seeds one at a time with --seed to log them)")
    if args.progress:
        raise RunError("--progress is not available with --seeds (the seed-batched trainer has no progress bar)")
    overrides = parse_set(args.set)
    file_layer = load_yaml(args.config) if args.config is not None else None
    if args.resume:
        if args.force:
            raise RunError("--resume and --force exclude each other: continue the runs or start them over")
        for seed in seeds:
            check_out_dir(seed_folder(args.out, seed), resume=True, force=False)
        saved = read_run_config(seed_folder(args.out, seeds[0]))
        for name, value, old in (("agent", args.agent, saved.agent), ("env", args.env, saved.env)):
            if value is not None and value != old:
                raise RunError(f"--{name} {value} differs from the runs' {name} {old}; omit it with --resume")
        top = {"timesteps": args.timesteps} if args.timesteps is not None else None
        config = apply_overrides(saved.with_changes(seed=None), file_layer, overrides, top)
    else:
        if args.agent is None:
            raise RunError(f"the following argument is required: --agent (choose from {', '.join(AGENTS)})")
        env = args.env or "MetaRIM-DoorKey-v0"
        config = resolve_config(args.agent, env, config_file=args.config, overrides=overrides, timesteps=args.timesteps)
    check_seed_batch(config)
    if args.print_config:
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        return 0
    torch.set_num_threads(args.threads)
    listed = ", ".join(map(str, seeds))
    print(f"training {config.agent} on {config.env} for {config.timesteps} steps, seeds {listed} in one process "
          f"-> {seed_folder(args.out, seeds[0]).parent}/seed_<s>")  # fmt: skip
    results = run_seeds(config, seeds, args.out, resume=args.resume, force=args.force)
    interrupted = [r for r in results if r["status"] == "interrupted"]
    for seed, result in zip(seeds, results, strict=True):
        out = seed_folder(args.out, seed)
        if result["status"] == "interrupted":
            print(f"seed {seed} interrupted: checkpoint at {result['timesteps']} steps in {out}", file=sys.stderr)
        else:
            print("\n".join(f"seed {seed} {line}" for line in done_lines(result, out)))
    if interrupted:
        again = f"metarim train --resume --out {shlex.quote(str(args.out))} --seeds {shlex.quote(args.seeds)}"
        print(f"continue with: {again}", file=sys.stderr)
        return 130
    return 0
