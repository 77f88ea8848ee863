"""Splits: hold out a validation set drawn by a key."""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["train_val_split"]


def train_val_split(
    x: np.ndarray, y: np.ndarray, n_val: int, key: jax.Array
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Hold out `n_val` examples drawn by `key`: returns ((x_train, y_train), (x_val, y_val)).

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn import data
        >>> x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
        >>> (x_tr, y_tr), (x_val, y_val) = data.train_val_split(x, y, 3, jax.random.key(0))
        >>> x_tr.shape, x_val.shape
        ((7, 2), (3, 2))
        >>> sorted(y_tr.tolist() + y_val.tolist()) == list(range(10))  # a partition of the examples
        True
        >>> bool(np.all(x_val[:, 0] == 2 * y_val))  # rows stay paired with their labels
        True
    """
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y must have the same length, got {n} and {len(y)}")
    if not 0 < n_val < n:
        raise ValueError(f"n_val must be in (0, {n}), got n_val={n_val!r}")
    perm = np.asarray(jax.random.permutation(key, n))
    val, train = perm[:n_val], perm[n_val:]
    return (x[train], y[train]), (x[val], y[val])
