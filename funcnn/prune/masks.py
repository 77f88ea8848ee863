"""Masks: the static spec of prunable leaves, all-True masks, params ⊙ masks, rewinding, density.

A mask has exactly the params' tree structure, with boolean leaves of the same shapes; leaves that
are never pruned carry all-True masks. Which leaves may be pruned is a static spec, a pytree of
Python bools like params (default: leaves with ndim > 1, i.e. weight matrices and kernels; never
biases or PReLU's alpha). Names of leaves are '/'-joined key paths (`path_name`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "apply",
    "check_masks",
    "density",
    "layer_of",
    "ones",
    "path_name",
    "prunable",
    "rewind",
]

Array = jax.Array
Params = Any
Masks = Any


def path_name(path: Iterable[Any]) -> str:
    """'dense_1/w' for the key path of params['dense_1']['w'].

    The names `layer_rates` and `density` use, joined with '/' from dict keys, sequence indices and
    attribute names.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"dense_1": {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}, "taps": [jnp.zeros(2)]}
        >>> [prune.path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
        ['dense_1/b', 'dense_1/w', 'taps/0']
    """
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def check_arrays(tree: Params, fn: str = "prune", what: str = "params") -> None:
    """Raise ValueError naming the first leaf of `tree` that is not an array (nor a shape-dtype struct).

    The usual cause is a whole equinox model, whose activation functions are pytree leaves."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if (hasattr(leaf, "shape") and hasattr(leaf, "dtype")) or isinstance(leaf, (bool, int, float, complex)):
            continue
        name = getattr(leaf, "__name__", None)
        shown = f"{type(leaf).__name__} {name!r}" if name else repr(leaf)
        raise ValueError(
            f"{fn}: leaf '{path_name(path)}' of the {what} is a {shown}, not an array; pruning takes a pytree "
            "of arrays only. For an equinox model, prune its array part: "
            "`params, static = eqx.partition(model, eqx.is_array)` (and `eqx.combine(params, static)` after), "
            "or wrap the model with funcnn.interop.from_equinox"
        )


def prunable(params: Params, predicate: Callable[[str, Array], bool] | None = None) -> Params:
    """The static spec: a pytree of Python bools, True where `predicate(name, leaf)` (default ndim > 1).

    `name` is the leaf's `path_name`, e.g. 'dense_0/w'.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"dense_0": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}}
        >>> prune.prunable(params)
        {'dense_0': {'b': False, 'w': True}}
        >>> prune.prunable(params, lambda name, leaf: name.endswith("b"))
        {'dense_0': {'b': True, 'w': False}}
    """
    check_arrays(params, "prunable")
    predicate = predicate or (lambda name, leaf: np.ndim(leaf) > 1)
    return jax.tree_util.tree_map_with_path(lambda p, leaf: bool(predicate(path_name(p), leaf)), params)


def ones(params: Params) -> Masks:
    """All-True masks with the params' structure (the dense network).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> masks = prune.ones({"dense_0": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}})
        >>> masks["dense_0"]["w"].tolist()
        [[True, True, True], [True, True, True]]
    """
    check_arrays(params, "ones")
    return jax.tree.map(lambda x: jnp.ones(jnp.shape(x), bool), params)


def apply(params: Params, masks: Masks) -> Params:
    """params ⊙ masks: pruned entries become exactly 0.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"w": jnp.array([[1.0, -2.0], [3.0, 4.0]])}
        >>> masks = {"w": jnp.array([[True, False], [False, True]])}
        >>> prune.apply(params, masks)["w"].tolist()
        [[1.0, 0.0], [0.0, 4.0]]
    """
    check_masks(params, masks)
    return jax.tree.map(lambda x, m: jnp.where(m, x, jnp.zeros_like(x)), params, masks)


def rewind(saved_params: Params, masks: Masks) -> Params:
    """The survivors reset to saved weights (θ0, or θk for late rewinding): saved ⊙ masks.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> theta0 = {"w": jnp.array([[0.5, -0.5], [0.25, 1.0]])}  # the weights at initialization
        >>> trained = {"w": jnp.array([[2.0, -0.1], [0.2, 3.0]])}
        >>> masks = prune.magnitude(trained, prune.ones(trained), 0.5)  # keeps the two largest |w|
        >>> prune.rewind(theta0, masks)["w"].tolist()
        [[0.5, 0.0], [0.0, 1.0]]
    """
    return apply(saved_params, masks)


def check_masks(params: Params, masks: Masks) -> None:
    """Raise ValueError unless masks has the params' structure and leaf shapes, with bool leaves.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"dense_0": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}}
        >>> prune.check_masks(params, prune.ones(params))  # fine: returns None
        >>> prune.check_masks(params, {"dense_0": {"w": jnp.ones((2, 3)), "b": jnp.ones(3, bool)}})
        Traceback (most recent call last):
        ...
        ValueError: mask for 'dense_0/w' must be boolean, got dtype float32
    """
    check_arrays(params, "prune")
    check_arrays(masks, "prune", "masks")
    ps, ms = jax.tree.structure(params), jax.tree.structure(masks)
    # jax binds PyTreeDef by assignment (not a class statement), so mypy sees no `!=` on it
    if ps != ms:  # type: ignore[operator]
        raise ValueError(f"masks must have the params' tree structure;\n params: {ps}\n masks:  {ms}")
    for (path, p), m in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(masks), strict=True):
        if jnp.shape(p) != jnp.shape(m):
            raise ValueError(
                f"mask for '{path_name(path)}' has shape {jnp.shape(m)}, expected the param's {jnp.shape(p)}"
            )
        if jnp.result_type(m) != jnp.bool_:
            raise ValueError(f"mask for '{path_name(path)}' must be boolean, got dtype {jnp.result_type(m)}")


def density(masks: Masks, spec: Params | None = None) -> dict[str, Array]:
    """Remaining fraction of each prunable leaf (by path name) and 'total' over all of them (P_m).

    Each value is a float32 scalar array; `spec` defaults to `prunable(masks)` (the weight matrices).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> masks = {"w": jnp.array([[True, False], [False, False]]), "v": jnp.ones((2, 2), bool)}
        >>> {name: float(d) for name, d in prune.density(masks).items()}
        {'v': 1.0, 'w': 0.25, 'total': 0.625}
    """
    spec = prunable(masks) if spec is None else spec
    out: dict[str, Array] = {}
    alive: Array | int = 0
    size = 0
    for (path, m), s in zip(jax.tree_util.tree_leaves_with_path(masks), jax.tree.leaves(spec), strict=True):
        if s:
            n = jnp.sum(m)
            out[path_name(path)] = n / m.size
            alive, size = alive + n, size + m.size
    out["total"] = jnp.asarray(alive / size)
    return out


def layer_of(name: str) -> str:
    """The layer a leaf belongs to: its path without the last part ('residual_2/main/dense_0/w' ->
    'residual_2/main/dense_0'); a top-level leaf is its own layer.

    Example:
        >>> from funcnn import prune
        >>> prune.layer_of("residual_2/main/dense_0/w"), prune.layer_of("w")
        ('residual_2/main/dense_0', 'w')
    """
    return name.rsplit("/", 1)[0] if "/" in name else name
