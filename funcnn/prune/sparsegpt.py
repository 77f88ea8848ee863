"""SparseGPT (Frantar & Alistarh 2023): prune a trained net one layer at a time, each pruned weight's error
spread over the layer's not-yet-processed weights by the Optimal Brain Surgeon update, no retraining.

    params = prune.sparsegpt(net, params, x, density=0.5)                 # unstructured, 50% kept
    params, masks = prune.sparsegpt(net, params, x, n_of_m=(2, 4), return_masks=True)
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.nn import Layer
from funcnn.prune.calibration import Inputs, _layer, foreign_inputs, gram, run_compiled, walk
from funcnn.prune.masks import check_arrays, path_name
from funcnn.prune.wanda import check_target, top_n

__all__ = ["sparsegpt"]

Array = jax.Array
Params = Any


def _upper_hinv(gram_matrix: Array, damping: float) -> tuple[Array, Array]:
    """(U, dead): U upper triangular with UᵀU = H⁻¹, H = 2G + λI, λ = damping · mean(diag H) (dead inputs,
    never nonzero on the calibration batch, get H_jj = 1 first, as the original)."""
    h = 2.0 * gram_matrix
    dead = jnp.diag(h) == 0
    h = h + jnp.diag(dead.astype(h.dtype))
    h = h + damping * jnp.mean(jnp.diag(h)) * jnp.eye(h.shape[0], dtype=h.dtype)
    chol = jnp.linalg.cholesky(h)
    h_inv = jax.scipy.linalg.cho_solve((chol, True), jnp.eye(h.shape[0], dtype=h.dtype))
    return jnp.linalg.cholesky(h_inv).T, dead


def _obs_prune(w: Array, u: Array, density: Any, n_of_m: tuple[int, int] | None, blocksize: int) -> tuple[Array, Array]:
    """Column-wise OBS pruning of wt (rows = outputs, cols = inputs) with U (cols, cols): (Ŵ, keep), both (rows, cols).

    One lax.scan over blocks of `blocksize` columns, each a lax.scan over its columns: column c's pruned
    entries q_c = 0 leave err = (w_c − q_c) / U_cc, and w_{c'} −= err · U_{c, c'} for the later columns c' of
    the block at once, for those after the block once per block (the lazy batched update)."""
    rows, cols = w.shape
    n_blocks = -(-cols // blocksize)
    padded = n_blocks * blocksize
    wp = jnp.zeros((rows, padded), jnp.float32).at[:, :cols].set(w)
    up = jnp.eye(padded, dtype=jnp.float32).at[:cols, :cols].set(u)
    col = jnp.arange(padded)

    def block(carry: tuple[Array, Array], b: Array) -> tuple[tuple[Array, Array], None]:
        wt, keep = carry
        start = b * blocksize
        w1 = jax.lax.dynamic_slice(wt, (0, start), (rows, blocksize))
        u_rows = jax.lax.dynamic_slice(up, (start, 0), (blocksize, padded))
        u1 = jax.lax.dynamic_slice(u_rows, (0, start), (blocksize, blocksize))
        d = jnp.diag(u1)
        real = jnp.clip(cols - start, 0, blocksize)  # the block's columns that are not padding
        if n_of_m is None:
            # the block's mask at once: keep the largest w²/U_cc² (OBS's saliency), round(density · size) of them
            saliency = jnp.where(
                (jnp.arange(blocksize) < real)[None, :], jnp.square(w1) / jnp.square(d)[None, :], jnp.inf
            )
            n_keep = jnp.round(jnp.asarray(density, jnp.float32) * rows * real).astype(jnp.int32)
            n_keep = n_keep + rows * (blocksize - real)  # padding is always "kept" (it is 0 and dropped)
            keep1 = top_n(saliency.reshape(-1), n_keep, axis=0).reshape(rows, blocksize)
        else:
            keep1 = jnp.ones((rows, blocksize), bool)

        def column(inner: tuple[Array, Array, Array], i: Array) -> tuple[tuple[Array, Array, Array], None]:
            w1, keep1, err1 = inner
            if n_of_m is not None:
                n, m = n_of_m
                # at the start of each group of m columns, its n keepers per row from the weights as they are now
                group = jax.lax.dynamic_slice(w1, (0, i), (rows, m))
                dg = jax.lax.dynamic_slice(d, (i,), (m,))
                chosen = top_n(jnp.square(group) / jnp.square(dg)[None, :], n, axis=1)
                new = jax.lax.dynamic_update_slice(keep1, chosen, (0, i))
                keep1 = jnp.where(i % m == 0, new, keep1)
            wc = w1[:, i]
            q = jnp.where(keep1[:, i], wc, 0.0)
            err = (wc - q) / d[i]
            w1 = w1 - err[:, None] * u1[i][None, :]  # U upper triangular: the columns before i are untouched
            w1 = w1.at[:, i].set(q)
            return (w1, keep1, err1.at[:, i].set(err)), None

        err0 = jnp.zeros((rows, blocksize), jnp.float32)
        (w1, keep1, err1), _ = jax.lax.scan(column, (w1, keep1, err0), jnp.arange(blocksize))
        later = (col >= start + blocksize)[None, :]
        wt = wt - jnp.where(later, err1 @ u_rows, 0.0)
        wt = jax.lax.dynamic_update_slice(wt, w1, (0, start))
        keep = jax.lax.dynamic_update_slice(keep, keep1, (0, start))
        return (wt, keep), None

    start = (wp, jnp.ones((rows, padded), bool))
    (wt, keep), _ = jax.lax.scan(block, start, jnp.arange(n_blocks))
    return wt[:, :cols], keep[:, :cols]


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _prune_leaf(
    w: Array, g: Array, density: Any, n_of_m: tuple[int, int] | None, damping: float, blocksize: int
) -> tuple[Array, Array]:
    shape = w.shape
    u, dead = _upper_hinv(g, damping)
    wt = jnp.where(dead[None, :], 0.0, jnp.asarray(w, jnp.float32).reshape(-1, shape[-1]).T)
    new, keep = _obs_prune(wt, u, density, n_of_m, blocksize)
    return new.T.reshape(shape).astype(w.dtype), keep.T.reshape(shape)


def sparsegpt(
    net: Any,
    params: Params,
    x: Array,
    *,
    density: float | Array | None = None,
    n_of_m: tuple[int, int] | None = None,
    damping: float = 0.01,
    blocksize: int = 128,
    model_state: Params | None = None,
    inputs: Inputs | None = None,
    sequential: bool = True,
    return_masks: bool = False,
) -> Params | tuple[Params, Params]:
    """SparseGPT: each weight layer pruned column by column, the rest updated to reconstruct its output on x.

    Per weight leaf W, read as (fan_in, features) and processed as the original's Wᵀ (rows = features,
    columns = fan_in): H = 2XᵀX + λI from its unfolded calibration input X (rows, fan_in) (`layer_inputs`),
    λ = damping · mean(diag(2XᵀX)) (inputs that are 0 on the whole batch get H_jj = 1 and their weights 0, as the
    original), U the upper Cholesky factor of H⁻¹. Columns in order, in lazy blocks of `blocksize`: in each
    block the weights with the largest w²/U_cc² are kept, round(density · its size) of them (density=), or
    with n_of_m=(n, m) the n largest of every m consecutive columns of each row, chosen when the group's first
    column comes up; a pruned weight's error err = w/U_cc updates the later columns of its row by −err · U_c,·
    (Optimal Brain Surgeon's update: the least-squares optimum for the weights left). One `lax.scan` over
    blocks (an inner one over columns): jittable, density may be traced. Biases are not changed.

    sequential=True (the original): each layer's X comes from the net with the layers before it already pruned
    and updated; False: every X from the dense net. Walks Dense, Conv1D and Conv2D layers through serial,
    Residual and Parallel (`funcnn.prune.calibration`); model_state is a stateful net's running statistics
    (required then). Other nets: `inputs(params, x) -> {leaf name: input (..., fan_in)}`, called again with
    the params so far before each named leaf (in its order) when sequential; only named leaves are pruned.

    Returns the params with pruned weights exactly 0 and the kept ones updated (dtype kept), or with
    return_masks=True (params, masks): bool masks like params, all True on leaves not pruned. Unstructured
    counts are exact per block, so a layer keeps density · size up to one per block's rounding.

    Example: one output; its first weight, the smallest, goes and the two after it absorb its work.

        >>> import jax.numpy as jnp
        >>> import numpy as np
        >>> from funcnn import nn, prune
        >>> net = nn.serial(nn.Dense(1))
        >>> x = jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 2.0, -1.0]])
        >>> params = {"dense_0": {"w": jnp.array([[0.2], [1.0], [1.0]]), "b": jnp.zeros(1)}}
        >>> pruned, masks = prune.sparsegpt(net, params, x, density=2 / 3, damping=1e-6, return_masks=True)
        >>> masks["dense_0"]["w"][:, 0].tolist()
        [False, True, True]
        >>> pruned["dense_0"]["w"][:, 0].round(4).tolist()
        [0.0, 1.1059, 1.0353]
        >>> np.linalg.lstsq(x[:, 1:], x @ params["dense_0"]["w"][:, 0], rcond=None)[0].round(4).tolist()  # the same
        [1.1059, 1.0353]
    """
    fn = "prune.sparsegpt"
    nm = check_target(fn, density, n_of_m)
    check_arrays(params, fn)
    if not isinstance(damping, (int, float)) or isinstance(damping, bool) or not damping >= 0:
        raise ValueError(f"{fn}: damping must be a number >= 0, got damping={damping!r}")
    if not isinstance(blocksize, int) or isinstance(blocksize, bool) or blocksize < 1:
        raise ValueError(f"{fn}: blocksize must be a positive int, got blocksize={blocksize!r}")
    if nm is not None and blocksize % nm[1]:
        raise ValueError(f"{fn}: blocksize must be a multiple of m={nm[1]} for n_of_m={n_of_m}, got {blocksize}")
    density = None if density is None else jnp.asarray(density, jnp.float32)  # traced: one program for all
    new_params, masks = run_compiled(
        _sparsegpt,
        net,
        inputs,
        (params, jnp.asarray(x), model_state, density),
        (nm, float(damping), blocksize, sequential),
    )
    return (new_params, masks) if return_masks else new_params


def _sparsegpt(
    net: Any,
    inputs: Inputs | None,
    params: Params,
    x: Array,
    model_state: Params | None,
    density: Array | None,
    nm: tuple[int, int] | None,
    damping: float,
    blocksize: int,
    sequential: bool,
) -> tuple[Params, Params]:
    fn = "prune.sparsegpt"
    masks: dict[str, Array] = {}

    def prune_one(name: str, w: Array, g: Array) -> Array:
        fan_in = math.prod(np.shape(w)[:-1])
        if nm is not None and fan_in % nm[1]:
            raise ValueError(
                f"{fn}: leaf '{name}' has fan_in {fan_in} (shape {np.shape(w)}), not a multiple of m={nm[1]}"
            )
        new, masks[name] = _prune_leaf(w, g, density, nm, damping, blocksize)
        return new

    if inputs is None:

        def visit(name: str, layer: Layer, p: Params, a: Array) -> Params:
            return {**p, "w": prune_one(name, p["w"], gram(layer, p, a))}

        new_params = walk(fn, _layer(fn, net), params, x, model_state, visit, forward_new=sequential)
    else:
        new_params = params
        collected = foreign_inputs(fn, inputs, params, x)
        for i, name in enumerate(list(collected)):
            if sequential and i > 0:  # inputs after the leaves before this one were pruned
                collected = foreign_inputs(fn, inputs, new_params, x)
            a = collected[name].astype(jnp.float32)
            leaf = {path_name(p): w for p, w in jax.tree_util.tree_leaves_with_path(new_params)}[name]
            new_w = prune_one(name, leaf, a.T @ a)
            new_params = jax.tree_util.tree_map_with_path(
                lambda p, w, n=name, v=new_w: v if path_name(p) == n else w, new_params
            )
    out_masks = jax.tree_util.tree_map_with_path(
        lambda p, w: masks[n] if (n := path_name(p)) in masks else jnp.ones(jnp.shape(w), bool), new_params
    )
    return new_params, out_masks
