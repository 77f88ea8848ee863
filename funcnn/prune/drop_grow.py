"""Masks that move: drop-and-grow (SET, RigL), N:M selection, and the one leaf rule sparse training uses.

Every selection here takes, among equal scores, the lower flat index first (a stable sort): in a drop
the lower index is dropped first, in a grow or a keep it is taken first. Counts are exact. Pure,
jittable and vmappable; scores, fractions and counts may be arrays (traced under `jit` or `vmap`).
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.prune.masks import check_arrays, path_name, pure_structure

__all__ = ["drop_and_grow", "n_of_m"]

Array = jax.Array
Masks = Any

# x (1 + 2^-22) before the floor: a float32 product a couple of ulps below an integer (0.7 * 10 read as
# 6.9999998) counts as that integer, as Python's int(0.7 * 10) = 7 does in float64.
_FLOOR_SLACK = 1.0 + 2.0**-22


def floor_count(x: Array) -> Array:
    """floor(x) as int32, x >= 0 a float32 product such as n · fraction, read as written (see _FLOOR_SLACK)."""
    return jnp.floor(jnp.asarray(x, jnp.float32) * _FLOOR_SLACK).astype(jnp.int32)


def _ordered(scores: Array) -> Array:
    """uint32 keys in the order of the float32 scores (-0.0 read as 0.0, as a sort compares them)."""
    bits = jax.lax.bitcast_convert_type(jnp.asarray(scores, jnp.float32) + 0.0, jnp.uint32)
    return jnp.where(bits >> 31 == 1, ~bits, bits | jnp.uint32(1 << 31))


def _kth_key(keys: Array, candidates: Array, k: Array) -> Array:
    """The k-th lowest (k >= 1) of the candidates' uint32 keys, by bisection: 32 passes of a count (no sort:
    ~30x faster than XLA:CPU's sort at 90,000 entries)."""

    def bisect(_: int, bounds: tuple[Array, Array]) -> tuple[Array, Array]:
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        enough = jnp.sum(candidates & (keys <= mid), dtype=jnp.int32) >= k
        return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

    return jax.lax.fori_loop(0, 32, bisect, (jnp.uint32(0), jnp.uint32(0xFFFFFFFF)))[0]


def kth_lowest(scores: Array, candidates: Array, k: Array | int) -> Array:
    """The k-th lowest score (k >= 1, float32) among the candidates: sorted(scores[candidates])[k - 1], no sort."""
    key = _kth_key(_ordered(scores), candidates, jnp.asarray(k, jnp.int32))
    bits = jnp.where(key >> 31 == 1, key & jnp.uint32(0x7FFFFFFF), ~key)
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


def take_lowest(scores: Array, candidates: Array, k: Array | int) -> Array:
    """Flat bool: the k candidates with the lowest scores (ties: lower index first); k clipped to the count.

    No sort: the k-th lowest key by bisection (`_kth_key`), then the ties at it taken in index order (a cumsum).
    """
    keys = _ordered(scores)
    k = jnp.minimum(jnp.asarray(k, jnp.int32), jnp.sum(candidates, dtype=jnp.int32))
    kth = _kth_key(keys, candidates, k)
    below = candidates & (keys < kth)
    at = candidates & (keys == kth)
    taken_at = at & (jnp.cumsum(at, dtype=jnp.int32) <= k - jnp.sum(below, dtype=jnp.int32))
    return (below | taken_at) & (k > 0)


def leaf_update(
    mask: Array,
    drop_scores: Array,
    grow_scores: Array,
    fraction: Array | float,
    target: Array | int | None = None,
    values: Array | None = None,
    signed: Array | bool = False,
) -> Array:
    """One leaf's new mask: drop, then grow back to `target` (default: the current count n_on).

    Drop: floor(n_on · fraction) + (n_on - target) of the kept entries with the lowest `drop_scores`;
    with `signed` (SET's original rule, `values` the weights), instead floor(n_pos · fraction) of the
    smallest positive values and floor(n_neg · fraction) of the largest non-positive ones. Grow: the
    highest `grow_scores` among all other entries (the just dropped included) until the count is
    `target`, which is capped at n_on (a leaf never gains entries here). Any shape; a bool like mask.
    """
    shape = mask.shape
    m = mask.reshape(-1)
    n_on = jnp.sum(m, dtype=jnp.int32)
    target = n_on if target is None else jnp.minimum(jnp.asarray(target, jnp.int32), n_on)
    fraction = jnp.asarray(fraction, jnp.float32)
    score = jnp.asarray(drop_scores, jnp.float32).reshape(-1)
    group = jnp.where(m, 0, 2)
    if values is not None:
        v = jnp.asarray(values, jnp.float32).reshape(-1)
        signed = jnp.asarray(signed, bool)
        group = jnp.where(m & signed & (v <= 0), 1, group)
        # smallest positive first in group 0; closest to zero (largest) first among the non-positive
        score = jnp.where(signed, jnp.abs(v), score)
    n0 = jnp.sum(group == 0, dtype=jnp.int32)
    k0 = jnp.minimum(floor_count(n0 * fraction) + (n_on - target), n0)
    k1 = floor_count((n_on - n0) * fraction)
    dropped = take_lowest(score, group == 0, k0)
    if values is not None:
        dropped = dropped | take_lowest(score, group == 1, k1)
    kept = m & ~dropped
    grown = take_lowest(-jnp.asarray(grow_scores, jnp.float32).reshape(-1), ~kept, target - jnp.sum(kept))
    return (kept | grown).reshape(shape)


def _check_fraction(fraction: Any) -> None:
    if isinstance(fraction, numbers.Real) and not isinstance(fraction, bool) and not 0 <= float(fraction) <= 1:
        raise ValueError(f"drop_and_grow: fraction must be in [0, 1], got fraction={fraction!r}")


def drop_and_grow(masks: Masks, drop_scores: Any, grow_scores: Any, fraction: float | Array) -> Masks:
    """Per leaf, drop floor(n_on · fraction) kept entries with the lowest drop scores, then grow as many.

    The grown entries are those with the highest grow scores among all entries not kept (the just
    dropped included), so each leaf's count is unchanged. Ties go to the lower flat index: among equal
    drop scores the lower index is dropped first, among equal grow scores grown first. masks: bool
    leaves (a pytree or one array); drop_scores, grow_scores: float leaves of the same structure and
    shapes (SET: |w| and random; RigL: |w| and |dense gradient|). fraction: in [0, 1], a Python number
    or a (traced) array. Every leaf takes part: an all-True leaf (a bias) comes back unchanged.
    floor is taken on the float32 product as written (0.7 · 10 → 7).

    Example: jaxpruner's RigL table (drop score w, grow score |w|) at fraction 0.5.

        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> w = jnp.array([-9.0, 1, 4, -1, 5, 8, -2, 3])
        >>> mask = jnp.array([0, 1, 0, 1, 0, 1, 1, 0], bool)  # kept: 1, -1, 8, -2
        >>> prune.drop_and_grow(mask, w, jnp.abs(w), 0.5).astype(int).tolist()  # -2, -1 go; -9, 5 come
        [1, 1, 0, 0, 1, 1, 0, 0]
    """
    _check_fraction(fraction)
    check_arrays(masks, "drop_and_grow", "masks")
    leaves, treedef = jax.tree_util.tree_flatten_with_path(masks)
    for what, tree in (("drop_scores", drop_scores), ("grow_scores", grow_scores)):
        check_arrays(tree, "drop_and_grow", what)
        if pure_structure(tree) != pure_structure(masks):
            raise ValueError(
                f"drop_and_grow: {what} must have the masks' tree structure;\n masks: {pure_structure(masks)}\n "
                f"{what}: {pure_structure(tree)}"
            )
    out = []
    for (path, m), d, g in zip(leaves, jax.tree.leaves(drop_scores), jax.tree.leaves(grow_scores), strict=True):
        if jnp.result_type(m) != jnp.bool_:
            raise ValueError(f"drop_and_grow: mask '{path_name(path)}' must be boolean, got {jnp.result_type(m)}")
        for what, s in (("drop_scores", d), ("grow_scores", g)):
            if np.shape(s) != np.shape(m):
                raise ValueError(
                    f"drop_and_grow: {what} for '{path_name(path)}' has shape {np.shape(s)}, the mask {np.shape(m)}"
                )
        out.append(leaf_update(jnp.asarray(m), d, g, fraction))
    return jax.tree.unflatten(treedef, out)


def n_of_m(scores: Array, n: int, m: int, *, axis: int) -> Array:
    """Keep the n highest of every m consecutive entries along `axis` (N:M sparsity, e.g. 2:4).

    scores: any float array whose length along `axis` is a multiple of m; returns a bool array of its
    shape with exactly n True in each group. Ties go to the lower index (jaxpruner's double argsort
    keeps the higher one).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> scores = jnp.array([[0.1, -0.9, 0.5, 0.3, 2.0, 1.0, 0.0, 0.0]])
        >>> prune.n_of_m(jnp.abs(scores), 2, 4, axis=1).astype(int).tolist()  # 2 of each 4 along the row
        [[0, 1, 1, 0, 1, 1, 0, 0]]
        >>> prune.n_of_m(jnp.ones((2, 6)), 2, 4, axis=1)
        Traceback (most recent call last):
        ...
        ValueError: n_of_m: axis 1 of scores has length 6, not a multiple of m=4 (scores shape (2, 6))
    """
    for name, value in (("n", n), ("m", m)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"n_of_m: {name} must be a positive int, got {name}={value!r}")
    if n > m:
        raise ValueError(f"n_of_m: n must be <= m, got n={n}, m={m}")
    scores = jnp.asarray(scores)
    if not isinstance(axis, numbers.Integral) or not -scores.ndim <= axis < scores.ndim:
        raise ValueError(f"n_of_m: axis must be an int in [-{scores.ndim}, {scores.ndim}), got axis={axis!r}")
    axis = int(axis) % scores.ndim
    length = scores.shape[axis]
    if length % m:
        raise ValueError(
            f"n_of_m: axis {axis} of scores has length {length}, not a multiple of m={m} (scores shape {scores.shape})"
        )
    moved = jnp.moveaxis(scores, axis, -1)
    groups = moved.reshape(*moved.shape[:-1], length // m, m)
    order = jnp.argsort(-groups.astype(jnp.float32), axis=-1, stable=True)
    rank = jnp.argsort(order, axis=-1)
    return jnp.moveaxis((rank < n).reshape(moved.shape), -1, axis)
