"""`masked(tx, masks)`: any optax transformation with pruned weights held at exactly 0.

`optax.masked` selects whole leaves (a bool per leaf), not entries, so it cannot keep a pruned
weight at zero. `masked` zeroes the gradients at pruned entries before the inner transformation
(so its moments never see them) and the updates it returns there, in any training loop: funcnn's,
a plain optax loop, `flax.nnx.Optimizer`, an equinox loop.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn.prune.masks import check_arrays, is_floating, path_name

__all__ = ["masked"]

Masks = Any


def masked(tx: optax.GradientTransformation, masks: Masks) -> optax.GradientTransformationExtraArgs:
    """tx with the pruned entries of `masks` frozen: u = M ⊙ tx.update(M ⊙ g), entry by entry.

    masks: bool leaves like the params (`prune.magnitude`, `prune.ones`, ...): a plain pytree, an
    `flax.nnx.State` (with `Param` nodes or plain leaves) or an equinox tree (None where the model has no
    array). Updates are matched to masks by leaf name (`path_name`, so nnx's Param nodes and pure
    arrays match); an update leaf with no mask of its name and shape is a ValueError. Masks of
    leaves the updates lack (an equinox model's integer arrays) are not read.

    The state is tx's own (`init` is tx.init): to prune further mid-run, build masked(tx, new_masks)
    and keep the state. tx may be an `optax.MultiSteps` (its `gradient_transformation()` is wrapped).
    Mask the params once at the start (`prune.apply`), so no forward pass is dense; with both gradients
    and updates zeroed they then stay exactly 0, whatever moments, weight decay or schedule tx carries.
    Where `update` is given the params, a pruned entry that is not 0 gets the update -w that puts it
    there: params never masked are pruned by the first step, never left frozen at their old values.

        opt = nnx.Optimizer(model, prune.masked(optax.adam(1e-3), masks), wrt=nnx.Param)

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import prune
        >>> params = {"w": jnp.array([[1.0, 2.0], [3.0, 4.0]])}
        >>> masks = {"w": jnp.array([[True, False], [True, True]])}
        >>> tx = prune.masked(optax.adam(0.1), masks)
        >>> params = prune.apply(params, masks)  # once, at the start
        >>> state = tx.init(params)
        >>> updates, state = tx.update({"w": jnp.ones((2, 2))}, state, params)
        >>> optax.apply_updates(params, updates)["w"].round(3).tolist()  # Adam's first step: -0.1; 0.0 stays
        [[0.9, 0.0], [2.9, 3.9]]
    """
    if hasattr(tx, "gradient_transformation") and not isinstance(tx, optax.GradientTransformation):
        tx = tx.gradient_transformation()  # optax.MultiSteps (and its like): the transformation it wraps
    if not isinstance(tx, optax.GradientTransformation):
        hint = " (e.g. optax.adam(1e-3), not optax.adam)" if callable(tx) else ""
        raise ValueError(f"masked: tx must be an optax.GradientTransformation{hint}, got tx={tx!r}")
    check_arrays(masks, "masked", "masks")
    table: dict[str, Any] = {}
    for path, m in jax.tree_util.tree_leaves_with_path(masks):
        name = path_name(path)
        if jnp.result_type(m) != jnp.bool_:
            raise ValueError(f"masked: masks must have bool leaves; mask '{name}' has dtype {jnp.result_type(m)}")
        if name in table:
            raise ValueError(f"masked: masks have two leaves named '{name}'; updates are matched to masks by name")
        table[name] = m
    inner = optax.with_extra_args_support(tx)

    def zero(tree: Any, what: str) -> Any:
        leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
        out = []
        for path, u in leaves:
            name = path_name(path)
            if name not in table:
                raise ValueError(
                    f"masked: {what} have a leaf '{name}' that masks lack; make masks from the params the "
                    f"optimizer updates (prune.ones(params)). Masks: {sorted(table)}"
                )
            m = table[name]
            if np.shape(u) != np.shape(m):
                raise ValueError(f"masked: mask '{name}' has shape {np.shape(m)}, {what} {np.shape(u)}")
            out.append(jnp.where(m, u, jnp.zeros_like(u)) if is_floating(u) else u)
        return jax.tree.unflatten(treedef, out)

    def init(params: Any) -> Any:
        return inner.init(params)

    def to_zero(new: Any, params: Any) -> Any:
        """Updates that land every pruned entry on exactly 0: -params there (0 once params are masked)."""
        flat, treedef = jax.tree_util.tree_flatten_with_path(new)
        out = []
        for (path, u), p in zip(flat, jax.tree.leaves(params), strict=True):
            m = table[path_name(path)]
            out.append(jnp.where(m, u, -jnp.asarray(p, u.dtype)) if is_floating(u) else u)
        return jax.tree.unflatten(treedef, out)

    def update(updates: Any, state: Any, params: Any = None, **extra_args: Any) -> tuple[Any, Any]:
        # Zeroed before: moments of pruned entries only decay (and stay 0 from a fresh state).
        # Zeroed after: whatever tx adds (stale moments, weight decay, noise) never reaches them; with
        # params given, a pruned entry that is not 0 (params never masked) is brought to 0 by the update.
        new, state = inner.update(zero(updates, "updates"), state, params, **extra_args)
        new = zero(new, "tx's updates")
        if params is not None and len(jax.tree.leaves(params)) == len(jax.tree.leaves(new)):
            new = to_zero(new, params)
        return new, state

    return optax.GradientTransformationExtraArgs(init, update)
