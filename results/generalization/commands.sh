# Zero-shot to larger rooms (issue 24; protocol and decision rule: the `generalization` preset's description in
# metarim_sb3/experiments/presets/compare.yaml, committed at fbc1eb5 before any run).
# The pilot (pilot/preset.yaml, committed at eaffa90 before it ran): lstm, seeds 0-2, both training envs, the declared
# budget of 344,064 frames, from a clean clone at eaffa90 (PYTHONPATH=<clone>), one worker, one torch thread, while
# other work shared the 2 cores (wall times are not costs). Only run summaries are committed.
git clone <this repository> gp && cd gp && git checkout eaffa90
metarim compare --preset results/generalization/pilot/preset.yaml --out results/generalization/pilot --workers 1 --no-report
# The pilot's report (its "Training plateau" table decides whether the budget stands), in a clean clone of the commit
# that adds the runs (both pilots' reports regenerated at 1684b9d, whose report names summary.csv's rows rightly; no
# number changed):
metarim report results/generalization/pilot/runs --out results/generalization/pilot
# The repeated DoorKey pilot (pilot-doorkey/preset.yaml, declared before it ran), from a clean clone of its commit
# (592f700):
metarim compare --preset results/generalization/pilot-doorkey/preset.yaml --out results/generalization/pilot-doorkey --workers 1 --no-report
# Its report, in a clean clone of the commit that adds its runs (regenerated at 097a151 when summary.csv took one row
# per run and test env):
metarim report results/generalization/pilot-doorkey/runs --out results/generalization/pilot-doorkey
# The runs: from a clean clone at e0cff30, a later commit than the one that fixes the budgets (bf1d788, the
# AMENDMENT): since bf1d788 only the report code changed (the declared decision rule, c01795d, before any run) and
# the preset's text was rewrapped; training, envs and settings are the same. Started 2026-12-07 09:10 UTC, 2 workers, one
# seed per process for every agent (no --seed-batch: lstm and gru cannot be batched with chunk_len null, and every
# agent is trained the same way). Each finished run's summary files are committed under runs/ as it finishes (model
# zips, checkpoints, logs and tensorboard files are not). Resumable: the same command continues the grid.
git clone <this repository> gen && cd gen && git checkout e0cff30
metarim compare --preset generalization --out results/generalization --workers 2 --no-report
# The grid finished on 2026-12-07 at 15:54 UTC (100 of 100 runs; runs interrupted between sessions resumed from
# their checkpoints, and their progress_from_<frames>.csv files are committed beside progress.csv).
# The report, in a clean clone of the commit that adds the last run (5da62ea):
git clone <this repository> genr && cd genr && git checkout 5da62ea
metarim report results/generalization/runs --out results/generalization
