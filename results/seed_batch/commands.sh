# The whole-run equivalence check of many seeds in one process (issue 23; protocol: studies/seed_batch_equivalence.py).
# Both arms ran from a clean clone at 958ffd8 (PYTHONPATH=<clone>), one torch thread each, at the same time as each
# other and as other work on the 2-core machine (wall times are not costs). Only run summaries are committed.
git clone <this repository> eq && cd eq && git checkout 958ffd8
C="--agent meta-rim --env MetaRIM-GoTo-v0 --timesteps 150000 --threads 1"
# batched: the ten seeds in one process (the seed-batched trainer)
metarim train $C --seeds 0,1,2,3,4,5,6,7,8,9 --out results/seed_batch/runs/batched
# separate: each seed in its own process
for s in 0 1 2 3 4 5 6 7 8 9; do metarim train $C --seed $s --out results/seed_batch/runs/separate/seed_$s; done
# The report (report.md, equivalence.csv), in a clean clone of the commit that adds the runs:
python studies/seed_batch_equivalence.py --runs results/seed_batch/runs --out results/seed_batch
