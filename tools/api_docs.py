"""Build funcnn's API reference with pdoc, after checking what the reference is made of.

    python tools/api_docs.py [--out build/api] [--check-only]

Fails (exit 1, one line per problem) when:
- a public module, function or class has no docstring;
- a public function or class has no runnable example (a `>>>` line) in its docstring;
- a public function's signature lacks a type hint (a parameter or the return);
- a docstring (or docs/guide.md) names a dotted funcnn, jax, optax, chex or numpy object in backticks that
  does not exist (a broken cross-reference), e.g. `prune.magnitude` when funcnn.prune has no `magnitude`.

Public: every module of the funcnn package whose name has no leading underscore; in it, the names in its
`__all__` (which every public module must define) that are functions or classes defined there. A package's
`__all__` re-exports names documented in their own modules. pdoc then writes one HTML page per public module
(pdoc follows `__all__` too); its warnings count as failures.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

# A cross-reference: a backticked dotted name, optionally called, e.g. `funcnn.prune.magnitude(...)`.
XREF = re.compile(r"`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\([^`]*\))?`")
# Roots whose dotted names must resolve: funcnn (and its modules, named as `prune.magnitude`) and the
# libraries funcnn builds on. Other backticked dotted text (a file name, `params.w`) is left alone.
EXTERNAL_ROOTS = {"jax": "jax", "jnp": "jax.numpy", "optax": "optax", "chex": "chex", "np": "numpy", "numpy": "numpy"}


def public_modules(package: str = "funcnn") -> list[types.ModuleType]:
    root = importlib.import_module(package)
    names = [package] + [
        info.name
        for info in pkgutil.walk_packages(root.__path__, prefix=package + ".")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    return [importlib.import_module(name) for name in sorted(names)]


def public_objects(module: types.ModuleType) -> Iterator[tuple[str, object]]:
    """The functions and classes in `module.__all__` that `module` itself defines."""
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) == module.__name__:
            yield f"{module.__name__}.{name}", obj


def missing_hints(fn: types.FunctionType) -> list[str]:
    sig = inspect.signature(fn)
    missing = [
        p.name
        for p in sig.parameters.values()
        if p.annotation is inspect.Parameter.empty and p.name not in ("self", "cls")
    ]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def resolve(dotted: str, module: types.ModuleType, funcnn_modules: dict[str, types.ModuleType]) -> bool | None:
    """True if `dotted` names an object, False if it should and does not, None if it is not a reference."""
    root, *rest = dotted.split(".")
    if rest[-1] in ("py", "md", "json", "csv", "npz", "png"):
        return None  # a file name
    if root == "funcnn":
        base, rest = funcnn_modules["funcnn"], rest
    elif root in funcnn_modules:  # `prune.magnitude`: a funcnn module by its short name
        base = funcnn_modules[root]
    elif root in EXTERNAL_ROOTS:
        base = importlib.import_module(EXTERNAL_ROOTS[root])
    elif hasattr(module, root) and isinstance(getattr(module, root), (types.FunctionType, type)):
        base = getattr(module, root)  # `Spec.describe`: a name defined beside the docstring
    else:
        return None
    obj: object = base
    for i, part in enumerate(rest):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        if isinstance(obj, types.ModuleType):  # a submodule not imported by its package yet
            try:
                obj = importlib.import_module(f"{obj.__name__}.{part}")
                continue
            except ImportError:
                pass
        # NamedTuple fields and dataclass attributes are documented names too
        if inspect.isclass(obj) and part in getattr(obj, "__annotations__", {}):
            return i == len(rest) - 1
        return False
    return True


def problems(package: str = "funcnn") -> list[str]:
    modules = public_modules(package)
    # A deprecated module (a shim whose docstring starts "Deprecated") is no target of `short.name` references:
    # `conv.conv2d` means funcnn.conv, not the old path funcnn.nn.conv.
    live = [m for m in modules if not (m.__doc__ or "").startswith("Deprecated")]
    by_short = {m.__name__.rsplit(".", 1)[-1]: m for m in live}
    by_short["funcnn"] = importlib.import_module(package)
    found = []
    for module in modules:
        docs = [(module.__name__, inspect.getdoc(module))]
        if not docs[0][1]:
            found.append(f"{module.__name__}: module has no docstring")
        if not hasattr(module, "__all__"):
            found.append(f"{module.__name__}: no __all__ (the list of its public names)")
        missing = [name for name in getattr(module, "__all__", ()) if not hasattr(module, name)]
        found += [f"{module.__name__}: __all__ names {name!r}, which it does not define" for name in missing]
        for qualname, obj in public_objects(module):
            doc = inspect.getdoc(obj) if obj.__doc__ else None
            if inspect.isclass(obj) and obj.__doc__ and obj.__doc__.startswith(obj.__name__ + "("):
                doc = None  # NamedTuple's generated "Name(a, b)" is not a docstring
            if not doc:
                found.append(f"{qualname}: no docstring")
                continue
            docs.append((qualname, doc))
            if ">>>" not in doc:
                found.append(f"{qualname}: docstring has no example (a `>>>` line)")
            if inspect.isfunction(obj) and (missing := missing_hints(obj)):
                found.append(f"{qualname}: no type hint for {', '.join(missing)}")
        for where, doc in docs:
            for match in XREF.finditer(doc or ""):
                if resolve(match.group(1), module, by_short) is False:
                    found.append(f"{where}: broken cross-reference `{match.group(1)}`")
    # the "which function do I want" guide names functions by their full path; each must exist
    guide = Path(__file__).resolve().parent.parent / "docs" / "guide.md"
    for match in XREF.finditer(guide.read_text()):
        if match.group(1).startswith("funcnn.") and resolve(match.group(1), by_short["funcnn"], by_short) is False:
            found.append(f"docs/guide.md: broken cross-reference `{match.group(1)}`")
    return found


def build(out: Path, package: str = "funcnn") -> list[str]:
    import pdoc
    import pdoc.render

    # A NamedTuple's generated __new__ claims a module of its own ("namedtuple_TrainState"), where pdoc
    # cannot evaluate the (string) annotations of its fields; point it at the class's module.
    for module in public_modules(package):
        for _, obj in public_objects(module):
            if inspect.isclass(obj) and issubclass(obj, tuple) and hasattr(obj, "_fields"):
                obj.__new__.__module__ = obj.__module__
    pdoc.render.configure(docformat="google", search=True, show_source=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(package, output_directory=out)
    return [f"pdoc: {w.message}" for w in caught]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/api"), help="output folder (default build/api)")
    parser.add_argument("--check-only", action="store_true", help="check the docstrings; write no HTML")
    args = parser.parse_args(argv)
    found = problems()
    if not args.check_only:
        found += build(args.out)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"api_docs: {len(found)} problem(s)", file=sys.stderr)
        return 1
    if not args.check_only:
        print(f"api_docs: reference written to {args.out}/index.html ({len(public_modules())} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
