"""``metarim compare --backend ray --address HOST:PORT`` on a real Ray cluster of two nodes started on this machine
(``ray.cluster_utils.Cluster``: a head node and a second node, each a raylet of its own with 1 CPU, as ``ray start``
would make on two machines): the command joins it as a driver in its own process, the 4 runs of a 2-agent x 2-seed
grid are placed on both nodes (each run's ``train.log`` names the node that ran it), and the report is complete."""

from __future__ import annotations

import csv
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import ENV_ID, TINY, metarim

from metarim_sb3.experiments.training.folder import DONE, TRAIN_LOG

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs Ray: pip install metarim[ray]"),
]

#: Each node's object store (bytes): the runs pass nothing through it.
OBJECT_STORE = 80 * 1024**2


@pytest.fixture(scope="module")
def two_node_cluster() -> Iterator[Any]:
    """A head node and a worker node of 1 CPU each, this test process not connected to them; shut down after."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": OBJECT_STORE, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


def test_grid_runs_on_both_nodes_with_a_complete_report(two_node_cluster: Any, tmp_path: Path) -> None:
    preset = tmp_path / "grid.yaml"
    grid = {"agents": ["meta-rim", "lstm"], "envs": [ENV_ID], "seeds": 2, "timesteps": 256, "overrides": TINY}
    preset.write_text(yaml.safe_dump(grid))
    out = tmp_path / "out"
    address = two_node_cluster.address
    result = metarim("compare", "--preset", preset, "--out", out, "--backend", "ray", "--address", address, timeout=600)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"running 4 of 4 runs on the Ray cluster at {address} (2 CPUs on 2 nodes, 1 per run)" in result.stdout
    assert result.stdout.count(f" on {ENV_ID}: done, 256 steps") == 4, result.stdout

    runs = sorted(p.parent for p in (out / "runs").rglob(DONE))
    assert len(runs) == 4
    cluster_nodes = {node.node_id for node in two_node_cluster.list_all_nodes()}
    assert len(cluster_nodes) == 2
    placed = {}
    for run in runs:
        starts = re.findall(r"started on Ray node ([0-9a-f]+) ", (run / TRAIN_LOG).read_text())
        assert len(starts) == 1, (run, starts)  # one attempt each
        placed[run.relative_to(out).as_posix()] = starts[0]
    assert set(placed.values()) == cluster_nodes, placed  # every node ran at least one run, and no other node did
    for line in result.stdout.splitlines():  # each finished line names its node (first 8 hex digits)
        if ": done, 256 steps" in line:
            assert re.search(r"\[node [0-9a-f]{8}\]$", line), line

    assert ENV_ID in (out / "report.md").read_text()
    with open(out / "summary.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert sorted((r["agent"], r["seed"], r["status"]) for r in rows) == [
        (agent, str(seed), "done") for agent in ("lstm", "meta-rim") for seed in (0, 1)
    ]
    assert (out / "learning_curves.png").is_file()
