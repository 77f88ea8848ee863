"""What structured pruning must know of a net and cannot read from names: where its units are.

A unit is a slice of a weight leaf along one axis (a Dense layer's hidden unit, a convolution's
output channel). funcnn's own layers put units on the last axis and name layers `<kind>_<n>`, so
both facts follow from the tree. A foreign tree (flax, equinox, a user's own names) does not say
them: its adapter declares them in a `UnitLayout`, or the caller passes them, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnn.prune.masks import path_name

__all__ = ["UnitLayout"]


class UnitLayout(NamedTuple):
    """The unit facts of a net's params, declared by its adapter (`funcnn.interop`) or by the user.

    output_layer: the name of the layer (a path prefix, as `prune.layer_of` gives it: 'head',
      'layers/2') whose units are the net's outputs, the classes (structured pruning keeps them).
    unit_axes: {leaf path name: the axis of its units} for the weight leaves ('l1/kernel': -1 for
      flax's (in, out) kernels; 'layers/0/weight': 0 for equinox's (out, in) weights).

    Example:
        >>> from funcnn.prune.layout import UnitLayout
        >>> layout = UnitLayout(output_layer="head", unit_axes={"l1/kernel": -1, "head/kernel": -1})
        >>> layout.output_layer, layout.unit_axes["l1/kernel"]
        ('head', -1)
    """

    output_layer: str | None = None
    unit_axes: Mapping[str, int] = {}


UnitAxis = None | int | Mapping[str, int] | UnitLayout
"""Where a leaf's units are: None (funcnn's own 'w' leaves: the last axis), one axis for every
prunable leaf, {leaf or layer name: axis} (the most specific name wins), or a `UnitLayout`."""

_ASK = (
    "funcnn knows the units of its own weight leaves only (named 'w', units on the last axis); say where "
    "the units of other leaves are: unit_axis=0 for equinox's (out, in) weights, unit_axis=-1 for flax's "
    "(in, out) kernels, unit_axis={leaf or layer name: axis}, or the adapter's prune.UnitLayout "
    "(unit_axis=net.unit_layout)"
)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def unit_axes_of(tree: Any, spec: Any, unit_axis: UnitAxis, fn: str) -> list[int | None]:
    """The axis (in [0, ndim), 0 for a 0-d leaf: one unit) of each leaf's units, in leaf order.

    A leaf of `spec` (True) must resolve: by `unit_axis`, else by funcnn's own rules (a leaf named
    'w': the last axis; ndim <= 1: its only axis), else ValueError naming the leaf and asking for
    `unit_axis=`. A leaf outside `spec` that does not resolve gets None (no units are read of it).
    """
    if isinstance(unit_axis, UnitLayout):
        table: Mapping[str, int] = unit_axis.unit_axes
        if not isinstance(table, Mapping):
            raise ValueError(f"{fn}: UnitLayout.unit_axes must be {{leaf name: axis}}, got {table!r}")
        every: int | None = None
    elif unit_axis is None:
        table, every = {}, None
    elif isinstance(unit_axis, (int, np.integer)) and not isinstance(unit_axis, bool):
        table, every = {}, int(unit_axis)
    elif isinstance(unit_axis, Mapping):
        table, every = unit_axis, None
    else:
        raise ValueError(
            f"{fn}: unit_axis must be None, an int, {{leaf or layer name: int}} or a prune.UnitLayout, "
            f"got unit_axis={unit_axis!r}"
        )
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    flags = jax.tree.leaves(spec)
    if len(flags) != len(leaves):
        raise ValueError(f"{fn}: spec must have one bool per leaf: {len(flags)} flags for {len(leaves)} leaves")
    names = [path_name(p) for p, _ in leaves]
    for key, axis in table.items():
        if not isinstance(key, str) or not _is_int(axis):
            raise ValueError(f"{fn}: unit_axis must map leaf or layer names to ints, got {key!r}: {axis!r}")
        if not any(n == key or n.startswith(key + "/") for n in names):
            raise ValueError(f"{fn}: unit_axis names {key!r}, which is no leaf or layer of the params; leaves: {names}")
    out: list[int | None] = []
    for name, (_, leaf), flag in zip(names, leaves, flags, strict=True):
        shape = np.shape(leaf)
        parts = name.split("/")
        named = next((p for p in ("/".join(parts[:i]) for i in range(len(parts), 0, -1)) if p in table), None)
        declared = table[named] if named is not None else every
        if not shape:
            out.append(0)  # a 0-d leaf is one unit, whatever the axis
        elif declared is not None and -len(shape) <= declared < len(shape):
            out.append(int(declared) % len(shape))
        elif declared is not None and (flag or named == name):  # a layer's axis fits its weights, not its bias
            raise ValueError(
                f"{fn}: unit_axis={declared} is out of range for leaf '{name}' of shape {shape} "
                f"(axes {-len(shape)} .. {len(shape) - 1})"
            )
        elif parts[-1] == "w" or len(shape) == 1:
            out.append(len(shape) - 1)
        elif flag:
            raise ValueError(f"{fn}: prunable leaf '{name}' (shape {shape}) has no declared unit axis. {_ASK}")
        else:
            out.append(None)
    return out
