"""Every committed report regenerates identically from its committed runs (apart from the ``Produced by`` line,
which names the command and the time): a refactoring of the report code must not change a number or a word.

Only result sets whose run summaries are committed can be regenerated: ``results/study-v1`` (the command of its
``commands.sh``). The other sets (quick, calibrate, layout, critic, bench) commit no runs; ``results/study`` is
still running.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import metarim
from repo_paths import ROOT

pytestmark = pytest.mark.slow  # a full report of 75 runs: minutes on two cores

#: The committed result sets that can be regenerated, and the ``--claims`` of their report.
REPORTS = {"study-v1": "study-v1"}
#: The files compared byte for byte (the plots are not: matplotlib's output may differ between versions).
COMPARED = ("report.md", "summary.csv", "aggregate.csv")


def _without_produced_by(text: str) -> list[str]:
    """The lines of a file, less the line that names the command and the time it was produced."""
    return [line for line in text.splitlines() if not line.startswith("Produced by `metarim report ")]


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_committed_report_regenerates_identically(name: str, tmp_path: Path) -> None:
    committed = ROOT / "results" / name
    if not (committed / "runs").is_dir():
        pytest.skip(f"results/{name}/runs is not in this checkout")
    out = tmp_path / name
    result = metarim("report", committed / "runs", "--out", out, "--claims", REPORTS[name], cwd=ROOT, timeout=1800)
    assert result.returncode == 0, result.stderr
    for file in COMPARED:
        expected = (committed / file).read_text(encoding="utf-8")
        got = (out / file).read_text(encoding="utf-8")
        assert _without_produced_by(got) == _without_produced_by(expected), f"results/{name}/{file} differs"
