"""One run from Python: the presets as a typed RunConfig, some settings changed, run."""

import tempfile
from pathlib import Path

from metarim_sb3.experiments import resolve_config, run

# the lstm agent's presets on GoTo with a budget (as `metarim train --timesteps 256`)
config = resolve_config("lstm", "MetaRIM-GoTo-v0", timesteps=256)
print(config.ppo.learning_rate, config.policy_kwargs["lstm_hidden_size"])

# a checked copy (as --set): an unknown key or a bad value raises ConfigError
config = config.with_changes(
    n_envs=2,
    ppo={"n_steps": 64, "batch_size": 64},
    heldout_eval={"enabled": False},
    stage_eval={"enabled": False},
    final_eval={"episodes": 2, "n_envs": 1},
)
with tempfile.TemporaryDirectory() as tmp:
    # the run folder `metarim train --out` writes; the summary is its done.json
    result = run(config, seed=0, out_dir=Path(tmp) / "run")
    print(result["status"], result["timesteps"], result["heldout_success"])
