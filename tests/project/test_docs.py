"""The documentation: generated gallery and API pages, the snippets the pages quote, and (slow) the full build."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from repo_paths import ROOT

import metarim_gym
import metarim_sb3

DOCS = ROOT / "docs"
SNIPPETS = DOCS / "_snippets"
sys.path.insert(0, str(DOCS / "_scripts"))

import check_links  # noqa: E402
import gen_api  # noqa: E402
import gen_envs  # noqa: E402
import gen_pages  # noqa: E402
import gen_results  # noqa: E402

#: Snippets that train a model: run by the slow test with a tiny budget, not by the fast one.
TRAINING_SNIPPETS = ("quickstart.py",)


def test_gallery_has_every_registered_id(tmp_path: Path) -> None:
    pages = gen_envs.generate(tmp_path, gif_dir=None)
    index = (tmp_path / "index.md").read_text()
    assert {p.name for p in pages} == {"index.md", *(f"{key}.md" for _, key in metarim_gym.ENV_IDS.values())}
    for env_id, (_, key) in metarim_gym.ENV_IDS.items():
        assert f"`{env_id}`" in index, env_id
        page = (tmp_path / f"{key}.md").read_text()
        assert f"# {metarim_gym.FAMILIES[key].name}" in page
        assert f'gym.make("{env_id}", stage="heldout")' in page
        assert metarim_gym.FAMILIES[key].heldout.name in page
        for section in (
            "## Description",
            "## Tasks",
            "### Stage details",
            "## Observation Space",
            "## Version History",
        ):
            assert section in page, (env_id, section)
        assert "{figure}" not in page  # no GIFs were asked for
        assert key in index.split("```{toctree}")[1]


def test_gallery_gif(tmp_path: Path) -> None:
    env_id = next(iter(metarim_gym.ENV_IDS))
    path = gen_envs.make_gif(env_id, tmp_path / "x.gif")
    assert path.read_bytes()[:6] in (b"GIF87a", b"GIF89a")


def _documented_in_page(module: str, name: str, page: str) -> bool:
    """Whether ``automodule`` (or an explicit ``autodata``) on ``page`` documents ``module.name``."""
    from sphinx.pycode import ModuleAnalyzer

    if f".. autodata:: {module}.{name}" in page:
        return True
    obj = getattr(importlib.import_module(module), name)
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return obj.__module__ == module
    return ("", name) in ModuleAnalyzer.for_module(module).find_attr_docs()  # a #: doc comment


@pytest.mark.parametrize("package", [metarim_gym, metarim_sb3], ids=lambda p: p.__name__)
def test_api_pages_cover_all_public_names(tmp_path: Path, package) -> None:
    gen_api.generate(tmp_path)
    name = package.__name__
    modules = gen_api.public_modules(name)
    assert modules
    for module in modules:
        page = (tmp_path / f"{module}.md").read_text()
        assert f".. automodule:: {module}" in page, module
        if not gen_api.is_package(module):  # a subpackage's members are documented in its modules
            assert ":members:" in page, module
    package_page = (tmp_path / f"{name}.md").read_text()
    for public in package.__all__:
        if public == "__version__":
            continue
        home = gen_api.home_module(name, public)
        assert home in modules, f"{name}.{public} is defined in no public module (home: {home})"
        assert _documented_in_page(home, public, (tmp_path / f"{home}.md").read_text()), f"{home}.{public}"
        assert f"`~{home}.{public}`" in package_page


def test_argument_tables_are_generated(tmp_path: Path) -> None:
    fragments = gen_pages.generate_param_tables(tmp_path)
    for fragment in fragments:
        text = fragment.read_text()
        module, cls, _ = gen_pages.PARAM_TABLES.get(fragment.name, ("metarim_sb3.callbacks", "FastSlowCallback", ()))
        if importlib.util.find_spec(module) is not None and hasattr(importlib.import_module(module), cls):
            assert "not in this version" not in text, fragment.name
            assert text.count("\n|") >= 3, fragment.name  # header, separator, at least one row
    rim = (tmp_path / "params_rim_policy.md").read_text()
    for kwarg in ("n_units", "unit_size", "k"):
        assert f"| `{kwarg}` |" in rim


def test_examples_fragment_lists_every_example(tmp_path: Path) -> None:
    examples = DOCS.parent / "examples"
    text = gen_pages.generate_scripts(tmp_path / "examples.md", examples, "[0-9]*.py", source=True).read_text()
    for script in sorted(examples.glob("[0-9]*.py")):
        assert f"{{literalinclude}} /../examples/{script.name}" in text


def test_results_page_without_results(tmp_path: Path) -> None:
    page = gen_results.generate(tmp_path / "no-results", tmp_path / "out").read_text()
    assert "No results are committed yet" in page
    for name in gen_results.RESULT_SETS:  # every expected set has a page saying that nothing is there yet
        assert f"{{doc}}`results/{name}/ <{name}>`" in page
        text = (tmp_path / "out" / f"{name}.md").read_text()
        assert f"# `results/{name}/`" in text and f"Nothing is committed under `results/{name}/` yet" in text


def test_results_page_shows_result_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gen_results.RESULTS_ENV, "all")
    run = tmp_path / "results" / "quick"
    run.mkdir(parents=True)
    (run / "summary.csv").write_text("agent,value\na,1\n")
    (run / "command.txt").write_text("metarim compare\n")
    (run / "curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (run / "plots").mkdir()
    (run / "plots" / "iqm.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (run / "report.md").write_text("# Report\n\n![IQM](plots/iqm.png)\n")
    (run / "runs" / "seed_0").mkdir(parents=True)
    (run / "runs" / "seed_0" / "curve.csv").write_text("step,value\n")
    index = gen_results.generate(tmp_path / "results", tmp_path / "out").read_text()
    assert "No results are committed yet" not in index
    assert "{doc}`results/quick/ <quick>`" in index and "\nquick\n" in index.split("{toctree}")[1]
    page = (tmp_path / "out" / "quick.md").read_text()
    assert page.startswith("<!-- Generated") and "\n# `results/quick/`\n" in page
    assert "{include} quick/report.md" in page and ":heading-offset: 1" in page  # its "# Report" becomes "##"
    assert "{csv-table} summary.csv" in page and ":file: quick/summary.csv" in page
    assert "{figure} quick/curve.png" in page
    assert "plots/iqm.png" not in page  # shown by the report itself
    assert "{literalinclude} quick/command.txt" in page
    assert "runs/seed_0" not in page and "1 more committed files in `runs/`" in page
    out = tmp_path / "out" / "quick"
    assert (out / "summary.csv").read_text() == "agent,value\na,1\n"
    assert (out / "plots" / "iqm.png").is_file() and not (out / "runs").exists()


@pytest.mark.parametrize("snippet", sorted(p.name for p in SNIPPETS.glob("*.py") if p.name not in TRAINING_SNIPPETS))
def test_snippet_runs(snippet: str, capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(SNIPPETS / snippet), run_name="__main__")
    assert capsys.readouterr().out  # every snippet prints what it shows


@pytest.mark.slow
def test_quickstart_runs_with_a_tiny_budget(tmp_path: Path) -> None:
    source = (SNIPPETS / "quickstart.py").read_text()
    for pattern, value in (
        (r"^TOTAL_STEPS = .*$", "TOTAL_STEPS = 256"),
        (r"^EVAL_EPISODES = .*$", "EVAL_EPISODES = 1"),
    ):
        source, n = re.subn(pattern, value, source, flags=re.MULTILINE)
        assert n == 1, pattern
    script = tmp_path / "quickstart.py"
    script.write_text(source.replace("verbose=1", "verbose=0"))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "held-out return" in done.stdout


@pytest.mark.slow
def test_sphinx_build_has_no_warnings(tmp_path: Path) -> None:
    out = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-5000:]
    for page in ("index.html", "envs/index.html", "api/index.html", "results/index.html", "changelog.html"):
        assert (out / page).is_file(), page
    for name in gen_results.RESULT_SETS:  # one page per result set, committed or not
        assert (out / "results" / f"{name}.html").is_file(), name
    assert check_links.broken_links(out) == []  # what make docs checks after the build
    for result_page in (out / "results").glob("*.html"):  # wide tables scroll in their wrapper (custom.css)
        html = result_page.read_text()
        assert html.count("<table") == html.count('<div class="table-wrapper'), result_page.name

    from sphinx.util.inventory import InventoryFile

    with (out / "objects.inv").open("rb") as fh:
        inventory = InventoryFile.load(fh, "", lambda base, uri: uri)
    inventory = getattr(inventory, "data", inventory)  # Sphinx 9 returns a dict
    documented = {
        name.rsplit(".", 1)[-1] for kind, objects in inventory.items() if kind.startswith("py:") for name in objects
    }
    for package in (metarim_gym, metarim_sb3):
        missing = [n for n in package.__all__ if n != "__version__" and n not in documented]
        assert not missing, f"{package.__name__}: not in the API reference: {missing}"


def test_readme_quickstart_is_the_docs_quickstart() -> None:
    """One quickstart: the README's Python block is the docs snippet without its module docstring."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    snippet = (SNIPPETS / "quickstart.py").read_text()
    body = snippet.split('"""', 2)[2].lstrip("\n")
    assert body in blocks, "README.md's quickstart differs from docs/_snippets/quickstart.py"


def test_results_pages_one_per_set_study_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gen_results.RESULTS_ENV, "all")
    for name in ("bench", "calibrate", "study-v1", "extra"):
        (tmp_path / "results" / name).mkdir(parents=True)
        (tmp_path / "results" / name / "report.md").write_text(f"# {name}\n")
    (tmp_path / "results" / "study" / "runs" / "GoTo").mkdir(parents=True)  # a study under way: no report yet
    (tmp_path / "results" / "study" / "summary.csv").write_text("agent,value\na,1\n")
    out = tmp_path / "out"
    index = gen_results.generate(tmp_path / "results", out).read_text()
    toctree = index.split("{toctree}")[1].split("```")[0].split()
    assert toctree == [":hidden:", *gen_results.RESULT_SETS, "extra"]  # expected sets in order, then the others
    assert sorted(p.name for p in out.glob("*.md")) == sorted(["index.md", *(f"{n}.md" for n in toctree[1:])])
    for name in ("bench", "calibrate", "study-v1", "extra"):
        assert f"{{include}} {name}/report.md" in (out / f"{name}.md").read_text()
    study = (out / "study.md").read_text()
    assert "No `report.md` is committed under `results/study/` yet" in study and ":file: study/summary.csv" in study
    missing = (out / "quick.md").read_text()
    assert "Nothing is committed under `results/quick/` yet" in missing and "(nothing committed yet)" in index
    assert "{include}" not in index  # the index lists the pages, it shows none of them

    (tmp_path / "results" / "study-v1" / "README.md").write_text("# Why v1 is superseded\n\nSee `report.md`.\n")
    gen_results.generate(tmp_path / "results", out)
    v1 = (out / "study-v1.md").read_text()
    assert v1.index("{include} study-v1/README.md") < v1.index("{include} study-v1/report.md")  # the note first
    assert "{download}" not in v1 and "No `report.md`" not in v1


def test_results_index_gives_each_verdict_in_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gen_results.RESULTS_ENV, "all")
    study = tmp_path / "results" / "study"
    (study / "runs").mkdir(parents=True)
    (study / "report.md").write_text(
        "# metarim report\n\n## Verdict\n\n**In short:** GoTo: 1 supported, 2 inconclusive.\n"
    )
    (study / "runs" / "report.md").write_text("**In short:** not the set's report\n")  # only the set's own report
    (tmp_path / "results" / "quick").mkdir()
    (tmp_path / "results" / "quick" / "report.md").write_text("# metarim report\n\nNo claims here.\n")
    index = gen_results.generate(tmp_path / "results", tmp_path / "out").read_text()
    entries = {line.split("<")[1].split(">")[0]: line for line in index.splitlines() if line.startswith("- {doc}")}
    assert entries["study"].endswith(". **Verdict, in short:** GoTo: 1 supported, 2 inconclusive.")
    assert "in short" not in entries["quick"] and "in short" not in entries["bench"]
    assert index.count("Verdict, in short") == 1


def _site(root: Path, pages: dict[str, str]) -> Path:
    for name, body in pages.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"<html><body>{body}</body></html>")
    return root


def test_link_check_finds_missing_files_and_anchors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = _site(
        tmp_path,
        {
            "index.html": '<a href="sub/b.html#x">ok</a> <a href="sub/b.html#gone">anchor</a> <a href="#top">self</a>'
            '<a href="c.html">file</a> <a href="https://example.org/x.html#y">external</a> <img src="img/p.png">'
            '<span id="top"></span> <a href="sub/">folder</a> <a href="mailto:x@example.org">mail</a>',
            "sub/b.html": '<h2 id="x">X</h2><a href="../index.html#top">back</a><a name="old"></a>'
            '<a href="b.html#old">named</a><a href="../index.html#x">wrong page</a>',
            "sub/index.html": "",
        },
    )
    (site / "img").mkdir()
    (site / "img" / "p.png").write_bytes(b"\x89PNG")
    assert check_links.broken_links(site) == [
        "index.html: c.html (no file c.html)",
        "index.html: sub/b.html#gone (no id 'gone' in sub/b.html)",
        "sub/b.html: ../index.html#x (no id 'x' in index.html)",
    ]
    assert check_links.main([str(site)]) == 1
    assert "3 broken internal link(s)" in capsys.readouterr().out
    (site / "c.html").write_text("")
    (site / "sub" / "b.html").write_text('<h2 id="x">X</h2><span id="gone"></span>')
    (site / "index.html").write_text('<a href="sub/b.html#gone">anchor</a><a href="c.html">file</a>')
    assert check_links.main([str(site)]) == 0
    assert check_links.main([str(tmp_path / "empty")]) == 2
