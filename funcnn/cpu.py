"""XLA:CPU settings for population programs on a few cores (opt-in, before JAX starts).

By default XLA:CPU is one device whose dots run on Eigen's thread pool; a population of small nets
(LeNet-300-100 at batch 60) then reaches ~1.45x one core on two. With one CPU device per core and
single-threaded Eigen, `funcnn.lottery` runs each device's share of the population on its own core
(`distributed.split_population`): ~1.35x more model-steps/s on 2 cores, results bit-identical.
`benchmarks/regime.py` measures it. Importing funcnn changes nothing: the population experiments
and the benchmarks call `use_fast_flags()` first thing, and so can a user's script. A single
large model is better off without it (its dots lose Eigen's threads).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["cores", "fast_flags", "use_fast_flags"]

_OURS = ("xla_force_host_platform_device_count", "xla_cpu_multi_thread_eigen")


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, which taskset and containers set).

    Example:
        >>> import os
        >>> from funcnn import cpu
        >>> 1 <= cpu.cores() <= (os.cpu_count() or 1)  # at most every core of the machine
        True
    """
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def fast_flags(n_cores: int | None = None) -> str:
    """XLA_FLAGS for populations: one CPU device per core, single-threaded Eigen dots.

    Pure: it returns the string and sets nothing. n_cores defaults to `cores()`.

    Example:
        >>> from funcnn import cpu
        >>> cpu.fast_flags(2)
        '--xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=false'
    """
    n = cores() if n_cores is None else n_cores
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n_cores must be a positive int, got n_cores={n_cores!r}")
    return f"--xla_force_host_platform_device_count={n} --xla_cpu_multi_thread_eigen=false"


def use_fast_flags(environ: MutableMapping[str, str] | None = None, n_cores: int | None = None) -> bool:
    """Append `fast_flags()` to XLA_FLAGS unless it already sets either flag; True if appended.

    Must run before JAX creates its CPU backend (the first computation or `jax.devices()`), since
    XLA reads XLA_FLAGS once: raises RuntimeError after that. `environ` defaults to os.environ.

    Example:
        >>> from funcnn import cpu
        >>> env = {"XLA_FLAGS": "--xla_dump_to=/tmp/dump"}  # stands in for os.environ: this process is untouched
        >>> cpu.use_fast_flags(env, n_cores=2)
        True
        >>> env["XLA_FLAGS"]
        '--xla_dump_to=/tmp/dump --xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=false'
        >>> cpu.use_fast_flags({"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true"})  # the user chose: left alone
        False
    """
    env = os.environ if environ is None else environ
    current = env.get("XLA_FLAGS", "")
    if any(flag in current for flag in _OURS):
        return False  # the user chose; respect it
    if environ is None:
        from jax._src import xla_bridge  # private, but the only way to know whether XLA read the flags

        if xla_bridge.backends_are_initialized():
            raise RuntimeError(
                "funcnn.cpu.use_fast_flags() must run before JAX's first computation: "
                "XLA_FLAGS is read once, when the backend starts"
            )
    env["XLA_FLAGS"] = f"{current} {fast_flags(n_cores)}".strip()
    return True
