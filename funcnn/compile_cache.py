"""Compiled once, kept: JAX's persistent compilation cache for funcnn's commands, and a clock of compiles.

`enable()` points JAX's persistent compilation cache (`jax_compilation_cache_dir`) at
`$FUNCNN_CACHE/xla` (default `~/.cache/funcnn/xla`) and keeps every program in it, however quick to
compile, so a second run of the same study loads its programs instead of compiling them. The experiment
commands and `lottery.run` call it; a bare `import funcnn` never does. `FUNCNN_COMPILATION_CACHE=0` opts
out; a cache folder the user (or JAX_COMPILATION_CACHE_DIR) already chose is kept.

`CompileClock` counts what JAX compiles while it is open (from `jax.monitoring`'s events): programs
compiled by XLA, those loaded from the persistent cache, and the seconds of tracing, lowering and
compiling, so a command can say where its time went.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import jax

__all__ = ["OPT_OUT", "CompileClock", "cache_folder", "enable"]

OPT_OUT = "FUNCNN_COMPILATION_CACHE"
"""The environment variable that turns the cache off for funcnn's commands when set to 0 (or false, no, off)."""

_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "tracing",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lowering",
    "/jax/core/compile/backend_compile_duration": "compiling",
    "/jax/compilation_cache/cache_retrieval_time_sec": "loading",
}


def cache_folder(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where `enable` keeps compiled programs: `$FUNCNN_CACHE/xla` (default `~/.cache/funcnn/xla`), or
    None when `FUNCNN_COMPILATION_CACHE` is 0, false, no or off. Nothing is created.

    Example:
        >>> from funcnn import compile_cache
        >>> compile_cache.cache_folder({"FUNCNN_CACHE": "/scratch/me"}).as_posix()
        '/scratch/me/xla'
        >>> compile_cache.cache_folder({"FUNCNN_COMPILATION_CACHE": "0"}) is None
        True
    """
    env = os.environ if environ is None else environ
    if env.get(OPT_OUT, "").strip().lower() in ("0", "false", "no", "off"):
        return None
    root = env.get("FUNCNN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "funcnn")
    return Path(root) / "xla"


def enable(environ: Mapping[str, str] | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in `cache_folder()`, keeping every program; returns the
    folder in use (one already configured, e.g. by JAX_COMPILATION_CACHE_DIR, is kept and returned), or
    None when opted out (FUNCNN_COMPILATION_CACHE=0: nothing changed).

    Sets `jax_compilation_cache_dir` and, unless the environment chose them, a minimum compile time
    and entry size of 0: funcnn's studies compile a handful of programs, most of them quick.

    Example:
        >>> from funcnn import compile_cache
        >>> compile_cache.enable({"FUNCNN_COMPILATION_CACHE": "off"}) is None  # opted out: nothing changes
        True
    """
    env = os.environ if environ is None else environ
    folder = cache_folder(env)
    if folder is None:
        return None  # opted out: nothing changed (a cache JAX was given elsewhere stays as it is)
    chosen = getattr(jax.config, "jax_compilation_cache_dir", None)
    if chosen:
        return Path(chosen)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile as before
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in env:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES" not in env:
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


class CompileClock:
    """A context manager that counts JAX's compile events while it is open.

    After (or during) the block: `programs` (compiled by XLA or loaded from the persistent cache),
    `loaded` (of those, from the cache), `seconds` {"tracing", "lowering", "compiling", "loading"}, and
    `total` (tracing + lowering + compiling, loading included in compiling, as JAX reports it).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.compile_cache import CompileClock
        >>> with CompileClock() as clock:
        ...     _ = jax.jit(lambda x: x * 3 + 1)(jnp.arange(5.0)).block_until_ready()
        >>> clock.programs >= 1, clock.total > 0
        (True, True)
    """

    def __init__(self) -> None:
        self.programs = 0
        self.loaded = 0
        self.seconds = dict.fromkeys(_EVENTS.values(), 0.0)
        self.started = time.perf_counter()

    def _listen(self, event: str, duration_secs: float, **_: str | int) -> None:
        name = _EVENTS.get(event)
        if name is None:
            return
        self.seconds[name] += duration_secs
        if name == "compiling":
            self.programs += 1
        elif name == "loading":
            self.loaded += 1

    @property
    def total(self) -> float:
        """Seconds of tracing, lowering and compiling (loading from the cache included) so far."""
        s = self.seconds
        return s["tracing"] + s["lowering"] + s["compiling"]

    def __enter__(self) -> CompileClock:
        self.started = time.perf_counter()
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listen)
