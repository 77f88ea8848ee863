"""The API reference of the documentation site: funcnn's public modules grouped by topic, rendered from
their docstrings (`tools/site.py` calls `api_pages`).

Each topic page holds its modules in order; each module its docstring, then every public function and
class it defines (the names in its `__all__` that it defines: `api_docs.public_objects`), each with its
signature, its docstring (Google style: the `Example:` section as a code block) and its source, collapsed
in a `<details>`. A package lists the names it re-exports, linked to where they are documented.
`link_index` maps every documented name, in each of its spellings (`funcnn.prune.selection.magnitude`,
`funcnn.prune.magnitude`, `prune.magnitude`), to its URL, so that code spans on every page link to it.
"""

from __future__ import annotations

import html
import inspect
import re
import textwrap
import types
from collections.abc import Callable
from typing import Any, NamedTuple

import api_docs

# (slug, title, what it holds, module prefixes): a module goes to the topic of its longest matching prefix.
TOPICS = [
    (
        "layers-and-nets",
        "Layers and nets",
        "layers as init/apply pairs, combinators, activations, convolutions, pools, ready-made networks",
        (
            "funcnn.nn",
            "funcnn.activations",
            "funcnn.models",
            "funcnn.conv",
            "funcnn.pool",
            "funcnn.windows",
            "funcnn.kernels",
        ),
    ),
    (
        "training",
        "Training",
        "TrainState, the train step, epochs, fit, populations; checks on traced values",
        ("funcnn.train", "funcnn.checks"),
    ),
    ("schedules", "Schedules", "learning-rate schedules in epochs, plateau decay", ("funcnn.schedules",)),
    ("losses", "Losses", "error, MSE, SSE, cross-entropies, asymmetric losses, accuracy", ("funcnn.losses",)),
    (
        "pruning",
        "Pruning",
        "masks, scores, selection, structured pruning, one-shot reconstruction; compaction; sparse inference",
        ("funcnn.prune", "funcnn.compaction", "funcnn.sparse"),
    ),
    ("lottery-studies", "Lottery studies", "Spec, run, arms, pruners, the round program, reports", ("funcnn.lottery",)),
    (
        "sparse-training",
        "Sparse training",
        "static, gradual, SET, RigL, straight-through, supermasks",
        ("funcnn.sparsity",),
    ),
    (
        "stability",
        "Stability",
        "linear mode connectivity, interpolation, error barriers",
        ("funcnn.stability", "funcnn.interpolation"),
    ),
    ("interop", "Interop", "flax.nnx, flax.linen and equinox models as funcnn layers", ("funcnn.interop",)),
    (
        "io",
        "Data and io",
        "data sets with checksums, verified checkpoints, the compilation cache",
        ("funcnn.data", "funcnn.io", "funcnn.compile_cache"),
    ),
    (
        "scale-out",
        "Scale-out",
        "populations over devices and hosts, CPU flags, timing",
        ("funcnn.distributed", "funcnn.cpu", "funcnn.timing"),
    ),
]
OTHER = ("other", "Other modules", "modules no topic claims yet", ())
Markdown = Callable[[str], str]  # Markdown -> HTML, as the site renders every page


class ApiPage(NamedTuple):
    slug: str  # the page is api/<slug>.html
    title: str
    blurb: str
    modules: list[str]  # module names, in page order (the anchors of the sidebar)
    body: str  # HTML


def topic_of(name: str) -> tuple[str, str, str, tuple[str, ...]]:
    best, best_len = OTHER, 0
    for topic in TOPICS:
        for prefix in topic[3]:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = topic, len(prefix)
    return best


def group(modules: list[types.ModuleType]) -> dict[str, list[types.ModuleType]]:
    """Topic slug -> its modules: by the topic's prefixes, then alphabetical (a package before its modules)."""
    out: dict[str, list[types.ModuleType]] = {}
    for module in modules:
        if module.__name__ != "funcnn":
            out.setdefault(topic_of(module.__name__)[0], []).append(module)
    for slug, members in out.items():  # the topic's prefixes in the order TOPICS gives them
        prefixes = next((t[3] for t in TOPICS if t[0] == slug), ())
        members.sort(key=lambda m, prefixes=prefixes: (_rank(m.__name__, prefixes), m.__name__))
    return out


def _rank(name: str, prefixes: tuple[str, ...]) -> int:
    return min([i for i, p in enumerate(prefixes) if name == p or name.startswith(p + ".")] or [len(prefixes)])


def link_index(modules: list[types.ModuleType]) -> dict[str, str]:
    """Every spelling of every documented name -> its URL relative to the site root."""
    index: dict[str, str] = {}
    documented: dict[int, str] = {}
    for module in modules:
        if module.__name__ == "funcnn":
            continue
        page = f"api/{topic_of(module.__name__)[0]}.html"
        index.setdefault(module.__name__, f"{page}#{module.__name__}")
        for qualname, obj in api_docs.public_objects(module):
            documented[id(obj)] = f"{page}#{qualname}"
    for module in modules:  # the public spellings: a package's re-exports, then the short module names
        for name in getattr(module, "__all__", ()):
            url = documented.get(id(getattr(module, name, None)))
            if url:
                index.setdefault(f"{module.__name__}.{name}", url)
    for dotted, url in list(index.items()):
        if dotted.startswith("funcnn.") and dotted.count(".") >= 2:
            index.setdefault(dotted.removeprefix("funcnn."), url)
    return index


def docstring_markdown(doc: str) -> str:
    """A Google-style docstring as Markdown: a section header (`Example:`, `Args:`) becomes a bold line,
    an `Example` section a `pycon` code block; everything else is Markdown as written."""
    out: list[str] = []
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        m = re.fullmatch(r"(Examples?|Args|Arguments|Returns|Raises|Yields|Notes?|See Also):\s*", lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j].startswith((" ", "\t"))):
            j += 1
        block = textwrap.dedent("\n".join(lines[i + 1 : j])).strip("\n")
        out += ["", f"**{m.group(1)}**", ""]
        out += ["```pycon", block, "```", ""] if m.group(1).startswith("Example") else [block, ""]
        i = j
    return _fence_doctests(out)


def _fence_doctests(lines: list[str]) -> str:
    """A run of `>>>` lines (and their output, up to a blank line) outside a fence becomes a pycon block."""
    out: list[str] = []
    fenced, i = False, 0
    while i < len(lines):
        if lines[i].startswith("```"):
            fenced = not fenced
        if fenced or not lines[i].lstrip().startswith(">>>"):
            out.append(lines[i])
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j].strip():
            j += 1
        out += ["", "```pycon", textwrap.dedent("\n".join(lines[i:j])), "```", ""]
        i = j
    return "\n".join(out)


def signature(obj: Any) -> str:
    """`name(a: T = default, *, b: U) -> R` as written in the source (string annotations kept as they are)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return obj.__name__
    params = []
    for p in sig.parameters.values():
        text = (
            p.name
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            else ("*" if p.kind == p.VAR_POSITIONAL else "**") + p.name
        )
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            text += f" = {_default(p.default)}"
        params.append((p.kind, text))
    parts, star = [], False
    for kind, text in params:
        if kind == inspect.Parameter.KEYWORD_ONLY and not star:
            parts.append("*")
        star = star or kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_POSITIONAL)
        parts.append(text)
    ret = "" if sig.return_annotation is sig.empty else f" -> {_annotation(sig.return_annotation)}"
    one_line = f"{obj.__name__}({', '.join(parts)}){ret}"
    if len(one_line) <= 100:
        return one_line
    return f"{obj.__name__}(\n" + "".join(f"    {p},\n" for p in parts) + f"){ret}"


def _annotation(a: Any) -> str:
    return a if isinstance(a, str) else inspect.formatannotation(a)


def _default(value: Any) -> str:
    if inspect.isfunction(value) or inspect.isclass(value):
        return f"{value.__module__.removeprefix('funcnn.')}.{value.__qualname__}".removeprefix("builtins.")
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _source(obj: Any, code: Callable[[str, str], str]) -> str:
    try:
        src = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return ""
    return f"<details class='source'><summary>source</summary>{code(src, 'python')}</details>"


def _object(qualname: str, obj: Any, md: Markdown, code: Callable[[str, str], str]) -> str:
    kind = "class" if inspect.isclass(obj) else "def"
    doc = inspect.getdoc(obj) or ""
    parts = [
        f"<div class='api-object' id='{qualname}'>",
        code(f"{kind} {signature(obj)}", "python"),
        md(docstring_markdown(doc)),
    ]
    if inspect.isclass(obj):  # its own public methods and properties, with docstrings
        for name, member in vars(obj).items():
            if name.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
                continue
            fn = member.fget if isinstance(member, property) else member
            if not inspect.getdoc(fn):
                continue
            sig = f"@property\ndef {signature(fn)}" if isinstance(member, property) else f"def {signature(fn)}"
            parts.append(
                f"<div class='api-method' id='{qualname}.{name}'>{code(sig, 'python')}"
                f"{md(docstring_markdown(inspect.getdoc(fn) or ''))}</div>"
            )
    parts.append(_source(obj, code))
    parts.append("</div>")
    return "\n".join(parts)


def _module(module: types.ModuleType, index: dict[str, str], md: Markdown, code: Callable[[str, str], str]) -> str:
    name = module.__name__
    parts = [
        f"<section class='api-module' id='{name}'>",
        f"<h2>{name}</h2>",
        md(docstring_markdown(inspect.getdoc(module) or "")),
    ]
    defined = dict(api_docs.public_objects(module))
    reexports, constants = [], []
    for item in getattr(module, "__all__", ()):
        obj = getattr(module, item, None)
        if f"{name}.{item}" in defined:
            continue
        if f"{name}.{item}" in index and index[f"{name}.{item}"].split("#")[1] != f"{name}.{item}":
            reexports.append(f"<a href='../{index[f'{name}.{item}']}'><code>{item}</code></a>")
        elif not (inspect.ismodule(obj) or inspect.isfunction(obj) or inspect.isclass(obj)):
            constants.append(f"<li><code>{item} = {html.escape(_default(obj))}</code></li>")
    if reexports:
        parts.append(f"<p class='reexports'><b>Names:</b> {', '.join(reexports)}</p>")
    if constants:
        parts.append(f"<ul class='constants'>{''.join(constants)}</ul>")
    parts += [_object(qualname, obj, md, code) for qualname, obj in defined.items()]
    parts.append("</section>")
    return "\n".join(parts)


def api_pages(modules: list[types.ModuleType], md: Markdown, code: Callable[[str, str], str]) -> list[ApiPage]:
    """One page per topic with modules, in TOPICS order (then OTHER)."""
    index = link_index(modules)
    grouped = group(modules)
    pages = []
    for slug, title, blurb, _ in [*TOPICS, OTHER]:
        members = grouped.get(slug, [])
        if not members:
            continue
        body = "\n".join(_module(m, index, md, code) for m in members)
        pages.append(ApiPage(slug, title, blurb, [m.__name__ for m in members], body))
    return pages
