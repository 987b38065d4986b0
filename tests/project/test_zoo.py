"""rl-zoo3 as a client: the committed hyperparams/ YAMLs cover every id and train the RIM policy with the zoo; each
agent's runs land in a log folder of its own (the docs' ``--log-folder logs/<agent>`` convention), where
``rl_zoo3.enjoy -f`` finds them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from repo_paths import ROOT

import metarim_gym

HYPERPARAMS = ROOT / "hyperparams"
#: YAML file -> (zoo algo, expected policy, log folder the file's header and the docs give it)
FILES = {
    "ppo.yml": ("ppo", "MultiInputPolicy", "logs/ppo"),
    "ppo_lstm.yml": ("ppo_lstm", "MultiInputLstmPolicy", "logs/lstm"),
    "meta_rim.yml": ("ppo_lstm", "metarim_sb3.MultiInputRIMPolicy", "logs/meta-rim"),
}
ENV_ID = "MetaRIM-GoTo-v0"


@pytest.mark.parametrize("name", sorted(FILES))
def test_yaml_covers_every_id(name: str) -> None:
    entries = yaml.safe_load((HYPERPARAMS / name).read_text())
    assert set(entries) == set(metarim_gym.ENV_IDS)
    assert {e["policy"] for e in entries.values()} == {FILES[name][1]}
    assert all(e["n_timesteps"] > 0 for e in entries.values())
    algo, _, folder = FILES[name]
    header = (HYPERPARAMS / name).read_text().split("\n\n", 1)[0]
    assert f"--algo {algo} " in header and f"--log-folder {folder}\n" in header and f"-f {folder}." in header


class _ZooLoader(yaml.SafeLoader):
    """Reads the zoo's ``config.yml`` (an ``OrderedDict`` of the hyperparameters), nothing else of Python's tags."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> dict:
    """``!!python/object/apply:collections.OrderedDict [[[key, value], ...]]`` as a dict."""
    return dict(loader.construct_sequence(node, deep=True)[0])


_ZooLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict)


def _zoo(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m rl_zoo3.<module> ARGS`` in ``cwd``, with this checkout importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", f"rl_zoo3.{module}", "--gym-packages", "metarim_gym", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def zoo_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs' Meta-RIMs and LSTM commands, 256 steps each on :data:`ENV_ID`, run in one folder: its ``logs/``."""
    pytest.importorskip("rl_zoo3")
    cwd = tmp_path_factory.mktemp("zoo")
    for name in ("meta_rim.yml", "ppo_lstm.yml"):
        algo, _, folder = FILES[name]
        proc = _zoo(
            "train", "--algo", algo, "--env", ENV_ID, "--conf-file", str(HYPERPARAMS / name),
            "--log-folder", folder, "-n", "256", "--eval-freq", "-1", "--seed", "0",
            "--hyperparams", "n_envs:2", "n_steps:64", "batch_size:64", cwd=cwd,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        if name == "meta_rim.yml":
            assert "slow_updates" in proc.stdout  # FastSlowCallback ran and logged
    return cwd / "logs"


def test_zoo_trains_the_meta_rim_policy(zoo_logs: Path) -> None:
    from sb3_contrib import RecurrentPPO

    from metarim_sb3 import RIMPolicy

    model = RecurrentPPO.load(zoo_logs / "meta-rim" / "ppo_lstm" / f"{ENV_ID}_1" / f"{ENV_ID}.zip", device="cpu")
    assert isinstance(model.policy, RIMPolicy) and model.num_timesteps == 256


def test_each_agent_has_its_own_log_folder(zoo_logs: Path) -> None:
    """Meta-RIMs and the LSTM are both ``ppo_lstm`` to the zoo: apart only through their ``--log-folder``."""
    runs = sorted(p.relative_to(zoo_logs).as_posix() for p in zoo_logs.glob(f"*/*/{ENV_ID}_*"))
    assert runs == [f"lstm/ppo_lstm/{ENV_ID}_1", f"meta-rim/ppo_lstm/{ENV_ID}_1"]  # both run 1, in their folders
    for folder, policy in (("meta-rim", "metarim_sb3.MultiInputRIMPolicy"), ("lstm", "MultiInputLstmPolicy")):
        saved = yaml.load(
            (zoo_logs / folder / "ppo_lstm" / f"{ENV_ID}_1" / ENV_ID / "config.yml").read_text(), Loader=_ZooLoader
        )
        assert saved["policy"] == policy


def test_enjoy_finds_the_run_in_the_agents_folder(zoo_logs: Path) -> None:
    proc = _zoo(
        "enjoy", "--algo", "ppo_lstm", "--env", ENV_ID, "-f", "logs/meta-rim", "--exp-id", "1", "-n", "50",
        "--no-render", "--deterministic", cwd=zoo_logs.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"logs/meta-rim/ppo_lstm/{ENV_ID}_1" in proc.stdout  # the zoo says which model it loaded
