"""Structured pruning: whole units (a Dense layer's hidden units, a convolution's output channels).

A unit is a slice along one axis of a weight leaf: column j of a funcnn Dense w (fan_in, features),
output channel j of a conv kernel (kh, kw, c_in, c_out) or (k, c_in, c_out): funcnn's own leaves
(named 'w') have their units on the last axis. Any other tree says where its units are
(`unit_axis=`: 0 for equinox's (out, in) weights, -1 for flax's kernels, or a `UnitLayout`), and
which layer is the output (`output_layer`): nothing here is guessed from names or shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.prune.layout import UnitAxis, UnitLayout, unit_axes_of
from funcnn.prune.masks import check_arrays, check_masks, check_spec, is_floating, layer_of, path_name, prunable
from funcnn.prune.selection import ROUNDINGS, _count, _drop_lowest, _groups, _rates

__all__ = [
    "NORMS",
    "STRUCTURES",
    "output_layer",
    "structured",
    "structured_random_like",
    "unit_scores",
    "units_alive",
    "units_prunable",
]

Array = jax.Array
Params = Any
Masks = Any


STRUCTURES = ("unit", "channel")
"""Structure names for structured pruning: both mean one slice along a leaf's unit axis (a Dense
layer's hidden unit, a convolution's output channel), so 'channel' is a synonym of 'unit'."""
NORMS = ("l1", "l2")


def _unit_view(x: Array, axis: int = -1) -> Array:
    """x as (entries per unit, units): one column per slice along `axis` (a 0-d leaf is one unit)."""
    shape = jnp.shape(x)
    if not shape:
        return jnp.reshape(x, (1, 1))
    axis = axis % len(shape)
    if axis != len(shape) - 1:
        x = jnp.moveaxis(x, axis, -1)
    rest = [d for i, d in enumerate(shape) if i != axis]
    return jnp.reshape(x, (int(np.prod(rest, dtype=np.int64)), shape[axis]))


def _from_view(v: Array, shape: tuple, axis: int) -> Array:
    """The inverse of `_unit_view`: (entries per unit, units) back to the leaf's shape."""
    if not shape:
        return jnp.reshape(v, shape)
    axis = axis % len(shape)
    moved = tuple(d for i, d in enumerate(shape) if i != axis) + (shape[axis],)
    out = jnp.reshape(v, moved)
    return out if axis == len(shape) - 1 else jnp.moveaxis(out, -1, axis)


def _check_structured(norm: str, scope: str, rounding: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got norm={norm!r}")
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global' for structured pruning, got scope={scope!r}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got rounding={rounding!r}")


def _score(p: Array, m: Array, axis: int, norm: str, normalize: bool) -> Array:
    """One leaf's unit norms over surviving weights, float32 (units,)."""
    w = jnp.where(_unit_view(m, axis), jnp.abs(_unit_view(p, axis)).astype(jnp.float32), 0.0)
    n = max(w.shape[0], 1)
    if norm == "l1":
        s = jnp.sum(w, axis=0)
        return s / n if normalize else s
    s = jnp.sqrt(jnp.sum(w * w, axis=0))
    return s / np.sqrt(np.float32(n)) if normalize else s


def unit_scores(
    params: Params,
    masks: Masks,
    *,
    norm: str = "l1",
    normalize: bool = False,
    unit_axis: UnitAxis = None,
    spec: Params | None = None,
) -> Params:
    """Each unit's norm over its surviving weights: a pytree like params of float32 vectors, one per leaf.

    A unit is a slice along a leaf's unit axis: column j of a funcnn Dense w (fan_in, features),
    output channel j of a conv kernel (kh, kw, c_in, c_out) or (k, c_in, c_out), row j of an
    equinox Linear weight (out, in) with unit_axis=0. For leaf W with mask M, viewed as (n, units)
    with n the entries per unit:

        l1: s_j = sum_i |W_ij| M_ij          l2: s_j = sqrt(sum_i W_ij^2 M_ij)

    normalize=True divides by n (l1) or sqrt(n) (l2), pruned entries counted: the mean |w| or the
    RMS of the unit at full density, which compares units of layers with different fan-in.
    unit_axis: None (funcnn's own leaves: 'w' on its last axis; a leaf of ndim <= 1 is its own
    units), an int for every leaf, {leaf or layer name: axis}, or a `UnitLayout`; a leaf of `spec`
    (default `prunable(params)`) with no known axis is a ValueError. A leaf outside `spec` whose
    axis is unknown, or that is not floating (PRNG keys, counts), gets an empty vector (no units).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"w": jnp.array([[3.0, -6.0, 5.0], [-3.0, 5.0, 0.0]])}
        >>> prune.unit_scores(params, prune.ones(params))["w"].tolist()
        [6.0, 11.0, 5.0]
        >>> prune.unit_scores(params, prune.ones(params), normalize=True)["w"].tolist()  # l1 / fan_in
        [3.0, 5.5, 2.5]
        >>> prune.unit_scores(params, prune.ones(params), unit_axis=0)["w"].tolist()  # rows as units
        [14.0, 8.0]
    """
    check_masks(params, masks)
    _check_structured(norm, "layer", "nearest")
    spec = prunable(params) if spec is None else spec
    check_spec(params, spec, "unit_scores")
    axes = unit_axes_of(params, spec, unit_axis, "unit_scores")
    leaves, treedef = jax.tree.flatten(params)
    out = [
        jnp.zeros((0,), jnp.float32) if axis is None or not is_floating(p) else _score(p, m, axis, norm, normalize)
        for p, m, axis in zip(leaves, jax.tree.leaves(masks), axes, strict=True)
    ]
    return jax.tree.unflatten(treedef, out)


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
    unit_axis: UnitAxis = None,
) -> Masks:
    """Structured magnitude pruning (Li et al. 2017, "Pruning Filters for Efficient ConvNets"):
    prune `rate` of the surviving units with the smallest norm.

    A unit is a slice along a prunable leaf's unit axis: a hidden unit (column j of a funcnn Dense
    w of shape (fan_in, features), row j of an equinox Linear weight (out, in)) or an output
    channel (filter j of a Conv2D kernel (kh, kw, c_in, c_out) or a Conv1D kernel (k, c_in, c_out)).
    unit_axis: None (funcnn's own weight leaves only, named 'w': units on the last axis), an int
    for every prunable leaf (0 for equinox, -1 for flax), {leaf or layer name: axis} (the most
    specific name wins), or a `UnitLayout` (an adapter's `net.unit_layout`). Any other prunable
    leaf is a ValueError naming it: the axis is never guessed. A unit survives while any of its
    entries does. Each surviving unit j of leaf W (mask M, viewed as (n, units), n entries per
    unit) is scored over its surviving weights, s_j = sum_i |W_ij| M_ij (norm='l1') or
    sqrt(sum_i W_ij^2 M_ij) (norm='l2').

    scope='layer': round(rate * surviving units) removed from each prunable leaf; `layer_rates`
    maps a layer ('dense_5') or leaf ('dense_5/w') name to its own rate, as in `magnitude` (a rate
    of 0 leaves the layer whole). scope='global': one threshold over the units of all prunable
    leaves, round(rate * all surviving units) removed; there the scores are s_j / n (l1) or
    s_j / sqrt(n) (l2), n counting pruned entries too (the mean |w| or RMS at full density), so
    that layers of different fan-in compare fairly. rounding='floor' takes floor instead of round.
    Global scope may remove every unit of a layer (at initialization, with a variance of 1/fan_in,
    the layers of the largest fan-in score lowest); give such a layer a smaller share with scope
    'layer' and `layer_rates`. The output layer's units are the classes: leave it out of `spec`
    (`units_prunable`) or give it a rate of 0.

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
        >>> eqx_like = {"weight": params["dense_0"]["w"].T}  # (out, in), as equinox stores it
        >>> prune.structured(eqx_like, prune.ones(eqx_like), 0.34, unit_axis=0)["weight"].tolist()
        [[True, True], [True, True], [False, False]]
    """
    check_masks(params, masks)
    _check_structured(norm, scope, rounding)
    spec = prunable(params) if spec is None else spec
    check_spec(params, spec, "structured")
    axes = unit_axes_of(params, spec, unit_axis, "structured")
    if layer_rates and scope == "global":
        raise ValueError("layer_rates apply to scope='layer' only; global pruning uses one threshold")
    rates = _rates(masks, spec, rate, layer_rates)
    m_leaves, treedef = jax.tree.flatten(masks)
    p_leaves = jax.tree.leaves(params)
    new = list(m_leaves)
    for group in _groups(masks, spec, scope):
        alive = {i: jnp.any(_unit_view(m_leaves[i], _axis(axes, i)), axis=0) for i in group}
        scores = [_score(p_leaves[i], m_leaves[i], _axis(axes, i), norm, scope == "global") for i in group]
        flat_alive = jnp.concatenate([alive[i] for i in group])
        group_rate = rates[group[0]]
        assert group_rate is not None  # groups hold prunable leaves only, and each has a rate
        keep = _drop_lowest(jnp.concatenate(scores), flat_alive, _count(group_rate, jnp.sum(flat_alive), rounding))
        start = 0
        for i in group:
            n, axis = alive[i].size, _axis(axes, i)
            view = _unit_view(m_leaves[i], axis) & keep[None, start : start + n]
            new[i] = _from_view(view, jnp.shape(m_leaves[i]), axis)
            start += n
    return jax.tree.unflatten(treedef, new)


def _axis(axes: list[int | None], i: int) -> int:
    axis = axes[i]
    assert axis is not None  # unit_axes_of resolves every prunable leaf or raises
    return axis


def units_alive(masks: Masks, spec: Params | None = None, *, unit_axis: UnitAxis = None) -> dict[str, Array]:
    """The number of surviving units (slices along the unit axis with any True entry) of each
    prunable leaf, by path name, as int32 scalar arrays. `unit_axis` as in `structured`.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> masks = {"w": jnp.array([[True, False, False], [True, False, True]]), "b": jnp.ones(3, bool)}
        >>> {name: int(n) for name, n in prune.units_alive(masks).items()}
        {'w': 2}
        >>> {name: int(n) for name, n in prune.units_alive(masks, unit_axis=0).items()}  # rows
        {'w': 2}
    """
    spec = prunable(masks) if spec is None else spec
    check_arrays(masks, "units_alive", "masks")
    axes = unit_axes_of(masks, spec, unit_axis, "units_alive")
    return {
        path_name(path): jnp.sum(jnp.any(_unit_view(m, _axis(axes, i)), axis=0)).astype(jnp.int32)
        for i, ((path, m), s) in enumerate(
            zip(jax.tree_util.tree_leaves_with_path(masks), jax.tree.leaves(spec), strict=True)
        )
        if s
    }


def structured_random_like(
    key: Array, masks: Masks, spec: Params | None = None, *, unit_axis: UnitAxis = None
) -> Masks:
    """The random structured control: in each prunable leaf, as many whole units as `masks` has
    surviving units (any True entry), chosen uniformly at random; every entry of a chosen unit is
    True, every entry of the others False. Leaves that are not prunable are kept as they are.
    `unit_axis` as in `structured`.

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
    axes = unit_axes_of(masks, spec, unit_axis, "structured_random_like")
    leaves, treedef = jax.tree.flatten(masks)
    keys = jax.random.split(key, len(leaves))
    out = list(leaves)
    for i, flag in enumerate(jax.tree.leaves(spec)):
        if not flag:
            continue
        axis = _axis(axes, i)
        view = _unit_view(leaves[i], axis)
        alive = jnp.any(view, axis=0)
        scores = jax.random.uniform(keys[i], (alive.size,))
        keep = _drop_lowest(scores, jnp.ones(alive.size, bool), alive.size - jnp.sum(alive))
        out[i] = _from_view(jnp.broadcast_to(keep[None], view.shape), jnp.shape(leaves[i]), axis)
    return jax.tree.unflatten(treedef, out)


_FUNCNN_LAYER = re.compile(r"[a-z][a-z0-9_]*_(\d+)")


def output_layer(params: Params, layout: UnitLayout | None = None) -> str:
    """The output layer's name (its units are the classes, which structured pruning keeps).

    Known from `layout` (its `UnitLayout.output_layer`: an adapter's `net.unit_layout`, or your
    own), or from funcnn's own names: every top-level layer with a prunable leaf named
    '<kind>_<n>' (lower-case, each n once, as `nn.serial` names them) and the one of highest n made
    of 'w' leaves. Anything else is a ValueError naming the candidate layers and asking for the
    output layer: it is never taken alphabetically or by tree order. Only shapes matter.

    Example:
        >>> import numpy as np
        >>> from funcnn import prune
        >>> w, b = np.zeros((2, 2)), np.zeros(2)
        >>> prune.output_layer({"dense_0": {"w": w, "b": b}, "dense_10": {"w": w}, "dense_2": {"w": w}})
        'dense_10'
        >>> foreign = {"fc1": {"kernel": w}, "fc2": {"kernel": w}, "classifier": {"kernel": w}}
        >>> prune.output_layer(foreign, prune.UnitLayout(output_layer="classifier"))
        'classifier'
        >>> prune.output_layer(foreign)
        Traceback (most recent call last):
        ...
        ValueError: output_layer: cannot tell the output layer from these names; candidates ...
    """
    names = [path_name(p) for p, f in jax.tree_util.tree_leaves_with_path(prunable(params)) if f]
    if not names:
        raise ValueError("output_layer: params have no weight matrix or kernel (floating, ndim > 1): no output layer")
    candidates = sorted({layer_of(n) for n in names})
    if layout is not None and not isinstance(layout, UnitLayout):
        raise ValueError(f"output_layer: layout must be None or a prune.UnitLayout, got layout={layout!r}")
    if layout is not None and layout.output_layer is not None:
        out = layout.output_layer
        if not isinstance(out, str) or not any(out == "" or n == out or n.startswith(out + "/") for n in names):
            raise ValueError(
                f"output_layer: layout.output_layer={out!r} is no layer with prunable leaves; candidates: {candidates}"
            )
        return out
    tops: dict[str, list[str]] = {}
    for n in names:
        tops.setdefault(n.split("/")[0], []).append(n)
    index = {t: _FUNCNN_LAYER.fullmatch(t) for t in tops}
    numbers = [int(m.group(1)) for m in index.values() if m]
    if len(numbers) == len(tops) and len(set(numbers)) == len(numbers):
        best = max(tops, key=lambda t: int(index[t].group(1)))  # type: ignore[union-attr]
        if all(n.rsplit("/", 1)[-1] == "w" for n in tops[best]):
            return best
    raise ValueError(
        f"output_layer: cannot tell the output layer from these names; candidates (layers with prunable "
        f"leaves): {candidates}. funcnn reads it only from its own names (top-level '<kind>_<n>' layers of "
        "'w' leaves: the highest n); name it with output_layer=, as layout=prune.UnitLayout(output_layer=...) "
        "(an adapter's net.unit_layout declares it)"
    )


def units_prunable(prunable_spec: Params, params: Params, layout: UnitLayout | None = None) -> Params:
    """The prunable spec structured pruning uses: `prunable_spec` less the leaves of `params`'
    `output_layer` (whose units are the classes), that layer known from `layout` or funcnn's names.

    Example:
        >>> import numpy as np
        >>> from funcnn import prune
        >>> params = {"dense_0": {"w": np.zeros((4, 3)), "b": np.zeros(3)}, "dense_1": {"w": np.zeros((3, 2))}}
        >>> prune.units_prunable({"dense_0": {"w": True, "b": False}, "dense_1": {"w": True}}, params)
        {'dense_0': {'b': False, 'w': True}, 'dense_1': {'w': False}}
    """
    out = output_layer(params, layout)
    return jax.tree_util.tree_map_with_path(
        lambda p, f: bool(f) and not (out == "" or (path_name(p) + "/").startswith(out + "/")), prunable_spec
    )
