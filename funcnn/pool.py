"""Pooling as plain functions, channels-last: max and average over windows of H and W.

x: (*batch, H, W, C) -> (*batch, H_out, W_out, C), channels untouched. Windows and strides are an int
or a pair (stride defaults to the window); padding as in `funcnn.windows` ("VALID", "SAME", an int or
((top, bottom), (left, right))), and each output size is floor((n + pad_total - k) / s) + 1.

Why not only `lax.reduce_window`: it has no penalty inside loops, but on CPU its max-pool backward
(select_and_scatter) is slow everywhere; non-overlapping windows without padding (the usual 2x2
pool) are a reshape + max/mean there instead, with the same values and gradients (see `max_pool`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from funcnn.windows import Padding, Pads, Pair, _as_nhwc, output_hw, pair, resolve_padding

__all__ = ["avg_pool", "max_pool"]

Array = jax.Array


def _pool_args(
    x: Array, window: Pair, stride: Pair | None, padding: Padding
) -> tuple[Array, tuple[int, ...], tuple[int, int], tuple[int, int], Pads]:
    window_hw = pair(window, "window")
    strides = window_hw if stride is None else pair(stride, "stride")
    x4, batch = _as_nhwc(x)
    output_hw(x4.shape[1:3], window_hw, strides, padding)
    pads = resolve_padding(padding, x4.shape[1:3], window_hw, strides)
    return x4, batch, window_hw, strides, pads


def _use_blocks(window: Sequence[int], strides: Sequence[int], pads: Pads) -> bool:
    """Non-overlapping windows without padding, on CPU: pool as a reshape (see `max_pool`)."""
    return tuple(window) == tuple(strides) and not any(p for pr in pads for p in pr) and jax.default_backend() == "cpu"


def _blocks(x4: Array, window: tuple[int, int]) -> Array:
    """(N, H, W, C) -> (N, H // kh, kh, W // kw, kw, C): the non-overlapping windows (a VALID
    remainder dropped)."""
    (kh, kw), (n, h, w, c) = window, x4.shape
    return x4[:, : h // kh * kh, : w // kw * kw].reshape(n, h // kh, kh, w // kw, kw, c)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max_blocks(x4: Array, window: tuple[int, int]) -> Array:
    return jnp.max(_blocks(x4, window), axis=(2, 4))


@_max_blocks.defjvp
def _max_blocks_jvp(window: tuple[int, int], primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    # The tangent (and so the gradient) goes to the first maximum of each window in row-major order,
    # as XLA's reduce_window / select_and_scatter do; jnp.max alone would split it among ties.
    (x4,), (t4,) = primals, tangents
    xb, tb = _blocks(x4, window), _blocks(t4, window)
    y = jnp.max(xb, axis=(2, 4))
    taken = jnp.zeros(y.shape, bool)
    ty = jnp.zeros(y.shape, tb.dtype)
    for p in range(window[0]):
        for q in range(window[1]):
            hit = (xb[:, :, p, :, q] == y) & ~taken
            ty = jnp.where(hit, tb[:, :, p, :, q], ty)
            taken = taken | hit
    return y, ty


def _reduce_window(
    x4: Array,
    init: float,
    op: Callable[[Array, Array], Array],
    window: tuple[int, int],
    strides: tuple[int, int],
    pads: Pads,
) -> Array:
    # Pool over H and W only: the window and stride are 1 along batch and channels.
    return jax.lax.reduce_window(
        x4, init, op, (1,) + window + (1,), (1,) + strides + (1,), ((0, 0),) + tuple(pads) + ((0, 0),)
    )


def max_pool(x: Array, window: Pair, stride: Pair | None = None, padding: Padding = "VALID") -> Array:
    """Max over each window of H and W (channels untouched); stride defaults to the window.

    x: (*batch, H, W, C) -> (*batch, H_out, W_out, C). Padded positions never win (they are -inf).
    The gradient of each window goes to its first maximum (row-major), as with XLA's reduce_window.

    On CPU, non-overlapping windows without padding (stride == window, e.g. the usual 2x2 max-pool)
    are a reshape + max: the same values and gradients, and forward + backward ~10x faster than
    reduce_window (measured for (60, 28, 28, 64), one core: 2.7 vs 30 ms inside `lax.scan`, 2.1 vs
    50 ms as a jitted step in a Python loop).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import pool
        >>> x = jnp.arange(16.0).reshape(4, 4, 1)  # one 4x4 image (H, W, C)
        >>> pool.max_pool(x, 2)[..., 0].tolist()  # the usual 2x2 pool: each window's bottom-right
        [[5.0, 7.0], [13.0, 15.0]]
        >>> pool.max_pool(x, 3, stride=1, padding="SAME").shape
        (4, 4, 1)
        >>> tie = jnp.ones((2, 2, 1))  # four equal maxima: the gradient goes to the first
        >>> jax.jit(jax.grad(lambda x: pool.max_pool(x, 2).sum()))(tie)[..., 0].tolist()
        [[1.0, 0.0], [0.0, 0.0]]
    """
    x4, batch, window_hw, strides, pads = _pool_args(x, window, stride, padding)
    if _use_blocks(window_hw, strides, pads):
        y = _max_blocks(x4, window_hw)
    else:
        y = _reduce_window(x4, -jnp.inf, jax.lax.max, window_hw, strides, pads)
    return y.reshape(batch + y.shape[1:])


def avg_pool(x: Array, window: Pair, stride: Pair | None = None, padding: Padding = "VALID") -> Array:
    """Mean over each window of H and W; stride defaults to the window.

    With padding, each window's sum is divided by the number of real (unpadded) inputs it covers,
    not by the window size, so padding does not pull border averages towards zero. On CPU,
    non-overlapping windows without padding are a reshape + mean (as in `max_pool`).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import pool
        >>> pool.avg_pool(jnp.arange(16.0).reshape(4, 4, 1), 2)[..., 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]
        >>> # padded 3x3 windows over a flat image: the corner is 4/4, not 4/9
        >>> pool.avg_pool(jnp.ones((3, 3, 1)), 3, stride=1, padding="SAME")[..., 0].tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    x4, batch, window_hw, strides, pads = _pool_args(x, window, stride, padding)
    if _use_blocks(window_hw, strides, pads):
        y = jnp.mean(_blocks(x4, window_hw), axis=(2, 4))
    else:
        y = _reduce_window(x4, 0.0, jax.lax.add, window_hw, strides, pads)
        ones = jnp.ones((1,) + x4.shape[1:3] + (1,), x4.dtype)
        y = y / _reduce_window(ones, 0.0, jax.lax.add, window_hw, strides, pads)
    return y.reshape(batch + y.shape[1:])
