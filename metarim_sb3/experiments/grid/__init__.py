"""Grids: a preset's agent x env x seed runs, in worker processes or as Ray Tune trials.

- :mod:`.compare`: plan a grid from a preset and run its cells (:func:`~.compare.plan`, :func:`~.compare.run_grid`);
- :mod:`.ray_backend`: the cells as Ray Tune trials, on this machine or a Ray cluster;
- :mod:`.cost`: what a grid will cost, from measured run times (``metarim compare --dry-run``).
"""
