"""Masks and pruning: magnitude (layer-wise or global), structured (whole units), random, rewind, density.

A mask has exactly the params' tree structure, with boolean leaves of the same shapes; leaves that
are never pruned carry all-True masks. Which leaves may be pruned is a static spec, a pytree of
Python bools like params (default: leaves with ndim > 1, i.e. weight matrices and kernels; never
biases or PReLU's alpha). Every function here is pure, jittable and vmappable (one member's
threshold per member under `jax.vmap`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import nn as nn_lib

__all__ = [
    "NORMS",
    "ROUNDINGS",
    "SCOPES",
    "STRUCTURES",
    "apply",
    "check_masks",
    "compact",
    "density",
    "magnitude",
    "ones",
    "path_name",
    "prunable",
    "random",
    "random_like",
    "rewind",
    "structured",
    "structured_random_like",
    "unit_scores",
    "units_alive",
]

Array = jax.Array
Params = Any
Masks = Any


def path_name(path: Iterable[Any]) -> str:
    """'dense_1/w' for the key path of params['dense_1']['w'].

    The names `layer_rates` and `density` use, joined with '/' from dict keys, sequence indices and
    attribute names.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"dense_1": {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}, "taps": [jnp.zeros(2)]}
        >>> [prune.path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
        ['dense_1/b', 'dense_1/w', 'taps/0']
    """
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def check_arrays(tree: Params, fn: str = "prune", what: str = "params") -> None:
    """Raise ValueError naming the first leaf of `tree` that is not an array (nor a shape-dtype struct).

    The usual cause is a whole equinox model, whose activation functions are pytree leaves."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if (hasattr(leaf, "shape") and hasattr(leaf, "dtype")) or isinstance(leaf, (bool, int, float, complex)):
            continue
        name = getattr(leaf, "__name__", None)
        shown = f"{type(leaf).__name__} {name!r}" if name else repr(leaf)
        raise ValueError(
            f"{fn}: leaf '{path_name(path)}' of the {what} is a {shown}, not an array; pruning takes a pytree "
            "of arrays only. For an equinox model, prune its array part: "
            "`params, static = eqx.partition(model, eqx.is_array)` (and `eqx.combine(params, static)` after), "
            "or wrap the model with funcnn.interop.from_equinox"
        )


def prunable(params: Params, predicate: Callable[[str, Array], bool] | None = None) -> Params:
    """The static spec: a pytree of Python bools, True where `predicate(name, leaf)` (default ndim > 1).

    `name` is the leaf's `path_name`, e.g. 'dense_0/w'.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"dense_0": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}}
        >>> prune.prunable(params)
        {'dense_0': {'b': False, 'w': True}}
        >>> prune.prunable(params, lambda name, leaf: name.endswith("b"))
        {'dense_0': {'b': True, 'w': False}}
    """
    check_arrays(params, "prunable")
    predicate = predicate or (lambda name, leaf: np.ndim(leaf) > 1)
    return jax.tree_util.tree_map_with_path(lambda p, leaf: bool(predicate(path_name(p), leaf)), params)


def ones(params: Params) -> Masks:
    """All-True masks with the params' structure (the dense network).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> masks = prune.ones({"dense_0": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}})
        >>> masks["dense_0"]["w"].tolist()
        [[True, True, True], [True, True, True]]
    """
    check_arrays(params, "ones")
    return jax.tree.map(lambda x: jnp.ones(jnp.shape(x), bool), params)


def apply(params: Params, masks: Masks) -> Params:
    """params ⊙ masks: pruned entries become exactly 0.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"w": jnp.array([[1.0, -2.0], [3.0, 4.0]])}
        >>> masks = {"w": jnp.array([[True, False], [False, True]])}
        >>> prune.apply(params, masks)["w"].tolist()
        [[1.0, 0.0], [0.0, 4.0]]
    """
    check_masks(params, masks)
    return jax.tree.map(lambda x, m: jnp.where(m, x, jnp.zeros_like(x)), params, masks)


def rewind(saved_params: Params, masks: Masks) -> Params:
    """The survivors reset to saved weights (θ0, or θk for late rewinding): saved ⊙ masks.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> theta0 = {"w": jnp.array([[0.5, -0.5], [0.25, 1.0]])}  # the weights at initialization
        >>> trained = {"w": jnp.array([[2.0, -0.1], [0.2, 3.0]])}
        >>> masks = prune.magnitude(trained, prune.ones(trained), 0.5)  # keeps the two largest |w|
        >>> prune.rewind(theta0, masks)["w"].tolist()
        [[0.5, 0.0], [0.0, 1.0]]
    """
    return apply(saved_params, masks)


def check_masks(params: Params, masks: Masks) -> None:
    """Raise ValueError unless masks has the params' structure and leaf shapes, with bool leaves.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"dense_0": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}}
        >>> prune.check_masks(params, prune.ones(params))  # fine: returns None
        >>> prune.check_masks(params, {"dense_0": {"w": jnp.ones((2, 3)), "b": jnp.ones(3, bool)}})
        Traceback (most recent call last):
        ...
        ValueError: mask for 'dense_0/w' must be boolean, got dtype float32
    """
    check_arrays(params, "prune")
    check_arrays(masks, "prune", "masks")
    ps, ms = jax.tree.structure(params), jax.tree.structure(masks)
    # jax binds PyTreeDef by assignment (not a class statement), so mypy sees no `!=` on it
    if ps != ms:  # type: ignore[operator]
        raise ValueError(f"masks must have the params' tree structure;\n params: {ps}\n masks:  {ms}")
    for (path, p), m in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(masks), strict=True):
        if jnp.shape(p) != jnp.shape(m):
            raise ValueError(
                f"mask for '{path_name(path)}' has shape {jnp.shape(m)}, expected the param's {jnp.shape(p)}"
            )
        if jnp.result_type(m) != jnp.bool_:
            raise ValueError(f"mask for '{path_name(path)}' must be boolean, got dtype {jnp.result_type(m)}")


def density(masks: Masks, spec: Params | None = None) -> dict[str, Array]:
    """Remaining fraction of each prunable leaf (by path name) and 'total' over all of them (P_m).

    Each value is a float32 scalar array; `spec` defaults to `prunable(masks)` (the weight matrices).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> masks = {"w": jnp.array([[True, False], [False, False]]), "v": jnp.ones((2, 2), bool)}
        >>> {name: float(d) for name, d in prune.density(masks).items()}
        {'v': 1.0, 'w': 0.25, 'total': 0.625}
    """
    spec = prunable(masks) if spec is None else spec
    out: dict[str, Array] = {}
    alive: Array | int = 0
    size = 0
    for (path, m), s in zip(jax.tree_util.tree_leaves_with_path(masks), jax.tree.leaves(spec), strict=True):
        if s:
            n = jnp.sum(m)
            out[path_name(path)] = n / m.size
            alive, size = alive + n, size + m.size
    out["total"] = jnp.asarray(alive / size)
    return out


def _check_rate(name: str, rate: float | Array) -> None:
    if isinstance(rate, (int, float)) and not 0 <= rate < 1:
        raise ValueError(f"{name} must be in [0, 1), got {name}={rate!r}")


def _rates(
    masks: Masks, spec: Params, rate: float | Array, layer_rates: Mapping[str, float] | None
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
    """New flat mask: the k lowest-scoring surviving entries removed; ties by index (stable sort)."""
    n_dead = mask.size - jnp.sum(mask)
    key = jnp.where(mask, scores, -1.0)  # scores >= 0, so pruned entries sort first
    order = jnp.argsort(key, stable=True)
    rank = jnp.zeros(mask.size, jnp.int32).at[order].set(jnp.arange(mask.size, dtype=jnp.int32))
    return rank >= n_dead + k


SCOPES = ("layer", "global", "layer_joint")
ROUNDINGS = ("nearest", "floor")


def layer_of(name: str) -> str:
    """The layer a leaf belongs to: its path without the last part ('residual_2/main/dense_0/w' ->
    'residual_2/main/dense_0'); a top-level leaf is its own layer."""
    return name.rsplit("/", 1)[0] if "/" in name else name


def _count(rate: float | Array, alive: Array, rounding: str) -> Array:
    if rounding == "nearest":
        return jnp.round(rate * alive).astype(jnp.int32)
    # floor(rate * alive) exactly as Python's int(p * n) in float64: in float32 a product just below
    # an integer (0.03 off for n ~ 250,000) would floor one lower, so it is computed on the host.
    rate = jnp.asarray(rate, jnp.float32) if isinstance(rate, jax.Array) else rate

    def host(a: np.ndarray, r: np.ndarray | None = None) -> np.ndarray:
        r_host = rate if r is None else np.asarray(r, np.float64)
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


def _prune(
    scores: Params,
    masks: Masks,
    rate: float | Array,
    scope: str,
    layer_rates: Mapping[str, float] | None,
    spec: Params | None,
    rounding: str = "nearest",
) -> Masks:
    _check_scope(scope, rounding)
    spec = prunable(masks) if spec is None else spec
    if layer_rates and scope == "global":
        raise ValueError("layer_rates apply to scope='layer' or 'layer_joint' only; global pruning uses one threshold")
    rates = _rates(masks, spec, rate, layer_rates)
    m_leaves, treedef = jax.tree.flatten(masks)
    s_leaves = jax.tree.leaves(scores)
    new = list(m_leaves)
    names = [path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(masks)]
    for group in _groups(masks, spec, scope):
        group_rates = {rates[i] for i in group}
        if len(group_rates) > 1:
            raise ValueError(
                f"scope='layer_joint' prunes each layer's leaves together, so they need one rate; "
                f"layer_rates gives {sorted((names[i], rates[i]) for i in group)}"
            )
        flat_s = jnp.concatenate([s_leaves[i].reshape(-1) for i in group])
        flat_m = jnp.concatenate([m_leaves[i].reshape(-1) for i in group])
        group_rate = rates[group[0]]
        assert group_rate is not None  # groups hold prunable leaves only, and each has a rate
        flat_new = _drop_lowest(flat_s, flat_m, _count(group_rate, jnp.sum(flat_m), rounding))
        start = 0
        for i in group:
            size = m_leaves[i].size
            new[i] = flat_new[start : start + size].reshape(m_leaves[i].shape)
            start += size
    return jax.tree.unflatten(treedef, new)


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

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"dense_0": {"w": jnp.array([[1.0, -6.0, 3.0], [-4.0, 5.0, 2.0]]), "b": jnp.ones(3)}}
        >>> masks = prune.magnitude(params, prune.ones(params), 0.5)  # round(0.5 * 6) = 3 removed
        >>> masks["dense_0"]["w"].tolist()  # |w| = 1, 2, 3 go; the bias is never pruned
        [[False, True, False], [True, True, False]]
        >>> masks = prune.magnitude(params, masks, 0.5)  # 0.5 of the 3 survivors: 2 removed
        >>> int(masks["dense_0"]["w"].sum())
        1
    """
    check_masks(params, masks)
    scores = jax.tree.map(lambda p: jnp.abs(p).astype(jnp.float32), params)
    return _prune(scores, masks, rate, scope, layer_rates, spec, rounding)


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
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    scores = jax.tree.unflatten(
        treedef, [jax.random.uniform(k, jnp.shape(p)) for k, p in zip(keys, leaves, strict=True)]
    )
    return _prune(scores, masks, rate, scope, layer_rates, spec, rounding)


def random_like(key: Array, masks: Masks, spec: Params | None = None, *, scope: str = "layer") -> Masks:
    """A uniformly random mask with as many survivors as `masks` in each prunable leaf (scope
    'layer' or 'global'), or in each layer's pooled leaves (scope 'layer_joint').

    The random-reinitialization control's mask: the same density per layer, a different pattern.

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
    for group in _groups(masks, spec, "layer_joint" if scope == "layer_joint" else "layer"):
        flat = jnp.concatenate([leaves[i].reshape(-1) for i in group])
        scores = jax.random.uniform(keys[group[0]], (flat.size,))
        keep = _drop_lowest(scores, jnp.ones(flat.size, bool), flat.size - jnp.sum(flat))
        start = 0
        for i in group:
            out[i] = keep[start : start + leaves[i].size].reshape(leaves[i].shape)
            start += leaves[i].size
    return jax.tree.unflatten(treedef, out)


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


def compact(net: nn_lib.Layer, params: Params, masks: Masks, **kwargs: Any) -> Any:
    """`funcnn.compaction.compact`, kept here for the scripts that call it as `prune.compact`.

    Returns (smaller_net, smaller_params) computing net.apply(params ⊙ masks), with hidden units
    and channels that no longer reach the output removed; see `funcnn.compaction` for every layer
    kind, BatchNorm state (`state=`, then a third value), residual blocks and populations.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import nn, prune
        >>> net = nn.serial(nn.Dense(3), nn.Relu(), nn.Dense(1))
        >>> params = {
        ...     "dense_0": {"w": jnp.array([[1.0, 2.0, -1.0], [0.5, -3.0, 2.0]]), "b": jnp.zeros(3)},
        ...     "relu_1": {},
        ...     "dense_2": {"w": jnp.array([[1.0], [4.0], [-2.0]]), "b": jnp.zeros(1)},
        ... }
        >>> masks = prune.ones(params)
        >>> masks["dense_2"]["w"] = jnp.array([[True], [False], [True]])  # hidden unit 1 feeds nothing
        >>> small_net, small = prune.compact(net, params, masks)
        >>> small["dense_0"]["w"].shape, small["dense_2"]["w"].tolist()  # 3 hidden units -> 2
        ((2, 2), [[1.0], [-2.0]])
        >>> x = jnp.array([[1.0, 1.0]])  # hidden relu(1.5, -1, 1) = (1.5, 0, 1): 1.5 * 1 + 1 * (-2)
        >>> small_net.apply(small, x).tolist(), net.apply(prune.apply(params, masks), x).tolist()
        ([[-0.5]], [[-0.5]])
    """
    from funcnn import compaction  # compaction builds on this module

    return compaction.compact(net, params, masks, **kwargs)
