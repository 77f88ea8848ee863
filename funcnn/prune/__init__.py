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
    densities.py   layer_densities (uniform, Erdős–Rényi, ERK; capped at 1), DISTRIBUTIONS
    drop_grow.py   drop_and_grow (SET, RigL), n_of_m (N:M)
    sparse_schedules.py  polynomial_sparsity (Zhu & Gupta), cosine_fraction (RigL's drop fraction)
    calibration.py layer_inputs: each weight layer's unfolded input over a calibration batch
    wanda.py       wanda_scores (|W| · ‖X_j‖₂), by_output (selection within each output unit, or n of m)
    sparsegpt.py   sparsegpt: one-shot layer-wise OBS pruning with weight updates, unstructured or n:m
"""

from __future__ import annotations

import importlib
from typing import Any

from funcnn import _deprecation
from funcnn.prune.calibration import layer_inputs
from funcnn.prune.densities import DISTRIBUTIONS, layer_densities
from funcnn.prune.drop_grow import drop_and_grow, n_of_m
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
from funcnn.prune.sparse_schedules import cosine_fraction, polynomial_sparsity
from funcnn.prune.sparsegpt import sparsegpt
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
from funcnn.prune.wanda import by_output, wanda_scores

__all__ = [
    "DISTRIBUTIONS",
    "NORMS",
    "ROUNDINGS",
    "SCOPES",
    "STRUCTURES",
    "UnitLayout",
    "apply",
    "by_output",
    "by_scores",
    "check_masks",
    "cosine_fraction",
    "density",
    "drop_and_grow",
    "erk_densities",
    "eval_forward",
    "grasp_scores",
    "layer_densities",
    "layer_inputs",
    "layer_of",
    "magnitude",
    "masked",
    "n_of_m",
    "ones",
    "output_layer",
    "path_name",
    "polynomial_sparsity",
    "prunable",
    "random",
    "random_like",
    "rewind",
    "snip_scores",
    "sparsegpt",
    "structured",
    "structured_random_like",
    "synflow",
    "synflow_scores",
    "unit_scores",
    "units_alive",
    "units_prunable",
    "wanda_scores",
]


def __getattr__(name: str) -> Any:
    """`prune.compact`, the old name of `funcnn.compaction.compact`, for one release (it warns). Looked up
    when asked for, never imported here: compaction builds on prune."""
    if name == "compact":
        _deprecation.warn("funcnn.prune.compact", "funcnn.compaction.compact")
        return importlib.import_module("funcnn.compaction").compact
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
