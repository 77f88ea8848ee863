"""What a ticket keeps (units per layer, weights) and `expand`: a compacted ticket back at full shape."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from funcnn import nn, prune

Params = Any


def _layer_order(key: str) -> tuple[int, str]:
    """Sort key of a param dict's keys in layer order: "dense_3" by its index; "main" before "shortcut"."""
    tail = key.rsplit("_", 1)[-1]
    return (int(tail), key) if tail.isdigit() else ({"main": 0, "shortcut": 1}.get(key, 2), key)


def _weight_paths(params: Params, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the param dicts holding a "w" (Dense / Conv layers), in layer order, nested ones too."""
    if "w" in params:
        return [path]
    return [
        q
        for k in sorted(params, key=_layer_order)
        if isinstance(params[k], dict)
        for q in _weight_paths(params[k], (*path, k))
    ]


def _at(tree: Params, path: tuple[str, ...]) -> Any:
    for k in path:
        tree = tree[k]
    return tree


def widths(params: Params, masks: Params | None = None) -> list[int]:
    """Units of each Dense / Conv layer in order: all of them (masks None) or those with any kept weight."""
    out = []
    for path in _weight_paths(params):
        w = _at(params, path)["w"]
        alive = (
            np.ones(w.shape[-1], bool)
            if masks is None
            else np.any(np.reshape(_at(masks, path)["w"], (-1, w.shape[-1])), 0)
        )
        out.append(int(alive.sum()))
    return out


def density(params: Params, masks: Params) -> float:
    """Fraction of the weights (leaves with ndim > 1) that are kept and nonzero: a structured arm's
    weights that read a removed unit count as gone, though their mask entries are True."""
    kept = total = 0
    for p, m, s in zip(
        jax.tree.leaves(params), jax.tree.leaves(masks), jax.tree.leaves(prune.prunable(params)), strict=True
    ):
        if s:
            kept += int(np.sum(np.asarray(m) & (np.asarray(p) != 0)))
            total += np.size(p)
    return kept / total


def expand(net: nn.Layer, like: Params, small: Params, masks: Params) -> Params:
    """Full-shaped params holding `small` (a compacted structured ticket) on the units `masks` keeps, 0
    elsewhere: the masked dense net that `compaction.compact(net, expand(...), masks)` compacts back
    to `small`. For `serial` nets of Dense, Conv2D, Flatten, pools and activations."""
    full = jax.tree.map(lambda a: np.zeros(np.shape(a), np.asarray(a).dtype), like)
    keep_prev: np.ndarray | None = None  # surviving channels of the feature axis (None: the input's, all)
    n_prev = 0
    for name, layer in zip(nn.layer_names(net.layers), net.layers, strict=True):
        if layer.kind not in ("dense", "conv2d"):
            continue
        w_full, w_small = full[name]["w"], np.asarray(small[name]["w"])
        n_out = w_full.shape[-1]
        out_keep = np.flatnonzero(np.any(np.reshape(masks[name]["w"], (-1, n_out)), axis=0))
        rows = w_full.shape[-2]
        if keep_prev is None:
            in_idx = np.arange(rows)
        elif rows == n_prev:
            in_idx = keep_prev
        else:  # the first Dense after Flatten: rows run over (position, channel), channels fastest
            in_idx = (np.arange(rows // n_prev)[:, None] * n_prev + keep_prev[None, :]).ravel()
        want = (*w_full.shape[:-2], in_idx.size, out_keep.size)
        if w_small.shape != want:
            raise ValueError(f"expand: {name}/w is {w_small.shape} in the compacted net, expected {want}")
        w_full[..., in_idx[:, None], out_keep] = w_small
        full[name]["b"][out_keep] = np.asarray(small[name]["b"])
        keep_prev, n_prev = out_keep, n_out
    return full
