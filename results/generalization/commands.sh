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
# The repeated DoorKey pilot (pilot-doorkey/preset.yaml, declared before it ran), from a clean clone of its commit:
metarim compare --preset results/generalization/pilot-doorkey/preset.yaml --out results/generalization/pilot-doorkey --workers 1 --no-report
# The runs (not started yet):
# metarim compare --preset generalization --out results/generalization --no-report
