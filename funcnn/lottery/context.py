"""What a pruner and an arm see for one member (one seed) of one pruning round: a `Context`.

The driver builds one per arm, round and seed (vmapped over the seeds: every array field then is
one member's), so a pruner or an arm is a pure function of it: `pruner(ctx) -> masks`,
`arm.fn(ctx) -> (params, masks)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

__all__ = ["Context"]

Params = Any  # a pytree of arrays
Masks = Any  # bool arrays, like params


class Context(NamedTuple):
    """One member's view of a round, for pruners and arms.

    round: r (a Python int, 1 = the first pruning round). seed: the member's seed (int32 array).
    key: this arm's own key of this round and seed. theta0: the initial weights; theta_rewind: θk
    at this arm's rewind step (θ0 for k = 0); theta_reinit: a draw of the initializer with another
    key (one per seed, or a fresh one every round for arms that ask for it).
    trained, masks: the lineage's last trained weights and mask (a lineage: its own, from round
    r - 1; an offshoot: its parent lineage's; in round 1 the dense run's weights and all-True masks).
    parent_masks: an offshoot's parent's mask of this round (None for a lineage).
    dense_trained: the dense run's trained weights (θ0 when the study has no dense run).
    batch: (x, y), the seed's first training batch. forward(params, x) -> logits: the net in eval
    mode with its initial model state (BatchNorm statistics of θ0, no Dropout). loss(logits, y).
    spec_prunable: the prunable leaves (Python bools like params). input_shape: one example's shape.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery.context import Context
        >>> w = {"w": jnp.array([[1.0, -3.0], [2.0, 0.5]])}
        >>> ctx = Context(round=1, seed=jnp.int32(0), key=None, theta0=w, theta_rewind=w, theta_reinit=w,
        ...               trained=w, masks={"w": jnp.ones((2, 2), bool)}, parent_masks=None, dense_trained=w,
        ...               batch=None, forward=None, loss=None, spec_prunable={"w": True}, input_shape=(2,))
        >>> ctx.round, ctx.trained["w"].shape
        (1, (2, 2))
    """

    round: int
    seed: jax.Array
    key: jax.Array | None
    theta0: Params
    theta_rewind: Params
    theta_reinit: Params
    trained: Params
    masks: Masks
    parent_masks: Masks | None
    dense_trained: Params
    batch: tuple | None
    forward: Callable[..., Any] | None
    loss: Callable[..., Any] | None
    spec_prunable: Any
    input_shape: tuple
