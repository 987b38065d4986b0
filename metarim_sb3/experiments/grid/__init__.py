"""Grids: a preset's agent x env x seed runs, in worker processes or as Ray Tune trials.

- :mod:`.presets`: the grid presets of ``presets/compare.yaml`` (or a YAML file), checked;
- :mod:`.compare`: plan a grid from a preset and run its cells (:func:`~.compare.plan`, :func:`~.compare.run_grid`);
- :mod:`.seed_packs`: the cells of a grid packed into seed batches, several seeds per worker (``--seed-batch``);
- :mod:`.ray_backend`: the cells as Ray Tune trials, on this machine or a Ray cluster (:mod:`.ray_output`: what the
  trials print and record);
- :mod:`.progress`: the progress lines both backends print;
- :mod:`.cost`: what a grid will cost, from measured run times (``metarim compare --dry-run``).
"""
