# How results/quick was made (2 CPU cores, one torch thread per run): what `make demo` runs.
# Runs: from a clean clone at c89b863.
metarim compare --preset quick --out results/quick_new --workers 2 --no-report
# Report: from a clean clone at c89b863.
metarim report results/quick_new/runs --out results/quick
# Wall times: the test suite ran on the same 2 cores meanwhile, so the wall-time and steps/s columns are slower
# than an idle machine's; the CPU cost per step on an idle machine is in results/bench (bench_study).
