"""Arms: what each pruning round trains beside (or instead of) the winning ticket.

An arm is a name and a pure function of one member:

    fn(theta_rewind, theta_reinit, mask, key) -> (params, mask)

theta_rewind: the weights rounds rewind to (θ0, or θk with late rewinding); theta_reinit: a fresh
init from the same initializer with another key; mask: the ticket's mask this round (bool, like
params); key: a key of this round and seed. The driver then zeroes the pruned weights
(`prune.rewind(params, mask)`), so an arm need not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn import prune

__all__ = ["Arm", "ArmFn", "random_pruning", "reinit", "reinit_same_sign", "ticket"]

Params = Any  # a pytree of arrays
Masks = Any  # bool arrays, like params
ArmFn = Callable[[Params, Params, Masks, jax.Array], tuple[Params, Masks]]
"""An arm's function of one member: `fn(theta_rewind, theta_reinit, mask, key) -> (params, mask)`."""


class Arm(NamedTuple):
    """A named arm; `fn(theta_rewind, theta_reinit, mask, key) -> (params, mask)`.

    Pass it in `Spec(arms=("ticket", ..., Arm(name, fn)))`; its name labels its rows in the report.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery.arms import Arm
        >>> flipped = Arm("flipped", lambda rewind, fresh, mask, key: (jax.tree.map(jnp.negative, rewind), mask))
        >>> params, mask = flipped.fn({"w": jnp.array([1.0, -2.0])}, None, {"w": jnp.array([True, True])}, None)
        >>> flipped.name, params["w"].tolist()  # the ticket's mask on the rewound weights, signs flipped
        ('flipped', [-1.0, 2.0])
    """

    name: str
    fn: Callable[..., tuple[Any, Any]]


def ticket(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
    """The winning ticket: the magnitude mask on the rewound weights.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery.arms import ticket
        >>> rewind, fresh = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([-3.0, 0.5])}
        >>> params, mask = ticket(rewind, fresh, {"w": jnp.array([True, False])}, jax.random.key(0))
        >>> params["w"].tolist(), mask["w"].tolist()  # the driver then zeroes the pruned -2.0
        ([1.0, -2.0], [True, False])
    """
    del theta_reinit, key
    return theta_rewind, mask


def reinit(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
    """Random reinitialization (Frankle & Carbin's control): the same mask on a fresh init.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery.arms import reinit
        >>> rewind, fresh = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([-3.0, 0.5])}
        >>> params, mask = reinit(rewind, fresh, {"w": jnp.array([True, False])}, jax.random.key(0))
        >>> params["w"].tolist(), mask["w"].tolist()
        ([-3.0, 0.5], [True, False])
    """
    del theta_rewind, key
    return theta_reinit, mask


def random_pruning(spec: Any, scope: str = "layer") -> ArmFn:
    """Random pruning: a uniformly random mask with the ticket's count in each prunable leaf (`spec`),
    or in each layer's pooled leaves with scope 'layer_joint', on the rewound weights. A fresh mask
    every round (the key is the round's), not nested in the last one.

    spec: the prunable leaves (`prune.prunable(params)`); returns the arm's fn.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> from funcnn.lottery.arms import random_pruning
        >>> rewind = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
        >>> mask = {"w": jnp.arange(12).reshape(3, 4) < 3, "b": jnp.ones(4, bool)}  # 3 of 12 weights
        >>> fn = random_pruning(prune.prunable(rewind))
        >>> params, random_mask = fn(rewind, None, mask, jax.random.key(0))
        >>> int(random_mask["w"].sum()), int(random_mask["b"].sum())  # the ticket's count, anywhere
        (3, 4)
    """

    def fn(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
        del theta_reinit
        return theta_rewind, prune.random_like(key, mask, spec, scope=scope)

    return fn


def reinit_same_sign(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
    """Frankle & Carbin's appendix control: the fresh init's magnitudes with the rewound weights' signs.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery.arms import reinit_same_sign
        >>> rewind, fresh = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([-3.0, 0.5])}
        >>> params, mask = reinit_same_sign(rewind, fresh, {"w": jnp.array([True, True])}, jax.random.key(0))
        >>> params["w"].tolist()  # |fresh| with sign(rewind)
        [3.0, -0.5]
    """
    del key
    params = jax.tree.map(lambda r, n: jnp.sign(r) * jnp.abs(n), theta_rewind, theta_reinit)
    return params, mask


# The arms a study names by string ('ticket' first); `spec.ARMS` re-exports them.
BUILT_IN = ("ticket", "reinit", "random")


def resolve(arms: Iterable[str | Arm], spec: Any, scope: str = "layer") -> tuple[Arm, ...]:
    """Arms from names ('ticket', 'reinit', 'random') or `Arm`s; 'ticket' must come first (later
    rounds prune the ticket's trained weights). spec, scope: the prunable leaves and the pruning
    scope, which the random arm follows."""
    out = []
    for a in arms:
        if isinstance(a, Arm):
            if not callable(a.fn):
                raise ValueError(f"arms: Arm {a.name!r} needs a callable fn(theta_rewind, theta_reinit, mask, key)")
            out.append(a)
        elif a == "ticket":
            out.append(Arm("ticket", ticket))
        elif a == "reinit":
            out.append(Arm("reinit", reinit))
        elif a == "random":
            out.append(Arm("random", random_pruning(spec, scope)))
        else:
            raise ValueError(f"arms must be names in {BUILT_IN} or Arm(name, fn) objects, got {a!r}")
    names = [a.name for a in out]
    if not out or names[0] != "ticket" or len(set(names)) != len(names):
        raise ValueError(f"arms must start with 'ticket' and have distinct names, got arms={names}")
    return tuple(out)
