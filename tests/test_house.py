"""The layout issue #30 asks for, kept: no module of `funcnn/` and no script of `experiments/` or
`benchmarks/` over 400 lines, and no import circle among funcnn's modules (function-level imports
included, since those are how circles hide)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module and package under `root`."""
    names = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports(name: str, path: Path, names: dict[str, Path]) -> set[str]:
    """The funcnn modules `name` imports anywhere in its file (`from a import b` counts as a.b when b is
    a module, else as a)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names]
        for target in targets:
            while target and target not in names:  # `import funcnn.nn.layer.x` -> the module that holds x
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules it imports. A package's `__init__` importing its own submodules is an
    edge like any other, so a submodule importing its package (or one above it) closes a circle."""
    names = module_names(root)
    return {n: imports(n, p, names) for n, p in names.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_the_circle_finder_finds_circles_and_only_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"x": {"y"}, "y": set()}) == []


def test_a_submodule_importing_its_package_is_a_circle(tmp_path):
    pkg = tmp_path / "funcnn" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "funcnn" / "__init__.py").write_text("from funcnn import sub\n")
    (pkg / "__init__.py").write_text("from funcnn.sub import a\n")
    (pkg / "a.py").write_text("def f():\n    from funcnn import sub\n")
    assert circles(import_graph(tmp_path / "funcnn")) == [["funcnn.sub", "funcnn.sub.a"]]
    (pkg / "a.py").write_text("def f():\n    from funcnn.sub import b\n")
    (pkg / "b.py").write_text("x = 1\n")
    assert circles(import_graph(tmp_path / "funcnn")) == []


def test_no_import_circle_in_funcnn():
    graph = import_graph(ROOT / "funcnn")
    assert len(graph) > 50 and "funcnn.prune.masks" in graph["funcnn.prune"]
    assert circles(graph) == []


@pytest.mark.parametrize("folder", ["funcnn", "experiments", "benchmarks", "tools"])
def test_no_file_over_400_lines(folder):
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / folder).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"over {MAX_LINES} lines (split by idea, issue #30): {long}"
