"""Smoke test of ``benchmarks/bench_seed_batch.py --quick`` (about 12 s): it runs and its JSON has every cell."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from repo_paths import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_seed_batch.py"


def test_quick_run_writes_every_cell(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_seed_batch", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_seed_batch"] = bench
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    cells = {(r["agent"], r["seeds"]) for r in data["rows"]}
    assert cells == {(a, s) for a in bench.AGENTS for s in (1, 2)}
    for row in data["rows"]:
        assert "error" not in row, row
        assert row["ratio_median"] > 0 and row["batched"]["update_s"] > 0 and row["separate"]["rollout_s"] > 0
        assert row["peak_mib_per_seed"]["batched"] is not None and row["peak_mib_per_seed"]["separate"] is not None
