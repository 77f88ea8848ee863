"""Structured pruning: whole units (a Dense layer's hidden units, a convolution's output channels).

A unit is a slice along a leaf's last axis: column j of a Dense w (fan_in, features), output
channel j of a conv kernel (kh, kw, c_in, c_out) or (k, c_in, c_out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.prune.masks import check_arrays, check_masks, path_name, prunable
from funcnn.prune.selection import ROUNDINGS, _count, _drop_lowest, _groups, _rates

__all__ = ["NORMS", "STRUCTURES", "structured", "structured_random_like", "unit_scores", "units_alive"]

Array = jax.Array
Params = Any
Masks = Any


STRUCTURES = ("unit", "channel")
"""Structure names for structured pruning: both mean one slice along a leaf's last axis (a Dense
layer's hidden unit, a convolution's output channel), so 'channel' is a synonym of 'unit'."""
NORMS = ("l1", "l2")


def _unit_view(x: Array) -> Array:
    """x as (entries per unit, units): one column per slice along the last axis (a 0-d leaf is one unit)."""
    shape = jnp.shape(x)
    n_units = shape[-1] if shape else 1
    return jnp.reshape(x, (int(np.prod(shape[:-1], dtype=np.int64)) if shape else 1, n_units))


def _check_structured(norm: str, scope: str, rounding: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got norm={norm!r}")
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global' for structured pruning, got scope={scope!r}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got rounding={rounding!r}")


def unit_scores(params: Params, masks: Masks, *, norm: str = "l1", normalize: bool = False) -> Params:
    """Each unit's norm over its surviving weights: a pytree like params of float32 vectors, one per leaf.

    A unit is a slice along a leaf's last axis: column j of a Dense w (fan_in, features), output
    channel j of a conv kernel (kh, kw, c_in, c_out) or (k, c_in, c_out). For leaf W with mask M,
    viewed as (n, units) with n the entries per unit:

        l1: s_j = sum_i |W_ij| M_ij          l2: s_j = sqrt(sum_i W_ij^2 M_ij)

    normalize=True divides by n (l1) or sqrt(n) (l2), pruned entries counted: the mean |w| or the
    RMS of the unit at full density, which compares units of layers with different fan-in.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"w": jnp.array([[3.0, -6.0, 5.0], [-3.0, 5.0, 0.0]])}
        >>> prune.unit_scores(params, prune.ones(params))["w"].tolist()
        [6.0, 11.0, 5.0]
        >>> prune.unit_scores(params, prune.ones(params), normalize=True)["w"].tolist()  # l1 / fan_in
        [3.0, 5.5, 2.5]
    """
    check_masks(params, masks)
    _check_structured(norm, "layer", "nearest")

    def one(p: Array, m: Array) -> Array:
        w = jnp.where(_unit_view(m), jnp.abs(_unit_view(p)).astype(jnp.float32), 0.0)
        n = max(w.shape[0], 1)
        if norm == "l1":
            s = jnp.sum(w, axis=0)
            return s / n if normalize else s
        s = jnp.sqrt(jnp.sum(w * w, axis=0))
        return s / np.sqrt(np.float32(n)) if normalize else s

    return jax.tree.map(one, params, masks)


def structured(
    params: Params,
    masks: Masks,
    rate: float | Array,
    *,
    norm: str = "l1",
    scope: str = "layer",
    layer_rates: Mapping[str, float] | None = None,
    spec: Params | None = None,
    rounding: str = "nearest",
) -> Masks:
    """Structured magnitude pruning (Li et al. 2017, "Pruning Filters for Efficient ConvNets"):
    prune `rate` of the surviving units with the smallest norm.

    A unit is a slice along a prunable leaf's last axis: a hidden unit (column j of a Dense w of
    shape (fan_in, features)) or an output channel (filter j of a Conv2D kernel (kh, kw, c_in,
    c_out) or a Conv1D kernel (k, c_in, c_out)). A unit survives while any of its entries does.
    Each surviving unit j of leaf W (mask M, viewed as (n, units), n entries per unit) is scored
    over its surviving weights, s_j = sum_i |W_ij| M_ij (norm='l1') or sqrt(sum_i W_ij^2 M_ij)
    (norm='l2').

    scope='layer': round(rate * surviving units) removed from each prunable leaf; `layer_rates`
    maps a layer ('dense_5') or leaf ('dense_5/w') name to its own rate, as in `magnitude` (a rate
    of 0 leaves the layer whole). scope='global': one threshold over the units of all prunable
    leaves, round(rate * all surviving units) removed; there the scores are s_j / n (l1) or
    s_j / sqrt(n) (l2), n counting pruned entries too (the mean |w| or RMS at full density), so
    that layers of different fan-in compare fairly. rounding='floor' takes floor instead of round.
    Global scope may remove every unit of a layer (at initialization, with a variance of 1/fan_in,
    the layers of the largest fan-in score lowest); give such a layer a smaller share with scope
    'layer' and `layer_rates`.

    A removed unit loses all its entries (whole columns or filters); otherwise masks only ever lose
    entries, and entries pruned earlier inside a kept unit stay pruned. Biases are not masked: a
    unit with no inputs outputs the constant act(b), which `compact` folds into the next layer.
    Ties go by position (the lower unit index, then the earlier leaf, is pruned first). Pure,
    jittable and vmappable (under `jax.vmap`, one network's units per member); on a population
    without vmap the member axis would be read as part of each unit.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"dense_0": {"w": jnp.array([[3.0, -6.0, 5.0], [-3.0, 5.0, 0.0]]), "b": jnp.ones(3)}}
        >>> masks = prune.structured(params, prune.ones(params), 0.34)  # L1 norms 6, 11, 5: unit 2 goes
        >>> masks["dense_0"]["w"].tolist()
        [[True, True, False], [True, True, False]]
        >>> masks = prune.structured(params, prune.ones(params), 0.34, norm="l2")  # L2: 4.24, 7.81, 5
        >>> masks["dense_0"]["w"].tolist()
        [[False, True, True], [False, True, True]]
        >>> masks["dense_0"]["b"].tolist()  # biases are not masked
        [True, True, True]
    """
    check_masks(params, masks)
    _check_structured(norm, scope, rounding)
    spec = prunable(masks) if spec is None else spec
    if layer_rates and scope == "global":
        raise ValueError("layer_rates apply to scope='layer' only; global pruning uses one threshold")
    rates = _rates(masks, spec, rate, layer_rates)
    m_leaves, treedef = jax.tree.flatten(masks)
    s_leaves = jax.tree.leaves(unit_scores(params, masks, norm=norm, normalize=scope == "global"))
    alive = [jnp.any(_unit_view(m), axis=0) for m in m_leaves]
    new = list(m_leaves)
    for group in _groups(masks, spec, scope):
        flat_alive = jnp.concatenate([alive[i] for i in group])
        group_rate = rates[group[0]]
        assert group_rate is not None  # groups hold prunable leaves only, and each has a rate
        keep = _drop_lowest(
            jnp.concatenate([s_leaves[i] for i in group]),
            flat_alive,
            _count(group_rate, jnp.sum(flat_alive), rounding),
        )
        start = 0
        for i in group:
            n = alive[i].size
            new[i] = jnp.reshape(_unit_view(m_leaves[i]) & keep[None, start : start + n], jnp.shape(m_leaves[i]))
            start += n
    return jax.tree.unflatten(treedef, new)


def units_alive(masks: Masks, spec: Params | None = None) -> dict[str, Array]:
    """The number of surviving units (slices along the last axis with any True entry) of each
    prunable leaf, by path name, as int32 scalar arrays.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> masks = {"w": jnp.array([[True, False, False], [True, False, True]]), "b": jnp.ones(3, bool)}
        >>> {name: int(n) for name, n in prune.units_alive(masks).items()}
        {'w': 2}
    """
    spec = prunable(masks) if spec is None else spec
    return {
        path_name(path): jnp.sum(jnp.any(_unit_view(m), axis=0)).astype(jnp.int32)
        for (path, m), s in zip(jax.tree_util.tree_leaves_with_path(masks), jax.tree.leaves(spec), strict=True)
        if s
    }


def structured_random_like(key: Array, masks: Masks, spec: Params | None = None) -> Masks:
    """The random structured control: in each prunable leaf, as many whole units as `masks` has
    surviving units (any True entry), chosen uniformly at random; every entry of a chosen unit is
    True, every entry of the others False. Leaves that are not prunable are kept as they are.

    With a mask of whole units (what `structured` makes from `ones`), the same density per leaf.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"w": jnp.array([[3.0, -6.0, 5.0, 1.0], [-3.0, 5.0, 0.0, 1.0]])}
        >>> masks = prune.structured(params, prune.ones(params), 0.5)  # units 0 and 1 survive
        >>> shuffled = prune.structured_random_like(jax.random.key(0), masks)
        >>> shuffled["w"].any(axis=0).sum().item(), shuffled["w"].shape  # two whole units, anywhere
        (2, (2, 4))
        >>> bool((shuffled["w"].all(axis=0) | ~shuffled["w"].any(axis=0)).all())  # whole units only
        True
    """
    spec = prunable(masks) if spec is None else spec
    check_arrays(masks, "structured_random_like", "masks")
    leaves, treedef = jax.tree.flatten(masks)
    keys = jax.random.split(key, len(leaves))
    out = list(leaves)
    for i, flag in enumerate(jax.tree.leaves(spec)):
        if not flag:
            continue
        view = _unit_view(leaves[i])
        alive = jnp.any(view, axis=0)
        scores = jax.random.uniform(keys[i], (alive.size,))
        keep = _drop_lowest(scores, jnp.ones(alive.size, bool), alive.size - jnp.sum(alive))
        out[i] = jnp.reshape(jnp.broadcast_to(keep[None], view.shape), jnp.shape(leaves[i]))
    return jax.tree.unflatten(treedef, out)
