"""Grid presets with named variants of the preset agents (``variants:``), e.g. the ``calibrate`` sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from metarim_sb3.experiments.grid.compare import plan
from metarim_sb3.experiments.grid.presets import compare_preset
from metarim_sb3.experiments.training.yaml_io import ConfigError

GRID = {
    "agents": ["meta-rim", "fast-k2"],
    "envs": ["MetaRIM-GoTo-v0"],
    "seeds": 2,
    "timesteps": 512,
    "overrides": {"n_envs": 2},
    "variants": {"fast-k2": {"agent": "meta-rim", "overrides": {"fast_slow": {"slow_every": 2, "slow_fraction": 0.2}}}},
}


def _preset(tmp_path: Path, grid: dict) -> str:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return str(path)


def test_variant_is_its_base_agent_with_overrides(tmp_path: Path) -> None:
    jobs = plan(_preset(tmp_path, GRID), tmp_path / "out", overrides={"fast_slow": {"slow_fraction": 0.3}})
    assert [(j.agent, j.seed) for j in jobs] == [("meta-rim", 0), ("fast-k2", 0), ("meta-rim", 1), ("fast-k2", 1)]
    base, variant = jobs[0].config.to_dict(), jobs[1].config.to_dict()
    assert variant["agent"] == "fast-k2" and variant["variant_of"] == "meta-rim" and "variant_of" not in base
    assert jobs[1].config.fast_slow is not None and jobs[0].config.fast_slow is not None
    assert jobs[1].config.fast_slow.slow_every == 2 and jobs[0].config.fast_slow.slow_every == 4
    assert jobs[1].config.fast_slow.slow_fraction == 0.3  # the user's --set wins over the variant's own value
    assert variant["n_envs"] == 2  # the grid's overrides apply to variants too
    assert jobs[1].out_dir == tmp_path / "out" / "runs" / "MetaRIM-GoTo-v0" / "fast-k2" / "seed_0"
    same = {k: v for k, v in variant.items() if k not in ("agent", "variant_of", "fast_slow")}
    assert same == {k: v for k, v in base.items() if k not in ("agent", "fast_slow")}


@pytest.mark.parametrize(
    ("variants", "agents", "message"),
    [
        ({"rim": {"agent": "meta-rim"}}, ["rim"], "variant name 'rim'"),
        ({"a b": {"agent": "meta-rim"}}, ["meta-rim"], "variant name 'a b'"),
        ({"v": {"agent": "nope"}}, ["v"], "variant v must be"),
        ({"v": {"agent": "rim", "extra": 1}}, ["v"], "variant v must be"),
        ({"v": {"agent": "rim", "overrides": {"env": "x"}}}, ["v"], "without agent or env"),
        ({"v": {"agent": "rim", "overrides": [1]}}, ["v"], "without agent or env"),
        ([1], ["rim"], "variants must be a mapping"),
        ({}, ["v"], "unknown agents ['v']"),
        ({}, ["rim", "rim"], "must not repeat"),
    ],
)
def test_bad_variants_are_refused(tmp_path: Path, variants: object, agents: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compare_preset(_preset(tmp_path, {**GRID, "agents": agents, "variants": variants}))


def test_calibrate_preset_sweeps_both_modes() -> None:
    grid = compare_preset("calibrate")
    assert min(grid["seeds"].values()) >= 3 and grid["envs"] == ["MetaRIM-GoTo-v0"]
    assert {"meta-rim", "reversed", "rim"} <= set(grid["agents"])
    modes = {v["agent"] for v in grid["variants"].values()}
    assert modes == {"meta-rim", "reversed"}
    cells = {(v["agent"], v["overrides"]["fast_slow"]["slow_fraction"], v["overrides"]["fast_slow"]["slow_every"])
             for v in grid["variants"].values()}  # fmt: skip
    assert len(cells) == len(grid["variants"]) == 8  # per mode: r 0.1 and 0.5 at K 4, K 2 and 8 at r 0.25


def test_seeds_may_differ_by_env(tmp_path: Path) -> None:
    grid = {
        **GRID,
        "envs": ["MetaRIM-GoTo-v0", "MetaRIM-DoorKey-v0"],
        "seeds": {"MetaRIM-GoTo-v0": 3, "MetaRIM-DoorKey-v0": 1},
    }
    jobs = plan(_preset(tmp_path, grid), tmp_path / "out")
    per_env = {env: sorted({j.seed for j in jobs if j.env == env}) for env in grid["seeds"]}
    assert per_env == {"MetaRIM-GoTo-v0": [0, 1, 2], "MetaRIM-DoorKey-v0": [0]}
    assert len(plan(_preset(tmp_path, grid), tmp_path / "out", seeds=2)) == 2 * 2 * 2  # --seeds: every env
    for bad in ({"MetaRIM-GoTo-v0": 3}, {"MetaRIM-GoTo-v0": 3, "MetaRIM-DoorKey-v0": 0}, 0, True):
        with pytest.raises(ConfigError, match="seeds must be a positive integer or a mapping env"):
            compare_preset(_preset(tmp_path, {**grid, "seeds": bad}))


def test_study_v1_preset_fixes_its_primary_metric_and_seed_counts() -> None:
    grid = compare_preset("study-v1")
    assert grid["agents"] == ["meta-rim", "rim", "reversed", "lstm", "gru"]
    assert grid["seeds"] == {"MetaRIM-GoTo-v0": 10, "MetaRIM-DoorKey-v0": 5}
    assert "PRIMARY METRIC" in grid["description"]
