"""Generate the API reference: one MyST page per public module of ``metarim_gym`` and ``metarim_sb3``.

Public modules are found by walking the packages (names starting with ``_`` are private and skipped), so a new
module appears in the reference without editing the docs. Each page is an ``automodule`` with its members; each
package page lists the package's ``__all__`` with links to where each name is documented.

Run by ``docs/conf.py`` at every build; by hand: ``python docs/_scripts/gen_api.py OUT_DIR``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

try:
    from _common import remove_stale, write_if_changed
    from gen_pages import rst_inline_to_myst
except ImportError:  # imported as docs._scripts.gen_api
    from ._common import remove_stale, write_if_changed  # type: ignore[no-redef]
    from .gen_pages import rst_inline_to_myst  # type: ignore[no-redef]

#: The documented packages, in page order.
PACKAGES = ("metarim_gym", "metarim_sb3")
#: One line per package for the API index.
PACKAGE_SUMMARY = {
    "metarim_gym": "multi-task, distribution-shifting MiniGrid environments for gymnasium (no torch needed).",
    "metarim_sb3": "the RIM core, the RIM and LSTM policies for sb3-contrib's `RecurrentPPO`, and the training "
    "callbacks.",
}


def public_modules(package: str) -> list[str]:
    """Every importable public submodule of a package, in name order (the package itself excluded).

    Old import paths kept as deprecated shims (:func:`metarim_sb3._deprecated.is_shim`) are skipped, with their
    submodules: they are documented where they moved to, and importing them would warn.

    :param package: a package name, e.g. ``"metarim_gym"``.
    :return: dotted module names.
    """
    from metarim_sb3._deprecated import is_shim

    names = []
    todo = [importlib.import_module(package)]
    while todo:
        pkg = todo.pop()
        for info in pkgutil.iter_modules(pkg.__path__, prefix=f"{pkg.__name__}."):
            if any(part.startswith("_") for part in info.name.split(".")) or is_shim(info):
                continue
            names.append(info.name)
            if info.ispkg:
                todo.append(importlib.import_module(info.name))
    return sorted(names)


def _defines(module: ModuleType, name: str) -> bool:
    """Whether ``module``'s own source binds ``name`` at top level (a def, class or assignment)."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return True
    return False


def home_module(package: str, name: str) -> str:
    """The public module that defines a name of the package's ``__all__`` (where its documentation lives).

    :param package: the package.
    :param name: a name of its ``__all__``.
    :return: the dotted module name, or the package itself when no public submodule defines it.
    """
    pkg = importlib.import_module(package)
    obj = getattr(pkg, name)
    modules = public_modules(package)
    owner = getattr(obj, "__module__", None) if inspect.isclass(obj) or inspect.isroutine(obj) else None
    if owner in modules:
        return owner
    for mod_name in modules:
        if _defines(importlib.import_module(mod_name), name):
            return mod_name
    return package


def undocumented_public_data(module: str) -> list[str]:
    """Names of a package's ``__all__`` that are plain data defined in ``module`` without a ``#:`` doc comment.

    ``automodule`` skips these (their ``__module__`` is that of their type, e.g. ``builtins``, so autodoc takes
    them for imports); the module page lists them with ``autodata`` instead.

    :param module: dotted module name.
    :return: the names, in ``__all__`` order.
    """
    from sphinx.pycode import ModuleAnalyzer

    package = module.split(".")[0]
    names = [n for n in getattr(importlib.import_module(package), "__all__", []) if n != "__version__"]
    mod = importlib.import_module(module)
    attr_docs = ModuleAnalyzer.for_module(module).find_attr_docs()
    return [
        n
        for n in names
        if _defines(mod, n)
        and not (inspect.isclass(getattr(mod, n)) or inspect.isroutine(getattr(mod, n)))
        and ("", n) not in attr_docs
    ]


def module_page(module: str) -> str:
    """The page of one module.

    :param module: dotted module name.
    :return: its Markdown.
    """
    extra = [f".. autodata:: {module}.{name}" for name in undocumented_public_data(module)]
    return "\n".join(
        [
            "<!-- Generated by docs/_scripts/gen_api.py; do not edit. -->",
            "",
            f"# `{module}`",
            "",
            "```{eval-rst}",  # autodoc emits reST: it must be parsed as reST, not MyST
            f".. automodule:: {module}",
            "   :members:",
            "   :undoc-members:",
            "   :show-inheritance:",
            *(["", *extra] if extra else []),
            "```",
            "",
        ]
    )


def package_page(package: str, toctree: bool = True) -> str:
    """The page of a package: its docstring, its public names (linked to where they are documented), its modules.

    A package's members are documented on the pages of the modules that define them, never on the package page
    (documenting a re-exported name twice makes every reference to it ambiguous).

    :param package: the package.
    :param toctree: make its modules children of this page (top-level packages; a subpackage's modules are
        already in its top-level package's toctree).
    :return: its Markdown.
    """
    pkg = importlib.import_module(package)
    lines = [
        "<!-- Generated by docs/_scripts/gen_api.py; do not edit. -->",
        "",
        f"# `{package}`",
        "",
        "```{eval-rst}",
        f".. automodule:: {package}",
        "```",
        "",
    ]
    names = list(getattr(pkg, "__all__", []))
    if names:
        lines += [
            "## Public names",
            "",
            f"`from {package} import ...` gives every name below (the package's `__all__`).",
            "",
            "| name | documented in |",
            "|---|---|",
        ]
    for name in names:
        if name == "__version__":
            lines.append(f"| `__version__` | `{pkg.__version__}` |")
            continue
        home = home_module(package, name)
        lines.append(f"| {{py:obj}}`~{home}.{name}` | {{doc}}`{home}` |")
    lines += ["", "## Modules", ""]
    for module in public_modules(package):
        doc = inspect.getdoc(importlib.import_module(module)) or ""
        summary = rst_inline_to_myst(doc.split("\n\n")[0].replace("\n", " "), table=False)
        lines.append(f"- {{doc}}`{module}`: {summary}" if summary else f"- {{doc}}`{module}`")
    if toctree:
        # Sidebar titles without the package prefix: "metarim_sb3.experiments.training.monitoring" breaks mid-word in
        # the sidebar, "experiments.training.monitoring" fits.
        entries = [f"{m.removeprefix(package + '.')} <{m}>" for m in public_modules(package)]
        lines += ["", "```{toctree}", ":hidden:", "", *entries, "```"]
    return "\n".join([*lines, ""])


def is_package(module: str) -> bool:
    """Whether a dotted name is a package (has submodules) rather than a plain module.

    :param module: dotted module name.
    :return: ``True`` for a package.
    """
    return hasattr(importlib.import_module(module), "__path__")


def index_page() -> str:
    """The API index page.

    :return: its Markdown.
    """
    lines = [
        "<!-- Generated by docs/_scripts/gen_api.py; do not edit. -->",
        "",
        "# API reference",
        "",
        "Generated from the docstrings at every build. One page per public module; modules whose name starts with "
        "an underscore are private.",
        "",
    ]
    lines += [f"- {{doc}}`{p}`: {PACKAGE_SUMMARY.get(p, '')}" for p in PACKAGES]
    # explicit titles: plain sidebar entries, like the packages' modules (see package_page)
    lines += ["", "```{toctree}", ":hidden:", "", *(f"{p} <{p}>" for p in PACKAGES), "```", ""]
    return "\n".join(lines)


def generate(out_dir: Path) -> list[Path]:
    """Write the API pages.

    :param out_dir: the folder of the pages (``index.md``, one page per package and per public module).
    :return: the pages written or confirmed.
    """
    out_dir = Path(out_dir)
    pages: dict[Path, str] = {out_dir / "index.md": index_page()}
    for package in PACKAGES:
        pages[out_dir / f"{package}.md"] = package_page(package)
        for module in public_modules(package):
            page = package_page(module, toctree=False) if is_package(module) else module_page(module)
            pages[out_dir / f"{module}.md"] = page
    for path, text in pages.items():
        write_if_changed(path, text)
    remove_stale(out_dir, set(pages), "*.md")
    return list(pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    for page in generate(parser.parse_args().out_dir):
        print(page)


if __name__ == "__main__":
    main()
