# Zero-shot to larger rooms (issue 24; protocol and decision rule: the `generalization` preset's description in
# metarim_sb3/experiments/presets/compare.yaml, committed at fbc1eb5 before any run).
# The pilot (pilot/preset.yaml, committed at eaffa90 before it ran): lstm, seeds 0-2, both training envs, the declared
# budget of 344,064 frames, from a clean clone at eaffa90 (PYTHONPATH=<clone>), one worker, one torch thread, while
# other work shared the 2 cores (wall times are not costs). Only run summaries are committed.
git clone <this repository> gp && cd gp && git checkout eaffa90
metarim compare --preset results/generalization/pilot/preset.yaml --out results/generalization/pilot --workers 1 --no-report
# The pilot's report (its "Training plateau" table decides whether the budget stands), in a clean clone of the commit
# that adds the runs:
metarim report results/generalization/pilot/runs --out results/generalization/pilot
# The repeated DoorKey pilot (pilot-doorkey/preset.yaml, declared before it ran), from a clean clone of its commit
# (592f700):
metarim compare --preset results/generalization/pilot-doorkey/preset.yaml --out results/generalization/pilot-doorkey --workers 1 --no-report
# Its report, in a clean clone of the commit that adds its runs (regenerated at 097a151 when summary.csv took one row
# per run and test env):
metarim report results/generalization/pilot-doorkey/runs --out results/generalization/pilot-doorkey
# The runs (not started yet; they start when the study's runs leave the cores free), from a clean clone of the commit
# that fixes the budgets (bf1d788, the AMENDMENT) or a later one, one seed per process for every agent (no
# --seed-batch: lstm and gru cannot be batched with chunk_len null, and every agent is trained the same way):
# metarim compare --preset generalization --out results/generalization --workers 2 --no-report
# The report, in a clean clone of the commit that adds the last runs:
# metarim report results/generalization/runs --out results/generalization
