"""Training: one run, from a resolved configuration to a run folder.

- :mod:`.config`: agent and env presets (YAML in ``presets/``), overrides, value checks -> one plain ``dict``;
  :mod:`.yaml_io` reads the YAML safely (bounded, nothing evaluated);
- :mod:`.runner`: :func:`~.runner.run`, one run as a pure function ``run(config, seed, out_dir) -> summary``;
  :mod:`.model` builds its model and callbacks, :mod:`.resume` checks and applies a resume;
  :mod:`.seed_runs`: :func:`~.seed_runs.run_seeds`, several seeds in one process, each in its own run folder;
- :mod:`.folder`: the run folder's layout, atomic writes and reads; :mod:`.ownership`: the marker, the lock and
  what may be cleared;
- :mod:`.monitoring`: the run's own callbacks (learning curve, mastery, checkpoints, NaN guard, stop flag);
- :mod:`.envs`, :mod:`.signals`, :mod:`.provenance`, :mod:`.wandb_logging`: the vectorised environments,
  SIGINT / SIGTERM, the git commit of the code, optional Weights & Biases logging;
- :mod:`.evaluate`: evaluate or render a trained model;
- :mod:`.generalization`: the zero-shot tests of a trained model on other (larger) stages of its family, at the
  end of its run.
"""
