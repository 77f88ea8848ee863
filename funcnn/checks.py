"""Checks of argument values that hold eagerly and inside compiled code: a bad value stops, never a silent answer.

A Python number (or a concrete array) is checked at once, on the host: a `ValueError` naming the
function, the argument and the value. A traced value (under `jit`, `vmap`, `scan`) gets a host callback in the program
(`jax.debug.callback`) that raises the same `ValueError` when the program runs; JAX reports it as a
`jax.errors.JaxRuntimeError` whose message holds ours. The callback costs a transfer of the checked
values to the host per call: meant for rates, densities and scores checked once per mask, not per step.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["deferred", "finite", "in_range", "prng_key", "reraise"]

# Whether traced values get runtime checks (a host callback): on, but where a caller checks on the host
# (`deferred`). A context variable, read while a program is traced, never while it runs.
_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("funcnn_traced_checks", default=True)


def _concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _name(path: Any) -> str:
    parts = []
    for k in path:
        for field in ("key", "idx", "name"):
            if hasattr(k, field):
                parts.append(str(getattr(k, field)))
                break
    return "/".join(parts)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def in_range(
    value: Any,
    low: float,
    high: float,
    *,
    name: str,
    who: str,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise `ValueError` (eagerly, or when the compiled program runs) unless every entry of `value` lies
    in the interval from low to high (closed unless `low_open` / `high_open`); NaN is never in it.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import checks
        >>> checks.in_range(0.5, 0, 1, name="rate", who="prune.magnitude", high_open=True)  # fine
        >>> checks.in_range(1.5, 0, 1, name="rate", who="prune.magnitude", high_open=True)
        Traceback (most recent call last):
        ...
        ValueError: prune.magnitude: rate must be in [0, 1), got rate=1.5
        >>> def f(rate):
        ...     checks.in_range(rate, 0, 1, name="rate", who="f", high_open=True)
        ...     return rate * 2
        >>> try:
        ...     jax.jit(f)(jnp.float32(jnp.nan))
        ... except Exception as e:  # under jit: JAX's runtime error, our message inside
        ...     print("f: rate must be in [0, 1), got rate=nan" in str(e))
        True
    """
    interval = _interval(low, high, low_open, high_open)
    prefix = f"{who}: " if who else ""

    def bad_entries(v: np.ndarray) -> np.ndarray:
        above = (v <= low) if low_open else (v < low)
        below = (v >= high) if high_open else (v > high)
        return np.isnan(v) | above | below

    def fail(v: np.ndarray) -> None:
        v = np.asarray(v)
        short = v.dtype == np.float32  # shown as written (-0.2, not -0.20000000298023224)
        v = v.astype(np.float64)
        bad = bad_entries(v)
        if np.any(bad):
            got = [float(np.format_float_positional(np.float32(g), unique=True)) if short else float(g) for g in v[bad]]
            shown = repr(got[0]) if v.ndim == 0 else repr(got)
            raise ValueError(f"{prefix}{name} must be in {interval}, got {name}={shown}")

    if _concrete(value):
        if isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{prefix}{name} must be a number in {interval}, got {name}={value!r}")
        fail(np.asarray(value))
        return
    if _enabled.get():
        jax.debug.callback(fail, jnp.asarray(value, jnp.float32))


def finite(tree: Any, *, name: str, who: str, where: Any = None, names: list[str] | None = None) -> None:
    """Raise `ValueError` (eagerly, or when the compiled program runs) if any floating leaf of `tree` holds
    NaN or infinity (only the entries where `where`, a tree of bool masks like `tree`, is True). names:
    the leaves' names in the message (default: their key paths, 'w' for tree['w']).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import checks
        >>> checks.finite({"w": jnp.array([1.0, 2.0])}, name="params", who="prune.magnitude")  # fine
        >>> checks.finite({"w": jnp.array([1.0, jnp.nan])}, name="params", who="prune.magnitude")
        Traceback (most recent call last):
        ...
        ValueError: prune.magnitude: params must be finite: 1 NaN or infinite entries in 'w'
    """
    if not _enabled.get():
        return
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    masks = [None] * len(leaves) if where is None else jax.tree.leaves(where)
    all_names = [_name(p) for p, _ in leaves] if names is None else list(names)
    picked = [
        (leaf_name, leaf, m)
        for (_, leaf), m, leaf_name in zip(leaves, masks, all_names, strict=True)
        if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)
    ]
    if not picked:
        return

    def fail(*n: np.ndarray) -> None:
        found = [(nm, int(np.sum(c))) for (nm, _, _), c in zip(picked, n, strict=True) if np.sum(c)]
        if found:
            where_ = ", ".join(f"{c} NaN or infinite entries in '{nm}'" for nm, c in found)
            raise ValueError(f"{who}: {name} must be finite: {where_}")

    if all(_concrete(leaf) and (m is None or _concrete(m)) for _, leaf, m in picked):  # on the host: no program
        fail(*[~np.isfinite(np.asarray(leaf)) & (True if m is None else np.asarray(m)) for _, leaf, m in picked])
        return
    counts = [jnp.sum(~jnp.isfinite(leaf) & (True if m is None else m)) for _, leaf, m in picked]
    jax.debug.callback(fail, *counts)


def prng_key(key: Any, *, name: str = "key", who: str, optional: bool = False) -> None:
    """Raise `TypeError` unless `key` is one JAX PRNG key: a typed key (`jax.random.key(0)`, shape ()) or a
    raw one (`jax.random.PRNGKey(0)`: uint32, shape (2,)), concrete or traced (or None, if `optional`). An
    int, a float array or a batch of keys gets a message naming the argument and how to make a key, not
    JAX's own.

    Example:
        >>> import jax
        >>> from funcnn import checks
        >>> checks.prng_key(jax.random.key(0), who="net.init")  # fine
        >>> checks.prng_key(0, who="net.init")
        Traceback (most recent call last):
        ...
        TypeError: net.init: key must be a JAX PRNG key, got the int 0; make one with jax.random.key(0) ...
    """
    if key is None and optional:
        return
    dtype = getattr(key, "dtype", None)
    shape = tuple(getattr(key, "shape", ()))
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return
        got = f"a batch of keys of shape {shape}"
        fix = "pass one of them (keys[i]), or jax.vmap over them"
    elif dtype is not None and np.dtype(dtype) == np.uint32 and len(shape) == 1:
        return  # a raw key (jax.random.PRNGKey), as older code makes them
    else:
        fix = "make one with jax.random.key(0) and split it (jax.random.split) for more"
        if key is None or dtype is not None:
            got = "None" if key is None else f"an array of dtype {np.dtype(dtype).name} and shape {shape}"
        elif isinstance(key, (int, float, str)):
            got = f"the {type(key).__name__} {key!r}"
        else:
            got = repr(key)
    raise TypeError(f"{who}: {name} must be a JAX PRNG key, got {got}; {fix}")


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """While open, traced values get no runtime check (concrete ones are still checked): for a caller
    that checks them itself, on the host, so that its programs hold no host callback (a program with one
    is never kept in JAX's persistent compilation cache). `funcnn.lottery` traces its programs so.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import checks
        >>> with checks.deferred():
        ...     text = jax.jit(lambda r: checks.in_range(r, 0, 1, name="rate", who="f")).lower(0.5).as_text()
        >>> "callback" in text
        False
    """
    token = _enabled.set(False)
    try:
        yield
    finally:
        _enabled.reset(token)


def reraise(error: Exception) -> None:
    """Re-raise a `jax.errors.JaxRuntimeError` that carries one of these checks' `ValueError`s as that
    ValueError (for an eager call whose program ran the check); return otherwise.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import checks
        >>> f = jax.jit(lambda r: checks.in_range(r, 0, 1, name="rate", who="f"))
        >>> try:
        ...     try:
        ...         f(jnp.float32(2.0))
        ...     except jax.errors.JaxRuntimeError as e:
        ...         checks.reraise(e)
        ... except ValueError as e:
        ...     print(e)
        f: rate must be in [0, 1], got rate=2.0
    """
    text = str(error)
    marker = "ValueError: "
    at = text.rfind(marker)
    if isinstance(error, jax.errors.JaxRuntimeError) and at >= 0:
        raise ValueError(text[at + len(marker) :].strip().splitlines()[0]) from None
