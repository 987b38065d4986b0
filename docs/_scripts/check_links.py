"""Check the internal links of the built HTML site: every linked file exists and every ``#anchor`` is an id there.

Sphinx's ``linkcheck`` builder needs the network (it checks external URLs) and does not check anchors inside the
site; this script reads the built pages only. Links with a scheme (``https:``, ``mailto:``...) or starting with
``//`` are external and not checked. Run by ``make docs`` after the HTML build; by hand::

    python docs/_scripts/check_links.py docs/_build/html

Exit status 0 when every internal link resolves, 1 otherwise (each broken link is printed as
``page: link (why)``), 2 when the folder holds no HTML page.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: Attributes that hold links, by tag (``src`` of scripts and images: a missing file is a broken page too).
LINK_ATTRS = {"a": "href", "link": "href", "img": "src", "script": "src", "source": "src", "iframe": "src"}


class _PageParser(HTMLParser):
    """Collects the ids (and ``<a name>``) a page defines and the links it holds."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("id", "name") if tag == "a" else ("id",):
            if values.get(name):
                self.ids.add(str(values[name]))
        attr = LINK_ATTRS.get(tag)
        if attr is not None and values.get(attr):
            self.links.append(str(values[attr]))


def parse_page(path: Path) -> _PageParser:
    """
    :param path: an HTML file.
    :return: its parser, with ``ids`` and ``links`` filled in.
    """
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return parser


def _is_external(link: str) -> bool:
    parts = urlsplit(link)
    return bool(parts.scheme) or link.startswith("//")


def broken_links(site: Path) -> list[str]:
    """
    :param site: the built HTML folder (e.g. ``docs/_build/html``).
    :return: one line per broken internal link, ``page: link (why)``, sorted; empty when all resolve.
    """
    site = Path(site).resolve()
    pages = sorted(site.rglob("*.html"))
    parsed = {page: parse_page(page) for page in pages}
    problems: list[str] = []
    for page, parser in parsed.items():
        for link in parser.links:
            if _is_external(link):
                continue
            parts = urlsplit(link)
            if parts.path:
                target = (page.parent / unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
            else:
                target = page
            shown = page.relative_to(site).as_posix()
            if not target.is_file():
                problems.append(f"{shown}: {link} (no file {_relative(target, site)})")
                continue
            anchor = unquote(parts.fragment)
            if not anchor or target.suffix != ".html":
                continue
            ids = parsed[target].ids if target in parsed else parse_page(target).ids
            if anchor not in ids:
                problems.append(f"{shown}: {link} (no id {anchor!r} in {_relative(target, site)})")
    return sorted(set(problems))


def _relative(path: Path, site: Path) -> str:
    try:
        return path.relative_to(site).as_posix()
    except ValueError:
        return str(path)


def main(argv: Iterable[str] | None = None) -> int:
    """
    :param argv: the arguments (default: ``sys.argv[1:]``).
    :return: the exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", type=Path, help="the built HTML folder")
    args = parser.parse_args(list(argv) if argv is not None else None)
    pages = list(Path(args.site).rglob("*.html"))
    if not pages:
        print(f"check_links: no HTML page under {args.site}", file=sys.stderr)
        return 2
    problems = broken_links(args.site)
    for line in problems:
        print(line, file=sys.stderr)
    print(f"check_links: {len(pages)} pages, {len(problems)} broken internal link(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
