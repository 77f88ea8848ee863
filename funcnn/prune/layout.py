"""What structured pruning must know of a net and cannot read from names: where its units are.

A unit is a slice of a weight leaf along one axis (a Dense layer's hidden unit, a convolution's
output channel). funcnn's own layers put units on the last axis and name layers `<kind>_<n>`, so
both facts follow from the tree. A foreign tree (flax, equinox, a user's own names) does not say
them: its adapter declares them in a `UnitLayout`, or the caller passes them, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

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
