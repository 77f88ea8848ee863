"""What the adapters share: the unit layout of a foreign tree, and the probe that finds its output layer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax

from funcnn.nn.layer import Params
from funcnn.prune.layout import UnitLayout
from funcnn.prune.unit_probe import FrozenAxes, probe_output_layer, probe_unit_axes


def layout(
    params: Params,
    forward: Callable[[Params, jax.Array], jax.Array] | None = None,
    input_shape: Sequence[int] | None = None,
) -> UnitLayout:
    """The UnitLayout of params, probed when the input shape is known (forward(params, x) -> y in eval
    mode): every weight's unit axis read from the program (`prune.unit_probe.probe_unit_axes`: the axis
    its dot or convolution keeps; a leaf it cannot decide is left out, and structured pruning asks for
    it), and the output layer by perturbing units. Without an input, nothing is declared: no library's
    layout is assumed (a custom layer may keep PyTorch's (out, in)); a study probes with its own data."""
    if forward is None or input_shape is None:
        return UnitLayout(output_layer=None, unit_axes=FrozenAxes({}))
    x = jax.random.normal(jax.random.key(0), (4, *tuple(input_shape)))
    probed = probe_unit_axes(forward, params, x)
    axes = {name: axis for name, axis in probed.items() if axis is not None}
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
