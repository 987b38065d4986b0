"""The modules of ``metarim_sb3.experiments`` moved into ``training/``, ``grid/`` and ``reporting/``: each old path
still imports, warns once naming the new path and the removal version, and gives the same objects; the package's
public names and the new modules import without any warning."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import pytest

from metarim_sb3._deprecated import REMOVAL

P = "metarim_sb3.experiments"
#: Old module -> the new module(s) its names moved to (the warning names them all, in this order). A module that
#: moved whole is an alias of its new one; a module that was split forwards each name to the new module defining it.
MOVED = {
    "config": ("training.config", "training.yaml_io", "grid.presets"),
    "runner": ("training.runner", "training.model", "training.resume"),
    "rundir": ("training.folder", "training.ownership"),
    "evaluate": ("training.evaluate",),
    "monitoring": ("training.monitoring",),
    "envs": ("training.envs",),
    "signals": ("training.signals",),
    "provenance": ("training.provenance",),
    "wandb_logging": ("training.wandb_logging",),
    "generalization": ("training.generalization", "reporting.sections.generalization"),
    "compare": ("grid.compare",),
    "ray_backend": ("grid.ray_backend",),
    "cost": ("grid.cost",),
    "report": (
        "reporting.report",
        "reporting.runs",
        *(
            f"reporting.sections.{s}"
            for s in ("summary", "adaptation", "zero_shot", "forgetting", "drift", "cost", "paired", "verdict")
        ),
    ),
    "plots": ("reporting.plots",),
    "metrics": ("reporting.metrics", "reporting.comparisons", "reporting.formatting"),
    "stats": ("reporting.stats",),
    "claims": ("reporting.claims",),
    "protocol": ("reporting.protocol",),
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_warns_and_forwards(old: str) -> None:
    name = f"{P}.{old}"
    sys.modules.pop(name, None)  # import it afresh: the warning is given at import
    homes = " and ".join(re.escape(f"{P}.{m}") for m in MOVED[old])
    with pytest.warns(DeprecationWarning, match=rf"{re.escape(name)} has moved to {homes};.*metarim {REMOVAL}"):
        module = importlib.import_module(name)
    new = [importlib.import_module(f"{P}.{m}") for m in MOVED[old]]
    if len(new) == 1:
        assert module is new[0]
    for home in new:
        for public in getattr(home, "__all__", []):
            assert getattr(module, public) is getattr(home, public), f"{name}.{public}"
        assert set(getattr(home, "__all__", [])) <= set(dir(module))


def test_renamed_private_names_still_resolve() -> None:
    """The old private names that tests and scripts used to reach keep pointing at what replaced them."""
    from metarim_sb3.experiments.reporting import runs
    from metarim_sb3.experiments.training import model

    with pytest.warns(DeprecationWarning):
        sys.modules.pop(f"{P}.runner", None)
        old_runner = importlib.import_module(f"{P}.runner")
        sys.modules.pop(f"{P}.report", None)
        old_report = importlib.import_module(f"{P}.report")
    assert old_runner._build_model is model.build_model and old_runner._callbacks is model.build_callbacks
    assert old_report._agent_order is runs.agent_order


def test_public_names_and_new_modules_import_without_warnings() -> None:
    """``from metarim_sb3.experiments import ...`` and every new module import with warnings as errors."""
    code = (
        "import importlib, pkgutil\n"
        f"from {P} import AGENTS, ConfigError, NonFiniteError, RunError, build_report, compare_preset, "
        "evaluate_model, evaluate_run, plan, resolve_config, run, run_grid\n"
        f"import {P}.cli\n"
        "for sub in ('training', 'grid', 'reporting'):\n"
        f"    pkg = importlib.import_module('{P}.' + sub)\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error:metarim_sb3:DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
