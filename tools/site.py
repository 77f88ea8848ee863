"""Build funcnn's documentation site: static HTML in one folder, nothing from the network.

    python tools/site.py [--out build/site]

Pages: README.md (the home page), docs/*.md (guides), every docs/<study>/README.md (docs/course/ is the
course; the others are results pages), CONTRIBUTING.md; and the API reference, one page per topic
(`site_api.py`). Links between pages follow the Markdown files' own relative links, so the pages read the
same on GitHub: a link to a page becomes the link to its HTML, a link to a file under docs/ (a figure, a
results.json) copies the file beside its page, a link into funcnn/ goes to the module's API section, and
a link to any other file of the checkout (an experiment's script) points back into the checkout. Code
spans that name a documented funcnn object (`prune.magnitude`) link to it.

The docstring checks of `api_docs.py` run first. Any problem (a docstring check, a broken link or image,
a page that cannot be read, a warning while rendering) is printed and the exit status is 1.
"""

from __future__ import annotations

import argparse
import html
import os
import posixpath
import re
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import api_docs
import markdown2
import pygments
import pygments.formatters
import pygments.lexers
import site_api

ROOT = Path(__file__).resolve().parent.parent
# Guides in reading order (docs/<name>.md); a guide not listed here follows them, alphabetically.
LEARN = ["course", "lottery-from-primitives", "lottery-studies", "bring-your-own-model", "guide", "data", "scale-out"]
# Results pages (docs/<study>/README.md) in this order, then any other, alphabetically.
RESULTS = [
    "lottery-mnist1d",
    "lenet-fashion",
    "mnist1d-notebook",
    "pruning-at-init",
    "rewinding",
    "stability-lenet",
    "late-rewinding-resnet8",
    "stability-resnet8",
    "resnet20-fashion",
    "prune-speed",
    "sparse-training",
    "one-shot",
    "supermask",
]
PROJECT = ["CONTRIBUTING.md", "docs/benchmarks.md"]
COPIED = {"LICENSE": "LICENSE.txt", "CITATION.cff": "CITATION.cff.txt"}  # root files linked from pages (as text)
EXTRAS = {
    "fenced-code-blocks": {"cssclass": "codehilite"},
    "tables": None,
    "header-ids": None,
    "code-friendly": None,
    "cuddled-lists": None,
    "toc": {"depth": 3},
    "strike": None,
}
FORMATTER = pygments.formatters.HtmlFormatter(cssclass="codehilite")


class Page(NamedTuple):
    src: str  # path in the repository ("" for an API page)
    out: str  # path in the site
    title: str
    section: str  # Learn, Results, API reference, Project, or "" for the home page


def title_of(text: str, fallback: str) -> str:
    m = re.search(r"^# (.+)$", text, re.M)
    return m.group(1).strip() if m else fallback


def out_path(src: str) -> str:
    """Where a Markdown page goes in the site: README.md -> index.html, docs/x.md -> x.html,
    docs/x/README.md -> x/index.html, CONTRIBUTING.md -> contributing.html."""
    p = Path(src)
    if src == "README.md":
        return "index.html"
    if p.parts[0] == "docs" and p.name == "README.md":
        return posixpath.join(*p.parts[1:-1], "index.html")
    if p.parts[0] == "docs":
        return posixpath.join(*p.parts[1:-1], p.stem + ".html")
    return p.stem.lower() + ".html"


def markdown_pages() -> list[Page]:
    """Every Markdown page of the site, in navigation order."""
    guides = {p.stem: p for p in (ROOT / "docs").glob("*.md")}
    studies = {p.parent.name: p for p in (ROOT / "docs").glob("*/README.md")}
    found = [("README.md", "")]
    learn = [n for n in LEARN if n in guides or n in studies]
    learn += sorted(n for n in guides if n not in LEARN and f"docs/{n}.md" not in PROJECT)
    for name in learn:
        found.append((f"docs/{name}.md" if name in guides else f"docs/{name}/README.md", "Learn"))
    results = [n for n in RESULTS if n in studies] + sorted(n for n in studies if n not in RESULTS and n not in LEARN)
    found += [(f"docs/{name}/README.md", "Results") for name in results]
    found += [(src, "Project") for src in PROJECT if (ROOT / src).exists()]
    return [Page(src, out_path(src), title_of((ROOT / src).read_text(), src), section) for src, section in found]


def code(src: str, lang: str) -> str:
    lexer = pygments.lexers.get_lexer_by_name(lang)
    return pygments.highlight(src, lexer, FORMATTER)


def markdown(text: str) -> str:
    return markdown2.markdown(join_code_spans(text), extras=EXTRAS)


def join_code_spans(text: str) -> str:
    """A code span broken over two lines (`a =\nb`) on one line: GitHub reads it so, markdown2 would not.
    Only in paragraphs with whole spans (an even number of backticks), never in code blocks or tables."""
    parts = re.split(r"(^```.*?^```[ \t]*$)", text, flags=re.M | re.S)
    for i in range(0, len(parts), 2):  # the even parts are outside fenced code blocks
        paragraphs = parts[i].split("\n\n")
        for j, para in enumerate(paragraphs):
            if para.count("`") % 2 == 0 and not para.lstrip().startswith("|") and "``" not in para:
                paragraphs[j] = re.sub(r"`[^`]+`", lambda m: re.sub(r"\n\s*", " ", m.group(0)), para)
        parts[i] = "\n\n".join(paragraphs)
    return "".join(parts)


class Site:
    def __init__(self, out: Path, pages: list[Page], index: dict[str, str], module_urls: dict[str, str]):
        self.out, self.pages, self.index, self.module_urls = out, pages, index, module_urls
        self.by_src = {p.src: p for p in pages if p.src}
        self.problems: list[str] = []

    def rewrite(self, body: str, page: Page) -> str:
        """Every href and src of a rendered page, made to work inside the site."""
        here = posixpath.dirname(page.out)
        src_dir = posixpath.dirname(page.src) if page.src else ""

        def repl(m: re.Match) -> str:
            attr, url = m.group(1), html.unescape(m.group(2))
            new = self.url_for(url, src_dir, here, page)
            return f'{attr}="{html.escape(new, quote=True)}"'

        return re.sub(r'(href|src)="([^"]*)"', repl, body)

    def url_for(self, url: str, src_dir: str, here: str, page: Page) -> str:
        if re.match(r"^[a-z][a-z0-9+.-]*:", url) or url.startswith("#") or not page.src:
            return url
        path, _, fragment = url.partition("#")
        target = posixpath.normpath(posixpath.join(src_dir, path))
        full = ROOT / target
        if target.startswith("..") or not full.exists():
            self.problems.append(f"{page.src}: broken link or image {url!r}")
            return url
        suffix = f"#{fragment}" if fragment else ""
        if target in self.by_src:
            return posixpath.relpath(self.by_src[target].out, here or ".") + suffix
        module = self.module_of(target)
        if module in self.module_urls:
            return posixpath.relpath(self.module_urls[module].split("#")[0], here or ".") + "#" + module
        if target.startswith("docs/") or target in COPIED:
            dest = COPIED.get(target) or posixpath.join(*Path(target).parts[1:])
            (self.out / dest).parent.mkdir(parents=True, exist_ok=True)
            if full.is_dir():
                self.problems.append(f"{page.src}: link to a folder under docs/ {url!r} (link to a file)")
                return url
            shutil.copyfile(full, self.out / dest)
            return posixpath.relpath(dest, here or ".") + suffix
        # a file of the checkout (an experiment's script): linked where it is
        return os.path.relpath(full, (self.out / here).resolve()).replace(os.sep, "/") + suffix

    @staticmethod
    def module_of(target: str) -> str:
        parts = Path(target.rstrip("/")).with_suffix("").parts
        if not parts or parts[0] != "funcnn":
            return ""
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def link_code(self, body: str, page: Page) -> str:
        """`<code>prune.magnitude(...)</code>` -> a link to its API entry (not inside links or code blocks)."""
        here = posixpath.dirname(page.out)

        def repl(m: re.Match) -> str:
            name = re.sub(r"\(.*\)$", "", m.group(2))
            if m.group(1) or name not in self.index:
                return m.group(0)
            return f'<a href="{posixpath.relpath(self.index[name], here or ".")}">{m.group(0)}</a>'

        # a code span right after an opening <a ...> or <pre> is left alone
        return re.sub(r"(<a [^>]*>|<pre>)?<code>([A-Za-z_][\w.]*(?:\([^<]*\))?)</code>", repl, body)

    def nav(self, current: Page, api: list[site_api.ApiPage], toc: str) -> str:
        here = posixpath.dirname(current.out)
        rel = lambda out: posixpath.relpath(out, here or ".")
        items = [f'<a class="home" href="{rel("index.html")}">funcnn</a>']
        sections: dict[str, list[tuple[str, str]]] = {"Learn": [], "Results": [], "API reference": [], "Project": []}
        for p in self.pages:
            if p.section:
                sections[p.section].append((p.out, p.title))
        sections["Project"] += [("LICENSE.txt", "License (Apache 2.0)"), ("CITATION.cff.txt", "Citation")]
        for name, entries in sections.items():
            items.append(f"<h3>{name}</h3><ul>")
            for out, title in entries:
                cls = ' class="current"' if out == current.out else ""
                items.append(f'<li{cls}><a href="{rel(out)}">{inline(title)}</a>')
                if out == current.out and toc:
                    items.append(toc)
                items.append("</li>")
            items.append("</ul>")
        return "\n".join(items)

    def write(self, page: Page, body: str, api: list[site_api.ApiPage], toc: str = "") -> None:
        depth_root = posixpath.relpath("style.css", posixpath.dirname(page.out) or ".")
        doc = TEMPLATE.format(
            title=html.escape(re.sub(r"`", "", page.title)), css=depth_root, nav=self.nav(page, api, toc), body=body
        )
        dest = self.out / page.out
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(doc)


TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · funcnn</title>
<link rel="stylesheet" href="{css}">
</head>
<body>
<nav class="sidebar">
{nav}
</nav>
<main class="content">
{body}
</main>
</body>
</html>
"""


def inline(title: str) -> str:
    """A page title with its `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(title, quote=False))


def api_overview(api: list[site_api.ApiPage], deprecated: list[str]) -> str:
    rows = []
    for p in api:
        links = ", ".join(f'<a href="{p.slug}.html#{m}"><code>{m}</code></a>' for m in p.modules if m.count(".") < 2)
        rows.append(
            f'<tr><td><a href="{p.slug}.html">{p.title}</a></td><td>{html.escape(p.blurb)}</td><td>{links}</td></tr>'
        )
    return (
        "<h1>API reference</h1><p>Every public module of funcnn, grouped by topic. Each public function and class "
        "has its signature, its docstring with a runnable example, and its source (collapsed). "
        'Not sure which function you want? See <a href="../guide.html">which function do I want</a>.</p>'
        f"<table><thead><tr><th>topic</th><th>what</th><th>modules</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + (
            f"<p>Deprecated modules, left out here (each names its replacement and goes in the next release): "
            f"{', '.join(f'<code>{m}</code>' for m in deprecated)}.</p>"
            if deprecated
            else ""
        )
    )


def build(out: Path) -> list[str]:
    """Write the site into `out` (emptied first); return the problems found."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # deprecated aliases warn when read; that is their job, not a problem of the site
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        problems = api_docs.problems()
        # a deprecated module (a shim whose docstring starts "Deprecated", as api_docs reads it) is left out
        everything = api_docs.public_modules()
        modules = [m for m in everything if not (m.__doc__ or "").startswith("Deprecated")]
        deprecated = [m.__name__ for m in everything if m not in modules]
        api = site_api.api_pages(modules, markdown, code)
        index = site_api.link_index(modules)
        module_urls = {k: v for k, v in index.items() if k.startswith("funcnn.") and v.endswith("#" + k)}
        pages = markdown_pages()
        api_entries = [Page("", "api/index.html", "Overview", "API reference")]
        api_entries += [Page("", f"api/{p.slug}.html", p.title, "API reference") for p in api]
        site = Site(out, pages + api_entries, index, module_urls)
        for page in pages:
            rendered = markdown((ROOT / page.src).read_text())
            body = site.link_code(site.rewrite(str(rendered), page), page)
            toc = getattr(rendered, "toc_html", "") or ""
            site.write(page, body, api, toc and f'<div class="toc md">{toc}</div>')
        site.write(api_entries[0], api_overview(api, deprecated), api)
        for entry, p in zip(api_entries[1:], api, strict=True):
            toc = (
                '<div class="toc"><ul>' + "".join(f'<li><a href="#{m}">{m}</a></li>' for m in p.modules) + "</ul></div>"
            )
            body = f"<h1>{p.title}</h1><p class='blurb'>{html.escape(p.blurb)}</p>{p.body}"
            site.write(entry, site.link_code(body, entry), api, toc)
        for src, dest in COPIED.items():
            shutil.copyfile(ROOT / src, out / dest)
        css = (Path(__file__).with_name("site.css")).read_text() + FORMATTER.get_style_defs(".codehilite")
        (out / "style.css").write_text(css)
    problems += site.problems
    problems += [f"warning: {w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="output folder (default build/site)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    problems = build(args.out.resolve())
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"site: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    n = sum(1 for _ in args.out.rglob("*.html"))
    print(f"site: {n} pages in {args.out}/ ({time.perf_counter() - start:.1f} s); open {args.out}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
