"""Every `python` code block of README.md, CONTRIBUTING.md and the documentation pages runs (issue #43).

A page's blocks run in order in one namespace, as a reader would paste them one after another, in a
temporary working folder (a study's `runs/` lands there). Shell commands are fenced as `bash` and are not
run. A funcnn name that warns it is deprecated fails the page: the documentation uses the new names.
The pages are those `tools/site.py` renders: README.md, CONTRIBUTING.md, docs/*.md, docs/*/README.md.
"""

import importlib.util
import re
import sys
import time
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    "README.md",
    "CONTRIBUTING.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*/README.md")),
]
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
# Pages whose blocks train or compile for more than ~2 s (the `slow` marker's rule), measured on the
# 2-core machine; the others run in `make test-fast` too.
SLOW = {
    "README.md",
    "docs/bring-your-own-model.md",
    "docs/course/README.md",
    "docs/lottery-from-primitives.md",
    "docs/lottery-studies.md",
}


def blocks(page: str, language: str = "python") -> list[tuple[int, str]]:
    """(line of the block's first code line, code) for each block fenced as `language`, in page order."""
    text = (ROOT / page).read_text()
    return [(text.count("\n", 0, m.start(2)) + 1, m.group(2)) for m in FENCE.finditer(text) if m.group(1) == language]


def run_page(page: str) -> dict:
    """Run the page's python blocks in order in one namespace; tracebacks name the page's own lines."""
    namespace: dict = {"__name__": "funcnn_docs"}
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r".* is deprecated \(it goes in funcnn", category=DeprecationWarning)
        for line, code in blocks(page):
            exec(compile("\n" * (line - 1) + code, str(ROOT / page), "exec"), namespace)
    return namespace


CODE_PAGES = [p for p in PAGES if blocks(p)]


def test_the_pages_are_found_and_hold_code():
    assert {"README.md", "docs/course/README.md", "docs/lottery-from-primitives.md"} <= set(CODE_PAGES)
    assert "docs/lottery-mnist1d/README.md" in PAGES and not set(SLOW) - set(CODE_PAGES)
    # the README opens with code: its first python line within its first 40 lines
    assert blocks("README.md")[0][0] <= 40


def test_the_block_parser():
    text = "a\n```python\nx = 1\n```\n```bash\nmake run\n```\n```python\ny = x + 1\n```\n"
    found = [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]
    assert found == [("python", "x = 1\n"), ("bash", "make run\n"), ("python", "y = x + 1\n")]


def load_site_tool():
    """tools/site.py as a module (not by the name `site`, which is Python's own)."""
    tools = str(ROOT / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    spec = importlib.util.spec_from_file_location("funcnn_site_tool", ROOT / "tools" / "site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_renders_the_pages_this_test_runs():
    site = load_site_tool()
    assert {p.src for p in site.markdown_pages()} == set(PAGES)
    assert site.out_path("docs/lenet-fashion/README.md") == "lenet-fashion/index.html"
    assert site.out_path("docs/guide.md") == "guide.html" and site.out_path("README.md") == "index.html"
    # a code span broken over two lines is joined (GitHub reads it so); code blocks are left alone
    text = "a `b =\nc` d\n\n```python\nx = `y\n```\n"
    assert site.join_code_spans(text) == "a `b = c` d\n\n```python\nx = `y\n```\n"


@pytest.mark.parametrize("page", CODE_PAGES)
def test_every_block_compiles(page):
    for line, code in blocks(page):
        compile("\n" * (line - 1) + code, page, "exec")


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW else p for p in CODE_PAGES])
def test_every_block_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    run_page(page)
    print(f"{page}: {time.perf_counter() - start:.1f} s")
