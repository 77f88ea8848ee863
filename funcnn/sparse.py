"""Sparse inference for unstructured pruning: Dense layers whose masks keep few weights multiply sparsely.

`sparsify(net, params, masks)` returns a network computing `net.apply(prune.apply(params, masks), x)`
in which each Dense layer at or below `max_density` stores only its kept weights, as the CSR matrix of
wᵀ: `data` (nnz,) the values, `indices` (nnz,) their input unit, `indptr` (out + 1,) where each output
unit's entries start, `rows` (nnz,) their output unit. For x of shape (n, fan_in) (leading axes
flattened), y = x @ w + b is then computed by one of the kernels in `FORMATS`:

- "bcsr": yᵀ = wᵀ @ xᵀ by `jax.experimental.sparse.BCSR`, which XLA:CPU runs as Eigen's sparse x dense
  product (a custom call): about nnz * (c0 + c1 * n) with a large c0 (~10 ns per stored weight), so the
  fastest kernel from a batch of 8 on (20x BCOO's speed at batch 1000) and 2-4x slower than "coo" at 1.
- "coo": a gather and a sorted segment sum, yᵀ[j] = Σ_{k: rows[k] = j} data[k] * xᵀ[indices[k]], about
  nnz * n; the fastest for a few examples. It holds an (nnz, n) array of products.
- "bcoo": x @ w by `jax.experimental.sparse.BCOO` (gather and scatter-add, as "coo"), for comparison.
- "auto" (default): "coo" for n < `SMALL_BATCH` rows, "bcsr" otherwise (chosen when traced).

Measured on one pinned core of the 2-core Xeon VM (JAX 0.10.2, 2026-11-28,
`benchmarks/results/sparse-crossover.md`): at batch 1000 sparse beats masked dense at or below 5%
density for 784x300, 300x100 and 256x256 layers (2.2x at 1% for 784x300), for 12544x256 only at
0.5% (transposing the 50 MB input costs as much as the dense product); at batch 1 at or below 1%
for 784x300 and 10% for 12544x256 (13x at 1%), while layers of 100-300 units stay within the
~15-25 µs of a call either way. `python -m benchmarks.sparse_crossover` measures this on any
machine; `time_layer` and `crossover` one layer shape. Conv layers and populations are out of scope.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse

from funcnn import nn, prune, timing
from funcnn.nn.layer import Shape, add_bias, check_input

__all__ = ["FORMATS", "MAX_TERMS", "SMALL_BATCH", "crossover", "matmul", "sparsify", "time_layer"]

Array = jax.Array
Params = Any
Masks = Any

FORMATS = ("auto", "bcsr", "coo", "bcoo")
"""The sparse kernels `sparsify` and `matmul` take (see the module docstring)."""
SMALL_BATCH = 8
"""fmt="auto" uses the "coo" kernel below this many rows of x, "bcsr" from it on."""
MAX_TERMS = 2**27
"""`time_layer` skips "coo" and "bcoo" above this many products nnz * batch (512 MiB of float32)."""


def _check_fmt(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got fmt={fmt!r}")


def matmul(w: Params, x: Array, fan_in: int, fmt: str = "auto") -> Array:
    """x @ w for a sparse weight `w` as `sparsify` stores it (without the bias).

    Args:
        w: {"data": (nnz,), "indices": (nnz,) int32, "indptr": (out + 1,) int32, "rows": (nnz,) int32},
            the CSR matrix of the (fan_in, out) weight's transpose plus each entry's output unit.
        x: (n, fan_in); cast with w to their common dtype.
        fan_in: the weight's number of rows.
        fmt: one of `FORMATS`.

    Returns:
        (n, out): y[i, j] = Σ_k x[i, k] * w[k, j] over the stored entries.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import sparse
        >>> w = {  # the (3, 2) weight [[1, 0], [0, 2], [3, 0]]: transposed, rows (1, 3) and (2)
        ...     "data": jnp.array([1.0, 3.0, 2.0]),
        ...     "indices": jnp.array([0, 2, 1], jnp.int32),
        ...     "indptr": jnp.array([0, 2, 3], jnp.int32),
        ...     "rows": jnp.array([0, 0, 1], jnp.int32),
        ... }
        >>> x = jnp.array([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
        >>> [sparse.matmul(w, x, 3, fmt).tolist() for fmt in ("bcsr", "coo")]
        [[[4.0, 2.0], [10.0, 4.0]], [[4.0, 2.0], [10.0, 4.0]]]
    """
    _check_fmt(fmt)
    data, indices, indptr, rows = w["data"], w["indices"], w["indptr"], w["rows"]
    n, out = x.shape[0], indptr.shape[0] - 1
    dtype = jnp.result_type(x, data)
    x, data = x.astype(dtype), data.astype(dtype)
    if data.shape[0] == 0:
        return jnp.zeros((n, out), dtype)
    if fmt == "auto":
        fmt = "coo" if n < SMALL_BATCH else "bcsr"
    if fmt == "bcsr":
        return (jsparse.BCSR((data, indices, indptr), shape=(out, fan_in)) @ x.T).T
    if fmt == "bcoo":
        w_coo = jsparse.BCOO((data, jnp.stack([indices, rows], axis=1)), shape=(fan_in, out), unique_indices=True)
        return x @ w_coo
    terms = x.T.at[indices].get(mode="promise_in_bounds") * data[:, None]  # (nnz, n)
    return jax.ops.segment_sum(terms, rows, out, indices_are_sorted=True).T


def _csr(w: np.ndarray, mask: np.ndarray) -> dict[str, Array]:
    """The `matmul` arrays of the masked (fan_in, out) weight."""
    out_unit, in_unit = np.nonzero(mask.T)  # row-major over wᵀ: sorted by output unit
    indptr = np.concatenate([[0], np.cumsum(np.sum(mask, axis=0))])
    arrays = {"data": w[in_unit, out_unit], "indices": in_unit, "indptr": indptr, "rows": out_unit}
    return {k: jax.device_put(v if k == "data" else v.astype(np.int32)) for k, v in arrays.items()}


def _sparse_dense(layer: nn.Layer, fan_in: int, fmt: str) -> nn.Layer:
    """A Dense layer whose params are `matmul`'s arrays plus "b"."""

    def init(key: Array, input_shape: Shape) -> Params:
        raise ValueError(
            "a sparsified Dense layer has no init: its params come from sparsify(net, params, masks); "
            "initialize the original network instead"
        )

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del key, train
        check_input("Dense", x, (fan_in,), "add Flatten() before it?" if x.ndim > 2 else "")
        y = matmul(params, x.reshape(-1, fan_in), fan_in, fmt)
        return add_bias(y.reshape(*x.shape[:-1], y.shape[-1]), params["b"])

    return nn.Layer("dense", init, apply, layer.output_shape)


def _walk(layer: nn.Layer, p: Params, m: Masks, path: str, max_density: float, fmt: str) -> tuple[nn.Layer, Params]:
    """`sparsify` of one layer at `path`, whose params `p` are already masked by `m`."""
    if layer.kind in ("serial", "parallel", "residual"):
        names = ("main", "shortcut") if layer.kind == "residual" else nn.layer_names(layer.layers)
        subs, new = [], {}
        for name, sub in zip(names, layer.layers, strict=True):
            s, new[name] = _walk(sub, p[name], m[name], f"{path}{name}/", max_density, fmt)
            subs.append(s)
        if layer.kind == "residual":
            return nn.Residual(*subs), new
        return (nn.serial(*subs) if layer.kind == "serial" else nn.Parallel(*subs)), new
    if layer.kind != "dense" or not isinstance(p, dict) or set(p) != {"w", "b"}:
        return layer, p  # not a Dense layer: masked dense params
    w, mask = np.asarray(p["w"]), np.asarray(m["w"])
    if w.ndim != 2:
        raise ValueError(
            f"sparsify: params['{path}w'] has shape {w.shape}, not (fan_in, out): params must be one network's, "
            "not a population's (a leading member axis); pass one member, jax.tree.map(lambda a: a[i], params)"
        )
    if mask.mean() > max_density:
        return layer, p
    return _sparse_dense(layer, w.shape[0], fmt), {**_csr(w, mask), "b": p["b"]}


def sparsify(
    net: nn.Layer, params: Params, masks: Masks, *, max_density: float = 0.05, fmt: str = "auto"
) -> tuple[nn.Layer, Params]:
    """The pruned network with its sparse Dense layers stored and multiplied sparsely.

    Every Dense layer (params {"w": (fan_in, out), "b": (out,)}) anywhere in `net` (inside `nn.serial`,
    `nn.Parallel` and `nn.Residual`, nested) whose mask keeps at most `max_density` of w gets params
    {"data", "indices", "indptr", "rows", "b"} (see `matmul`) and computes y = x @ (w ⊙ mask) + b with
    the `fmt` kernel; every other layer keeps its params ⊙ masks. Runs on the host (not jittable: the
    number of kept weights fixes the arrays' shapes); the returned net applies under `jax.jit`, on x of
    shape (*batch, ...) as `net` does, and has no `init` for its sparse layers.

    Args:
        net: a network of funcnn layers.
        params: its params (one network, no leading member axis).
        masks: boolean masks with the params' structure (`funcnn.prune`).
        max_density: in (0, 1]; Dense layers with a kept fraction at most this go sparse (1.0: all). The
            default, 5%, is about where the CSR kernel starts to beat masked dense on CPU (see above).
        fmt: one of `FORMATS`; "auto" picks the kernel per call from the batch size.

    Returns:
        (sparse_net, sparse_params) with sparse_net.apply(sparse_params, x) equal to
        net.apply(prune.apply(params, masks), x) up to float rounding.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn import models, prune, sparse
        >>> net = models.lenet_300_100()
        >>> params = net.init(jax.random.key(0), (28, 28, 1))
        >>> masks = prune.magnitude(params, prune.ones(params), 0.95)  # keep 5% of each layer
        >>> snet, sparams = sparse.sparsify(net, params, masks, max_density=0.1)
        >>> sorted(sparams["dense_1"]), sparams["dense_1"]["data"].shape  # 5% of 784 * 300
        (['b', 'data', 'indices', 'indptr', 'rows'], (11760,))
        >>> x = jax.random.normal(jax.random.key(1), (2, 28, 28, 1))
        >>> y = jax.jit(snet.apply)(sparams, x)
        >>> bool(jnp.allclose(y, net.apply(prune.apply(params, masks), x), atol=1e-5))
        True
    """
    if not isinstance(net, nn.Layer):
        raise ValueError(f"sparsify: net must be a funcnn nn.Layer (e.g. models.lenet_300_100()), got {net!r}")
    if isinstance(max_density, bool) or not isinstance(max_density, (int, float)) or not 0 < max_density <= 1:
        raise ValueError(f"sparsify: max_density must be a number in (0, 1], got max_density={max_density!r}")
    _check_fmt(fmt)
    prune.check_masks(params, masks)
    if any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves((params, masks))):
        raise ValueError("sparsify: params and masks must be concrete arrays; call sparsify outside jax.jit")
    return _walk(net, jax.jit(prune.apply)(params, masks), masks, "", float(max_density), fmt)


def time_layer(
    fan_in: int,
    out: int,
    batch: int,
    density: float,
    fmts: Sequence[str] = ("auto",),
    *,
    repeats: int = 7,
    min_seconds: float = 0.02,
    max_slowdown: float = 20.0,
    seed: int = 0,
) -> dict[str, float | None]:
    """Seconds per jitted call of one Dense(out) layer on x (batch, fan_in): masked dense and each sparse fmt.

    The weight is standard normal with a uniformly random mask keeping round(density * fan_in * out)
    entries. Each time is the median over `repeats` runs of the mean of calls (each blocked on) in a run
    of at least `min_seconds`, after a warm-up call (`timing.seconds_per_call`). A format whose first
    timed call is slower than `max_slowdown` times dense and than `min_seconds` is reported as None (not
    timed further), and so are "coo" and "bcoo" (which hold an (nnz, batch) array of products) above
    `MAX_TERMS` products.

    Args:
        fan_in, out: the weight's shape.
        batch: rows of x.
        density: kept fraction of the weight, in (0, 1].
        fmts: sparse kernels to time (`FORMATS`).

    Returns:
        {"dense": seconds, fmt: seconds or None, ...}.

    Example:
        >>> from funcnn import sparse
        >>> t = sparse.time_layer(64, 32, 1, 0.05, ("coo", "bcsr"), repeats=1, min_seconds=0.001)
        >>> sorted(t), all(s > 0 for s in t.values())
        (['bcsr', 'coo', 'dense'], True)
    """
    if not 0 < density <= 1:
        raise ValueError(f"time_layer: density must be in (0, 1], got density={density!r}")
    for fmt in fmts:
        _check_fmt(fmt)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((fan_in, out), dtype=np.float32)
    mask = np.zeros(fan_in * out, bool)
    mask[rng.permutation(fan_in * out)[: round(density * fan_in * out)]] = True
    put = jax.device_put  # (jnp.asarray would compile a copy for each shape)
    params = {"w": put(w), "b": put(rng.standard_normal(out, dtype=np.float32))}
    masks = {"w": put(mask.reshape(fan_in, out)), "b": put(np.ones(out, bool))}
    x = put(rng.standard_normal((batch, fan_in), dtype=np.float32))
    layer = nn.Dense(out)
    dense_f, masked = jax.jit(layer.apply), prune.apply(params, masks)
    dense_call = functools.partial(dense_f, masked, x)
    times: dict[str, float | None] = {"dense": timing.seconds_per_call(dense_call, repeats, min_seconds)}
    for fmt in fmts:
        if fmt in ("coo", "bcoo") and mask.sum() * batch > MAX_TERMS:
            times[fmt] = None
            continue
        s_layer, s_params = sparsify(layer, params, masks, max_density=1.0, fmt=fmt)
        f = jax.jit(s_layer.apply)
        jax.block_until_ready(f(s_params, x))
        t = time.perf_counter()
        jax.block_until_ready(f(s_params, x))
        first = time.perf_counter() - t
        slow = first > max_slowdown * (times["dense"] or 0.0) and first > min_seconds
        call = functools.partial(f, s_params, x)
        times[fmt] = None if slow else timing.seconds_per_call(call, repeats, min_seconds)
    return times


def crossover(times: Mapping[float, Mapping[str, float | None]], fmt: str) -> float | None:
    """The largest density at which `fmt` was faster than dense, or None where it never was.

    Args:
        times: {density: {"dense": seconds, fmt: seconds or None, ...}}, e.g. `time_layer` results.
        fmt: the key of the sparse timing.

    Example:
        >>> from funcnn import sparse
        >>> times = {0.2: {"dense": 1, "bcsr": 2.5}, 0.05: {"dense": 1, "bcsr": 0.7}, 0.01: {"dense": 1, "bcsr": 0.2}}
        >>> sparse.crossover(times, "bcsr"), sparse.crossover({0.5: {"dense": 1.0, "bcsr": None}}, "bcsr")
        (0.05, None)
    """
    faster = []
    for density, t in times.items():
        sparse_s, dense_s = t.get(fmt), t["dense"]
        if sparse_s is not None and dense_s is not None and sparse_s < dense_s:
            faster.append(density)
    return max(faster) if faster else None
