# How results/calibrate was made (2 CPU cores, one torch thread per run).
# Runs: from a clean clone at 3313c29 (the meta-rim cells) and b8f716b (the rest; same code, the preset's grid cut
# to the cross of calibrate.yaml), agents' defaults then: slow_lr 1.75e-4 (r 0.25), slow_every 4.
metarim compare --preset calibrate --out results/calibrate --workers 2 --no-report
# Report: from a clean clone at 610ffab.
metarim report results/calibrate/runs --out results/calibrate
# The cells named meta-rim and reversed are r 0.25, K 4 (the defaults when they ran). The defaults chosen from this
# sweep are r 0.1, K 4: the cells meta-r0.1-k4 and reversed-r0.1-k4.
