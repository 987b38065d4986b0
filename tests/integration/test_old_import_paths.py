"""The modules of ``metarim_sb3.experiments`` moved into ``training/``, ``grid/`` and ``reporting/``: each old path
still imports, warns once naming the new path and the removal version, and gives the same objects; the package's
public names and the new modules import without any warning."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from metarim_sb3._deprecated import REMOVAL

P = "metarim_sb3.experiments"
#: Old module -> the new module(s) its names moved to (the first one named in the warning).
MOVED = {
    "config": ("training.config",),
    "runner": ("training.runner",),
    "rundir": ("training.folder",),
    "evaluate": ("training.evaluate",),
    "monitoring": ("training.monitoring",),
    "envs": ("training.envs",),
    "signals": ("training.signals",),
    "provenance": ("training.provenance",),
    "wandb_logging": ("training.wandb_logging",),
    "generalization": ("training.generalization",),
    "compare": ("grid.compare",),
    "ray_backend": ("grid.ray_backend",),
    "cost": ("grid.cost",),
    "report": ("reporting.report",),
    "plots": ("reporting.plots",),
    "metrics": ("reporting.metrics",),
    "stats": ("reporting.stats",),
    "claims": ("reporting.claims",),
    "protocol": ("reporting.protocol",),
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_warns_and_forwards(old: str) -> None:
    name = f"{P}.{old}"
    sys.modules.pop(name, None)  # import it afresh: the warning is given at import
    with pytest.warns(DeprecationWarning, match=rf"{name} has moved to {P}\.{MOVED[old][0]}.*metarim {REMOVAL}"):
        module = importlib.import_module(name)
    new = [importlib.import_module(f"{P}.{m}") for m in MOVED[old]]
    for home in new:
        for public in getattr(home, "__all__", []):
            assert getattr(module, public) is getattr(home, public), f"{name}.{public}"


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
