"""Timing jitted functions: seconds per call, each call blocked on, robust to other load on the machine.

A run is `calls` back-to-back calls of fn(), each blocked on (`block_until_ready`: the latency a caller
sees, dispatch included), timed by the wall clock and by this process's CPU time. Its `Run.cpu_share`
(CPU time / wall time) says whether the process had its core all along: on a shared CPU a run counts
("clean") when the share is at least `CLEAN` (pin the process to one core first: with more threads the
share can exceed 1); on a GPU or TPU the host waits instead of computing, so every run counts
(`clean_share`). A timing is the median seconds per call over the clean runs, or over all runs where
fewer than `repeats` were clean in `MAX_ROUNDS` x `repeats` tries (then marked `Timing.noisy`).

`seconds_per_call` times one function; `interleaved` several, one run of each in turn, so that other
load hits them alike. `funcnn.sparse.time_layer`, `python -m benchmarks` and `experiments/prune_speed.py`
all time with these.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

__all__ = [
    "CLEAN",
    "MAX_ROUNDS",
    "Run",
    "Timing",
    "calibrate",
    "clean_share",
    "device_name",
    "interleaved",
    "seconds_per_call",
    "summarize",
    "time_calls",
    "timed_run",
]

CLEAN = 0.9
"""On CPU a timed run counts when this process had the core for at least this share of its wall time."""
MAX_ROUNDS = 4
"""At most MAX_ROUNDS * repeats runs per function while waiting for `repeats` clean ones."""


class Run(NamedTuple):
    """One timed run: mean wall seconds per call, and CPU time / wall time of this process over it.

    Example:
        >>> from funcnn import timing
        >>> r = timing.Run(seconds=2e-5, cpu_share=0.98)
        >>> r.cpu_share >= timing.CLEAN
        True
    """

    seconds: float
    cpu_share: float


class Timing(NamedTuple):
    """A function's timing: `seconds` per call (the median over the counted runs), every run, how many
    were clean, and whether too few were (`noisy`: then `seconds` is the median of all runs).

    Example:
        >>> from funcnn import timing
        >>> t = timing.summarize([timing.Run(1.0, 1.0), timing.Run(3.0, 0.5), timing.Run(2.0, 1.0)], 2, 0.9)
        >>> t.seconds, t.clean, t.noisy
        (1.5, 2, False)
    """

    seconds: float
    runs: tuple[Run, ...]
    clean: int
    noisy: bool


def _block(out: Any) -> None:
    # an array's own method: no pytree walk inside the timed loop (a call can take ~10 µs)
    if isinstance(out, jax.Array):
        out.block_until_ready()
    else:
        jax.block_until_ready(out)


def calibrate(fn: Callable[[], Any], min_seconds: float) -> tuple[int, float]:
    """(n, seconds per call): fn() compiled (or warmed up) by a first call, then the first run of n = 1, 2,
    ... calls (each blocked on) that takes at least `min_seconds`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn import timing
        >>> f, x = jax.jit(lambda x: x + 1), jnp.ones(4)
        >>> n, seconds = timing.calibrate(lambda: f(x), 0.002)
        >>> n >= 1 and n * seconds >= 0.002
        True
    """
    if not min_seconds >= 0:
        raise ValueError(f"calibrate: min_seconds must be a number >= 0, got min_seconds={min_seconds!r}")
    _block(fn())
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            _block(fn())
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            return n, elapsed / n
        n = max(2 * n, math.ceil(n * 1.2 * min_seconds / max(elapsed, 1e-9)))


def timed_run(fn: Callable[[], Any], calls: int) -> Run:
    """`calls` calls of fn(), each blocked on: their mean wall seconds and this process's CPU share.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn import timing
        >>> f, x = jax.jit(lambda x: x + 1), jnp.ones(4)
        >>> r = timing.timed_run(lambda: f(x), 10)
        >>> r.seconds > 0 and r.cpu_share >= 0
        True
    """
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
        raise ValueError(f"timed_run: calls must be an integer >= 1, got calls={calls!r}")
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        _block(fn())
    wall = time.perf_counter() - t0
    return Run(wall / calls, (time.process_time() - c0) / wall)


def clean_share(backend: str | None = None) -> float:
    """The CPU share a run needs to count: `CLEAN` on CPU; 0 on a GPU or TPU, whose host thread waits
    instead of computing (every run counts). backend: as `jax.default_backend()` names it (the default).

    Example:
        >>> from funcnn import timing
        >>> timing.clean_share("cpu"), timing.clean_share("gpu")
        (0.9, 0.0)
    """
    backend = jax.default_backend() if backend is None else backend
    return CLEAN if backend == "cpu" else 0.0


def summarize(runs: Sequence[Run], repeats: int, min_share: float) -> Timing:
    """The median seconds per call of the runs with cpu_share >= min_share, or of all runs when fewer
    than `repeats` are (noisy).

    Example:
        >>> from funcnn import timing
        >>> t = timing.summarize([timing.Run(1.0, 0.5), timing.Run(3.0, 0.95)], 2, 0.9)
        >>> t.seconds, t.clean, t.noisy  # one clean run of the two wanted: the median of both
        (2.0, 1, True)
    """
    if not runs:
        raise ValueError("summarize: runs must hold at least one Run")
    clean = [r.seconds for r in runs if r.cpu_share >= min_share]
    noisy = len(clean) < repeats
    return Timing(float(np.median([r.seconds for r in runs] if noisy else clean)), tuple(runs), len(clean), noisy)


def interleaved(
    fns: Sequence[Callable[[], Any]],
    calls: Sequence[int],
    repeats: int,
    *,
    min_share: float = 0.0,
    max_rounds: int = MAX_ROUNDS,
) -> list[Timing]:
    """Time several (warmed-up) functions in rounds, each round one run of `calls[i]` calls of every fn
    still lacking `repeats` clean runs (cpu_share >= min_share), until none lacks them or after
    `max_rounds * repeats` rounds; each one's `summarize`. min_share 0: exactly `repeats` runs each.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn import timing
        >>> f, g, x = jax.jit(lambda x: x + 1), jax.jit(lambda x: x @ x.T), jnp.ones((64, 64))
        >>> _ = f(x), g(x)  # compiled
        >>> ts = timing.interleaved([lambda: f(x), lambda: g(x)], [5, 5], 3)
        >>> [len(t.runs) for t in ts], all(t.seconds > 0 for t in ts)
        ([3, 3], True)
    """
    if len(calls) != len(fns):
        raise ValueError(f"interleaved: calls must give one count per function ({len(fns)}), got {len(calls)}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"interleaved: repeats must be an integer >= 1, got repeats={repeats!r}")
    runs: list[list[Run]] = [[] for _ in fns]
    for _ in range(max_rounds * repeats):
        lacking = [i for i, rs in enumerate(runs) if sum(r.cpu_share >= min_share for r in rs) < repeats]
        if not lacking:
            break
        for i in lacking:
            runs[i].append(timed_run(fns[i], calls[i]))
    return [summarize(rs, repeats, min_share) for rs in runs]


def time_calls(
    fn: Callable[[], Any],
    repeats: int = 7,
    min_seconds: float = 0.02,
    *,
    min_share: float = 0.0,
    max_rounds: int = MAX_ROUNDS,
) -> Timing:
    """`interleaved` for one function: compiled by a first call, `calibrate`d to runs of at least
    `min_seconds` (min_seconds 0: one call per run, no calibration), then timed in `repeats` runs.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn import timing
        >>> f, x = jax.jit(lambda x: x + 1), jnp.ones(4)
        >>> t = timing.time_calls(lambda: f(x), repeats=3, min_seconds=0)
        >>> len(t.runs), t.seconds == sorted(r.seconds for r in t.runs)[1]
        (3, True)
    """
    if min_seconds > 0:
        _, per_call = calibrate(fn, min_seconds)
        calls = max(1, math.ceil(min_seconds / per_call))
    elif min_seconds == 0:
        _block(fn())
        calls = 1
    else:
        raise ValueError(f"time_calls: min_seconds must be a number >= 0, got min_seconds={min_seconds!r}")
    return interleaved([fn], [calls], repeats, min_share=min_share, max_rounds=max_rounds)[0]


def seconds_per_call(
    fn: Callable[[], Any],
    repeats: int = 7,
    min_seconds: float = 0.02,
    *,
    min_share: float = 0.0,
    max_rounds: int = MAX_ROUNDS,
) -> float:
    """Median wall seconds per call of fn() (each call blocked on) over `repeats` runs of at least
    `min_seconds`, after a first call; `time_calls(...).seconds`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn import timing
        >>> f, x = jax.jit(lambda x: jnp.sin(x).sum()), jnp.ones(1000)
        >>> 0 < timing.seconds_per_call(lambda: f(x), repeats=3, min_seconds=0.001) < 1
        True
    """
    return time_calls(fn, repeats, min_seconds, min_share=min_share, max_rounds=max_rounds).seconds


def device_name() -> str:
    """What jitted functions run on: the CPU's model name, or the accelerator's kind ("NVIDIA H200").

    Example:
        >>> from funcnn import timing
        >>> isinstance(timing.device_name(), str) and len(timing.device_name()) > 0
        True
    """
    if jax.default_backend() != "cpu":
        return jax.devices()[0].device_kind
    name = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
    return name
