# How results/study-v1 (then results/study) was made (2 CPU cores, 2 workers, one torch thread per run).
# The claims and their decision rule (the study preset's `claims`) were committed in 74648d2, before any study run
# was read; the primary metric was fixed in the preset's description before the runs started.
# Runs: from a clean clone at 058d130; the run summaries under runs/ were committed as each run finished (model
# zips, checkpoints, logs and tensorboard files are not committed). Resumable: the same command continues a grid.
git clone <this repository> study && cd study && git checkout 058d130
metarim compare --preset study --out results/study --workers 2 --no-report
# Report and verdict, from the committed run summaries, in a clean clone of the commit that adds them:
metarim report results/study/runs --out results/study --claims study
# This report: from a clean clone at 48f17be, with all 75 runs complete (GoTo 5 agents x 10 seeds; DoorKey 5 agents x
# 5 seeds). The runs' wall times in the report's Cost section were measured with 2 runs sharing the 2 cores.
# Moved to results/study-v1 when the study v2 superseded it (its preset is now study-v1). The report was regenerated
# in a clean clone at c994b93, whose report code closes a visit left just after its horizon with the evaluation at
# the shift (4 visits had been mislabelled "training ended before the horizon"; README.md):
metarim report results/study-v1/runs --out results/study-v1 --claims study-v1
# Regenerated again in a clean clone at 1a1fc93: the adaptation section now says the evaluations sampled their actions
# (it said "deterministic"); no number changed.
