"""What a checkpoint stores for each leaf of a tree: its name in the file (collisions refused), its
array (raw bits for ml_dtypes' types, key data for typed keys) and the metadata that restores it.
Used by `funcnn.io`'s `save_tree` and `load_tree`."""

from __future__ import annotations

import reprlib
from typing import Any

import jax
import ml_dtypes
import numpy as np

from funcnn.prune import path_name

__all__: list[str] = []  # funcnn.io's parts


def _is_key(leaf: Any) -> bool:
    return jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key)


_META = "__funcnn_io__.json"  # the zip member with dtype names and key impls (format 2)
_SCALARS = (bool, int, float, complex)
_HINT = (
    "save_tree takes arrays only; for a model with functions or other static fields, save its arrays: "
    "params, static = eqx.partition(model, eqx.is_array) (equinox), nnx.state(model) (flax.nnx)"
)
# ml_dtypes' types (bfloat16, float8_*, int4, ...): numpy's .npy header has no name for them
_EXTENDED = {
    np.dtype(t).name: np.dtype(t) for t in vars(ml_dtypes).values() if isinstance(t, type) and issubclass(t, np.generic)
}


def _native(dtype: np.dtype) -> bool:
    """Whether `dtype` is a numeric dtype that an `.npy` header names itself (float32, int8, ...)."""
    try:
        return dtype.kind in "biufc" and np.dtype(dtype.str) == dtype
    except TypeError:  # ml_dtypes' complex32: kind 'c', but no numpy name
        return False


def _names(tree: Any, fn: str) -> list[tuple[str, str, Any]]:
    """(name in the file, key path, leaf) per leaf; ValueError when two names collide."""
    out, seen = [], {_META: "funcnn's metadata"}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        name, where = path_name(path) or "_", jax.tree_util.keystr(path) or "the root"
        if name.endswith(".npy"):
            # numpy's npz reader matches a name with '.npy' to the member of the name without it: the
            # leaf {'w.npy': ...} beside {'w': ...} would load w's values.
            raise ValueError(
                f"{fn}: leaf {where} is named {name!r}; names ending in '.npy' are ambiguous in an .npz file "
                "(numpy reads 'w.npy' as the array named 'w'); rename the key"
            )
        if name in seen:
            raise ValueError(
                f"{fn}: leaves {seen[name]} and {where} both get the name {name!r} in the file "
                "(names join keys with '/'); rename one of the keys"
            )
        seen[name] = where
        out.append((name, where, leaf))
    return out


def _describe(leaf: Any) -> str:
    if hasattr(leaf, "dtype"):
        return f"a {type(leaf).__name__} of dtype {leaf.dtype}"
    name = getattr(leaf, "__name__", None)  # a function: its name says more than its repr
    return f"a {type(leaf).__name__} ({name if isinstance(name, str) else reprlib.repr(leaf)})"


def _flat(tree: Any) -> tuple[dict[str, np.ndarray], dict[str, dict[str, str]]]:
    """The arrays to store by name, and the metadata of the leaves that need it."""
    arrays, meta = {}, {}
    for name, where, leaf in _names(tree, "save_tree"):
        if _is_key(leaf) and isinstance(leaf, jax.Array):
            arrays[name] = np.asarray(jax.random.key_data(leaf))
            meta[name] = {"key": str(jax.random.key_impl(leaf))}
            continue
        ok = isinstance(leaf, (np.ndarray, np.generic, jax.Array, *_SCALARS))
        a = np.asarray(leaf) if ok else None  # an int beyond int64 becomes an object array: refused below
        if a is None or not (_native(a.dtype) or a.dtype.name in _EXTENDED):
            raise ValueError(f"save_tree: leaf {where} is {_describe(leaf)}, not a numeric array; {_HINT}")
        if not _native(a.dtype):
            meta[name] = {"dtype": a.dtype.name}
            a = a.view(f"u{a.dtype.itemsize}")  # the raw bits, in a dtype the header can name
        arrays[name] = a
    return arrays, meta


def _key_impl(template: Any) -> str:
    found = []
    # key_impl takes key arrays, not ShapeDtypeStructs; a traced key of the template's type will do
    jax.eval_shape(lambda k: found.append(str(jax.random.key_impl(k))), template)
    return found[0]
