"""`compact`: cut the dead slots out of params and state, and rebuild the layers at their new widths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import nn as nn_lib
from funcnn import prune
from funcnn.compaction.trace import (
    CHANNELWISE,
    _at,
    _contributions,
    _find,
    _fix,
    _new_slots,
    _removable,
    _Trace,
    _trace,
)
from funcnn.nn.layer import add_bias

__all__ = ["compact", "mask_dead_biases"]

Array = jax.Array
Params = Any
Layer = nn_lib.Layer


def _set(tree: Params, path: tuple[str, ...], value: Any) -> Params:
    if not path:
        return value
    return {**tree, path[0]: _set(tree[path[0]], path[1:], value)}


def _shrink(t: _Trace, p: Params, s: Params, gone: set[int]) -> tuple[Params, Params, dict[tuple[str, ...], int]]:
    """Params and state without the `gone` slots (their constants folded); widths of producers."""
    keep = lambda sig: np.array([_find(t.parent, i) not in gone for i in sig.tolist()], dtype=bool)
    widths = {}
    for path, (layer, x, sig) in t.consumers.items():
        q = dict(_at(p, path))
        k = keep(sig)
        if not k.all():
            value = np.asarray(x, np.float64).reshape(-1, x.shape[-1])[0]
            gone_values = np.where(~k, value, 0.0)  # dead-out channels add 0 whatever their value
            if "b" in q and gone_values.any():
                q["b"] = jnp.asarray(np.asarray(q["b"], np.float64) + _fold(layer, q, x, gone_values), q["b"].dtype)
            q["w"] = jnp.asarray(np.compress(k, np.asarray(q["w"]), axis=-2))
        p = _set(p, path, q)
    for path, out in t.producers.items():
        k = keep(out)
        q = {
            n: (jnp.asarray(np.compress(k, np.asarray(v), axis=-1)) if n in ("w", "b") else v)
            for n, v in _at(p, path).items()
        }
        widths[path] = int(k.sum())
        p = _set(p, path, q)
    for path, sig in t.channelwise.items():
        k = keep(sig)
        cut = lambda tree, k=k: jax.tree.map(
            lambda a: jnp.asarray(np.compress(k, np.asarray(a), axis=-1)) if np.ndim(a) else a, tree
        )
        p = _set(p, path, cut(_at(p, path)))
        s = _set(s, path, cut(_at(s, path)))
    return p, s, widths


def _fold(layer: Layer, q: Params, x: Any, values: np.ndarray) -> np.ndarray:
    """What input channels held at constant `values` add to the layer's output: a (c_out,) shift."""
    if layer.kind == "dense":
        return values @ np.asarray(q["w"], np.float64)
    response = _contributions(layer, q, np.asarray(x))  # constant over positions, as _removable checked
    return np.einsum("i,io->o", values, response.reshape(response.shape[0], -1, response.shape[-1])[:, 0])


def _resized(layer: Layer, features: int, biased: bool = False) -> Layer:
    """`layer` (Dense or Conv) with `features` output channels; biased=True adds a bias it lacked."""

    def output_shape(input_shape: Any) -> Any:
        return tuple(layer.output_shape(input_shape)[:-1]) + (features,)

    def init(key: Array, input_shape: Any) -> Params:
        p = {k: v[..., :features] for k, v in layer.init(key, input_shape).items()}
        if biased and "b" not in p:
            p["b"] = jnp.zeros((features,), p["w"].dtype)
        return p

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        if not biased:
            return layer.apply(params, x, key=key, train=train)
        y = layer.apply({k: v for k, v in params.items() if k != "b"}, x, key=key, train=train)
        return add_bias(y, params["b"])

    return Layer(layer.kind, init, apply, output_shape)


def _rebuild(layer: Layer, change: Callable[[tuple[str, ...], Layer], Layer], path: tuple[str, ...] = ()) -> Layer:
    """The same network with `change(path, layer)` in place of each leaf layer."""
    if layer.kind in ("serial", "parallel"):
        subs = [
            _rebuild(sub, change, (*path, n))
            for n, sub in zip(nn_lib.layer_names(layer.layers), layer.layers, strict=True)
        ]
        return nn_lib.serial(*subs) if layer.kind == "serial" else nn_lib.Parallel(*subs)
    if layer.kind == "residual":
        main, shortcut = (
            _rebuild(sub, change, (*path, n)) for n, sub in zip(("main", "shortcut"), layer.layers, strict=True)
        )
        return nn_lib.Residual(main, shortcut)
    return change(path, layer)


def _member_count(tree: Params, expected: Params, what: str) -> int | None:
    """None when tree's leaves have the expected shapes, N when each has a leading axis of N members."""
    got = [tuple(np.shape(a)) for a in jax.tree.leaves(tree)]
    want = [tuple(a.shape) for a in jax.tree.leaves(expected)]
    if jax.tree.structure(tree) != jax.tree.structure(expected):  # type: ignore[operator]
        raise ValueError(f"compact: {what} do not fit the network (made by another network's init?)")
    if got == want:
        return None
    lead = {g[0] if len(g) == len(w) + 1 and g[1:] == w else None for g, w in zip(got, want, strict=True)}
    if len(lead) == 1 and None not in lead:
        return lead.pop()
    raise ValueError(
        f"compact: {what} have shapes {got[:3]}... but the network at input_shape makes {want[:3]}...; "
        "pass the input_shape the network was initialized with (one example, no batch axis)"
    )


def _guess_input_shape(net: Layer, params: Params) -> tuple[int, ...]:
    layer, p = net, params
    while True:
        if layer.kind == "serial":
            names = nn_lib.layer_names(layer.layers)
            first = next((i for i, sub in enumerate(layer.layers) if sub.kind not in ("flatten", *CHANNELWISE)), None)
            if first is not None and all(not jax.tree.leaves(p[names[i]]) for i in range(first)):
                layer, p = layer.layers[first], p[names[first]]
                continue
        if layer.kind == "dense":
            return (int(np.shape(p["w"])[-2]),)
        raise ValueError(
            "compact: pass input_shape=, the shape of one example without the batch axis (e.g. (28, 28, 1)); "
            "it can be read from the params only for a net that starts with Dense"
        )


def compact(
    net: Layer,
    params: Params,
    masks: Params,
    *,
    input_shape: Any = None,
    state: Params | None = None,
) -> Any:
    """The smallest network funcnn can build that computes net(params ⊙ masks): (small_net, small_params),
    or (small_net, small_params, small_state) when `state` is given.

    Removes every hidden unit and channel that is dead out or dead in (see the module docstring), in
    any network of Dense, Conv1D/Conv2D, pools, Flatten, activations, Dropout, BatchNorm, `Residual`,
    `Parallel`, `FanOut`, `FanInSum` and `FanInConcat`; anything else is kept whole. The result is a
    plain funcnn network (its `init` makes params of the new shapes, so `funcnn.io.load_tree` can
    read saved ones back) and agrees with the masked network in inference mode (train=False) to
    float tolerance. Entries pruned inside kept units stay zero.

    input_shape: one example's shape without the batch axis; needed unless the net starts with Dense.
    state: the running statistics of a net with BatchNorm (required for one); channels removed from
    a BatchNorm take their statistics with them.
    A population (every leaf with a leading member axis) compacts to one network for all members:
    a unit goes only where every member can lose it, so the members keep equal shapes and still
    `jax.vmap`; to compact members to their own widths, index each member first.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn import compaction, nn, prune
        >>> net = nn.serial(nn.Conv2D(4, 3, padding="SAME"), nn.Relu(), nn.Flatten(), nn.Dense(2))
        >>> params = net.init(jax.random.key(0), (5, 5, 1))
        >>> masks = prune.ones(params)
        >>> masks["conv2d_0"]["w"] = masks["conv2d_0"]["w"].at[..., :2].set(False)  # filters 0, 1 gone
        >>> masks["conv2d_0"]["b"] = masks["conv2d_0"]["b"].at[:2].set(False)  # with their biases
        >>> small_net, small = compaction.compact(net, params, masks, input_shape=(5, 5, 1))
        >>> small["conv2d_0"]["w"].shape, small["dense_3"]["w"].shape  # 4 channels -> 2; 100 inputs -> 50
        ((3, 3, 1, 2), (50, 2))
        >>> x = jax.random.normal(jax.random.key(1), (3, 5, 5, 1))
        >>> bool(jnp.allclose(small_net.apply(small, x), net.apply(prune.apply(params, masks), x), atol=1e-5))
        True

    Example (a net that starts with Dense needs no input_shape):
        >>> net = nn.serial(nn.Dense(3), nn.Relu(), nn.Dense(1))
        >>> params = {
        ...     "dense_0": {"w": jnp.array([[1.0, 2.0, -1.0], [0.5, -3.0, 2.0]]), "b": jnp.zeros(3)},
        ...     "relu_1": {},
        ...     "dense_2": {"w": jnp.array([[1.0], [4.0], [-2.0]]), "b": jnp.zeros(1)},
        ... }
        >>> masks = prune.ones(params)
        >>> masks["dense_2"]["w"] = jnp.array([[True], [False], [True]])  # hidden unit 1 feeds nothing
        >>> small_net, small = compaction.compact(net, params, masks)
        >>> small["dense_0"]["w"].shape, small["dense_2"]["w"].tolist()  # 3 hidden units -> 2
        ((2, 2), [[1.0], [-2.0]])
        >>> x = jnp.array([[1.0, 1.0]])  # hidden relu(1.5, -1, 1) = (1.5, 0, 1): 1.5 * 1 + 1 * (-2)
        >>> small_net.apply(small, x).tolist(), net.apply(prune.apply(params, masks), x).tolist()
        ([[-0.5]], [[-0.5]])
    """
    prune.check_masks(params, masks)
    input_shape = _guess_input_shape(net, params) if input_shape is None else input_shape
    input_shape = nn_lib.layer.as_shape(input_shape)
    n = _member_count(params, jax.eval_shape(lambda k: net.init(k, input_shape), jax.random.key(0)), "params")
    state0 = net.init_state(input_shape)
    if state is None and jax.tree.leaves(state0):
        raise ValueError(
            "compact: this network carries state (BatchNorm statistics); pass state= (its running "
            "statistics) and get (small_net, small_params, small_state) back"
        )
    s = state0 if state is None else state
    n_s = _member_count(s, state0, "state")
    masked = prune.apply(params, masks)
    member = lambda tree, i, has: tree if not has else jax.tree.map(lambda a: a[i], tree)
    xs = jax.tree.map(
        lambda shape: jax.random.normal(jax.random.key(0), (1, *shape)),
        input_shape,
        is_leaf=lambda v: isinstance(v, tuple) and all(isinstance(d, int) for d in v),
    )
    t = _Trace([], set(), {}, {}, {})

    def probe(p_i: Params, s_i: Params) -> dict[tuple[str, ...], Array]:
        # traced once: the slot bookkeeping runs in Python, the forward pass compiles as one program
        sig = jax.tree.map(lambda a: _new_slots(t, a.shape[-1], fixed=True), xs)
        _, out = _trace(t, net, p_i, s_i, xs, sig, ())
        _fix(t, out)
        return {path: x for path, (_, x, _) in t.consumers.items()}

    probe_jit = jax.jit(probe)
    runs = []
    for i in range(n or 1):
        p_i, s_i = member(masked, i, n is not None), member(s, i, n_s is not None)
        seen = probe_jit(p_i, s_i)
        t_i = t._replace(consumers={path: (layer, seen[path], sig) for path, (layer, _, sig) in t.consumers.items()})
        runs.append((t_i, p_i, s_i))
    gone = set.intersection(*(_removable(t_i, p_i) for t_i, p_i, _ in runs))
    for out in t.producers.values():  # keep one channel of a layer that would lose all: still exact
        roots = [_find(t.parent, i) for i in out.tolist()]
        if all(r in gone for r in roots):
            gone.discard(roots[0])
    shrunk = [_shrink(t_i, p_i, s_i, gone) for t_i, p_i, s_i in runs]
    widths = {path: w for path, w in shrunk[0][2].items() if w != len(t.producers[path])}
    small_net = _rebuild(net, lambda path, layer: _resized(layer, widths[path]) if path in widths else layer)
    stack = lambda trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)
    small = shrunk[0][0] if n is None else stack([r[0] for r in shrunk])
    if state is None:
        return small_net, small
    return small_net, small, (shrunk[0][1] if n_s is None else stack([r[1] for r in shrunk]))


def mask_dead_biases(masks: Params) -> Params:
    """Masks whose removed units lose their bias too: b's mask is False where w's unit has no entry left.

    For every dict holding "w" and "b" (a Dense or Conv layer's params; populations too), unit j
    (the last axis) is removed when w's mask is all False over its slice. Without its bias a removed
    unit outputs act(0), 0 for ReLU, which `compact` drops anywhere; with it, it outputs act(b_j),
    which a padded convolution cannot fold into its bias.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import compaction
        >>> masks = {"dense_0": {"w": jnp.array([[True, False], [True, False]]), "b": jnp.array([True, True])}}
        >>> compaction.mask_dead_biases(masks)["dense_0"]["b"].tolist()
        [True, False]
    """
    if isinstance(masks, dict):
        out = {k: mask_dead_biases(v) for k, v in masks.items()}
        if "w" in masks and "b" in masks and np.ndim(masks["b"]) >= 1:
            w, b = masks["w"], masks["b"]
            axes = tuple(range(np.ndim(b) - 1, np.ndim(w) - 1))
            out["b"] = b & jnp.any(w, axis=axes)
        return out
    return masks
