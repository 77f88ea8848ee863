"""Shared plumbing for the experiment scripts: output folder, results.json, figures, tables."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from funcnn import compile_cache, io

N = TypeVar("N", int, float)


def parser(name: str, doc: str) -> argparse.ArgumentParser:
    """The experiment's argument parser: `doc` as its description, and `--out` (default runs/<name>)."""
    p = argparse.ArgumentParser(
        prog=f"{name}.py", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=Path("runs") / name, help=f"output folder (default runs/{name})")
    return p


def _number(text: str, cast: Callable[[str], N], ok: Callable[[N], bool], expected: str) -> N:
    """`cast(text)` if it parses and `ok` holds (NaN fails every check), else argparse's error."""
    error = argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    try:
        v = cast(text)
    except ValueError:
        raise error from None
    if not ok(v):
        raise error
    return v


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    return _number(text, int, lambda v: v > 0, "a positive integer")


def positive_float(text: str) -> float:
    """argparse type: a number > 0 (not NaN)."""
    return _number(text, float, lambda v: v > 0, "a positive number")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0 (not NaN)."""
    return _number(text, float, lambda v: v >= 0, "a number >= 0")


def given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The options among `names` set on the command line (not None), as {name: value}: overrides of a preset."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def use_compile_cache() -> str:
    """Turn on JAX's persistent compilation cache for this command (`funcnn.compile_cache.enable`) and
    say where it is: a second run of the same command loads its programs instead of compiling them."""
    folder = compile_cache.enable()
    if folder is None:
        line = f"compilation cache: off ({compile_cache.OPT_OUT}=0)"
    else:
        line = f"compilation cache: {folder} (programs kept between runs; {compile_cache.OPT_OUT}=0 turns it off)"
    print(line)
    return line


def seconds_line(report: dict[str, Any]) -> str:
    """Where an invocation's wall time went, the parts adding up to it (`lottery.run`'s report['seconds'])."""
    seconds = report["seconds"]
    wall = sum(seconds.values())
    compiled = report.get("compile", {})
    parts = []
    for name, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
        label = name
        if name == "compiling" and compiled:
            loaded = compiled.get("loaded", 0)
            label = f"compiling ({compiled.get('programs', 0)} programs, {loaded} of them loaded from the cache)"
        parts.append(f"{label} {value:.1f}")
    return f"this invocation: {wall:.1f} s = " + " + ".join(parts)


def out_folder(path: Path) -> Path:
    """Create the output folder, or exit with a clear message when it cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise SystemExit(f"error: --out {path} is not a writable folder ({e.strerror})") from e
    return path


def save_results(out: Path, results: dict[str, Any]) -> Path:
    """Write `results` to out/results.json atomically (numpy scalars as floats); its path."""
    path = out / "results.json"
    io.atomic_write_bytes(path, (json.dumps(results, indent=2, default=float) + "\n").encode())
    return path


def save_figure(fig: Figure, path: Path) -> Path:
    """Save `fig` as a PNG at `path` and close it; `path`."""
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table, columns right-aligned, floats to 4 significant digits; rows as long as `header`."""
    cells = [[str(h) for h in header]] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
