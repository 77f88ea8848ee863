"""The state of a sparse-training transformation: the masks in it, and the structural reset of moments.

`SparseState` holds the call count, the current masks, the method's numbers (arrays, so that a
population's members carry their own) and the inner transformation's state. `masks(state)` and
`sparsify(params, state)` find it inside any optax state (a chain, `inject_hyperparams`, ...).
`reset_where` zeroes entries of every params-shaped part of any optax state, found by its structure,
never by its type: Adam's mu and nu, momentum's trace, MultiSteps' accumulated gradients alike.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.prune.masks import check_masks, is_floating, pure_structure

__all__ = ["Numbers", "SparseState", "masks", "reset_where", "sparsify"]

Array = jax.Array
Params = Any
Masks = Any


class Numbers(NamedTuple):
    """A sparse-training method as arrays (one member's; a population's have a leading member axis).

    densities: one float32 per prunable leaf (in the params' leaf order): the final density; fraction:
    the drop fraction α; cosine: anneal α by `prune.cosine_fraction` (else constant); grow_gradient:
    grow by |gradient| (else at random); regrow_std: regrown weights start at N(0, 1) · regrow_std;
    signed: SET's drop of the smallest positive and largest negative weights separately; skip: no
    gradient step on a mask-update step; gradual: the kept count follows `prune.polynomial_sparsity`
    from dense; power: its exponent; begin, end: this member's update window; changes: whether the
    masks ever change (False: static).

    Example:
        >>> from funcnn import sparsity
        >>> sparsity.Numbers._fields[:4]
        ('densities', 'fraction', 'cosine', 'grow_gradient')
    """

    densities: tuple[Array, ...]
    fraction: Array
    cosine: Array
    grow_gradient: Array
    regrow_std: Array
    signed: Array
    skip: Array
    gradual: Array
    power: Array
    begin: Array
    end: Array
    changes: Array


class SparseState(NamedTuple):
    """step: int32, the update calls so far (the next call is step `step + 1`); masks: bool, the params'
    structure; numbers: the method's `Numbers`; key: the method's PRNG key (random masks and regrowth);
    inner_state: the wrapped transformation's state.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import sparsity
        >>> tx = sparsity.static(optax.sgd(0.1), density=0.5, key=jax.random.key(0))
        >>> state = tx.init({"w": jnp.ones((4, 4))})
        >>> int(state.step), int(state.masks["w"].sum())
        (0, 8)
    """

    step: Array
    masks: Masks
    numbers: Numbers
    key: Array
    inner_state: Any


def find(state: Any, kinds: tuple[type, ...] = ()) -> Any:
    """The one SparseState (or state of `kinds`) inside `state`; None if there is none; ValueError if several."""
    kinds = (SparseState, *kinds)
    found = [node for node in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, kinds)) if isinstance(node, kinds)]
    if len(found) > 1:
        raise ValueError(f"the optimizer state holds {len(found)} sparse-training states; wrap one transformation only")
    return found[0] if found else None


def _found(state: Any, fn: str) -> Any:
    from funcnn.sparsity.ste import SteState  # the STE's state holds masks too

    found = find(state, (SteState,))
    if found is None:
        raise ValueError(
            f"sparsity.{fn}: state holds no sparse-training state; pass the state of a sparsity transformation "
            "(sparsity.rigl(...).init(params), or any optax state that contains one)"
        )
    return found


def masks(state: Any) -> Masks:
    """The current masks (bool, the params' structure) of the sparse-training state inside `state`.

    state: the state of a `funcnn.sparsity` transformation, or any optax state that contains one (a
    chain's tuple, `inject_hyperparams`'s). After an update, the masks the next forward pass uses.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import sparsity
        >>> tx = optax.chain(optax.clip(1.0), sparsity.static(optax.sgd(0.1), density=0.25, key=jax.random.key(0)))
        >>> m = sparsity.masks(tx.init({"w": jnp.ones((2, 8)), "b": jnp.ones(8)}))
        >>> int(m["w"].sum()), bool(m["b"].all())  # 4 of 16 weights; biases stay dense
        (4, True)
    """
    return _found(state, "masks").masks


def sparsify(params: Params, state: Any) -> Params:
    """params ⊙ masks(state): mask the params once at the start, so that no forward pass is ever dense.

    Entries the masks prune become exactly 0.0; the result has the params' structure. The
    transformations keep them at 0 from then on (their updates land pruned weights on 0.0 exactly).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import sparsity
        >>> params = {"w": jnp.ones((2, 4))}
        >>> tx = sparsity.rigl(optax.sgd(0.1), density=0.5, every=10, fraction=0.3, key=jax.random.key(0), end=100)
        >>> state = tx.init(params)
        >>> params = sparsity.sparsify(params, state)
        >>> float(params["w"].sum()), int((params["w"] == 0).sum())
        (4.0, 4)
    """
    found = _found(state, "sparsify")
    try:
        check_masks(params, found.masks)
    except ValueError as e:
        raise ValueError(f"sparsity.sparsify: the state's masks do not fit params: {e}") from None
    return apply(params, found.masks)


def apply(tree: Params, masks: Masks) -> Params:
    """tree with the entries `masks` prunes set to exactly 0 (floating leaves only; others as they are)."""
    leaves, treedef = jax.tree.flatten(tree)
    out = [
        jnp.where(m, x, jnp.zeros_like(x)) if is_floating(x) else x
        for x, m in zip(leaves, jax.tree.leaves(masks), strict=True)
    ]
    return jax.tree.unflatten(treedef, out)


def reset_where(state: Any, params: Params, where: Masks) -> Any:
    """`state` with every params-shaped part zeroed where `where` is True (the regrown weights).

    A part of the state is params-shaped when its tree structure and leaf shapes equal the params':
    optax's moments (Adam's mu and nu, the trace of momentum, MultiSteps' accumulated gradients) are,
    inside any wrapper (`chain`, `inject_hyperparams`, `masked`, ...), whatever their types. Only floating
    leaves are touched.

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import sparsity
        >>> params = {"w": jnp.ones(4)}
        >>> state = optax.inject_hyperparams(optax.adam)(learning_rate=0.1).init(params)
        >>> state = optax.tree_utils.tree_set(state, mu={"w": jnp.ones(4)})
        >>> new = sparsity.reset_where(state, params, {"w": jnp.array([True, False, False, True])})
        >>> optax.tree_utils.tree_get(new, "mu")["w"].tolist()
        [0.0, 1.0, 1.0, 0.0]
    """
    structure = pure_structure(params)
    shapes = [np.shape(x) for x in jax.tree.leaves(params)]
    flags = jax.tree.leaves(where)

    def params_like(node: Any) -> bool:
        if pure_structure(node) != structure:
            return False
        return [np.shape(x) for x in jax.tree.leaves(node)] == shapes

    def reset(node: Any) -> Any:
        if not params_like(node):
            return node
        leaves, treedef = jax.tree.flatten(node)
        out = [jnp.where(f, jnp.zeros_like(x), x) if is_floating(x) else x for x, f in zip(leaves, flags, strict=True)]
        return jax.tree.unflatten(treedef, out)

    return jax.tree.map(reset, state, is_leaf=params_like)
