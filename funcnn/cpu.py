"""XLA:CPU settings for population programs on a few cores (opt-in, before JAX starts).

By default XLA:CPU is one device whose dots run on Eigen's thread pool; a population of small nets
(LeNet-300-100 at batch 60) then reaches ~1.45x one core on two. With one CPU device per core and
single-threaded Eigen, `funcnn.lottery` runs each device's share of the population on its own core
(`distributed.split_population`): ~1.35x more model-steps/s on 2 cores, results bit-identical.
`benchmarks/regime.py` measures it. Importing funcnn changes nothing: the population experiments
and the benchmarks call `use_fast_flags()` first thing, and so can a user's script. A single
large model is better off without it (its dots lose Eigen's threads). `default_chunk` is how many
members a population program vmaps together when its caller does not say; `map_members` maps a
function over members in such chunks.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, MutableMapping
from typing import Any

__all__ = ["chunk_or_default", "cores", "default_chunk", "fast_flags", "map_members", "use_fast_flags"]

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


def default_chunk(net: Any, input_shape: tuple, backend: str | None = None) -> int | None:
    """Members vmapped together by default (`lottery.Spec.population_chunk=None`, the `chunk=None`
    of `funcnn.stability`): all (None) on a GPU or TPU; on CPU 4 for nets of dense layers and 1 (one
    member after another, not vmapped) for nets with convolution kernels (a param leaf of 3+ axes).

    Why, on one CPU core: LeNet-300-100 ran 1.05-1.1x faster in vmapped groups of 2-4 than one at a
    time, and Conv-2 0.83x with im2col (4 vmapped members 3.54 member-steps/s, one alone 4.24;
    `benchmarks/results/conv-step-cpu-2026-11-27.md`) and 0.5x with XLA's convolutions (vmapped
    kernels become grouped convolutions): XLA:CPU runs either as a loop of small ones.

    Example:
        >>> from funcnn import models
        >>> from funcnn.cpu import default_chunk
        >>> default_chunk(models.lenet_300_100(), (28, 28, 1), "cpu"), default_chunk(models.conv2(), (28, 28, 1), "cpu")
        (4, 1)
        >>> default_chunk(models.conv2(), (28, 28, 1), "gpu") is None  # one vmapped program on an accelerator
        True
    """
    import jax  # here, not at the top: importing this module must not start JAX (see use_fast_flags)

    if (backend or jax.default_backend()) != "cpu":
        return None
    try:
        shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), tuple(input_shape)))
    except TypeError:  # params that are no arrays: the Study says so, naming the leaf, a step later
        return 4
    return 1 if any(len(leaf.shape) >= 3 for leaf in jax.tree.leaves(shapes)) else 4


def chunk_or_default(chunk: int | None, net: Any, input_shape: tuple) -> int | None:
    """`chunk` (members vmapped together) checked: an int >= 1; None gives `default_chunk(net, input_shape)`.

    Example:
        >>> from funcnn import models
        >>> from funcnn.cpu import chunk_or_default
        >>> chunk_or_default(2, models.conv2(), (28, 28, 1))
        2
    """
    if chunk is None:
        return default_chunk(net, tuple(input_shape))
    if not isinstance(chunk, numbers.Integral) or isinstance(chunk, bool) or chunk < 1:  # numpy ints pass
        raise ValueError(f"chunk must be None or an int >= 1 (members vmapped together), got chunk={chunk!r}")
    return int(chunk)


def map_members(fn: Callable[[Any], Any], xs: Any, chunk: int | None) -> Any:
    """fn over the leading (member) axis of the pytree xs: chunk 1 a plain `lax.map`, nothing vmapped,
    even for one member (a conv kernel stays one kernel: vmapped kernels become grouped convolutions,
    see `default_chunk`); `jax.vmap` for chunk None or >= members; else `lax.map` over vmapped groups
    of `chunk` members. Which one runs changes results by float rounding only.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn.cpu import map_members
        >>> xs = jnp.arange(6.0).reshape(3, 2)  # 3 members
        >>> [map_members(jnp.sum, xs, c).tolist() for c in (None, 2, 1)]  # the same sums every way
        [[1.0, 5.0, 9.0], [1.0, 5.0, 9.0], [1.0, 5.0, 9.0]]
    """
    import jax  # here, not at the top: importing this module must not start JAX (see use_fast_flags)

    if chunk == 1:  # first: the lottery engine's per-device shares of one member must not be vmapped
        return jax.lax.map(fn, xs)
    if chunk is None or chunk >= jax.tree.leaves(xs)[0].shape[0]:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=chunk)
