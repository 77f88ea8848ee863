"""Selection: which surviving weights a round removes, given a score per weight (higher = keep).

`by_scores` is the one selection step: per leaf ('layer'), per layer's pooled leaves
('layer_joint') or over all prunable leaves at once ('global'), the lowest-scoring survivors go.
`magnitude` is `by_scores` of |w|; `random` of uniform noise. Every function is pure, jittable and
vmappable, with `rate` a Python float or an array (traced under `jit` or `vmap`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import checks
from funcnn.prune.drop_grow import take_lowest
from funcnn.prune.masks import check_arrays, check_masks, check_spec, layer_of, path_name, prunable

__all__ = ["ROUNDINGS", "SCOPES", "by_scores", "magnitude", "random", "random_like"]

Array = jax.Array
Params = Any
Masks = Any


def _check_rate(name: str, rate: float | Array) -> None:
    # Eagerly for numbers and concrete arrays; inside the program (a runtime check) for traced ones.
    checks.in_range(rate, 0, 1, name=name, who="", high_open=True)


def _rates(
    masks: Masks, spec: Params, rate: float | Array, layer_rates: Mapping[str, float | Array] | None
) -> list[float | Array | None]:
    """One rate per leaf (None for leaves that are not pruned)."""
    _check_rate("rate", rate)
    layer_rates = dict(layer_rates or {})
    names = [path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(masks)]
    flags = jax.tree.leaves(spec)
    known = {n for n, f in zip(names, flags, strict=True) if f}
    for key, r in layer_rates.items():
        _check_rate(f"layer_rates[{key!r}]", r)
        if not any(n == key or n.startswith(key + "/") for n in known):
            raise ValueError(f"layer_rates names {key!r}, which is no prunable layer; prunable: {sorted(known)}")
    out: list[float | Array | None] = []
    for n, f in zip(names, flags, strict=True):
        if not f:
            out.append(None)
            continue
        # The most specific name wins: 'a/b/w' over 'a/b' over 'a', at any depth.
        parts = n.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]
        out.append(next((layer_rates[p] for p in prefixes if p in layer_rates), rate))
    return out


def _drop_lowest(scores: Array, mask: Array, k: Array) -> Array:
    """New flat mask: the k lowest-scoring surviving entries removed; ties by index (lower first), as a
    stable sort would. No sort: the k-th lowest by bisection (`drop_grow.take_lowest`), ~30x faster than
    XLA:CPU's sort at 90,000 entries, bit-identical masks."""
    return mask & ~take_lowest(scores, mask, k)


SCOPES = ("layer", "global", "layer_joint")
ROUNDINGS = ("nearest", "floor")


def _as_written(r: np.ndarray) -> np.ndarray:
    """r in float64; a float32 r as the shortest decimal that rounds to it (0.7 for 0.699999988)."""
    if r.dtype != np.float32:
        return np.asarray(r, np.float64)
    shortest = [float(np.format_float_positional(v, unique=True)) for v in r.reshape(-1)]
    return np.reshape(np.asarray(shortest, np.float64), r.shape)


def _count(rate: float | Array, alive: Array, rounding: str) -> Array:
    if rounding == "nearest":
        return jnp.round(rate * alive).astype(jnp.int32)
    # floor(rate * alive) exactly as Python's int(p * n) in float64: in float32 a product just below
    # an integer (0.03 off for n ~ 250,000) would floor one lower, so it is computed on the host.
    # A float32 array rate is read there as the shortest decimal that rounds to it (0.7, not
    # 0.699999988, whose floor(0.699999988 * 10) = 6 where Python's int(0.7 * 10) = 7): the rate
    # its caller wrote, so that an array rate removes what the same Python float does.
    if not isinstance(rate, (int, float)):
        rate = jnp.asarray(rate)
        rate = rate if rate.dtype == jnp.float64 else rate.astype(jnp.float32)

    def host(a: np.ndarray, r: np.ndarray | None = None) -> np.ndarray:
        r_host = _as_written(np.asarray(rate if r is None else r))
        return np.floor(r_host * np.asarray(a, np.float64)).astype(np.int32)

    out = jax.ShapeDtypeStruct(jnp.shape(alive), jnp.int32)
    if isinstance(rate, jax.Array):
        return jax.pure_callback(host, out, alive, rate, vmap_method="broadcast_all")
    return jax.pure_callback(host, out, alive, vmap_method="broadcast_all")


def _groups(masks: Masks, spec: Params, scope: str) -> list[list[int]]:
    """Indices of the prunable leaves pruned together: one leaf each ('layer'), each layer's leaves
    ('layer_joint'), or all of them ('global')."""
    names = [path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(masks)]
    idx = [i for i, f in enumerate(jax.tree.leaves(spec)) if f]
    if scope == "global":
        return [idx] if idx else []
    if scope == "layer":
        return [[i] for i in idx]
    groups: dict[str, list[int]] = {}
    for i in idx:
        groups.setdefault(layer_of(names[i]), []).append(i)
    return list(groups.values())


def _check_scope(scope: str, rounding: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got scope={scope!r}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got rounding={rounding!r}")


def by_scores(
    scores: Params,
    masks: Masks,
    rate: float | Array,
    *,
    scope: str = "layer",
    layer_rates: Mapping[str, float | Array] | None = None,
    spec: Params | None = None,
    rounding: str = "nearest",
) -> Masks:
    """Prune `rate` of the surviving prunable entries with the lowest `scores` (higher = keep).

    scores: a pytree like masks of float leaves (any criterion: |w|, SNIP's |g ⊙ w|, ...); entries
    already pruned are never counted, whatever their score. scope='layer': round(rate * survivors)
    removed from each prunable leaf, `layer_rates` mapping a layer or leaf name to its own rate;
    'layer_joint': each layer's prunable leaves pooled; 'global': one threshold over all of them.
    rounding='floor' removes floor(rate * survivors). Ties go by position (lower index first).
    `rate` (and each of `layer_rates`) may be an array, traced under `jit` or `vmap`. A population's
    scores and masks (a leading member axis) need `jax.vmap`, as for `magnitude`:
    `jax.vmap(lambda s, m: prune.by_scores(s, m, 0.2))(scores, masks)`.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> masks = {"w": jnp.ones((2, 3), bool)}
        >>> scores = {"w": jnp.array([[0.1, 5.0, 0.3], [4.0, 0.2, 6.0]])}
        >>> prune.by_scores(scores, masks, 0.5)["w"].tolist()  # the 3 lowest scores go
        [[False, True, False], [True, False, True]]
    """
    _check_scope(scope, rounding)
    check_arrays(scores, "by_scores", "scores")
    spec = prunable(masks) if spec is None else spec
    if layer_rates and scope == "global":
        raise ValueError("layer_rates apply to scope='layer' or 'layer_joint' only; global pruning uses one threshold")
    rates = _rates(masks, spec, rate, layer_rates)
    m_leaves, treedef = jax.tree.flatten(masks)
    s_leaves = jax.tree.leaves(scores)
    if len(s_leaves) != len(m_leaves):
        raise ValueError(f"scores must have the masks' tree structure: {len(s_leaves)} leaves, masks {len(m_leaves)}")
    new = list(m_leaves)
    names = [path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(masks)]
    pruned = [i for i, f in enumerate(jax.tree.leaves(spec)) if f]
    # A NaN score would be ranked as if it were a number (magnitude pruning kept NaN weights): refuse it.
    checks.finite(
        [s_leaves[i] for i in pruned],
        where=[m_leaves[i] for i in pruned],
        names=[names[i] for i in pruned],
        name="scores (|w| for magnitude pruning) of surviving entries",
        who="prune",
    )
    groups = _groups(masks, spec, scope)
    for group in groups:
        # One rate per pooled group: the same object or equal Python numbers (an array rate,
        # possibly traced, is compared by identity: a traced value cannot be compared here).
        first = rates[group[0]]
        if any(not _same_rate(rates[i], first) for i in group):
            raise ValueError(
                f"scope='layer_joint' prunes each layer's leaves together, so they need one rate; "
                f"layer_rates gives {[(names[i], rates[i]) for i in group]}"
            )
    # A Python rate goes in as float32, as jnp.round(rate * survivors) reads it (one program for all
    # rates); 'floor' reads it on the host in float64, so there it is part of the program.
    group_rates = [rates[g[0]] for g in groups]
    static = [rounding == "floor" and isinstance(r, (int, float)) for r in group_rates]
    selected = _select(
        tuple(tuple(s_leaves[i] for i in g) for g in groups),
        tuple(tuple(m_leaves[i] for i in g) for g in groups),
        tuple(
            None if st else jnp.asarray(r, jnp.float32) if isinstance(r, (int, float)) else r
            for r, st in zip(group_rates, static, strict=True)
        ),
        static_rates=tuple(r if st else None for r, st in zip(group_rates, static, strict=True)),
        rounding=rounding,
    )
    for group, flat_new in zip(groups, selected, strict=True):
        start = 0
        for i in group:
            size = m_leaves[i].size
            new[i] = flat_new[start : start + size].reshape(m_leaves[i].shape)
            start += size
    return jax.tree.unflatten(treedef, new)


# One compiled program for all of a call's groups: called eagerly, a selection is one dispatch (and
# one compile per tree shape), not a dozen small ones per leaf; under jit or vmap it is inlined.
# Masks are exact (comparisons and a stable sort), so they equal the op-by-op results bit for bit.
@functools.partial(jax.jit, static_argnames=("static_rates", "rounding"))
def _select(scores: tuple, masks: tuple, array_rates: tuple, *, static_rates: tuple, rounding: str) -> list[Array]:
    """Each group's new flat mask; a group's rate is its Python number in static_rates, else its
    array in array_rates."""
    out = []
    for s_group, m_group, array_rate, static_rate in zip(scores, masks, array_rates, static_rates, strict=True):
        flat_s = jnp.concatenate([jnp.asarray(s, jnp.float32).reshape(-1) for s in s_group])
        flat_m = jnp.concatenate([m.reshape(-1) for m in m_group])
        rate = array_rate if static_rate is None else static_rate
        out.append(_drop_lowest(flat_s, flat_m, _count(rate, jnp.sum(flat_m), rounding)))
    return out


def _same_rate(a: float | Array | None, b: float | Array | None) -> bool:
    if a is b:
        return True
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return False


def _prune(
    scores: Params,
    masks: Masks,
    rate: float | Array,
    scope: str,
    layer_rates: Mapping[str, float] | None,
    spec: Params | None,
    rounding: str = "nearest",
) -> Masks:
    """`by_scores` with positional arguments (its name before it was public)."""
    return by_scores(scores, masks, rate, scope=scope, layer_rates=layer_rates, spec=spec, rounding=rounding)


def magnitude(
    params: Params,
    masks: Masks,
    rate: float | Array,
    *,
    scope: str = "layer",
    layer_rates: Mapping[str, float] | None = None,
    spec: Params | None = None,
    rounding: str = "nearest",
) -> Masks:
    """Prune `rate` of the surviving prunable weights with the smallest |w|.

    scope='layer': round(rate * survivors) removed from each prunable leaf; `layer_rates` maps a layer
    ('dense_5') or leaf ('dense_5/w') name to its own rate (the paper prunes the output layer at half
    the rate). scope='layer_joint': each layer's prunable leaves pooled (w and b together, as the
    MNIST-1D lottery notebook prunes the flattened [W, b]). scope='global': one threshold over all
    prunable leaves together. rounding='floor' removes floor(rate * survivors) instead of the nearest
    integer (the notebook's int(p * n)). Ties go by position (lower index pruned first). Masks only
    ever lose entries.

    A population's params (every leaf with a leading member axis, as `train.fit_population` returns
    them) need `jax.vmap`: called on them directly, each leaf's count and threshold would pool all the
    members' weights. One mask per member: `jax.vmap(lambda p, m: prune.magnitude(p, m, 0.2))(params, masks)`.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"dense_0": {"w": jnp.array([[1.0, -6.0, 3.0], [-4.0, 5.0, 2.0]]), "b": jnp.ones(3)}}
        >>> masks = prune.magnitude(params, prune.ones(params), 0.5)  # round(0.5 * 6) = 3 removed
        >>> masks["dense_0"]["w"].tolist()  # |w| = 1, 2, 3 go; the bias is never pruned
        [[False, True, False], [True, True, False]]
        >>> masks = prune.magnitude(params, masks, 0.5)  # 0.5 of the 3 survivors: 2 removed
        >>> int(masks["dense_0"]["w"].sum())
        1
        >>> population = {"w": jnp.array([[[1.0, -6.0, 3.0]], [[9.0, 0.5, 2.0]]])}  # 2 members, w (1, 3)
        >>> pruned = jax.vmap(lambda p: prune.magnitude(p, prune.ones(p), 1 / 3))(population)
        >>> pruned["w"][:, 0].tolist()  # each member's own smallest |w| went
        [[False, True, True], [True, False, True]]
    """
    check_masks(params, masks)
    spec = prunable(params) if spec is None else spec
    check_spec(params, spec, "magnitude")
    # Only the prunable leaves are scored: |key| of an nnx RNG state is no number.
    scores = jax.tree.unflatten(
        jax.tree.structure(params),
        [
            jnp.abs(p).astype(jnp.float32) if s else jnp.zeros(jnp.shape(p), jnp.float32)
            for p, s in zip(jax.tree.leaves(params), jax.tree.leaves(spec), strict=True)
        ],
    )
    return by_scores(scores, masks, rate, scope=scope, layer_rates=layer_rates, spec=spec, rounding=rounding)


def random(
    key: Array,
    params: Params,
    masks: Masks,
    rate: float | Array,
    *,
    scope: str = "layer",
    layer_rates: Mapping[str, float] | None = None,
    spec: Params | None = None,
    rounding: str = "nearest",
) -> Masks:
    """The random-pruning control: remove the same counts as `magnitude`, chosen uniformly at random.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"w": jnp.ones((4, 5)), "b": jnp.ones(5)}
        >>> masks = prune.random(jax.random.key(0), params, prune.ones(params), 0.2)
        >>> int(masks["w"].sum()), int(masks["b"].sum())  # 20 - round(0.2 * 20); biases kept
        (16, 5)
    """
    check_masks(params, masks)
    spec = prunable(params) if spec is None else spec
    check_spec(params, spec, "random")
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    scores = jax.tree.unflatten(
        treedef, [jax.random.uniform(k, jnp.shape(p)) for k, p in zip(keys, leaves, strict=True)]
    )
    return by_scores(scores, masks, rate, scope=scope, layer_rates=layer_rates, spec=spec, rounding=rounding)


def random_like(key: Array, masks: Masks, spec: Params | None = None, *, scope: str = "layer") -> Masks:
    """A uniformly random mask with as many survivors as `masks` in each prunable leaf (scope
    'layer' or 'global'), or in each layer's pooled leaves (scope 'layer_joint').

    Random pruning's mask (the random-pruning control, a layerwise shuffle): the same density per
    layer, a different pattern. (The random-reinitialization control keeps the mask and redraws the weights.)
    A population's masks need `jax.vmap` and a key per member, as for `magnitude`:
    `jax.vmap(prune.random_like)(jax.random.split(key, n_members), masks)`.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"w": jnp.arange(12.0).reshape(3, 4)}
        >>> masks = prune.magnitude(params, prune.ones(params), 0.75)  # 3 of 12 survive
        >>> shuffled = prune.random_like(jax.random.key(0), masks)
        >>> int(shuffled["w"].sum()), shuffled["w"].shape
        (3, (3, 4))
    """
    _check_scope(scope, "nearest")
    spec = prunable(masks) if spec is None else spec
    leaves, treedef = jax.tree.flatten(masks)
    keys = jax.random.split(key, len(leaves))
    out = list(leaves)
    groups = _groups(masks, spec, "layer_joint" if scope == "layer_joint" else "layer")
    shuffled = _shuffle(tuple(keys[g[0]] for g in groups), tuple(tuple(leaves[i] for i in g) for g in groups))
    for group, keep in zip(groups, shuffled, strict=True):
        start = 0
        for i in group:
            out[i] = keep[start : start + leaves[i].size].reshape(leaves[i].shape)
            start += leaves[i].size
    return jax.tree.unflatten(treedef, out)


@jax.jit
def _shuffle(keys: tuple, masks: tuple) -> list[Array]:
    """Each group's random flat mask with the group's survivor count (one program, as `_select`)."""
    out = []
    for key, group in zip(keys, masks, strict=True):
        flat = jnp.concatenate([m.reshape(-1) for m in group])
        scores = jax.random.uniform(key, (flat.size,))
        out.append(_drop_lowest(scores, jnp.ones(flat.size, bool), flat.size - jnp.sum(flat)))
    return out
