"""What every part of `python -m benchmarks` shares: the machine, the data, batch orders, the matmul peak.

Timings are `funcnn.timing`'s: the median seconds per call over runs, after a warm-up call.
"""

from __future__ import annotations

import contextlib
import os
import platform

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import data, timing, train


def chunk_times(fn, chunks: int) -> list[float]:
    """Wall seconds of fn() (blocked on) in each of `chunks` runs of one call, after a warm-up call."""
    return [r.seconds for r in timing.time_calls(fn, chunks, min_seconds=0).runs]


def step_indices(key, n: int, batch: int, steps: int) -> jax.Array:
    """(steps, batch) indices: as many epochs of seeded shuffles as `steps` needs."""
    per_epoch = n // batch
    epochs = -(-steps // per_epoch)
    parts = [train.batch_indices(jax.random.fold_in(key, e), n, batch) for e in range(epochs)]
    return jnp.concatenate(parts)[:steps]


def matmul_peak(n: int, repeats: int) -> float:
    """float32 GFLOP/s of a large jnp.dot, best of `repeats`."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    b = jax.random.normal(jax.random.key(1), (n, n))
    f = jax.jit(jnp.dot)
    best = min(chunk_times(lambda: f(a, b), repeats))  # after a warm-up call
    return 2 * n**3 / best / 1e9


def machine() -> dict:
    from benchmarks.conv_step import cpu_model

    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "device": str(jax.devices()[0].device_kind),
        "python": platform.python_version(),
    }


def load_data(tiny: bool):
    rng = np.random.default_rng(0)
    if tiny:
        x = jnp.asarray(rng.uniform(size=(600, 28, 28, 1)).astype(np.float32))
        y = jnp.asarray(rng.integers(0, 10, 600).astype(np.int32))
    else:
        d = data.load("fashion-mnist") if data.FASHION_MNIST_DIR.is_dir() else None
        x = jnp.asarray(d.x_train[:12000] if d else rng.uniform(size=(12000, 28, 28, 1)).astype(np.float32))
        y = jnp.asarray(d.y_train[:12000] if d else rng.integers(0, 10, 12000).astype(np.int32))
    return x, y


def set_affinity(cores: set[int]) -> None:
    """Let every thread of this process run on `cores` (threads started later inherit the caller's)."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            os.sched_setaffinity(int(tid), cores)
