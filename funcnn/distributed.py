"""Scale-out on JAX's own machinery: a population axis sharded over devices (and hosts), and
data-parallel training of one model.

One process, several CPU devices (`funcnn.cpu.use_fast_flags` makes one per core):
`split_population(program, devices)` runs the same single-device program on each device's share of
the members, dispatched asynchronously, so the results are bit-identical to one device's.
Otherwise `population_mesh()` lays all devices on one axis named "pop" and
`shard_population(program, mesh)` runs a population program with each device training its slice
of the members (`jax.shard_map`, so nothing is gathered during training). Several processes:
call `initialize()` first (coordinator address, process count and id from arguments or the
environment); every process then runs the same driver, holds its slice of the population, and the
results are gathered (`gather`) and written by process 0 only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "DATA",
    "POP",
    "data_parallel_mesh",
    "gather",
    "initialize",
    "is_writer",
    "pad_population",
    "padded_size",
    "population_layout",
    "population_mesh",
    "put_population",
    "replicate",
    "shard_population",
    "split_population",
]

POP = "pop"  # the mesh axis of a population (one member per slice)
DATA = "data"  # the mesh axis of data-parallel batches

# devices to lay on a mesh: a sequence or array of `jax.Device`s; None: all of them
Devices = Sequence[jax.Device] | np.ndarray | None


def initialize(
    coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """`jax.distributed.initialize` with values from the arguments or FUNCNN_COORDINATOR,
    FUNCNN_NUM_PROCESSES and FUNCNN_PROCESS_ID (on SLURM or TPU pods, pass nothing and set none of
    them: JAX detects the cluster). On CPU, cross-process collectives use gloo.

    Call it once per process, before any JAX computation, e.g. on two hosts
    `initialize("10.0.0.1:1234", num_processes=2, process_id=0)` (and `process_id=1` on the other).
    The arguments are checked first:

    Example:
        >>> from funcnn import distributed
        >>> distributed.initialize("localhost:1234", num_processes=2, process_id=2)
        Traceback (most recent call last):
            ...
        ValueError: process_id must be in [0, 2), got process_id=2
    """
    coordinator_address = coordinator_address or os.environ.get("FUNCNN_COORDINATOR")
    if num_processes is None and "FUNCNN_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["FUNCNN_NUM_PROCESSES"])
    if process_id is None and "FUNCNN_PROCESS_ID" in os.environ:
        process_id = int(os.environ["FUNCNN_PROCESS_ID"])
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got num_processes={num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in [0, {num_processes}), got process_id={process_id}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def is_writer() -> bool:
    """True on the process that writes results (process 0).

    Example:
        >>> import jax
        >>> from funcnn import distributed
        >>> jax.process_index(), distributed.is_writer()  # a single process is process 0, the writer
        (0, True)
    """
    return jax.process_index() == 0


def population_mesh(devices: Devices = None) -> Mesh:
    """A 1-D mesh over all (global) devices, axis "pop".

    Example:
        >>> import jax
        >>> from funcnn import distributed
        >>> mesh = distributed.population_mesh(jax.devices()[:1])
        >>> mesh.axis_names, mesh.devices.shape
        (('pop',), (1,))
    """
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices.reshape(-1), (POP,))


def padded_size(n: int, mesh: Mesh) -> int:
    """n rounded up to a multiple of the mesh's device count.

    Example:
        >>> import jax
        >>> from funcnn import distributed
        >>> mesh = distributed.population_mesh(jax.devices()[:1])
        >>> distributed.padded_size(5, mesh)  # 5 members: as they are on 1 device (on 4 devices: 8)
        5
    """
    d = mesh.devices.size
    return -(-n // d) * d


def pad_population(tree: Any, n_to: int) -> Any:
    """Pad every leaf's leading axis to n_to by repeating member 0 (the copies are dropped later).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import distributed
        >>> distributed.pad_population({"w": jnp.array([1.0, 2.0, 3.0])}, 5)["w"].tolist()
        [1.0, 2.0, 3.0, 1.0, 1.0]
    """

    def pad(a: jax.Array) -> jax.Array:
        extra = n_to - a.shape[0]
        return a if extra == 0 else jnp.concatenate([a, jnp.repeat(a[:1], extra, axis=0)])

    return jax.tree.map(pad, tree)


def put_population(tree: Any, mesh: Mesh) -> Any:
    """Place a (host-replicated) population tree on the mesh, sharded along its leading axis.

    Works across processes: each process supplies the shards of its own devices from its copy.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn import distributed
        >>> mesh = distributed.population_mesh(jax.devices()[:1])
        >>> w = distributed.put_population({"w": np.arange(6.0).reshape(3, 2)}, mesh)["w"]
        >>> w.shape, tuple(w.sharding.spec)  # 3 members, split along axis 0 over "pop"
        ((3, 2), ('pop',))
    """
    return _put(tree, NamedSharding(mesh, P(POP)))


def _put(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """Each leaf placed with `sharding` from its host copy; typed PRNG keys go as their key data."""

    def put(a: Any) -> jax.Array:
        if _is_key(a):
            return jax.random.wrap_key_data(put(jax.random.key_data(a)), impl=jax.random.key_impl(a))
        a = np.asarray(a)
        return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

    return jax.tree.map(put, tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place a tree fully replicated on every device of the mesh (works across processes).

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn import distributed
        >>> mesh = distributed.population_mesh(jax.devices()[:1])
        >>> b = distributed.replicate({"b": np.ones(3)}, mesh)["b"]
        >>> tuple(b.sharding.spec), b.sharding.is_fully_replicated  # no axis split: a whole copy per device
        ((), True)
    """
    return _put(tree, NamedSharding(mesh, P()))


def population_layout() -> str:
    """How a population program uses this process's devices: "one" (one device), "split" (one
    process, several CPU devices: `split_population`) or "shard" (GPUs/TPUs or several processes:
    `shard_population`). Split, because a `shard_map`ped program is compiled for the partitioned
    shapes and its float results differ from one device's in the last bits; on CPU the split runs
    as fast (2 cores, 2 devices: ~1.35x one device either way).

    Example:
        >>> import jax
        >>> from funcnn import distributed
        >>> jax.device_count(), distributed.population_layout()  # the default CPU setup: one device
        (1, 'one')
    """
    if jax.device_count() == 1:
        return "one"
    if jax.process_count() == 1 and jax.default_backend() == "cpu":
        return "split"
    return "shard"


def split_population(program: Callable[..., Any], devices: Sequence[jax.Device]) -> Callable[..., Any]:
    """`program(states, idx, data)` run per device on consecutive shares of axis 0, dispatched
    asynchronously; results gathered to the host in member order (`gather`'s types).

    `data` is a list with one copy per device (`[jax.device_put(data, d) for d in devices]`).
    Shares differ by at most one member, so at most two shapes are compiled per population size.

    Example: each member's state times a shared datum, on one device (one share: all 4 members).

        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import distributed
        >>> devices = jax.devices()[:1]
        >>> program = lambda states, idx, data: (states * data, idx + 1)
        >>> run = distributed.split_population(program, devices)
        >>> states, idx = run(jnp.arange(4.0), jnp.arange(4), [jax.device_put(jnp.float32(10), d) for d in devices])
        >>> type(states).__name__, states.tolist(), idx.tolist()  # gathered to the host
        ('ndarray', [0.0, 10.0, 20.0, 30.0], [1, 2, 3, 4])
    """
    jitted = jax.jit(program)

    def run(states: Any, idx: jax.Array, data: Sequence[Any]) -> Any:
        if len(data) != len(devices):
            raise ValueError(f"data must hold one copy per device ({len(devices)}), got {len(data)}")
        n = int(idx.shape[0])
        bounds = np.linspace(0, n, len(devices) + 1).round().astype(int)

        # Every share is cut and placed before the first program starts: a slice made later would
        # queue on device 0 behind its program, and device 1 would wait for it.
        def cut(lo: int, hi: int) -> Any:
            return jax.tree.map(lambda a: a[lo:hi], (states, idx))

        shares = [
            (jax.device_put(cut(lo, hi), dev), d)
            for dev, d, lo, hi in zip(devices, data, bounds[:-1], bounds[1:], strict=True)
            if hi > lo
        ]
        outs = [jitted(*share, d) for share, d in shares]  # asynchronous: all start before any is read
        parts = [gather(o) for o in outs]
        return jax.tree.map(_concat, *parts)

    return run


def _concat(*parts: Any) -> Any:
    """The parts joined along axis 0 on the host (typed PRNG keys through their key data)."""
    if _is_key(parts[0]):
        impl = jax.random.key_impl(parts[0])
        bits = np.concatenate([np.asarray(jax.random.key_data(p)) for p in parts])
        # wrap_key_data takes any uint32 array (its docs), numpy's too; jax annotates the argument jax.Array
        return jax.random.wrap_key_data(bits, impl=impl)  # type: ignore[arg-type]
    return np.concatenate(parts)


def shard_population(program: Callable[..., Any], mesh: Mesh) -> Callable[..., Any]:
    """Run `program(states, idx, data)` with states and idx split along axis 0 over the mesh.

    Each device runs the program on its own members; `data` is replicated. Jitted. The program
    returns a pair (states, idx)-like: both outputs are split along axis 0 as the inputs are.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import distributed
        >>> mesh = distributed.population_mesh(jax.devices()[:1])
        >>> program = lambda states, idx, data: (states * data, idx + 1)
        >>> states, idx = distributed.shard_population(program, mesh)(jnp.arange(4.0), jnp.arange(4), 10.0)
        >>> states.tolist(), idx.tolist()  # member i: states[i] * data, idx[i] + 1
        ([0.0, 10.0, 20.0, 30.0], [1, 2, 3, 4])
    """
    mapped = jax.shard_map(
        program, mesh=mesh, in_specs=(P(POP), P(POP), P()), out_specs=(P(POP), P(POP)), check_vma=False
    )
    return jax.jit(mapped)


def _is_key(a: Any) -> bool:
    """True for a typed PRNG key array (`jax.random.key`)."""
    return jax.dtypes.issubdtype(getattr(a, "dtype", None), jax.dtypes.prng_key)


def gather(tree: Any) -> Any:
    """Every leaf as a host numpy array with the full population (an all-gather across processes);
    typed PRNG keys (which numpy cannot hold) stay JAX key arrays.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import distributed
        >>> tree = distributed.gather({"w": jnp.arange(3.0), "key": jax.random.split(jax.random.key(0), 3)})
        >>> type(tree["w"]).__name__, tree["w"].tolist()
        ('ndarray', [0.0, 1.0, 2.0])
        >>> tree["key"].shape, jax.dtypes.issubdtype(tree["key"].dtype, jax.dtypes.prng_key)  # 3 keys, still keys
        ((3,), True)
    """
    impls = jax.tree.map(lambda a: jax.random.key_impl(a) if _is_key(a) else None, tree)
    raw = jax.tree.map(lambda a: jax.random.key_data(a) if _is_key(a) else a, tree)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        raw = multihost_utils.process_allgather(raw, tiled=True)
    raw = jax.tree.map(np.asarray, raw)
    return jax.tree.map(
        lambda a, impl: a if impl is None else jax.random.wrap_key_data(a, impl=impl),
        raw,
        impls,
        is_leaf=lambda x: x is None,
    )


def data_parallel_mesh(devices: Devices = None) -> Mesh:
    """A 1-D mesh over all devices, axis "data", for sharding batches (`train.fit(data_parallel=True)`).

    Example:
        >>> import jax
        >>> from funcnn import distributed
        >>> mesh = distributed.data_parallel_mesh(jax.devices()[:1])
        >>> mesh.axis_names, mesh.devices.size
        (('data',), 1)
    """
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices.reshape(-1), (DATA,))
