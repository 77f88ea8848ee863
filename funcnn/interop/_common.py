"""What the adapters share: the unit layout of a foreign tree, and the probe that finds its output layer."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.nn.layer import Params
from funcnn.prune.layout import UnitLayout
from funcnn.prune.masks import layer_of, path_name

# Units probed per candidate layer (the first, the last and one between): enough to tell the output
# layer from a hidden layer of the same width, whose every unit reaches every output.
_PROBED_UNITS = 3


class FrozenAxes(Mapping[str, int]):
    """{leaf name: unit axis}, immutable and hashable: a `Layer` is a static argument of jitted
    programs (`stability`), so everything it holds, its `unit_layout` included, must hash."""

    __slots__ = ("_axes",)

    def __init__(self, axes: Mapping[str, int]) -> None:
        self._axes = dict(axes)

    def __getitem__(self, name: str) -> int:
        return self._axes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._axes)

    def __len__(self) -> int:
        return len(self._axes)

    def __hash__(self) -> int:
        return hash(tuple(self._axes.items()))

    def __repr__(self) -> str:
        return repr(self._axes)


def weight_names(params: Params) -> list[str]:
    """The path names of params' prunable leaves (ndim > 1: weight matrices and kernels), in tree order."""
    return [path_name(p) for p, leaf in jax.tree_util.tree_leaves_with_path(params) if len(np.shape(leaf)) > 1]


def unit_axes(params: Params, axis: int) -> dict[str, int]:
    """{name: axis} for every weight leaf: each library puts a layer's units on one fixed axis."""
    return {name: axis for name in weight_names(params)}


def _perturbed(params: Params, layer: str, axes: dict[str, int], n_units: int, unit: int) -> Params:
    """params with unit `unit` of `layer`'s leaves (weights along their unit axis, 1-D biases) moved."""

    def move(path: Any, leaf: Any) -> Any:
        name = path_name(path)
        if layer_of(name) != layer or jnp.ndim(leaf) == 0:
            return leaf
        axis = axes.get(name, 0) % jnp.ndim(leaf)
        if leaf.shape[axis] != n_units or not jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf
        index = (slice(None),) * axis + (unit,)
        # A shift of the size of the leaf's largest entry, plus 1: far above float rounding.
        return leaf.at[index].add(1.0 + jnp.max(jnp.abs(leaf)))

    return jax.tree_util.tree_map_with_path(move, params)


def probe_output_layer(
    forward: Callable[[Params, jax.Array], jax.Array], params: Params, axes: dict[str, int], x: jax.Array
) -> str | None:
    """The layer whose units map one-to-one onto the net's output features, found by probing; or None.

    forward(params, x) -> y (batch, ..., C): the net in eval mode. A layer qualifies when its weights
    have C units and moving unit j (its weight slice and bias entry) changes output column j and no
    other, for j = 0, C - 1 and one between. Exactly one layer must qualify; otherwise None (ambiguous:
    structured pruning then asks for the output layer).
    """
    run = jax.jit(forward)
    y = np.asarray(run(params, x))
    if y.ndim < 2:
        return None
    n_out = y.shape[-1]
    tol = 1e-4 * (1.0 + float(np.max(np.abs(y))))
    layers = dict.fromkeys(layer_of(n) for n in axes)  # tree order, no duplicates
    found = []
    for layer in layers:
        sizes = {params_shape[axes[n] % len(params_shape)] for n, params_shape in _shapes(params, axes, layer)}
        if sizes != {n_out}:
            continue
        probes = sorted({0, n_out // 2, n_out - 1})[:_PROBED_UNITS]
        ok = True
        for j in probes:
            moved = np.asarray(run(_perturbed(params, layer, axes, n_out, j), x))
            changed = np.abs(moved - y).reshape(-1, n_out).max(axis=0) > tol
            if not changed[j] or changed.sum() != 1:
                ok = False
                break
        if ok:
            found.append(layer)
    return found[0] if len(found) == 1 else None


def _shapes(params: Params, axes: dict[str, int], layer: str) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (path_name(p), tuple(leaf.shape))
        for p, leaf in jax.tree_util.tree_leaves_with_path(params)
        if path_name(p) in axes and layer_of(path_name(p)) == layer
    ]


def layout(
    params: Params,
    axis: int,
    forward: Callable[[Params, jax.Array], jax.Array] | None = None,
    input_shape: Sequence[int] | None = None,
) -> UnitLayout:
    """The UnitLayout of params: `axis` for every weight leaf, the output layer probed when the input
    shape is known (forward(params, x) -> y in eval mode), else None."""
    axes = unit_axes(params, axis)
    output = None
    if forward is not None and input_shape is not None:
        x = jax.random.normal(jax.random.key(0), (4, *tuple(input_shape)))
        output = probe_output_layer(forward, params, axes, x)
    return UnitLayout(output_layer=output, unit_axes=FrozenAxes(axes))


def check_input_shape(fn: str, input_shape: Sequence[int] | None) -> tuple[int, ...] | None:
    """None, or input_shape as a tuple of positive ints (TypeError otherwise, naming `fn`)."""
    if input_shape is None:
        return None
    try:
        shape = tuple(int(d) for d in input_shape)
    except TypeError:
        raise TypeError(f"{fn}: input_shape must be None or a tuple of positive ints, got {input_shape!r}") from None
    if any(d <= 0 for d in shape):
        raise ValueError(f"{fn}: input_shape must be None or a tuple of positive ints, got {input_shape!r}")
    return shape
