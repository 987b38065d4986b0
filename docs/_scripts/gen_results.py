"""Generate the results pages from the files committed under ``results/`` (nothing on them is typed by hand).

Each folder of ``results/`` (e.g. ``results/quick/``, written by ``metarim compare``) becomes a page of its own,
``results/<name>.md``: its ``report.md`` if it has one, then every plot, every small CSV as a table (larger ones as
downloads), and every small text file (commands, configs) verbatim. ``results/index.md`` lists the pages, each
with its report's one-line verdict where it has one; a result set the docs expect (:data:`RESULT_SETS`) that has no
committed files yet, or no report, gets a page that says so.
Only files tracked by git are used, so a local, uncommitted run never shows up by accident; set
``METARIM_DOCS_RESULTS=all`` to preview one. Outside a git checkout all files are used.

Run by ``docs/conf.py`` at every build; by hand: ``python docs/_scripts/gen_results.py RESULTS_DIR OUT_DIR``.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

try:
    from _common import write_if_changed
except ImportError:  # imported as docs._scripts.gen_results
    from ._common import write_if_changed  # type: ignore[no-redef]

#: Environment variable: ``all`` also uses files git does not track (to preview a run before committing it).
RESULTS_ENV = "METARIM_DOCS_RESULTS"
IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif")
TEXT_SUFFIXES = (".txt", ".sh", ".yaml", ".yml", ".json", ".toml", ".cfg", ".log")
#: CSVs up to this many data rows and columns are shown as tables; larger ones are offered as downloads.
MAX_TABLE_ROWS, MAX_TABLE_COLS = 40, 12
#: Text files up to this size are shown verbatim.
MAX_TEXT_BYTES = 8_000
_LANG = {".sh": "bash", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}


def committed_files(results_dir: Path) -> list[Path]:
    """The files under ``results_dir`` that the page may use (git-tracked ones, see the module docstring).

    :param results_dir: the repository's ``results/`` folder.
    :return: the files, sorted.
    """
    results_dir = Path(results_dir).resolve()
    if not results_dir.is_dir():
        return []
    every = sorted(p for p in results_dir.rglob("*") if p.is_file())
    if os.environ.get(RESULTS_ENV, "").lower() == "all":
        return every
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", "."], cwd=results_dir, capture_output=True, check=True, timeout=30
        ).stdout.decode()
    except (OSError, subprocess.SubprocessError):
        return every  # not a git checkout (e.g. an unpacked source archive): use what is there
    return sorted(results_dir / p for p in out.split("\0") if p and (results_dir / p).is_file())


def _first_heading_level(markdown: str) -> int | None:
    in_code = False
    for line in markdown.splitlines():
        if line.startswith(("```", "~~~")):
            in_code = not in_code
        match = None if in_code else re.match(r"(#{1,6}) ", line)
        if match:
            return len(match.group(1))
    return None


#: The line a report with a verdict starts its summary with (``metarim report --claims``).
IN_SHORT = "**In short:** "


def verdict_in_short(report: Path) -> str | None:
    """The verdict's one-line summary in a committed ``report.md`` (its ``**In short:**`` line), for the index.

    :param report: the report file.
    :return: the summary after ``**In short:**``, or ``None`` if the report has no verdict.
    """
    for line in report.read_text().splitlines():
        if line.startswith(IN_SHORT):
            return line[len(IN_SHORT) :].strip()
    return None


def _csv_shape(path: Path) -> tuple[int, int]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return max(len(rows) - 1, 0), max((len(r) for r in rows), default=0)


def _run_section(name: str, files: list[Path], run_src: Path, run_out: Path, kept: set[Path]) -> list[str]:
    """One folder of ``results/``: copies what it shows next to the page and returns its Markdown.

    Shown: ``report.md`` (after the folder's ``README.md`` if it has both; else ``README.md``) and what they
    reference, every plot at any depth, and the other files
    at the folder's top level (small CSVs as tables, small text files verbatim unless the report names them, the
    rest as downloads). Files deeper down (e.g. the per-run outputs under ``runs/``) are only counted.
    """
    rel = {f: f.relative_to(run_src) for f in files}
    by_name = {rel[f].as_posix().lower(): f for f in files}
    report = by_name.get("report.md", by_name.get("readme.md"))
    # a README beside the report (e.g. a note on why the set is superseded) is shown first
    readme = by_name.get("readme.md") if report is not None and report is by_name.get("report.md") else None
    shown_docs = [d for d in (readme, report) if d is not None]
    referenced_text = "\n".join(d.read_text() for d in shown_docs)

    def referenced(f: Path) -> bool:
        pattern = r"(?<![\w./-])(\./)?" + re.escape(rel[f].as_posix()) + r"(?![\w/-])"
        return f not in shown_docs and re.search(pattern, referenced_text) is not None

    top = [f for f in files if len(rel[f].parts) == 1 and f not in shown_docs]
    nested_images = [f for f in files if len(rel[f].parts) > 1 and f.suffix.lower() in IMAGE_SUFFIXES]
    shown_files = {f for f in files if f in shown_docs or f in top or f in nested_images or referenced(f)}
    for f in shown_files:
        write_if_changed(run_out / rel[f], f.read_bytes())
        kept.add((run_out / rel[f]).resolve())
    link = lambda f: f"{name}/{rel[f].as_posix()}" if name else rel[f].as_posix()  # noqa: E731
    lines = []
    for doc in shown_docs:  # their headings go under the page title
        level = _first_heading_level(doc.read_text()) or 2
        offset = max(0, 2 - level)
        lines += [f"```{{include}} {link(doc)}", ":relative-images:", f":heading-offset: {offset}", "```", ""]
    if report is None:
        lines += [NO_REPORT.format(name=name), ""]
    tables: list[str] = []
    figures: list[str] = []
    downloads: list[str] = []
    texts: list[str] = []
    for f in [*top, *nested_images]:
        if f.suffix.lower() in IMAGE_SUFFIXES and referenced(f):
            continue
        suffix, shown = f.suffix.lower(), rel[f].as_posix()
        if suffix in IMAGE_SUFFIXES:
            figures += [f"```{{figure}} {link(f)}", f":alt: {shown}", "", f"`{shown}`", "```", ""]
        elif suffix == ".csv":
            n_rows, n_cols = _csv_shape(f)
            if 0 < n_rows <= MAX_TABLE_ROWS and n_cols <= MAX_TABLE_COLS:
                tables += [f"```{{csv-table}} {shown}", f":file: {link(f)}", ":header-rows: 1", "```", ""]
            else:
                downloads.append(f"- {{download}}`{shown} <{link(f)}>` ({n_rows} rows × {n_cols} columns)")
        elif suffix in TEXT_SUFFIXES and f.stat().st_size <= MAX_TEXT_BYTES and not referenced(f):
            lang = _LANG.get(suffix, "text")
            texts += [f"```{{literalinclude}} {link(f)}", f":language: {lang}", f":caption: {shown}", "```", ""]
        else:
            downloads.append(f"- {{download}}`{shown} <{link(f)}>`")
    lines += tables + figures
    if downloads:
        lines += ["Data files, to download:", "", *downloads, ""]
    if texts:
        lines += ["Commands, configuration and other text files in this folder:", "", *texts]
    hidden = [f for f in files if f not in shown_files]
    if hidden:
        folders = sorted({rel[f].parts[0] for f in hidden})
        where = ", ".join(f"`{d}/`" for d in folders)
        lines += [f"Not shown: {len(hidden)} more committed files in {where} (per-run outputs).", ""]
    return lines


INTRO = """\
# Results

These pages are generated at every docs build from the files committed under `results/` in the repository, one
page per result set (a folder of `results/`): the CSV tables and plots written by a real run of the experiment
command, and the commands and configuration that produced them. No number on them is typed by hand; to change
one, re-run the experiment and commit its output. How to re-run it: {doc}`/guides/reproducing`.
"""

#: The result sets the docs describe, in page order: folder name -> what it is (one line, no figures: those come
#: from the files). A folder of ``results/`` not listed here gets a page too, after these.
RESULT_SETS = {
    "study": "the study (protocol v2): the project's test of the paper's claims, with the verdict on each",
    "study-v1": "the first study (protocol v1), superseded by the v2 study; kept with its report and verdict",
    "quick": "what `make demo` runs: Meta-RIMs, RIMs, reversed Meta-RIMs and an LSTM on the GoTo family, briefly",
    "calibrate": "the fast/slow calibration sweep: the slow group's learning rate and the meta-sequence length",
    "layout": "the minibatch layout comparison: the RIM agents with padded whole sequences or fixed-length chunks",
    "generalization": "zero-shot to larger rooms: RIM, Meta-RIM, LSTM and GRU agents trained on one small env and "
    "tested on larger ones never trained on (the RIMs paper's MiniGrid protocol, with seeds and intervals)",
    "seed_batch": "many seeds in one process: the whole-run equivalence check of the seed-batched trainer against "
    "separate runs (`studies/seed_batch_equivalence.py`)",
    "critic": "how the critic is wired to the RIM core (`studies/critic_wiring.py`)",
    "bench": "the benchmarks of `make bench`: speed of the environments, the RIM core and training",
}

MISSING = """\
:::{{note}}
**Nothing is committed under `results/{name}/` yet.** The runs of this result set may be under way; its files
(report, tables, plots and the commands that produced them) appear on this page at the first docs build after
they are committed.
:::
"""

NO_REPORT = """\
:::{{note}}
**No `report.md` is committed under `results/{name}/` yet**: the set may be partial (runs still under way).
Below is what is committed so far.
:::
"""

EMPTY = """\
:::{note}
**No results are committed yet.** When the output of a `metarim compare` run (CSV tables, plots, a report and
the exact command) is committed under `results/`, it appears here at the next docs build. Until then this
documentation quotes no performance numbers.
:::
"""


def _page_name(name: str) -> str:
    return name or "top-level"


def generate(results_dir: Path, out_dir: Path) -> Path:
    """Write ``out_dir/index.md`` and one page per result set (``out_dir/<name>.md``), and copy the committed
    result files next to them (``out_dir/<name>/``).

    :param results_dir: the repository's ``results/`` folder (may be missing).
    :param out_dir: the pages' folder inside the docs source.
    :return: the index page.
    """
    results_dir, out_dir = Path(results_dir).resolve(), Path(out_dir)
    files = committed_files(results_dir)
    kept: set[Path] = set()
    groups: dict[str, list[Path]] = {}
    for f in files:
        parts = f.relative_to(results_dir).parts
        groups.setdefault(parts[0] if len(parts) > 1 else "", []).append(f)
    # the expected sets in their order (the study first, benchmarks last), then any other folder
    names = [*RESULT_SETS, *sorted(n for n in groups if n not in RESULT_SETS)]
    header = "<!-- Generated by docs/_scripts/gen_results.py; do not edit. -->\n\n"
    lines = [INTRO]
    if not files:
        lines.append(EMPTY)
    entries = []
    for name in names:
        folder = f"results/{name}/" if name else "results/ (top level)"
        title = f"`{folder}`"
        what = RESULT_SETS.get(name, "")
        page_lines = [f"# {title}", ""]
        if what:
            page_lines += [what[0].upper() + what[1:] + ".", ""]
        if name in groups:
            src = results_dir / name if name else results_dir
            page_lines += _run_section(name, groups[name], src, out_dir / name, kept)
            state = ""
        else:
            page_lines += [MISSING.format(name=name)]
            state = " (nothing committed yet)"
        page = out_dir / f"{_page_name(name)}.md"
        write_if_changed(page, header + "\n".join(page_lines))
        kept.add(page.resolve())
        entry = f"- {{doc}}`{folder} <{_page_name(name)}>`{': ' + what if what else ''}{state}"
        report = results_dir / name / "report.md"
        short = verdict_in_short(report) if name and report in groups.get(name, []) else None
        lines.append(entry + (f". **Verdict, in short:** {short}" if short else ""))
        entries.append(_page_name(name))
    lines += ["", "```{toctree}", ":hidden:", "", *entries, "```", ""]
    index = out_dir / "index.md"
    write_if_changed(index, header + "\n".join(lines))
    kept.add(index.resolve())
    if out_dir.is_dir():
        for path in sorted(out_dir.rglob("*"), reverse=True):
            if path.is_file() and path.resolve() not in kept:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                shutil.rmtree(path)
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    print(generate(args.results_dir, args.out_dir))


if __name__ == "__main__":
    main()
