"""The training state: `TrainState` (params, optimizer state, step, masks, model state, key),
`init_state` for a fresh run and `apply_masks`, which keeps pruned weights at exactly zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from funcnn import checks

__all__ = ["TrainState", "apply_masks", "init_state"]

Array = jax.Array
Params = Any
Batch = tuple[Array, Array]


class TrainState(NamedTuple):
    """params; opt_state; step (int32 scalar, updates taken); masks (bool pytree like params, or None);
    model_state (running statistics named like params, or None for a stateless net); key (the base
    PRNG key for Dropout, or None: the key of step t is fold_in(key, t)).

    With masks, gradients are masked before the optimizer and the params after it, so pruned weights
    stay exactly zero under any optax optimizer (momentum and Adam included).

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import train
        >>> state = train.init_state({"w": jnp.ones((2, 1)), "b": jnp.zeros(1)}, optax.sgd(0.1))
        >>> state._fields
        ('params', 'opt_state', 'step', 'masks', 'model_state', 'key')
        >>> int(state.step), state.masks, state.model_state, state.key  # a fresh, unmasked, stateless run
        (0, None, None, None)
    """

    params: Params
    opt_state: Any
    step: Array
    masks: Params | None = None
    model_state: Params | None = None
    key: Array | None = None


# step(state, (x, y)) -> (state, {"loss": J})
Step = Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]


def init_state(
    params: Params,
    optimizer: optax.GradientTransformation,
    masks: Params | None = None,
    *,
    model_state: Params | None = None,
    key: Array | None = None,
) -> TrainState:
    """A fresh TrainState; with masks, the params are masked first.

    model_state: the net's `init_state(input_shape)` (or saved statistics) for a stateful net.
    key: the base key of the per-step Dropout keys (needed only by nets with Dropout).

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import train
        >>> params = {"w": jnp.array([1.0, 2.0, 3.0])}
        >>> masks = {"w": jnp.array([True, False, True])}
        >>> state = train.init_state(params, optax.adam(1e-3), masks)
        >>> state.params["w"].tolist(), int(state.step)  # the pruned weight starts at exactly 0
        ([1.0, 0.0, 3.0], 0)
    """
    checks.prng_key(key, who="init_state", optional=True)
    if masks is not None:
        params = apply_masks(params, masks)
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), masks, model_state, key)


def apply_masks(tree: Params, masks: Params) -> Params:
    """tree * masks, leaf by leaf (a False entry becomes exactly 0), keeping each leaf's dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import train
        >>> tree = {"w": jnp.array([1.5, -2.0, 3.0])}
        >>> train.apply_masks(tree, {"w": jnp.array([True, False, True])})["w"].tolist()
        [1.5, 0.0, 3.0]
    """
    return jax.tree.map(lambda x, m: jnp.where(m, x, jnp.zeros_like(x)), tree, masks)
