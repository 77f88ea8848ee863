"""Masks and pruning: magnitude (layer-wise or global), by any scores, structured (whole units), random.

A mask has exactly the params' tree structure, with boolean leaves of the same shapes; leaves that
are never pruned carry all-True masks. Which leaves may be pruned is a static spec, a pytree of
Python bools like params (default: leaves with ndim > 1, i.e. weight matrices and kernels; never
biases or PReLU's alpha). Every function here is pure, jittable and vmappable (one member's
threshold per member under `jax.vmap`).

    masks.py       prunable, ones, apply, rewind, check_masks, density, path_name, layer_of
    selection.py   by_scores (the selection step for any scores), magnitude, random, random_like
    structured.py  structured (whole units), unit_scores, units_alive, structured_random_like,
                   output_layer, units_prunable (unit axes: `unit_axis=` or a layout.py UnitLayout)
    masked.py      masked(tx, masks): any optax transformation that keeps pruned weights at 0
"""

from __future__ import annotations

from funcnn.prune.layout import UnitLayout
from funcnn.prune.masked import masked
from funcnn.prune.masks import (
    apply,
    check_masks,
    density,
    layer_of,
    ones,
    path_name,
    prunable,
    rewind,
)
from funcnn.prune.masks import (
    check_arrays as check_arrays,
)
from funcnn.prune.scores import erk_densities, eval_forward, grasp_scores, snip_scores, synflow, synflow_scores
from funcnn.prune.selection import ROUNDINGS, SCOPES, by_scores, magnitude, random, random_like
from funcnn.prune.structured import (
    NORMS,
    STRUCTURES,
    output_layer,
    structured,
    structured_random_like,
    unit_scores,
    units_alive,
    units_prunable,
)

# `prune.compact`, the old name of `funcnn.compaction.compact`, is bound by funcnn/__init__.py: compaction
# builds on prune, so prune never imports it.
__all__ = [
    "NORMS",
    "ROUNDINGS",
    "SCOPES",
    "STRUCTURES",
    "UnitLayout",
    "apply",
    "by_scores",
    "check_masks",
    "density",
    "erk_densities",
    "eval_forward",
    "grasp_scores",
    "layer_of",
    "magnitude",
    "masked",
    "ones",
    "output_layer",
    "path_name",
    "prunable",
    "random",
    "random_like",
    "rewind",
    "snip_scores",
    "structured",
    "structured_random_like",
    "synflow",
    "synflow_scores",
    "unit_scores",
    "units_alive",
    "units_prunable",
]
