"""Arms: what each pruning round trains beside (or instead of) the winning ticket.

An arm is a name and a pure function of one member:

    fn(theta_rewind, theta_reinit, mask, key) -> (params, mask)

theta_rewind: the weights rounds rewind to (θ0, or θk with late rewinding); theta_reinit: a fresh
init from the same initializer with another key; mask: the ticket's mask this round (bool, like
params); key: a key of this round and seed. The driver then zeroes the pruned weights
(`prune.rewind(params, mask)`), so an arm need not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn import prune


class Arm(NamedTuple):
    """A named arm; `fn(theta_rewind, theta_reinit, mask, key) -> (params, mask)`."""

    name: str
    fn: Callable[..., tuple]


def ticket(theta_rewind, theta_reinit, mask, key):
    """The winning ticket: the magnitude mask on the rewound weights."""
    del theta_reinit, key
    return theta_rewind, mask


def reinit(theta_rewind, theta_reinit, mask, key):
    """Random reinitialization (Frankle & Carbin's control): the same mask on a fresh init."""
    del theta_rewind, key
    return theta_reinit, mask


def random_pruning(spec: Any, scope: str = "layer") -> Callable:
    """Random pruning: a uniformly random mask with the ticket's count in each prunable leaf (`spec`),
    or in each layer's pooled leaves with scope 'layer_joint', on the rewound weights. A fresh mask
    every round (the key is the round's), not nested in the last one."""

    def fn(theta_rewind, theta_reinit, mask, key):
        del theta_reinit
        return theta_rewind, prune.random_like(key, mask, spec, scope=scope)

    return fn


def reinit_same_sign(theta_rewind, theta_reinit, mask, key):
    """Frankle & Carbin's appendix control: the fresh init's magnitudes with the rewound weights' signs."""
    del key
    params = jax.tree.map(lambda r, n: jnp.sign(r) * jnp.abs(n), theta_rewind, theta_reinit)
    return params, mask


BUILT_IN = ("ticket", "reinit", "random")


def resolve(arms, spec: Any, scope: str = "layer") -> tuple[Arm, ...]:
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
