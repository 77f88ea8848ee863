"""Two-class toy sets drawn from a key: XOR and two interleaved spirals (x (n, 2) float32, y (n,) int32)."""

from __future__ import annotations

import jax
import numpy as np

from funcnn.data.dataset import Dataset

__all__ = ["two_spirals", "xor"]


def xor(key: jax.Array, n: int = 200, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """XOR: points near the corners of [0,1]^2, label = x0 XOR x1; x (n, 2) float32, y (n,) int32.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn import data
        >>> x, y = data.xor(jax.random.key(0), n=8, noise=0.0)  # noise 0: exactly the corners
        >>> x.shape, sorted(np.unique(x).tolist())
        ((8, 2), [0.0, 1.0])
        >>> bool(np.all(y == (x[:, 0] != x[:, 1])))  # the label is x0 XOR x1
        True
    """
    k1, k2 = jax.random.split(key)
    corners = jax.random.bernoulli(k1, 0.5, (n, 2)).astype(np.float32)
    x = corners + noise * jax.random.normal(k2, (n, 2))
    y = (corners[:, 0] != corners[:, 1]).astype(np.int32)
    return np.asarray(x, np.float32), np.asarray(y, np.int32)


def two_spirals(key: jax.Array, n: int = 400, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals, n points in all; x (n, 2) float32, y (n,) int32 in {0, 1}.

    Labels alternate (0, 1, 0, ...), so the two spirals get n/2 points each; the second is the first
    rotated by 180 degrees.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn import data
        >>> x, y = data.two_spirals(jax.random.key(0), n=10)
        >>> x.shape, x.dtype, np.bincount(y).tolist()
        ((10, 2), dtype('float32'), [5, 5])
    """
    k1, k2 = jax.random.split(key)
    t = np.asarray(jax.random.uniform(k1, (n,)), np.float32) * 2 * np.pi + 0.5
    y = np.arange(n) % 2
    sign = np.where(y == 0, 1.0, -1.0)
    x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], axis=1) / (2 * np.pi)
    x = x + noise * np.asarray(jax.random.normal(k2, (n, 2)))
    return x.astype(np.float32), y.astype(np.int32)


def _synthetic(name: str, key: jax.Array, n: int) -> Dataset:
    make = xor if name == "xor" else two_spirals
    k_train, k_test = jax.random.split(key)
    x, y = make(k_train, n)
    xt, yt = make(k_test, n)
    return Dataset(x, y, xt, yt, 2)
