"""How much of a command's time is JAX tracing, lowering and XLA compiling, in every process it starts.

    python tools/compile_census.py -- .venv/bin/python -m pytest -q -n 2 --dist loadgroup tests
    python tools/compile_census.py --out /tmp/census -- python experiments/lottery_ticket.py

Runs the command with `tools/compile_census/` first on PYTHONPATH (its sitecustomize counts
`jax.monitoring`'s compile events in each process; its pytest plugin writes them from xdist's
workers too), then prints one line per kind of event: processes, events, seconds. The backend's
seconds include programs loaded from the persistent compilation cache (counted apart as
`cache_retrieval`); lowering to MLIR is paid on a cache hit too. Exits with the command's status.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HOOK = Path(__file__).resolve().parent / "compile_census"
EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "tracing",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lowering to MLIR",
    "/jax/core/compile/backend_compile_duration": "XLA backend compile (cache hits included)",
    "/jax/compilation_cache/cache_retrieval_time_sec": "cache_retrieval (of those)",
    "/jax/compilation_cache/compile_time_saved_sec": "compile time the cache saved (JAX's estimate)",
}


def summarize(folder: Path) -> dict[str, tuple[int, float]]:
    """{event: (count, seconds)} summed over every process's <pid>.json in folder; a file that is not
    a census record is a ValueError naming it."""
    total: dict[str, tuple[int, float]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            events = json.loads(path.read_text())["events"]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a compile census record ({e!r})") from e
        for event, (count, seconds) in events.items():
            c, s = total.get(event, (0, 0.0))
            total[event] = (c + count, s + seconds)
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="folder for the per-process files (default: a new temporary one)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("command: give the command to measure after --, e.g. -- python -m pytest tests")
    out = args.out or Path(tempfile.mkdtemp(prefix="funcnn-compile-census-"))
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("*.json")):
        p.error(f"--out: {out} already holds a census; give an empty folder")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HOOK)] + [q for q in [env.get("PYTHONPATH", "")] if q])
    plugins = [q for q in env.get("PYTEST_PLUGINS", "").split(",") if q]
    env["PYTEST_PLUGINS"] = ",".join(plugins + ["census_pytest"])
    env["FUNCNN_COMPILE_CENSUS"] = str(out)
    try:
        status = subprocess.call(command, env=env)
    except OSError as e:  # not found, not executable
        p.error(f"command: cannot start {command[0]!r} ({e.strerror})")
    processes = len(list(out.glob("*.json")))
    total = summarize(out)
    print(f"compile census of {processes} processes (files in {out}):")
    for event, name in EVENTS.items():
        count, seconds = total.get(event, (0, 0.0))
        print(f"  {name}: {count} events, {seconds:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
