"""Sphinx configuration of the metarim documentation (MyST Markdown + furo, fully offline).

Build with ``make docs``. The pages under ``envs/``, ``api/`` and ``results/``, the fragments under ``_generated/``
and the GIFs under ``_static/gallery/`` are generated at every build by the scripts in ``_scripts/`` (and ignored by
git, see ``docs/.gitignore``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_scripts"))

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame, imported by minigrid, stays headless
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import metarim_gym  # noqa: E402

project = "metarim"
author = "The metarim developers"
copyright = "the metarim developers"
release = metarim_gym.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
smartquotes = False  # keep "--option" and quotes as written
exclude_patterns = ["_build", "_scripts", "_generated/**", "results/*/**", ".gitignore", "Thumbs.db", ".DS_Store"]
# Fragments under _generated/ and the reports copied under results/NAME/ are pulled in with {include}; they are not
# pages of their own (built alone they would be orphan duplicates in the search results).

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath", "attrs_inline", "attrs_block", "substitution"]


def _make_variable(name: str) -> str:
    """The default of a ``NAME ?= value`` line of the Makefile (so the docs quote it rather than copy it)."""
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.replace(" ", "").startswith(f"{name}?="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError(f"Makefile has no '{name} ?=' line")


myst_substitutions = {"torch_spec": f"`{_make_variable('TORCH_SPEC')}`"}
myst_heading_anchors = 3

# autodoc: docstrings are reST with :param: fields; signatures carry the types.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False  # torch/SB3 base-class docstrings are not ours to render
add_module_names = False
python_use_unqualified_type_names = True

html_theme = "furo"
html_title = f"metarim {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": True,
    "light_css_variables": {"color-brand-primary": "#b4530a", "color-brand-content": "#1f5fa8"},
    "dark_css_variables": {"color-brand-primary": "#f0a04b", "color-brand-content": "#7fb2f0"},
}
html_last_updated_fmt = None


def _generate(app) -> None:
    import gen_api
    import gen_envs
    import gen_pages
    import gen_results

    gifs = str(app.config.metarim_gallery_gifs).lower() not in ("0", "false", "no", "")
    gen_envs.generate(DOCS / "envs", DOCS / "_static" / "gallery" if gifs else None)
    gen_api.generate(DOCS / "api")
    gen_pages.generate_scripts(DOCS / "_generated" / "examples.md", ROOT / "examples", "[0-9]*.py", source=True)
    gen_pages.generate_scripts(DOCS / "_generated" / "benchmarks.md", ROOT / "benchmarks", "bench_*.py", source=False)
    gen_results.generate(ROOT / "results", DOCS / "results")
    gen_pages.generate_cli(DOCS / "_generated" / "cli.md")
    gen_pages.generate_presets(DOCS / "_generated" / "presets.md", DOCS / "_generated" / "presets")
    gen_pages.generate_param_tables(DOCS / "_generated")
    gen_pages.generate_drift_table(
        DOCS / "_generated" / "drift_ratio.md", ROOT / "results" / "bench" / "drift_ratio.json"
    )


def _family_docstring(app, what, name, obj, options, lines) -> None:
    """Family classes carry Markdown docstrings (rendered on the gallery pages): link there instead."""
    import gen_envs

    if what == "class" and getattr(obj, "__module__", "") == "metarim_gym.envs" and getattr(obj, "family_key", ""):
        env_id = gen_envs.env_id_of(obj.family_key)
        lines[:] = [
            f"The ``{env_id}`` family (:class:`~metarim_gym.multitask.MultiTaskEnv` with the stage list of "
            f"``FAMILIES[{obj.family_key!r}]``). Its Markdown docstring, rendered with the stage table, spaces and a "
            f"GIF, is the gallery page :doc:`/envs/{obj.family_key}`.",
            "",
        ]


def _viewcode_follow_imported(app, modname: str, fullname: str) -> str | None:
    """
    Where viewcode looks for an object's source. A name that a module lists in its ``__all__`` but imports from
    another public module (e.g. a class defined in ``metarim_sb3.callbacks.curriculum``) is documented on both
    modules' pages; following it to the defining module would give that module's source page one "[docs]"
    link per name that points into the wrong page (viewcode keeps one page name per module). Answering the
    re-exporting module itself keeps the source links of the defining module's page only.

    :param app: the Sphinx application.
    :param modname: the module the object is documented in.
    :param fullname: the object's name in that module (``Class`` or ``Class.method``).
    :return: ``modname`` for such a name, else ``None`` (viewcode's own lookup).
    """
    import importlib

    try:
        module = importlib.import_module(modname)
    except ImportError:
        return None
    home = getattr(getattr(module, fullname.split(".")[0], None), "__module__", None)
    if not isinstance(home, str) or home == modname or any(part.startswith("_") for part in home.split(".")):
        return None
    return modname if fullname.split(".")[0] in getattr(module, "__all__", ()) else None


def setup(app) -> dict:
    # ``-D metarim_gallery_gifs=0`` builds the gallery without (re)writing the GIFs.
    app.add_config_value("metarim_gallery_gifs", "1", "env")
    app.connect("builder-inited", _generate)
    app.connect("autodoc-process-docstring", _family_docstring)
    app.connect("viewcode-follow-imported", _viewcode_follow_imported)
    return {"parallel_read_safe": True}
