"""The layer protocol: a `NamedTuple` of pure functions, and `serial` to compose layers.

    params = layer.init(key, input_shape)                # input_shape excludes the batch axes
    y = layer.apply(params, x, key=None, train=False)    # x: (*batch, *input_shape)
    out = layer.output_shape(input_shape)                 # data-free shape arithmetic
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np

Array = jax.Array
Shape = tuple[int, ...]
Params = Any  # a dict (possibly nested, possibly empty) of arrays


class ShapeError(ValueError):
    """An input whose shape does not fit a layer."""


class Layer(NamedTuple):
    """A layer or a network.

    kind: the lower-case name used for param keys in `serial` (`dense`, `sigmoid`, ...).
    init(key, input_shape) -> params.
    apply(params, x, *, key=None, train=False) -> y; x may carry any number of leading batch axes.
    output_shape(input_shape) -> output shape, without touching data.
    layers: the sub-layers of a `serial` network (empty for a single layer).
    """

    kind: str
    init: Callable[..., Params]
    apply: Callable[..., Array]
    output_shape: Callable[[Shape], Shape]
    layers: tuple = ()


def as_shape(input_shape: Sequence[int], *, name: str = "input_shape") -> Shape:
    """Validate a shape (a sequence of positive ints) and return it as a tuple."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except TypeError:
        raise ShapeError(f"{name} must be a tuple of positive ints, got {input_shape!r}") from None
    if any(d <= 0 for d in shape):
        raise ShapeError(f"{name} must be a tuple of positive ints, got {input_shape!r}")
    return shape


def check_input(kind: str, x: Array, feature_shape: Shape, hint: str = "") -> None:
    """Raise `ShapeError` unless x's trailing axes equal `feature_shape` (batch axes are free)."""
    n = len(feature_shape)
    if x.ndim < n or tuple(x.shape[x.ndim - n :]) != tuple(feature_shape):
        raise ShapeError(
            f"{kind}: expected input of shape (*batch, {', '.join(map(str, feature_shape))}), "
            f"got {tuple(x.shape)}" + (f"; {hint}" if hint else "")
        )


def add_bias(y: Array, b: Array) -> Array:
    """y + b with b broadcast over y's leading axes explicitly (no implicit rank promotion)."""
    return y + b.reshape((1,) * (y.ndim - b.ndim) + b.shape)


def stateless(kind: str, fn: Callable[[Array], Array]) -> Layer:
    """A parameterless elementwise layer applying `fn`."""

    def init(key, input_shape):
        del key
        as_shape(input_shape)
        return {}

    def apply(params, x, *, key=None, train=False):
        del params, key, train
        return fn(x)

    return Layer(kind, init, apply, as_shape)


def serial(*layers: Layer) -> Layer:
    """Compose layers left to right; params are `{f"{kind}_{i}": params_i}`.

    Shape errors are re-raised naming the layer (`layer 'dense_2' ...`).
    """
    if not layers:
        raise ValueError("serial needs at least one layer, got none")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(
                f"serial: argument {i} must be a Layer (e.g. Dense(10) or Relu()), got {layer!r}; "
                "did you pass the class instead of calling it?"
            )
    names = [f"{layer.kind}_{i}" for i, layer in enumerate(layers)]

    def _named(name, fn, *args):
        try:
            return fn(*args)
        except ShapeError as e:
            if str(e).startswith("layer '"):
                raise
            raise ShapeError(f"layer '{name}': {e}") from None

    def output_shape(input_shape):
        shape = as_shape(input_shape)
        for name, layer in zip(names, layers):
            shape = _named(name, layer.output_shape, shape)
        return shape

    def init(key, input_shape):
        shape = as_shape(input_shape)
        keys = jax.random.split(key, len(layers))
        params = {}
        for k, name, layer in zip(keys, names, layers):
            params[name] = _named(name, layer.init, k, shape)
            shape = _named(name, layer.output_shape, shape)
        return params

    def apply(params, x, *, key=None, train=False):
        keys = [None] * len(layers) if key is None else list(jax.random.split(key, len(layers)))
        for k, name, layer in zip(keys, names, layers):
            if name not in params:
                raise ValueError(
                    f"params has no entry {name!r} (has {sorted(params)}); were these params "
                    "made by this network's init?"
                )
            x = _named(name, lambda p, v: layer.apply(p, v, key=k, train=train), params[name], x)
        return x

    return Layer("serial", init, apply, output_shape, tuple(layers))


def layer_names(net_layers: Sequence[Layer]) -> list[str]:
    """The param keys `serial(*net_layers)` uses."""
    return [f"{layer.kind}_{i}" for i, layer in enumerate(net_layers)]


def count_params(params: Params) -> int:
    """Total number of scalars in a params pytree."""
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


def summary(net: Layer, input_shape: Sequence[int]) -> str:
    """A table of each layer's name, output shape and parameter count, and the total.

    Works on shapes alone (`jax.eval_shape`): no arrays are allocated.
    """
    shape = as_shape(input_shape)
    params = jax.eval_shape(lambda k: net.init(k, shape), jax.random.key(0))
    rows = [("input", str(shape), "")]
    if net.layers:
        for name, layer in zip(layer_names(net.layers), net.layers):
            shape = layer.output_shape(shape)
            rows.append((name, str(shape), f"{count_params(params[name]):,}"))
    else:
        rows.append((net.kind, str(net.output_shape(shape)), f"{count_params(params):,}"))
    rows.append(("total", "", f"{count_params(params):,}"))
    header = ("layer", "output shape", "params")
    widths = [max(len(r[c]) for r in rows + [header]) for c in range(3)]
    fmt = lambda r: f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}"
    return "\n".join([fmt(header), "-" * (sum(widths) + 4)] + [fmt(r) for r in rows])
