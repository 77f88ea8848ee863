"""Sparse networks found during or instead of training: masks that move, and masks over frozen weights.

Sparse training (masks that change during training) is an optax transformation around any other, with
the masks in its state; supermasks train a score per weight of a frozen random net.
"""

from __future__ import annotations

# --- sparse training: optax transformations whose state holds moving masks ---
from funcnn.sparsity.methods import gradual, rigl, set, static
from funcnn.sparsity.rule import Method, SparseTransformation, transform
from funcnn.sparsity.sparse_state import Numbers, SparseState, masks, reset_where, sparsify
from funcnn.sparsity.stack import Stacked, stack
from funcnn.sparsity.ste import SteState, SteTransformation, ste, ste_masks, ste_weights

# --- supermasks: straight-through masks and nets whose trainable params are scores ---
from funcnn.sparsity.straight_through import bernoulli_mask, topk_mask
from funcnn.sparsity.supermask import SUPERMASK_METHODS, SUPERMASK_WEIGHTS, subnetwork, supermask

__all__ = [
    "SUPERMASK_METHODS",
    "SUPERMASK_WEIGHTS",
    "Method",
    "Numbers",
    "SparseState",
    "SparseTransformation",
    "Stacked",
    "SteState",
    "SteTransformation",
    "bernoulli_mask",
    "gradual",
    "masks",
    "reset_where",
    "rigl",
    "set",
    "sparsify",
    "stack",
    "static",
    "ste",
    "ste_masks",
    "ste_weights",
    "subnetwork",
    "supermask",
    "topk_mask",
    "transform",
]
