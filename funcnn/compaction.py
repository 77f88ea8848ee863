"""Compaction: turn a pruned network into a smaller dense one that computes the same function.

Masks alone never make a network faster: dense hardware multiplies the zeros too. A unit (a Dense
layer's hidden unit, a convolution's output channel) can leave the network when nothing it computes
reaches the output:

- *dead out*: every weight that reads it downstream is pruned, or
- *dead in*: all its incoming weights are pruned, so it outputs a constant (act(b), through any
  BatchNorm or pooling), which is folded into the next layer's bias where that is exact (a Dense
  layer, or a convolution whose padding does not make the constant's contribution vary over space);
  a constant 0 (ReLU of a pruned unit whose bias is masked too, see `mask_dead_biases`) needs no fold.

Units joined by a sum (a `Residual` block, `FanInSum`) form one channel and go only together; the
network's outputs, its inputs and anything a `LayerNorm`, `Reshape` or foreign layer reads stay.
Compaction runs in inference mode (BatchNorm on its running statistics, Dropout off).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import nn as nn_lib
from funcnn import prune
from funcnn.nn.layer import add_bias

__all__ = ["compact", "fold_batchnorm", "mask_batchnorms", "mask_dead_biases", "stream_convs"]

Array = jax.Array
Params = Any
Layer = nn_lib.Layer

PRODUCERS = ("dense", "conv1d", "conv2d")
"""Layer kinds whose params {"w": (..., c_in, c_out), "b": (c_out,)} make new channels."""
CHANNELWISE = (
    *("sigmoid", "tanh", "arctan", "binary_step", "relu", "softplus", "elu", "prelu"),
    *("dropout", "identity", "maxpool", "avgpool", "globalavgpool", "batchnorm"),
)
"""Layer kinds that act on each channel alone (in inference mode), so they keep channels apart."""


class _Trace(NamedTuple):
    """What one probe pass through a network saw; channels are numbered "slots"."""

    parent: list[int]  # union-find over slots: a sum joins the slots it adds
    fixed: set[int]  # slots that must stay (inputs, outputs, read by a barrier)
    producers: dict[tuple[str, ...], np.ndarray]  # path -> the slot of each output channel
    channelwise: dict[tuple[str, ...], np.ndarray]  # path -> the slot of each channel it acts on
    consumers: dict[tuple[str, ...], tuple[Layer, Any, np.ndarray]]  # path -> (layer, its input x, slots)


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _new_slots(t: _Trace, n: int, fixed: bool = False) -> np.ndarray:
    start = len(t.parent)
    t.parent.extend(range(start, start + n))
    if fixed:
        t.fixed.update(range(start, start + n))
    return np.arange(start, start + n)


def _join(t: _Trace, a: np.ndarray, b: np.ndarray) -> None:
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        ri, rj = _find(t.parent, i), _find(t.parent, j)
        if ri != rj:
            t.parent[rj] = ri


def _fix(t: _Trace, sig: Any) -> None:
    for s in jax.tree.leaves(sig):
        t.fixed.update(np.asarray(s).tolist())


def _opaque(t: _Trace, y: Any) -> Any:
    return jax.tree.map(lambda a: _new_slots(t, a.shape[-1], fixed=True), y)


def _trace(t: _Trace, layer: Layer, p: Params, s: Params, x: Any, sig: Any, path: tuple[str, ...]) -> tuple[Any, Any]:
    """Run `layer` on the probe x (inference mode), recording how channels flow; returns (y, slots)."""
    kind = layer.kind
    if kind == "serial":
        for name, sub in zip(nn_lib.layer_names(layer.layers), layer.layers, strict=True):
            x, sig = _trace(t, sub, p[name], s[name], x, sig, (*path, name))
        return x, sig
    if kind == "residual":
        (ym, sm), (ys, ss) = (
            _trace(t, sub, p[n], s[n], x, sig, (*path, n))
            for n, sub in zip(("main", "shortcut"), layer.layers, strict=True)
        )
        _join(t, sm, ss)
        return ym + ys, sm
    if kind == "parallel":
        outs = [
            _trace(t, sub, p[n], s[n], xi, si, (*path, n))
            for n, sub, xi, si in zip(nn_lib.layer_names(layer.layers), layer.layers, x, sig, strict=True)
        ]
        return tuple(o[0] for o in outs), tuple(o[1] for o in outs)
    y, _ = layer.apply_with_state(p, s, x, train=False)
    if kind == "fanout":
        return y, (sig,) * len(y)
    if kind == "faninsum":
        for other in sig[1:]:
            _join(t, sig[0], other)
        return y, sig[0]
    if kind == "faninconcat":
        if y.shape[-1] == sum(xi.shape[-1] for xi in x) and len(x) > 1:
            return y, np.concatenate(sig)
        for other in sig[1:]:  # joined along another axis: channel c of every input is one channel
            _join(t, sig[0], other)
        return y, sig[0]
    if kind in PRODUCERS and isinstance(p, dict) and "w" in p and p["w"].shape[-1] == y.shape[-1]:
        t.consumers[path] = (layer, x, sig)
        out = _new_slots(t, y.shape[-1])
        t.producers[path] = out
        return y, out
    if kind in CHANNELWISE and y.shape[-1] == x.shape[-1]:
        t.channelwise[path] = sig
        return y, sig
    if kind == "flatten" and x.shape[-1] and y.shape[-1] % x.shape[-1] == 0:
        # row-major flattening keeps the channel axis fastest: feature f is channel f % C
        return y, np.tile(sig, y.shape[-1] // x.shape[-1])
    _fix(t, sig)  # LayerNorm, Reshape, a foreign layer: it reads every channel, and what it makes stays
    return y, _opaque(t, y)


def _unit_axis(w: Array, axis: int) -> np.ndarray:
    """For each index along `axis` of w: whether any of its weights is nonzero."""
    nonzero = np.asarray(w) != 0
    return np.moveaxis(nonzero, axis, 0).reshape(nonzero.shape[axis], -1).any(axis=1)


def _contributions(layer: Layer, p: Params, x: np.ndarray) -> np.ndarray:
    """y_i = layer(one-hot channel i everywhere, bias 0) for each input channel i: (c_in, *out)."""
    c = x.shape[-1]
    eye = np.broadcast_to(np.eye(c, dtype=np.float32).reshape((c,) + (1,) * (x.ndim - 2) + (c,)), (c, *x.shape[1:]))
    p0 = dict(p)
    if "b" in p0:
        p0["b"] = jnp.zeros_like(p0["b"])
    return np.asarray(layer.apply(p0, jnp.asarray(eye)), np.float64)


def _removable(t: _Trace, p: Params) -> set[int]:
    """The slots (by their root) that can leave the network exactly."""
    roots = lambda sig: np.array([_find(t.parent, i) for i in sig.tolist()], dtype=np.int64)
    all_roots = {_find(t.parent, i) for i in range(len(t.parent))}
    fixed = {_find(t.parent, i) for i in t.fixed}
    dead_in = {r: True for r in all_roots}
    produced = set()
    for path, out in t.producers.items():
        alive = _unit_axis(_at(p, path)["w"], -1)
        for r, a in zip(roots(out).tolist(), alive.tolist(), strict=True):
            produced.add(r)
            dead_in[r] = dead_in[r] and not a
    ok = {r: r not in fixed for r in all_roots}
    for path, (layer, x, sig) in t.consumers.items():
        q = _at(p, path)
        reads = _unit_axis(q["w"], -2)  # whether input channel i has any surviving weight
        value = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
        spread = np.ptp(value, axis=0)  # a constant input channel has one value everywhere
        response = None
        for i, r in enumerate(roots(sig).tolist()):
            if not ok[r] or not reads[i]:
                continue
            if not (dead_in[r] and r in produced) or spread[i] > 1e-6 * (1 + abs(value[0, i])):
                ok[r] = False
            elif value[0, i] != 0:
                if "b" not in q:
                    ok[r] = False  # a nonzero constant with no bias to fold it into
                    continue
                if response is None:
                    response = _contributions(layer, q, np.asarray(x))
                ri = response[i].reshape(-1, response.shape[-1])
                if np.ptp(ri, axis=0).max(initial=0.0) > 1e-6 * (1 + np.abs(ri).max(initial=0.0)):
                    ok[r] = False  # padding makes its contribution differ across positions
    return {r for r, v in ok.items() if v and r in produced}


def _at(tree: Params, path: tuple[str, ...]) -> Any:
    for k in path:
        tree = tree[k]
    return tree


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


def _affine(layer: Layer, p: Params, s: Params) -> tuple[Array, Array]:
    """A channelwise layer in inference mode as y = a * x + c, measured: c = f(0), a = f(1) - f(0)."""
    c_in = jnp.shape(jax.tree.leaves(s)[0])[-1]
    f = lambda v: layer.apply_with_state(p, s, jnp.full((1, c_in), v, jnp.float32), train=False)[0][0]
    return f(1.0) - f(0.0), f(0.0)


def fold_batchnorm(net: Layer, params: Params, state: Params) -> tuple[Layer, Params, Params]:
    """Fold each BatchNorm that directly follows a Dense or Conv layer into it, for inference.

    In inference mode BatchNorm is y = a * x + c per channel (a = scale / sqrt(var + eps),
    c = offset - mean * a), so conv-then-BN is one conv with w' = w * a, b' = b * a + c (b = 0 for
    a conv without bias). The BatchNorm becomes an `nn.Identity` (its params and state `{}`, its
    name `identity_<i>`), which keeps every other layer's name. Populations fold member by member.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn import compaction, nn
        >>> net = nn.serial(nn.Conv2D(3, 3, use_bias=False), nn.BatchNorm(), nn.Relu())
        >>> params, state = net.init(jax.random.key(0), (6, 6, 2)), net.init_state((6, 6, 2))
        >>> state["batchnorm_1"] = {"mean": jnp.array([0.1, -0.2, 0.3]), "var": jnp.array([2.0, 0.5, 1.0])}
        >>> folded_net, folded, folded_state = compaction.fold_batchnorm(net, params, state)
        >>> sorted(folded), sorted(folded["conv2d_0"])
        (['conv2d_0', 'identity_1', 'relu_2'], ['b', 'w'])
        >>> x = jax.random.normal(jax.random.key(1), (2, 6, 6, 2))
        >>> y, _ = net.apply_with_state(params, state, x)
        >>> bool(jnp.allclose(folded_net.apply(folded, x), y, atol=1e-5))
        True
    """
    changes: dict[tuple[str, ...], Layer] = {}

    def walk(layer: Layer, p: Params, s: Params, path: tuple[str, ...]) -> tuple[Params, Params]:
        if layer.kind in ("serial", "parallel", "residual"):
            names = ("main", "shortcut") if layer.kind == "residual" else nn_lib.layer_names(layer.layers)
            p, s = dict(p), dict(s)
            for i, (name, sub) in enumerate(zip(names, layer.layers, strict=True)):
                p[name], s[name] = walk(sub, p[name], s[name], (*path, name))
                if layer.kind != "serial" or i == 0 or sub.kind != "batchnorm":
                    continue
                prev, before = layer.layers[i - 1], names[i - 1]
                if prev.kind not in PRODUCERS or path + (before,) in changes:
                    continue
                lead = np.ndim(s[name]["mean"]) - 1  # 1 for a population
                measure = jax.vmap(functools.partial(_affine, sub)) if lead else functools.partial(_affine, sub)
                a, c = measure(p[name], s[name])
                q = dict(p[before])
                b = q.get("b", jnp.zeros_like(c))
                q["w"] = q["w"] * a.reshape(a.shape[:lead] + (1,) * (q["w"].ndim - 1 - lead) + a.shape[lead:])
                q["b"] = b * a + c
                changes[path + (before,)] = _resized(prev, int(a.shape[-1]), biased=True)
                changes[path + (name,)] = nn_lib.Identity()
                p[before] = q
                new = f"identity_{i}"
                p = {new if k == name else k: ({} if k == name else v) for k, v in p.items()}
                s = {new if k == name else k: ({} if k == name else v) for k, v in s.items()}
            return p, s
        return p, s

    new_params, new_state = walk(net, params, state, ())
    return _rebuild(net, lambda path, layer: changes.get(path, layer)), new_params, new_state


def stream_convs(net: Layer) -> tuple[str, ...]:
    """The layers that write a residual stream: every Dense / Conv but those inside a `Residual`'s main
    branch before its last producer; paths as `prune.path_name` spells them.

    Their channels are summed with other branches', so one leaves only where every branch drops it.
    Structured pruning of a ResNet leaves them whole (e.g. `prune.structured(..., layer_rates=
    dict.fromkeys(stream_convs(net), 0))`) and prunes the inner convs (Li et al. 2017: the first layers
    of each residual block), whose channels `compact` removes.

    Example:
        >>> from funcnn import compaction, models
        >>> compaction.stream_convs(models.resnet(depth=8, width=4))[:4]  # the stem, then each block's last
        ('conv2d_0', 'residual_3/main/conv2d_3', 'residual_5/main/conv2d_3', 'residual_5/shortcut/conv2d_0')
    """
    out: list[str] = []

    def walk(layer: Layer, path: tuple[str, ...], inner: bool) -> None:
        if layer.kind == "serial":
            names = nn_lib.layer_names(layer.layers)
            producers = [i for i, sub in enumerate(layer.layers) if sub.kind in PRODUCERS]
            for i, (name, sub) in enumerate(zip(names, layer.layers, strict=True)):
                walk(sub, (*path, name), inner and bool(producers) and i != producers[-1])
        elif layer.kind == "residual":
            for name, sub in zip(("main", "shortcut"), layer.layers, strict=True):
                walk(sub, (*path, name), name == "main")
        elif layer.kind in PRODUCERS and not inner:
            out.append("/".join(path))

    walk(net, (), False)
    return tuple(out)


def mask_batchnorms(net: Layer, masks: Params) -> Params:
    """Masks whose BatchNorm right after a Dense / Conv loses its scale and offset on the channels
    that layer lost whole: such a channel's BatchNorm then outputs exactly 0 (0 * x + 0, in training
    and in inference), ReLU(0) = 0, and `compact` can remove it. The BatchNorm counterpart of
    `mask_dead_biases`, for convolutions without bias. Walks `serial` and `Residual`; one network's
    masks (no member axis).

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn import compaction, nn, prune
        >>> net = nn.serial(nn.Conv2D(2, 1, use_bias=False), nn.BatchNorm(), nn.Relu())
        >>> masks = prune.ones(net.init(jax.random.key(0), (4, 4, 1)))
        >>> masks["conv2d_0"]["w"] = np.array([[[[True, False]]]])  # output channel 1 pruned whole
        >>> compaction.mask_batchnorms(net, masks)["batchnorm_1"]["scale"].tolist()
        [True, False]
    """

    def walk(layer: Layer, m: Params) -> Params:
        if layer.kind == "serial":
            names = nn_lib.layer_names(layer.layers)
            m = {k: walk(sub, m[k]) for k, sub in zip(names, layer.layers, strict=True)} | {
                k: v for k, v in m.items() if k not in names
            }
            for i in range(1, len(names)):
                prev, cur = layer.layers[i - 1], layer.layers[i]
                if cur.kind != "batchnorm" or prev.kind not in PRODUCERS or "w" not in m[names[i - 1]]:
                    continue
                w = np.asarray(m[names[i - 1]]["w"])
                alive = np.any(w.reshape(-1, w.shape[-1]), axis=0)
                m[names[i]] = {k: np.asarray(v) & alive for k, v in m[names[i]].items()}
            return m
        if layer.kind == "residual":
            return {k: walk(sub, m[k]) for k, sub in zip(("main", "shortcut"), layer.layers, strict=True)}
        return m

    return walk(net, masks)
