"""Wanda (Sun et al. 2023): prune a trained net by |W| times the norm of each weight's input, no retraining;
and `by_output`, the selection it uses: the best entries within each output unit, or n of every m.

    scores = prune.wanda_scores(net, params, x)              # S_jo = |W_jo| · ‖X_j‖₂, like params
    masks = prune.by_output(scores, density=0.5)             # half of each output unit's inputs kept
    masks = prune.by_output(scores, n_of_m=(2, 4))           # 2:4, the n highest of every m inputs
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.nn import Layer
from funcnn.prune import drop_grow
from funcnn.prune.calibration import Inputs, _layer, foreign_inputs, gram, run_compiled, walk
from funcnn.prune.masks import check_arrays, check_spec, path_name, prunable

__all__ = ["by_output", "wanda_scores"]

Array = jax.Array
Params = Any
Masks = Any


def top_n(scores: Array, n: int | Array, axis: int) -> Array:
    """Bool mask of the n highest entries along `axis` (ties: the lower index first), n an int or an array."""
    order = jnp.argsort(-scores, axis=axis, stable=True)  # highest first; equal scores keep index order
    rank = jnp.argsort(order, axis=axis, stable=True)
    return rank < n


def check_n_of_m(fn: str, n_of_m: Any) -> tuple[int, int]:
    if (
        not isinstance(n_of_m, (tuple, list))
        or len(n_of_m) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in n_of_m)
        or not 0 < n_of_m[0] < n_of_m[1]
    ):
        raise ValueError(f"{fn}: n_of_m must be a pair (n, m) of ints with 0 < n < m (2:4 is (2, 4)), got {n_of_m!r}")
    return int(n_of_m[0]), int(n_of_m[1])


def check_target(fn: str, density: Any, n_of_m: Any) -> tuple[int, int] | None:
    """Exactly one of density (in (0, 1], or an array) and n_of_m; the parsed n_of_m or None."""
    if (density is None) == (n_of_m is None):
        raise ValueError(
            f"{fn}: give exactly one of density= (the fraction kept) and n_of_m= (n kept of every m), "
            f"got density={density!r}, n_of_m={n_of_m!r}"
        )
    if n_of_m is not None:
        return check_n_of_m(fn, n_of_m)
    if isinstance(density, bool) or (isinstance(density, numbers.Real) and not 0 < float(density) <= 1):
        raise ValueError(f"{fn}: density must be in (0, 1], got density={density!r}")
    if not isinstance(density, (numbers.Real, jax.Array)) or getattr(density, "ndim", 0) != 0:
        raise ValueError(f"{fn}: density must be a number or a scalar array, got density={density!r}")
    return None


def keep_within_outputs(fn: str, name: str, s: Array, density: Any, n_of_m: tuple[int, int] | None) -> Array:
    """Bool keep mask of a score leaf read as (fan_in, features): per feature (column), round(density ·
    fan_in) highest, or the n highest of every m consecutive fan_in entries."""
    shape = jnp.shape(s)
    fan_in = math.prod(shape[:-1])
    s2 = jnp.asarray(s, jnp.float32).reshape(fan_in, shape[-1])
    if n_of_m is None:
        k = jnp.round(jnp.asarray(density, jnp.float32) * fan_in).astype(jnp.int32)
        return top_n(s2, k, axis=0).reshape(shape)
    n, m = n_of_m
    if fan_in % m:
        raise ValueError(f"{fn}: leaf '{name}' has fan_in {fan_in} (shape {shape}), not a multiple of m={m}")
    return drop_grow.n_of_m(s2, n, m, axis=0).reshape(shape)


def by_output(
    scores: Params,
    *,
    density: float | Array | None = None,
    n_of_m: tuple[int, int] | None = None,
    spec: Params | None = None,
) -> Masks:
    """Masks keeping, within each output unit, the highest-scoring inputs (Wanda's and SparseGPT's comparison group).

    Each leaf spec marks (default `prunable(scores)`: matrices, kernels) is read as (fan_in, features), outputs on its
    last axis (Dense (in, out), Conv2D (kh, kw, in, out) with fan_in = kh · kw · in): in every column, keep the
    round(density · fan_in) highest scores (ties: the lower index), or with n_of_m=(n, m) the n highest of every
    m consecutive fan_in entries (for a conv kernel, along its input channels; fan_in must be a multiple of m).
    Other leaves get all-True masks. density: in (0, 1], or an array (traced under `jit` or `vmap`).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> scores = {"w": jnp.array([[4.0, 1.0], [3.0, 2.0], [2.0, 3.0], [1.0, 4.0]])}  # 4 inputs, 2 outputs
        >>> prune.by_output(scores, density=0.5)["w"].tolist()  # the 2 highest in each column
        [[True, False], [True, False], [False, True], [False, True]]
        >>> prune.by_output(scores, n_of_m=(1, 2))["w"].tolist()  # the best of inputs (0, 1) and of (2, 3)
        [[True, False], [False, True], [True, False], [False, True]]
    """
    fn = "prune.by_output"
    nm = check_target(fn, density, n_of_m)
    check_arrays(scores, fn, "scores")
    spec = prunable(scores) if spec is None else spec
    check_spec(scores, spec, fn)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(scores)
    out = [
        keep_within_outputs(fn, path_name(p), s, density, nm) if flag else jnp.ones(jnp.shape(s), bool)
        for (p, s), flag in zip(leaves, jax.tree.leaves(spec), strict=True)
    ]
    return jax.tree.unflatten(treedef, out)


def wanda_scores(
    net: Any, params: Params, x: Array, *, model_state: Params | None = None, inputs: Inputs | None = None
) -> Params:
    """Wanda's scores: S_jo = |W_jo| · ‖X_j‖₂ per weight, X_j input feature j over the calibration batch x.

    W read as (fan_in, features), X the layer's unfolded input (rows, fan_in) (`layer_inputs`: the examples of
    x times the output positions of a conv), ‖X_j‖₂ = sqrt(Σ_rows X_rj²), computed on the dense net (every layer
    sees the unpruned net's activations; Wanda's LLM code prunes block by block). Returns a float32 tree
    like params: the scores on the weight leaves of Dense, Conv1D and Conv2D layers (walked through serial,
    Residual and Parallel; see `funcnn.prune.calibration`), zeros elsewhere. Other nets: `inputs(params, x)
    -> {leaf name: input (..., fan_in)}`, leaves read as (fan_in, features); leaves it does not name score 0
    (give `by_output` a spec without them). model_state: a stateful net's running statistics (required then).
    Wanda compares within each output unit: `by_output(scores, density=...)` or `n_of_m=(2, 4)`.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import nn, prune
        >>> net = nn.serial(nn.Dense(2))
        >>> params = {"dense_0": {"w": jnp.array([[1.0, -1.0], [2.0, 0.5], [-3.0, 1.0]]), "b": jnp.zeros(2)}}
        >>> x = jnp.array([[3.0, 0.0, 1.0], [4.0, 1.0, 0.0]])  # ‖X_j‖ = 5, 1, 1
        >>> prune.wanda_scores(net, params, x)["dense_0"]["w"].tolist()
        [[5.0, 5.0], [2.0, 0.5], [3.0, 1.0]]
        >>> prune.by_output(prune.wanda_scores(net, params, x), density=1 / 3)["dense_0"]["w"].tolist()
        [[True, True], [False, False], [False, False]]
    """
    check_arrays(params, "prune.wanda_scores")
    return run_compiled(_wanda_scores, net, inputs, (params, jnp.asarray(x), model_state), ())


def _wanda_scores(net: Any, inputs: Inputs | None, params: Params, x: Array, model_state: Params | None) -> Params:
    fn = "prune.wanda_scores"
    norms: dict[str, Array] = {}
    if inputs is not None:
        for name, a in foreign_inputs(fn, inputs, params, x).items():
            norms[name] = jnp.sqrt(jnp.sum(jnp.square(a.astype(jnp.float32)), axis=0))
    else:

        def visit(name: str, layer: Layer, p: Params, a: Array) -> Params:
            norms[name] = jnp.sqrt(gram(layer, p, a, full=False))
            return p

        walk(fn, _layer(fn, net), params, x, model_state, visit, forward_new=False)

    def score(path: Any, w: Array) -> Array:
        name = path_name(path)
        if name not in norms:
            return jnp.zeros(jnp.shape(w), jnp.float32)
        shape = jnp.shape(w)
        return (jnp.abs(w).astype(jnp.float32).reshape(-1, shape[-1]) * norms[name][:, None]).reshape(shape)

    return jax.tree_util.tree_map_with_path(score, params)
