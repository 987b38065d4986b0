# How results/layout was made (2 CPU cores, one torch thread per run).
# The stock cells (meta-rim, rim, reversed: ppo.chunk_len null, the agents' default then, slow_lr 1.75e-4) are the
# calibrate sweep's default cells (results/calibrate/commands.sh), copied into the grid's folder; compare skipped them.
# The chunked cells ran from a clean clone at 610ffab:
metarim compare --preset layout --out results/layout --workers 2 --no-report
# Report: from a clean clone at 610ffab.
metarim report results/layout/runs --out results/layout
# Wall times: the stock meta-rim and reversed cells ran while other jobs shared the cores (rim ran alone, as did
# every chunked cell): compare rim with rim-chunked for speed (116 s and 99 s per run, evaluations included).
# In the preset the stock cells are now named meta-rim-stock, rim-stock and reversed-stock.
