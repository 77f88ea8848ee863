"""A population of sparse-training methods as one transformation: `stack` (what `train.fit_population` uses).

The members' methods become arrays (`Numbers`) with a leading member axis; one `update` trains them all,
the "is this an update step" decision taken once for all (unbatched), so that under `jax.vmap` the mask
update is a real `lax.cond` that costs nothing on the other steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn.sparsity.rule import Schedule, SparseTransformation, make
from funcnn.sparsity.sparse_state import Numbers, SparseState

__all__ = ["Stacked", "stack"]

Array = jax.Array
Params = Any


class Stacked(NamedTuple):
    """What `stack` returns: one transformation for all members, and their numbers and keys stacked.

    Example:
        >>> from funcnn import sparsity
        >>> sparsity.Stacked._fields
        ('transformation', 'numbers', 'keys')
    """

    transformation: SparseTransformation
    numbers: Numbers
    keys: Array


def stack(transformations: Sequence[SparseTransformation], params: Params) -> Stacked:
    """A population of sparse-training methods as one transformation: members' numbers and keys stacked.

    transformations: one per member, all around the same `inner` object and `spec`, and all the
    changing ones with the same `every` (their begin and end may differ). params: one member's params
    (or their `jax.eval_shape`). Member i's state is `transformation.init_with(params_i, numbers[i],
    keys[i])`; `transformation.update` then trains every member, the "is this an update step" decision
    shared (unbatched), so `lax.cond` really skips the mask update on the other steps.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import sparsity
        >>> adam = optax.adam(1e-3)
        >>> members = [sparsity.static(adam, density=0.5, key=jax.random.key(0)),
        ...            sparsity.rigl(adam, density=0.25, every=10, fraction=0.3, key=jax.random.key(1), end=90)]
        >>> params = {"w": jnp.ones((4, 4))}
        >>> tx, numbers, keys = sparsity.stack(members, params)
        >>> states = jax.vmap(lambda n, k: tx.init_with(params, n, k))(numbers, keys)
        >>> states.masks["w"].sum(axis=(1, 2)).tolist()
        [8, 4]
    """
    fn = "sparsity.stack"
    txs = list(transformations)
    if not txs or not all(isinstance(t, SparseTransformation) for t in txs):
        raise ValueError(f"{fn}: transformations must be a non-empty sequence of sparsity transformations, got {txs!r}")
    first = txs[0]
    for i, t in enumerate(txs):
        if t.inner is not first.inner:
            raise ValueError(
                f"{fn}: every member must wrap the same inner transformation object (one program); member {i} wraps "
                f"another; build them all around one `inner = optax.adam(...)`"
            )
        if t.spec is not first.spec and jax.tree.leaves(t.spec) != jax.tree.leaves(first.spec):
            raise ValueError(f"{fn}: every member needs the same spec; member {i}'s differs")
    changing = [t.schedule for t in txs if t.schedule.changes]
    if len({s.every for s in changing}) > 1:
        raise ValueError(
            f"{fn}: the members whose masks change must share `every` (the update step is decided once for all), "
            f"got every={sorted({s.every for s in changing})}"
        )
    schedule = (
        Schedule(
            changing[0].every,
            min(s.begin for s in changing),
            max(s.end for s in changing),
            True,
            any(s.random_grow for s in changing),
            any(s.regrow for s in changing),
        )
        if changing
        else Schedule(0, 0, 0, False, False, False)
    )
    init_with, update = make(first.inner, first.spec, schedule, fn)
    numbers = jax.tree.map(lambda *xs: jnp.stack(xs), *[t.numbers(params) for t in txs])
    keys = jnp.stack([t.key for t in txs])

    def init(params: Params) -> SparseState:
        raise ValueError(f"{fn}: a stacked transformation has one state per member: use init_with(params, n, k)")

    tx = SparseTransformation(
        init, update, inner=first.inner, method=None, key=first.key, spec=first.spec, schedule=schedule,
        numbers=first.numbers, init_with=init_with,
    )  # fmt: skip
    return Stacked(tx, numbers, keys)
