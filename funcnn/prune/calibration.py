"""The inputs of each weight layer over a calibration batch, for pruning without retraining (Wanda, SparseGPT).

A weight layer here computes y = X @ W.reshape(fan_in, features) (+ b): X is its input unfolded into one row
per output position (a Dense layer's input itself; a convolution's patches, im2col), W its "w" leaf with the
outputs on the last axis (funcnn's layout: Dense (in, out), Conv2D (kh, kw, in, out), Conv1D (k, in, out)),
fan_in = the product of the other axes.

Collected from a funcnn net: Dense, Conv1D and Conv2D layers (kinds 'dense', 'conv1d', 'conv2d' with a "w"
leaf) reached through `serial`, `Residual` and `Parallel`, in the order the forward pass meets them; every
other layer runs as it is, in eval mode (BatchNorm with its running statistics from `model_state`). X is
read by the layer's own apply with an identity kernel (w = I reshaped, b = 0), so strides, padding and
dilation are the layer's, never re-derived; a probe on random data checks first that the layer's output
is X @ W (+ b). A layer holding weights that the walk cannot reach (a foreign net wrapped by `train.as_net`,
a custom combinator) is an error naming it. Any other net: pass `inputs(params, x) -> {leaf name: X}`,
naming each weight leaf by `path_name` and giving its unfolded input (..., fan_in); the leaf is read as
(fan_in, features) after a reshape, so give only leaves with the outputs on the last axis (an equinox or
PyTorch-style (out, in) matrix is not).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.nn import Layer, has_state, layer_names
from funcnn.prune.masks import path_name

__all__ = ["layer_inputs"]

Array = jax.Array
Params = Any
Inputs = Callable[[Params, Array], Mapping[str, Array]]
# visit(leaf name, layer, params, x) -> params: what a walk does at each weight layer (x its input batch)
Visit = Callable[[str, Layer, Params, Array], Params]

WEIGHT_KINDS = ("dense", "conv1d", "conv2d")
_CHUNK_FLOATS = 1 << 24  # patches held at once while accumulating a Gram matrix (64 MiB of float32)


def patches(layer: Layer, params: Params, x: Array) -> Array:
    """X (*batch, *positions, fan_in): the layer's input unfolded, by its own apply with an identity kernel."""
    w = params["w"]
    fan_in = math.prod(w.shape[:-1])
    probe = {**params, "w": jnp.eye(fan_in, dtype=w.dtype).reshape((*w.shape[:-1], fan_in))}
    if "b" in params:
        probe["b"] = jnp.zeros((fan_in,), w.dtype)
    return layer.apply(probe, x)


@functools.partial(jax.jit, static_argnums=0)
def _probe(layer: Layer, params: Params, x: Array) -> tuple[Array, Array]:
    return layer.apply(params, x), patches(layer, params, x)


def _check_linear(fn: str, name: str, layer: Layer, params: Params, in_shape: tuple) -> None:
    """ValueError unless layer(x) = patches(x) @ W (+ b) on random data (run at trace time, data-free)."""
    rng = np.random.default_rng(0)
    w = params["w"]
    probe = {"w": rng.normal(size=w.shape).astype(np.float32)}
    if "b" in params:
        probe["b"] = rng.normal(size=np.shape(params["b"])).astype(np.float32)
    x = rng.normal(size=(2, *in_shape)).astype(np.float32)
    with jax.ensure_compile_time_eval():
        y, p = (np.asarray(a) for a in _probe(layer, probe, x))
    want = p @ probe["w"].reshape(-1, w.shape[-1]) + probe.get("b", 0.0)
    if y.shape != want.shape or not np.allclose(y, want, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(y).max()))):
        raise ValueError(
            f"{fn}: layer '{name}' (kind '{layer.kind}') does not compute X @ w.reshape(-1, {w.shape[-1]}) (+ b) "
            "from its input patches; only layers linear in a 'w' leaf with the outputs on its last axis can be "
            "calibrated: pass inputs= for this net"
        )


@functools.partial(jax.jit, static_argnums=0, static_argnames="full")
def gram(layer: Layer, params: Params, x: Array, *, full: bool = True) -> Array:
    """Σ over examples and positions of X Xᵀ (fan_in, fan_in), or with full=False only its diagonal
    Σ X_j² (fan_in,): accumulated over chunks of examples so that the patches never all exist at once."""
    w = params["w"]
    fan_in = math.prod(w.shape[:-1])
    n = x.shape[0]
    out = jax.eval_shape(lambda a: patches(layer, params, a), jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype))
    rows = math.prod(out.shape[1:-1])
    chunk = max(1, min(n, _CHUNK_FLOATS // max(1, rows * fan_in)))
    n_chunks = -(-n // chunk)
    # zero examples give zero patches (b = 0 in the identity kernel), so padding adds nothing
    xs = jnp.pad(x, [(0, n_chunks * chunk - n)] + [(0, 0)] * (x.ndim - 1)).reshape((n_chunks, chunk, *x.shape[1:]))

    def add(acc: Array, xc: Array) -> tuple[Array, None]:
        p = patches(layer, params, xc).reshape(-1, fan_in).astype(jnp.float32)
        return acc + (p.T @ p if full else jnp.sum(p * p, axis=0)), None

    start = jnp.zeros((fan_in, fan_in) if full else (fan_in,), jnp.float32)
    return jax.lax.scan(add, start, xs)[0]


def _reaches_weights(params: Params) -> list[str]:
    return [path_name(p) for p, leaf in jax.tree_util.tree_leaves_with_path(params) if np.ndim(leaf) > 1]


def walk(
    fn: str,
    net: Layer,
    params: Params,
    x: Array,
    model_state: Params | None,
    visit: Visit,
    *,
    forward_new: bool = True,
) -> Params:
    """Run net on x in eval mode, calling visit at each weight layer in forward order; the new params.

    forward_new: the layers after a visited one see its new params' output (sequential pruning) or its old."""
    if model_state is None:
        shape = tuple(x.shape[1:])
        if has_state(net, shape):
            raise ValueError(f"{fn}: net carries state (BatchNorm's running statistics): pass model_state=")
        model_state = net.init_state(shape)

    def go(layer: Layer, p: Params, s: Params, a: Any, name: str) -> tuple[Any, Params]:
        at = f"{name}/" if name else ""
        if layer.kind in WEIGHT_KINDS and isinstance(p, dict) and "w" in p and np.ndim(p["w"]) > 1:
            label = name or layer.kind
            if not isinstance(a, jax.Array) or a.ndim < 2:
                raise ValueError(f"{fn}: layer '{label}' gets {type(a).__name__}, expected a batch (n, ...)")
            _check_linear(fn, label, layer, p, tuple(a.shape[1:]))
            new = visit(at + "w", layer, p, a)
            return layer.apply_with_state(new if forward_new else p, s, a, train=False)[0], new
        if layer.kind == "serial" and layer.layers:
            out = {}
            for sub_name, sub in zip(layer_names(layer.layers), layer.layers, strict=True):
                a, out[sub_name] = go(sub, p[sub_name], s[sub_name], a, at + sub_name)
            return a, out
        if layer.kind == "residual" and len(layer.layers) == 2:
            m, pm = go(layer.layers[0], p["main"], s["main"], a, at + "main")
            r, ps = go(layer.layers[1], p["shortcut"], s["shortcut"], a, at + "shortcut")
            return jax.tree.map(jnp.add, m, r), {"main": pm, "shortcut": ps}
        if layer.kind == "parallel" and layer.layers:
            ys, out = [], {}
            for (sub_name, sub), ai in zip(zip(layer_names(layer.layers), layer.layers, strict=True), a, strict=True):
                y, out[sub_name] = go(sub, p[sub_name], s[sub_name], ai, at + sub_name)
                ys.append(y)
            return tuple(ys), out
        hidden = _reaches_weights(p)
        if hidden:
            raise ValueError(
                f"{fn}: layer '{name or layer.kind}' (kind '{layer.kind}') holds weights "
                f"{[at + h for h in hidden]} whose inputs cannot be collected: only Dense, Conv1D and Conv2D "
                "layers inside serial, Residual and Parallel are; for other nets pass "
                "inputs=lambda params, x: {leaf name: that layer's input (n, fan_in)}"
            )
        return layer.apply_with_state(p, s, a, train=False)[0], p

    return go(net, params, model_state, x, "")[1]


def foreign_inputs(fn: str, inputs: Inputs, params: Params, x: Array) -> dict[str, Array]:
    """inputs(params, x) checked against the params: {leaf name: X (rows, fan_in)} in inputs' order."""
    if not callable(inputs):
        raise ValueError(f"{fn}: inputs must be a function inputs(params, x) -> {{leaf name: input}}, got {inputs!r}")
    got = inputs(params, x)
    if not isinstance(got, Mapping) or not got:
        raise ValueError(f"{fn}: inputs(params, x) must return a non-empty dict {{leaf name: input}}, got {got!r}")
    leaves = {path_name(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(params)}
    out = {}
    for name, a in got.items():
        if name not in leaves:
            raise ValueError(f"{fn}: inputs names '{name}', which is no leaf of params; leaves: {sorted(leaves)}")
        w = leaves[name]
        fan_in = math.prod(np.shape(w)[:-1])
        if np.ndim(w) < 2 or np.shape(a)[-1] != fan_in:
            raise ValueError(
                f"{fn}: inputs['{name}'] has shape {np.shape(a)}, but leaf '{name}' of shape {np.shape(w)} read as "
                f"(fan_in, features) = ({fan_in}, {np.shape(w)[-1]}) needs (..., {fan_in}); the outputs must be "
                "the leaf's last axis"
            )
        out[name] = jnp.reshape(a, (-1, fan_in))
    return out


def layer_inputs(
    net: Any, params: Params, x: Array, *, model_state: Params | None = None, inputs: Inputs | None = None
) -> dict[str, Array]:
    """{weight leaf name: X (rows, fan_in)}: each weight layer's input over the batch x, unfolded (keys sorted).

    For a funcnn net (see the module: Dense, Conv1D, Conv2D through serial, Residual and Parallel), X has
    one row per example and output position (n · H_out · W_out for a Conv2D), columns in the order of
    w.reshape(fan_in, features), so that the layer's output is X @ w.reshape(fan_in, -1) (+ b). Other nets:
    `inputs(params, x)` gives them (checked against the leaves' shapes). model_state: a stateful net's
    running statistics (BatchNorm), required for one. Runs the dense net, in eval mode.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn import nn, prune
        >>> net = nn.serial(nn.Conv2D(2, 2), nn.Relu(), nn.Flatten(), nn.Dense(3))
        >>> params = net.init(jax.random.key(0), (3, 3, 1))
        >>> xs = prune.layer_inputs(net, params, jnp.ones((4, 3, 3, 1)))
        >>> {name: x.shape for name, x in xs.items()}  # 4 images x 2x2 positions, 2x2x1 patches; 8 features
        {'conv2d_0/w': (16, 4), 'dense_3/w': (4, 8)}
    """
    if inputs is None:
        _layer("prune.layer_inputs", net)
    return run_compiled(_layer_inputs, net, inputs, (params, jnp.asarray(x), model_state), ())


def _layer_inputs(net: Any, inputs: Inputs | None, params: Params, x: Array, model_state: Params | None) -> Any:
    fn = "prune.layer_inputs"
    if inputs is not None:
        return foreign_inputs(fn, inputs, params, x)
    found: dict[str, Array] = {}

    def visit(name: str, layer: Layer, p: Params, a: Array) -> Params:
        found[name] = patches(layer, p, a).reshape(-1, math.prod(p["w"].shape[:-1]))
        return p

    walk(fn, _layer(fn, net), params, x, model_state, visit)
    return found


def run_compiled(impl: Callable[..., Any], net: Any, inputs: Inputs | None, traced: tuple, static: tuple) -> Any:
    """impl(net, inputs, *traced, *static) as one compiled program (net, inputs and `static` static), cached by
    `jax.jit` per net and shapes: one compile, not one per layer and operation. Run as it is where net, inputs or
    a static argument cannot be hashed."""
    try:
        hash((net, inputs, *static))
    except TypeError:
        return impl(net, inputs, *traced, *static)
    return _compiled(impl, len(traced), len(static))(net, inputs, *traced, *static)


@functools.cache
def _compiled(impl: Callable[..., Any], n_traced: int, n_static: int) -> Callable[..., Any]:
    return jax.jit(impl, static_argnums=(0, 1, *range(2 + n_traced, 2 + n_traced + n_static)))


def _layer(fn: str, net: Any) -> Layer:
    if not isinstance(net, Layer):
        raise ValueError(
            f"{fn}: net must be a funcnn Layer (nn.serial(...)) to walk its layers, got {type(net).__name__}; "
            "for another net pass inputs=lambda params, x: {leaf name: that layer's input (n, fan_in)}"
        )
    return net
