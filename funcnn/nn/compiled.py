"""A network's init as one compiled program, its params in the order the layers made them.

Called eagerly, op by op, a conv net's initializers compile one small program each (seconds for
LeNet-5, tens for a ResNet); `compiled_init` compiles the whole init once per input shape, at XLA's
optimization level 1 (random-number code compiles ~4x faster there, with the same bits). JAX returns a
jitted function's dicts with their keys sorted ('dense_10' before 'dense_2'); the params come back in
the order the layers made them, as an eager init gives them. Inside another trace it is inlined.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

__all__ = ["compiled_init"]

_LEAF = object()  # a skeleton's mark for an array


def _flatten(tree: Any) -> tuple[Any, list[Any]]:
    """(skeleton, leaves): dicts walked in insertion order, anything else one leaf."""
    if isinstance(tree, dict):
        skeleton, leaves = {}, []
        for k, v in tree.items():
            skeleton[k], sub = _flatten(v)
            leaves += sub
        return skeleton, leaves
    return _LEAF, [tree]


def _unflatten(skeleton: Any, leaves: list[Any]) -> Any:
    it = iter(leaves)

    def build(s: Any) -> Any:
        return {k: build(v) for k, v in s.items()} if isinstance(s, dict) else next(it)

    return build(skeleton)


def compiled_init(init: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """`init(key, input_shape)` compiled once per input shape (a tuple), its dicts in insertion order.

    Example:
        >>> import jax
        >>> from funcnn.nn.compiled import compiled_init
        >>> def init(key, shape):
        ...     k1, k2 = jax.random.split(key)
        ...     return {"dense_2": jax.random.normal(k1, shape), "dense_10": jax.random.normal(k2, shape)}
        >>> params = compiled_init(init)(jax.random.key(0), (3,))
        >>> list(params)  # the order init made them in, not JAX's sorted one
        ['dense_2', 'dense_10']
    """
    skeletons: dict[Any, Any] = {}  # per input shape, from the one trace of it

    def flat(key: Any, shape: Any) -> list[Any]:
        skeletons[shape], leaves = _flatten(init(key, shape))
        return leaves

    jitted = jax.jit(flat, static_argnums=1, compiler_options={"xla_backend_optimization_level": 1})

    def run(key: Any, shape: Any) -> Any:
        if isinstance(key, jax.core.Tracer):  # inside another trace: inlined there
            return init(key, shape)
        try:
            leaves = jitted(key, shape)
        except ValueError as e:  # a concrete key inside another trace: compiler options are top-level only
            if "compiler_options" not in str(e):
                raise
            return init(key, shape)
        return _unflatten(skeletons[shape], leaves)

    return run
