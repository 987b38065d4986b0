# How results/study (the study v2) is made. 2 CPU cores, 2 workers, one torch thread per run.
# The protocol (the study preset's description, its claims with rule v2, metarim_sb3/experiments/protocol.py) and
# the tuning-parity learning rates (agents.yaml) were committed in 504d338, before any v2 run; the pilot behind
# them is in pilot/ (pilot/commands.sh).
# Runs: from a clean clone at 504d338; each finished run's summary files are committed under runs/ as it finishes
# (model zips, checkpoints, logs and tensorboard files are not). Resumable: the same command continues the grid.
git clone <this repository> study && cd study && git checkout 504d338
metarim compare --preset study --out results/study --workers 2 --no-report
# Report and verdict, from the committed run summaries, in a clean clone of the commit that adds the last of them
# (e0cff30; 150 runs, 25.6 process-hours summed over done.json's wall_time_s, 50,790,400 frames). report.md was
# rewritten in a clean clone of 4b90a1a, which fills the pooled rows' 'pairs for 80 %' (no other number changed):
metarim report results/study/runs --out results/study --claims study
