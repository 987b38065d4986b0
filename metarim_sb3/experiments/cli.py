"""``metarim``: train, evaluate, compare, report and render Meta-RIM agents on shifting MiniGrid families.

Exit codes: 0 success; 2 bad input, a damaged run file, or a run folder another process is writing (one line on
stderr naming the problem and the allowed values; nothing is written or deleted); 3 training diverged (NaN/inf;
the last good checkpoint is kept); 130 interrupted by SIGINT/SIGTERM (``train``/``compare``: a checkpoint was
saved, continue with ``--resume`` / the same ``compare`` command). Model files are pickles: open only run
folders you trust.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from metarim_sb3.experiments.reporting.claims import Claims

__all__ = ["main"]

EPILOG = (
    "evaluation cost: evaluations do not scale with --timesteps. After training, final_eval.episodes held-out "
    "episodes are run, and every heldout_eval.every steps heldout_eval.episodes (the env's values: "
    "--print-config); on a tiny budget lower them, e.g. --set final_eval.episodes=10 --set "
    "heldout_eval.enabled=false. The closing line reports training time and evaluation time apart.\n\n"
    "exit codes: 0 ok, 2 bad input, 3 diverged (NaN; last good checkpoint kept), "
    "130 interrupted (checkpoint saved; continue with --resume)"
)
COMPARE_EPILOG = (
    "exit codes: 0 ok, 1 some run failed (see its error.log), 2 bad input, 130 interrupted (each run saved a "
    "checkpoint; run the same command again to resume: complete runs are skipped)"
)


#: Modules of the ``experiments`` extra the command needs (plots, TensorBoard logs, progress bar).
EXPERIMENTS_EXTRA = ("matplotlib", "tensorboard", "rich", "tqdm")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks; every option's help states its default itself."""


def _fail(prog: str, message: str, code: int = 2) -> NoReturn:
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(code)


def _show_progress(flag: bool | None) -> bool:
    """
    :param flag: ``--progress`` (true), ``--no-progress`` (false) or neither (none).
    :return: whether to show progress: the flag, else whether stderr is a terminal outside CI (``CI`` unset).
    """
    if flag is not None:
        return flag
    return sys.stderr.isatty() and not os.environ.get("CI")


def _command() -> str:
    return " ".join(shlex.quote(a) for a in ["metarim", *sys.argv[1:]])


def _build_parser() -> argparse.ArgumentParser:
    from metarim_sb3.experiments.grid.presets import compare_preset_names
    from metarim_sb3.experiments.training.config import AGENTS, env_ids

    description = (__doc__ or "").replace("``", "")  # plain text in a terminal
    parser = _Parser(prog="metarim", description=description, formatter_class=_Formatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    envs = env_ids()

    p = sub.add_parser(
        "train",
        help="train one agent on one env",
        description="Train one agent on one env, then evaluate it zero-shot on the held-out stage.",
        formatter_class=_Formatter,
        epilog=EPILOG,
    )
    p.add_argument(
        "--agent", choices=AGENTS, default=None, help="agent preset (required unless --resume; default: none)"
    )
    p.add_argument(
        "--env",
        choices=envs,
        default=None,
        metavar="ID",
        help=f"environment id (default: MetaRIM-DoorKey-v0; with --resume: the run's); one of {', '.join(envs)}",
    )
    p.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help="training budget in env steps (default: the preset's; with --resume: the run's)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed (default: 0; with --resume: the run's)")
    p.add_argument(
        "--seeds",
        default=None,
        metavar="S,S,...",
        help="train several seeds in one process (e.g. 0,1,2,3; needs --out DIR and ppo.chunk_len), each in its "
        "run folder DIR/seed_<s>; with --resume: continue them all (default: one run, --seed)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run folder (default: runs/<agent>-<family>-seed<seed>, e.g. runs/meta-rim-doorkey-seed0)",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML file of config overrides, keys as in config.yaml (default: none)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, dotted (e.g. ppo.learning_rate=3e-4); repeatable (default: none)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint (default: off)"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the run in --out (its run files only; refused for a folder that holds no run) (default: off)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress on stderr: training steps, fps and ETA, then final-evaluation episodes with an ETA "
        "(default: on when stderr is a terminal and CI is unset)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; the small nets here gain little from more and lose much on shared cores "
        "(default: %(default)s)",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit (default: off)")
    p.add_argument(
        "--wandb",
        action="store_true",
        help="also log to Weights & Biases (files under the run folder's wandb/; WANDB_MODE=offline keeps them "
        'local); needs the wandb extra: pip install -e ".[wandb]" (default: off)',
    )

    p = sub.add_parser(
        "evaluate",
        help="success rate and return of a run on one stage, with 95%% CIs",
        description="Evaluate a finished run on one stage: success rate and return, with 95% CIs.",
        formatter_class=_Formatter,
    )
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--stage", default="heldout", help="'heldout' or a training stage index (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=100, help="episodes (default: %(default)s)")
    p.add_argument(
        "--seed", type=int, default=10_000, help="seed of the evaluation environments (default: %(default)s)"
    )
    p.add_argument("--n-envs", type=int, default=8, help="parallel evaluation environments (default: %(default)s)")
    p.add_argument(
        "--trust-model",
        action="store_true",
        help="load the run's whole SB3 zip, pickles included (they run code: only for a folder you trust); "
        "default: rebuild the model from the run's config.yaml and read only the policy's weights (default: off)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="episodes done / total with an ETA on stderr (default: on when stderr is a terminal and CI is unset)",
    )

    p = sub.add_parser(
        "compare",
        help="run an agent x env x seed grid in parallel, then report",
        description="Run an agent x env x seed grid in parallel (resumable), on this machine or on Ray "
        "(--backend ray), then write the report.",
        formatter_class=_Formatter,
        epilog=COMPARE_EPILOG,
    )
    p.add_argument(
        "--preset",
        default="quick",
        help=f"grid preset: {', '.join(compare_preset_names())} or a YAML file (default: %(default)s)",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per agent and env (default: the preset's)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes of the local backend (default: number of CPU cores)",
    )
    p.add_argument(
        "--seed-batch",
        type=int,
        default=1,
        metavar="S",
        help="with --backend local: train up to S seeds of one agent and env in one worker process (configs with "
        "ppo.chunk_len null run one seed per process) (default: %(default)s, one seed per process)",
    )
    p.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="where the runs go: worker processes on this machine, or Ray Tune trials on a local Ray or a Ray "
        "cluster (needs pip install metarim[ray]) (default: %(default)s)",
    )
    p.add_argument(
        "--address",
        default=None,
        metavar="auto|HOST:PORT",
        help="with --backend ray: the running Ray cluster to use (ray start --head); 'auto' finds the one this "
        "machine belongs to (default: start Ray on this machine for the grid)",
    )
    p.add_argument(
        "--cpus-per-run",
        type=int,
        default=None,
        metavar="N",
        help="with --backend ray: CPUs each run reserves, and its torch threads (default: 1)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        default=None,
        help="with --backend ray: also Tune's status table, the runs' output and Ray's own tracebacks (default: "
        "one line per finished or retried run; each run's output and errors are in its train.log)",
    )
    p.add_argument("--out", type=Path, default=None, help="results folder (default: results/<preset>)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key in every run, as in train (default: none)",
    )
    p.add_argument("--no-report", action="store_true", help="skip the report at the end (default: off)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (runs, frames) and its CPU core-hours and wall hours at --workers, estimated from "
        "measured ms per step (presets/costs.yaml), then exit without running (default: off)",
    )
    p.add_argument(
        "--costs-from",
        type=Path,
        metavar="RUNS",
        default=None,
        help="with --dry-run: estimate from the wall time per step of the complete runs under this folder (e.g. "
        "an earlier grid's runs/) instead of presets/costs.yaml (default: none)",
    )
    p.add_argument(
        "--allow-dirty",
        action="store_true",
        help="write under the repository's results/ from a tree with uncommitted changes (default: off)",
    )

    p = sub.add_parser(
        "report",
        help="summary.csv, plots and report.md from run folders",
        description="Write summary.csv, plots and report.md from finished run folders.",
        formatter_class=_Formatter,
    )
    p.add_argument("runs", nargs="+", type=Path, help="run folders, or folders searched for them (recursively)")
    p.add_argument("--out", type=Path, required=True, help="report folder (required)")
    p.add_argument(
        "--reference",
        choices=AGENTS,
        default=None,
        help="agent the paired comparisons compare with (default: the claims' reference, else meta-rim)",
    )
    p.add_argument(
        "--claims",
        metavar="PRESET",
        default=None,
        help="give a verdict on the claims a comparison preset declares (a name, e.g. study, or a YAML file; "
        "default: none)",
    )

    p = sub.add_parser(
        "render",
        help="record an env (and optionally a trained model) to a GIF",
        description="Record an env, acted in by a trained model or at random, to a GIF.",
        formatter_class=_Formatter,
    )
    p.add_argument(
        "--env", choices=envs, default=None, metavar="ID", help="environment id (default: the --model run's)"
    )
    p.add_argument("--model", type=Path, default=None, help="run folder whose model acts (default: random actions)")
    p.add_argument("--stage", default="0", help="'heldout' or a stage index (default: %(default)s)")
    p.add_argument("--steps", type=int, default=200, help="frames to record (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="output .gif or .mp4 file (required)")
    p.add_argument(
        "--trust-model",
        action="store_true",
        help="load the run's whole SB3 zip, pickles included (they run code: only for a folder you trust); "
        "default: rebuild the model from the run's config.yaml and read only the policy's weights (default: off)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="frames recorded / total with an ETA on stderr (default: on when stderr is a terminal and CI is unset)",
    )
    return parser


def _train(args: argparse.Namespace, prog: str) -> int:
    from metarim_sb3.experiments.training.config import (
        AGENTS,
        apply_overrides,
        check_seed,
        parse_set,
        resolve_config,
    )
    from metarim_sb3.experiments.training.folder import RunError, read_run_config
    from metarim_sb3.experiments.training.ownership import check_out_dir
    from metarim_sb3.experiments.training.result import done_lines
    from metarim_sb3.experiments.training.runner import run
    from metarim_sb3.experiments.training.yaml_io import load_yaml

    overrides = parse_set(args.set)
    if args.wandb and not args.print_config:  # refused before anything is built or printed
        from metarim_sb3.experiments.training.wandb_logging import require_wandb

        try:
            require_wandb()
        except ModuleNotFoundError as err:
            raise RunError(str(err)) from None
    if args.timesteps is not None and args.timesteps < 1:
        raise RunError(f"--timesteps must be a positive integer, got {args.timesteps}")
    max_threads = 4 * (os.cpu_count() or 1)
    if not 1 <= args.threads <= max_threads:
        raise RunError(f"--threads must be an integer from 1 to {max_threads} (4 x the CPU cores), got {args.threads}")
    if args.seeds is not None:  # several seeds in one process, each in its run folder DIR/seed_<s>
        from metarim_sb3.experiments.cli_seeds import train_seeds

        return train_seeds(args)
    if args.seed is not None:
        check_seed(args.seed)
    if args.resume:
        if args.out is None:
            raise RunError("--resume needs --out RUN (the run folder to continue)")
        if args.force:
            raise RunError("--resume and --force exclude each other: continue the run or start it over")
        check_out_dir(args.out, resume=True, force=False)
        saved = read_run_config(args.out)
        seed = 0 if saved.seed is None else saved.seed
        for name, value, old in (("agent", args.agent, saved.agent), ("env", args.env, saved.env),
                                 ("seed", args.seed, seed)):  # fmt: skip
            if value is not None and value != old:
                raise RunError(f"--{name} {value} differs from the run's {name} {old}; omit it with --resume")
        file_layer = load_yaml(args.config) if args.config is not None else None
        top = {"timesteps": args.timesteps} if args.timesteps is not None else None
        config = apply_overrides(saved.with_changes(seed=None), file_layer, overrides, top)
        out = args.out
    else:
        if args.agent is None:
            raise RunError(f"the following argument is required: --agent (choose from {', '.join(AGENTS)})")
        env = args.env or "MetaRIM-DoorKey-v0"
        seed = 0 if args.seed is None else args.seed
        config = resolve_config(args.agent, env, config_file=args.config, overrides=overrides, timesteps=args.timesteps)
        out = args.out or Path("runs") / f"{args.agent}-{env.split('-')[1].lower()}-seed{seed}"
        if args.print_config:
            import yaml

            print(yaml.safe_dump(config.with_changes(seed=seed).to_dict(), sort_keys=False), end="")
            return 0
    import torch

    torch.set_num_threads(args.threads)
    progress = _show_progress(args.progress)
    print(f"training {config.agent} on {config.env} for {config.timesteps} steps, seed {seed} -> {out}")
    result = run(config, seed, out, resume=args.resume, force=args.force, progress_bar=progress, wandb=args.wandb)
    if result["status"] == "interrupted":
        print(f"interrupted: checkpoint at {result['timesteps']} steps in {out}; continue with: "
              f"metarim train --resume --out {shlex.quote(str(out))}", file=sys.stderr)  # fmt: skip
        return 130
    print("\n".join(done_lines(result, out)))
    return 0


def _check_address(address: str) -> None:
    """
    :param address: ``--address``.
    :raises ConfigError: unless it is ``auto`` or ``HOST:PORT`` with a port in 1..65535.
    """
    from metarim_sb3.experiments.training.yaml_io import ConfigError

    host, _, port = address.rpartition(":")
    if address == "auto" or (host and port.isdigit() and 1 <= int(port) <= 65535 and " " not in host):
        return
    raise ConfigError(f"--address must be 'auto' or HOST:PORT (e.g. 10.0.0.1:6379), got {address!r}")


def _check_backend_args(args: argparse.Namespace) -> None:
    """
    The options of ``compare`` that belong to one backend; with ``--backend ray``, also that Ray is installed.

    :param args: the parsed ``compare`` arguments.
    :raises ConfigError: on an option of the other backend, a bad value, or Ray missing.
    """
    from metarim_sb3.experiments.grid import ray_backend
    from metarim_sb3.experiments.training.yaml_io import ConfigError

    if args.backend != "ray":
        ray_options = ("--address", args.address), ("--cpus-per-run", args.cpus_per_run), ("--verbose", args.verbose)
        for option, value in ray_options:
            if value is not None:
                raise ConfigError(f"{option} is an option of --backend ray (this compare runs on --backend local)")
        return
    if args.workers is not None:
        raise ConfigError(
            "--workers is an option of --backend local; with --backend ray the cluster's CPUs and --cpus-per-run "
            "set how many runs go at once"
        )
    if args.cpus_per_run is not None and args.cpus_per_run < 1:
        raise ConfigError(f"--cpus-per-run must be a positive integer, got {args.cpus_per_run}")
    if args.address is not None:
        _check_address(args.address)
    try:
        ray_backend.require_ray()
    except ray_backend.RayMissingError as err:
        raise ConfigError(str(err)) from None


def _preset_claims(preset: str) -> tuple[Claims, list[tuple[str, str, int]]]:
    """:return: the claims a preset declares and the (env, agent, seed) runs its grid plans."""
    from metarim_sb3.experiments.grid.compare import seed_list
    from metarim_sb3.experiments.grid.presets import compare_preset
    from metarim_sb3.experiments.training.yaml_io import ConfigError

    grid = compare_preset(preset)
    if grid["claims"] is None:
        raise ConfigError(f"--claims: preset {preset} declares no claims")
    planned = [(e, a, s) for e in grid["envs"] for a in grid["agents"] for s in seed_list(grid, e)]
    return grid["claims"], planned


def _compare(args: argparse.Namespace) -> int:
    from metarim_sb3.experiments.grid.compare import plan, run_grid, run_grid_ray
    from metarim_sb3.experiments.grid.presets import MAX_SEEDS, compare_preset
    from metarim_sb3.experiments.grid.ray_backend import RayConnectionError
    from metarim_sb3.experiments.grid.seed_packs import SEED_BATCH_DRY_RUN, check_seed_batch_option
    from metarim_sb3.experiments.reporting.report import build_report
    from metarim_sb3.experiments.training.config import parse_set
    from metarim_sb3.experiments.training.provenance import check_results_tree
    from metarim_sb3.experiments.training.yaml_io import ConfigError

    if args.seeds is not None and not 1 <= args.seeds <= MAX_SEEDS:
        raise ConfigError(f"--seeds must be an integer from 1 to {MAX_SEEDS}, got {args.seeds}")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {args.workers}")
    check_seed_batch_option(args.seed_batch, args.backend)
    _check_backend_args(args)
    name = Path(args.preset).stem if args.preset.endswith((".yaml", ".yml")) else args.preset
    out = args.out or Path("results") / name
    if args.costs_from is not None and not args.dry_run:
        raise ConfigError("--costs-from is an option of --dry-run (it estimates, it does not run)")
    if args.dry_run:
        from metarim_sb3.experiments.grid.compare import default_workers
        from metarim_sb3.experiments.grid.cost import costs_from_runs, describe_plan, load_costs

        jobs = plan(args.preset, out, args.seeds, parse_set(args.set))
        costs = costs_from_runs([args.costs_from]) if args.costs_from is not None else load_costs()
        runs = [(j.config.variant_of or j.agent, j.env, j.config.timesteps) for j in jobs]
        print(f"dry run of preset {args.preset} -> {out} (nothing is run or written)")
        print(describe_plan(runs, args.workers or default_workers(), costs))
        if args.seed_batch > 1:
            print(SEED_BATCH_DRY_RUN)
        return 0
    check_results_tree(out, allow_dirty=args.allow_dirty)
    jobs = plan(args.preset, out, args.seeds, parse_set(args.set))
    if args.backend == "ray":
        try:
            results, interrupted = run_grid_ray(
                jobs, out, args.address, args.cpus_per_run or 1, verbose=bool(args.verbose)
            )
        except RayConnectionError as err:
            raise ConfigError(str(err)) from None
    else:
        results, interrupted = run_grid(jobs, args.workers, seed_batch=args.seed_batch)
    if interrupted:
        print(f"interrupted: run the same command again to resume ({_command()})", file=sys.stderr)
        return 130
    failed = [r for r in results if r.get("status") != "done"]
    if not args.no_report:
        claims = compare_preset(args.preset)["claims"]
        planned = [(j.env, j.agent, j.seed) for j in jobs]
        paths = build_report([j.out_dir for j in jobs], out, command=_command(), claims=claims, planned=planned)
        print(f"report: {paths['report']}")
    return 1 if failed else 0


def _dispatch(args: argparse.Namespace, prog: str) -> int:
    if args.command == "train":
        return _train(args, prog)
    if args.command == "compare":
        return _compare(args)
    if args.command == "evaluate":
        from metarim_sb3.experiments.training.evaluate import evaluate_run, format_table
        from metarim_sb3.experiments.training.folder import eval_files

        progress = _show_progress(args.progress)
        summary = evaluate_run(
            args.run, args.stage, args.episodes, args.seed, args.n_envs, progress=progress, trust=args.trust_model
        )
        print(format_table(summary))
        print("saved " + " and ".join(str(args.run / name) for name in eval_files(summary["stage"])))
        return 0
    if args.command == "report":
        from metarim_sb3.experiments.reporting.report import build_report
        from metarim_sb3.experiments.training.yaml_io import ConfigError

        claims, planned = _preset_claims(args.claims) if args.claims else (None, None)
        if claims is not None and args.reference not in (None, claims.reference):
            raise ConfigError(
                f"--reference must be {claims.reference} with --claims {args.claims}, got {args.reference}"
            )
        paths = build_report(
            args.runs, args.out, command=_command(), reference=args.reference, claims=claims, planned=planned
        )
        print("\n".join(f"{k}: {v}" for k, v in paths.items()))
        return 0
    if args.command == "render":
        from metarim_sb3.experiments.training.evaluate import render_gif
        from metarim_sb3.experiments.training.folder import RunError

        if args.env is None and args.model is None:
            raise RunError("render needs --env ID or --model RUN")
        if args.steps < 1:
            raise RunError(f"--steps must be a positive integer, got {args.steps}")
        path = render_gif(
            args.out,
            args.env,
            args.model,
            args.stage,
            args.steps,
            args.seed,
            progress=_show_progress(args.progress),
            trust=args.trust_model,
        )
        print(f"wrote {path}")
        return 0
    raise AssertionError(args.command)


def main(argv: list[str] | None = None) -> Any:
    """
    Entry point of the ``metarim`` console script.

    :param argv: arguments (default: ``sys.argv[1:]``).
    :return: the exit code.
    """
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    missing = [name for name in EXPERIMENTS_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        _fail("metarim", f"the metarim command needs {', '.join(missing)}: pip install metarim[experiments]", 1)
    parser = _build_parser()
    args = parser.parse_args(argv)
    prog = f"metarim {args.command}"
    from metarim_sb3.experiments.training.folder import RunError
    from metarim_sb3.experiments.training.monitoring import NonFiniteError
    from metarim_sb3.experiments.training.yaml_io import ConfigError

    try:
        code = _dispatch(args, prog)
    except (ConfigError, RunError) as err:
        _fail(prog, str(err), 2)
    except NonFiniteError as err:
        _fail(prog, f"training diverged: {err}", 3)
    except KeyboardInterrupt:
        _fail(prog, "interrupted", 130)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
