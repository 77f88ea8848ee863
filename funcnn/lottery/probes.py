"""What a study asks its net's program, not its names: which leaves are weights, where their units are.

Shapes and names can mislead (a (1, 10) learned temperature has a weight's ndim; a user's dict may name its
head `dense_0`; a custom layer may keep PyTorch's (out, in)); the program cannot: a weight is what a dot or a
convolution consumes, its units the axis that operation keeps (`prune.unit_probe`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from funcnn import prune, train
from funcnn.prune.unit_probe import FrozenAxes, probe_output_layer, probe_unit_axes, probe_weights

__all__: list[str] = []  # the study's parts (see funcnn.lottery.Study)

Params = Any


def prunable(net: Any, member0: Params, state0: Any, x: np.ndarray, predicate: Any) -> Any:
    """The study's prunable leaves: `prune.prunable(member0, predicate)`, and without a predicate only
    the leaves a dot or a convolution of the net's program consumes (its weights)."""
    spec = prune.prunable(member0, predicate)
    if predicate is not None:
        return spec
    one_state = None if state0 is None else jax.tree.map(lambda a: np.asarray(a)[0], state0)
    forward = lambda p, v: train.as_forward(net)(p, one_state, v, train=False)[0]
    weights = probe_weights(forward, member0, jax.ShapeDtypeStruct((2, *x.shape[1:]), x.dtype))
    return jax.tree_util.tree_map_with_path(lambda path, flag: bool(flag) and prune.path_name(path) in weights, spec)


def unit_layout(net: Any, forward: Callable[[Params, Any], Any], member0: Params, x: Any) -> prune.UnitLayout:
    """Where the units are, probed: each weight's unit axis from the net's program (the axis its dot
    or convolution keeps: `prune.unit_probe`), the output layer as the net's adapter declares it, or
    probed by perturbing units, or for funcnn's own layers by their names; asked for where none tells."""
    probed = probe_unit_axes(forward, member0, x)
    axes = {name: axis for name, axis in probed.items() if axis is not None}
    declared = getattr(net, "unit_layout", None)
    output = getattr(declared, "output_layer", None) or probe_output_layer(forward, member0, axes, x)
    if output is None and declared is None and net.kind != "net":
        output = prune.output_layer(member0)  # funcnn's own names: '<kind>_<n>', the highest n
    if output is None:
        raise ValueError(
            "spec structure: the output layer (whose units are the classes, never pruned) could not be found "
            "by probing the net; declare it: net.unit_layout = prune.UnitLayout(output_layer=..., unit_axes=...)"
        )
    return prune.UnitLayout(output_layer=output, unit_axes=FrozenAxes(axes))
