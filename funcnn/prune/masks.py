"""Masks: the static spec of prunable leaves, all-True masks, params ⊙ masks, rewinding, density.

A mask has exactly the params' tree structure, with boolean leaves of the same shapes; leaves that
are never pruned carry all-True masks. Which leaves may be pruned is a static spec, a pytree of
Python bools like params (default: leaves with ndim > 1, i.e. weight matrices and kernels; never
biases or PReLU's alpha). Names of leaves are '/'-joined key paths (`path_name`).

Foreign trees work as they are: a flax.nnx `State` (its `Param` nodes included), linen's variables,
an equinox model's arrays (`eqx.partition(model, eqx.is_array)[0]`, None where it has no array).
For an `flax.nnx.State` of `Param`s, masks keep the params' structure (`Param` nodes holding bool arrays,
what `ones` makes); every function here also takes masks with plain bool leaves where the params
hold `Param`s and vice versa (`flax.nnx.as_pure`, inside `flax.nnx.Optimizer`), and returns the params'
structure. Leaves that are not floating (typed PRNG keys, RNG counts, integers) are never prunable.
"""

from __future__ import annotations

import sys
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


_VARIABLE_PARTS = ("value", "raw_value")


def path_name(path: Iterable[Any]) -> str:
    """'dense_1/w' for the key path of params['dense_1']['w'].

    The names `layer_rates` and `density` use, joined with '/' from dict keys, sequence indices and
    attribute names. A flax.nnx Variable's own last part is dropped: `flax.nnx.state(model)` paths end in
    `.value` ('l1/kernel/value' is 'l1/kernel', as in `flax.nnx.as_pure(state)` or a plain dict), and so
    does an nnx checkpoint restored as dicts (['l1']['kernel']['value']). An attribute named `value`
    of an equinox module (after an attribute or an index, not a dict key) is kept.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"dense_1": {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}, "taps": [jnp.zeros(2)]}
        >>> [prune.path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
        ['dense_1/b', 'dense_1/w', 'taps/0']
        >>> from flax import nnx
        >>> state = nnx.state(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))  # paths ('kernel', .value)
        >>> [prune.path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(state)]
        ['bias', 'kernel']
    """
    path = list(path)
    if len(path) > 1 and isinstance(path[-2], jax.tree_util.DictKey) and _key_str(path[-1]) in _VARIABLE_PARTS:
        last = path[-1]
        if isinstance(last, (jax.tree_util.GetAttrKey, jax.tree_util.DictKey)):
            path = path[:-1]
    return "/".join(_key_str(k) for k in path)


def _key_str(k: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _variable_types() -> tuple[type, ...]:
    """flax.nnx's Variable node types, if flax.nnx is imported (it is no dependency of funcnn)."""
    nnx = sys.modules.get("flax.nnx")
    if nnx is None:
        return ()
    # State holds Variable nodes (flax >= 0.11) or VariableState ones (before; now a deprecated alias
    # that module-level __getattr__ serves with a warning, so it is read from the module's own names)
    found = (vars(nnx).get("Variable"), vars(nnx).get("VariableState"))
    return tuple(t for t in found if isinstance(t, type))


def pure_structure(tree: Any) -> Any:
    """The tree's structure with flax.nnx Variable nodes (`Param`) read as leaves: equal for an
    `flax.nnx.State` of `Param`s and its `flax.nnx.as_pure` (one leaf per Variable)."""
    types = _variable_types()
    if not types:
        return jax.tree.structure(tree)
    return jax.tree.structure(tree, is_leaf=lambda x: isinstance(x, types))


def _dtype(leaf: Any) -> Any:
    dtype = getattr(leaf, "dtype", None)
    return np.result_type(leaf) if dtype is None else dtype


def is_floating(leaf: Any) -> bool:
    """Whether a leaf holds floating-point numbers (not PRNG keys, integers or booleans)."""
    dtype = _dtype(leaf)
    return not jax.dtypes.issubdtype(dtype, jax.dtypes.extended) and bool(jnp.issubdtype(dtype, jnp.floating))


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


def _default_prunable(name: str, leaf: Any) -> bool:
    del name
    # bool leaves are a mask tree's: its default spec is its params' (the weights' masks)
    return np.ndim(leaf) > 1 and (is_floating(leaf) or _dtype(leaf) == np.bool_)


def prunable(params: Params, predicate: Callable[[str, Array], bool] | None = None) -> Params:
    """The static spec: a pytree of Python bools, True where `predicate(name, leaf)`.

    `name` is the leaf's `path_name`, e.g. 'dense_0/w'. The default predicate takes the floating
    leaves with ndim > 1 (weight matrices, kernels): never biases, PReLU's alpha, typed PRNG keys,
    RNG counts or integer leaves (which keep all-True masks); of a mask tree (bool leaves), the
    masks with ndim > 1. Shapes alone cannot tell a (1, 10) learned temperature from a weight
    matrix: a `lottery` study also asks the net's program (`unit_probe.probe_weights`: a weight is
    what a dot or a convolution consumes). A `predicate` that marks a leaf that is neither floating
    nor bool is a ValueError naming the leaf: such a leaf cannot be pruned.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"dense_0": {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}, "steps": jnp.zeros((2, 2), int)}
        >>> prune.prunable(params)
        {'dense_0': {'b': False, 'w': True}, 'steps': False}
        >>> prune.prunable(params, lambda name, leaf: name.endswith("b"))
        {'dense_0': {'b': True, 'w': False}, 'steps': False}
    """
    check_arrays(params, "prunable")
    if predicate is None:
        return jax.tree_util.tree_map_with_path(lambda p, leaf: bool(_default_prunable("", leaf)), params)

    def one(path: Any, leaf: Any) -> bool:
        flag = bool(predicate(path_name(path), leaf))
        if flag and not (is_floating(leaf) or _dtype(leaf) == np.bool_):
            raise ValueError(
                f"prunable: predicate marks leaf '{path_name(path)}' prunable, but it has dtype {_dtype(leaf)}; "
                "only floating leaves can be pruned (PRNG keys, RNG counts and integers never are)"
            )
        return flag

    return jax.tree_util.tree_map_with_path(one, params)


def check_spec(params: Params, spec: Params, fn: str) -> None:
    """Raise ValueError naming the first leaf `spec` marks prunable whose param is not floating."""
    leaves, flags = jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(spec)
    if len(leaves) != len(flags):
        raise ValueError(
            f"{fn}: spec must have the params' tree structure (one bool per leaf), got {len(flags)} flags for "
            f"{len(leaves)} leaves; make it with prune.prunable(params)"
        )
    for (path, leaf), flag in zip(leaves, flags, strict=True):
        if flag and not is_floating(leaf):
            raise ValueError(
                f"{fn}: spec marks leaf '{path_name(path)}' prunable, but it has dtype {_dtype(leaf)}; only "
                "floating leaves can be pruned (PRNG keys, RNG counts and integers never are): mark it False, "
                "or leave spec=None (prune.prunable(params))"
            )


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
    """params ⊙ masks: pruned entries become exactly 0. The result has the params' structure.

    A PRNG-key leaf is returned as it is (its mask, all True, is not read; a key cannot be zeroed).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"w": jnp.array([[1.0, -2.0], [3.0, 4.0]])}
        >>> masks = {"w": jnp.array([[True, False], [False, True]])}
        >>> prune.apply(params, masks)["w"].tolist()
        [[1.0, 0.0], [0.0, 4.0]]
    """
    check_masks(params, masks)
    p_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    out = []
    for (path, x), m in zip(p_leaves, jax.tree.leaves(masks), strict=True):
        if jax.dtypes.issubdtype(_dtype(x), jax.dtypes.extended):
            if not isinstance(m, jax.core.Tracer) and not np.all(np.asarray(m)):
                raise ValueError(f"apply: mask for '{path_name(path)}' prunes a PRNG key; keys cannot be pruned")
            out.append(x)
        else:
            out.append(jnp.where(m, x, jnp.zeros_like(x)))
    return jax.tree.unflatten(treedef, out)


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

    flax.nnx Variable nodes count as their value: masks with plain bool leaves fit params holding
    `Param`s (and vice versa).

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
    ps, ms = pure_structure(params), pure_structure(masks)
    if ps != ms:
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

    Each value is a float32 scalar array; `spec` defaults to `prunable(masks)`: every mask with
    ndim > 1, the weight matrices' (pass `prunable(params)` where params hold integer matrices). Two prunable leaves
    of one name are a ValueError (their entries would be merged).

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
            name = path_name(path)
            if name in out:  # two leaves of one name would be merged into one entry
                raise ValueError(f"density: two prunable leaves are named '{name}'; rename one of the keys")
            out[name] = n / m.size
            alive, size = alive + n, size + m.size
    out["total"] = jnp.asarray(alive / size)
    return out


def layer_of(name: str) -> str:
    """The layer a leaf belongs to: its path without the last part ('residual_2/main/dense_0/w' ->
    'residual_2/main/dense_0'); a top-level leaf is its own layer. A trailing 'value' (flax.nnx's
    Variable, in a name not made by `path_name`) is not a leaf part: 'l1/kernel/value' -> 'l1'.

    Example:
        >>> from funcnn import prune
        >>> prune.layer_of("residual_2/main/dense_0/w"), prune.layer_of("w")
        ('residual_2/main/dense_0', 'w')
        >>> prune.layer_of("l1/kernel"), prune.layer_of("l1/kernel/value"), prune.layer_of("layers/0/weight")
        ('l1', 'l1', 'layers/0')
    """
    if name.endswith("/value"):  # flax.nnx's Variable part, in a name joined elsewhere
        name = name[: -len("/value")]
    return name.rsplit("/", 1)[0] if "/" in name else name
