"""The agents have one source, ``presets/agents.yaml``: every list of agents is derived from it (issue 27)."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Any

import pytest
from repo_paths import ROOT

from metarim_sb3.experiments.training.config import AGENTS, RIM_AGENTS, agent_names, rim_agent_names
from metarim_sb3.experiments.training.yaml_io import ConfigError, load_yaml


def test_agents_are_the_keys_of_agents_yaml_in_order() -> None:
    presets = load_yaml(preset="agents.yaml")
    assert tuple(presets) == AGENTS
    assert tuple(a for a in presets if presets[a]["default"]["policy"].endswith("RIMPolicy")) == RIM_AGENTS
    assert RIM_AGENTS == ("meta-rim", "rim", "reversed")


def test_an_added_agent_appears_in_both_lists(tmp_path: Path) -> None:
    presets: dict[str, Any] = load_yaml(preset="agents.yaml")
    presets["rim-big"] = {"default": {**presets["rim"]["default"], "policy": "MlpRIMPolicy"}}
    presets["mlp"] = {"default": {"policy": "MlpLstmPolicy"}}
    assert agent_names(presets) == (*AGENTS, "rim-big", "mlp")
    assert rim_agent_names(presets) == (*RIM_AGENTS, "rim-big")
    with pytest.raises(ConfigError, match="agent presets"):
        agent_names({"x": 3})


def test_every_list_of_agents_is_derived() -> None:
    """The CLI's choices, the grid and the report use the derived lists; no module holds a second literal."""
    from metarim_sb3.experiments import cli
    from metarim_sb3.experiments.reporting.sections import generalization

    assert generalization.RIM_AGENTS is RIM_AGENTS
    assert generalization.BASELINES == tuple(a for a in AGENTS if a not in RIM_AGENTS) == ("lstm", "gru")
    commands = next(a for a in cli._build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    train = next(a for a in commands.choices["train"]._actions if "--agent" in a.option_strings)
    assert tuple(train.choices or ()) == AGENTS
    names = set(AGENTS)
    for path in sorted((ROOT / "metarim_sb3").rglob("*.py")):
        if "seed_batch" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                strings = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                assert len(strings & names) < 3, f"{path.relative_to(ROOT)}:{node.lineno}: a literal list of agents"
