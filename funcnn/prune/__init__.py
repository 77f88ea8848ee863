"""Masks and pruning: magnitude (layer-wise or global), by any scores, structured (whole units), random.

A mask has exactly the params' tree structure, with boolean leaves of the same shapes; leaves that
are never pruned carry all-True masks. Which leaves may be pruned is a static spec, a pytree of
Python bools like params (default: leaves with ndim > 1, i.e. weight matrices and kernels; never
biases or PReLU's alpha). Every function here is pure, jittable and vmappable (one member's
threshold per member under `jax.vmap`).

    masks.py       prunable, ones, apply, rewind, check_masks, density, path_name, layer_of
    selection.py   by_scores (the selection step for any scores), magnitude, random, random_like
    structured.py  structured (whole units), unit_scores, units_alive, structured_random_like
"""

from __future__ import annotations

from typing import Any

from funcnn import nn as nn_lib
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
from funcnn.prune.selection import ROUNDINGS, SCOPES, by_scores, magnitude, random, random_like
from funcnn.prune.structured import (
    NORMS,
    STRUCTURES,
    structured,
    structured_random_like,
    unit_scores,
    units_alive,
)

__all__ = [
    "NORMS",
    "ROUNDINGS",
    "SCOPES",
    "STRUCTURES",
    "apply",
    "by_scores",
    "check_masks",
    "compact",
    "density",
    "layer_of",
    "magnitude",
    "ones",
    "path_name",
    "prunable",
    "random",
    "random_like",
    "rewind",
    "structured",
    "structured_random_like",
    "unit_scores",
    "units_alive",
]

Params = Any
Masks = Any


def compact(net: nn_lib.Layer, params: Params, masks: Masks, **kwargs: Any) -> Any:
    """`funcnn.compaction.compact`, kept here for the scripts that call it as `prune.compact`.

    Returns (smaller_net, smaller_params) computing net.apply(params ⊙ masks), with hidden units
    and channels that no longer reach the output removed; see `funcnn.compaction` for every layer
    kind, BatchNorm state (`state=`, then a third value), residual blocks and populations.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import nn, prune
        >>> net = nn.serial(nn.Dense(3), nn.Relu(), nn.Dense(1))
        >>> params = {
        ...     "dense_0": {"w": jnp.array([[1.0, 2.0, -1.0], [0.5, -3.0, 2.0]]), "b": jnp.zeros(3)},
        ...     "relu_1": {},
        ...     "dense_2": {"w": jnp.array([[1.0], [4.0], [-2.0]]), "b": jnp.zeros(1)},
        ... }
        >>> masks = prune.ones(params)
        >>> masks["dense_2"]["w"] = jnp.array([[True], [False], [True]])  # hidden unit 1 feeds nothing
        >>> small_net, small = prune.compact(net, params, masks)
        >>> small["dense_0"]["w"].shape, small["dense_2"]["w"].tolist()  # 3 hidden units -> 2
        ((2, 2), [[1.0], [-2.0]])
        >>> x = jnp.array([[1.0, 1.0]])  # hidden relu(1.5, -1, 1) = (1.5, 0, 1): 1.5 * 1 + 1 * (-2)
        >>> small_net.apply(small, x).tolist(), net.apply(prune.apply(params, masks), x).tolist()
        ([[-0.5]], [[-0.5]])
    """
    from funcnn import compaction  # compaction builds on this module

    return compaction.compact(net, params, masks, **kwargs)
