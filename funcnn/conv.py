"""Convolution and pooling as plain functions, channels-last (NHWC images, HWIO kernels; NWC
sequences, WIO kernels for `conv1d`).

Padding is "VALID", "SAME", an int p (p on every side) or ((top, bottom), (left, right)) (for 1-D:
(left, right)); strides are an int or a pair (1-D: an int). Each spatial output size is
out = floor((n + pad_total - k) / s) + 1.

impl (conv2d, conv1d): "xla" is `lax.conv_general_dilated`; "im2col" pads x, takes the kh x kw
shifted strided slices, concatenates them on the channel axis and does one matmul with w reshaped to
(kh*kw*C_in, C_out); "auto" (default) is im2col on the CPU backend and xla elsewhere (decided at
trace time). Why: XLA:CPU sends convolutions to its fast Eigen path only in the entry computation
(xla/service/cpu/conv_canonicalization.cc, jax-ml/jax#12868), so the gradient convolutions of a
training step inside `lax.scan` or a while loop run as a naive loop nest (Conv-2 at batch 60: ~70x
slower than the same step in a Python loop; `python -m benchmarks.conv_step`); vmapped weights
(populations) become grouped convolutions with a slow backward (jax-ml/jax#13800), where im2col
gives batched matmuls. The two are equal up to float rounding. im2col holds a patch buffer of
(N, H_out, W_out, kh*kw*C_in) floats; outside loops, on CPU, XLA's convolution is ~1.3x faster for
mid-size layers (16-32 channels) and about even at 64 channels.

Pooling: reduce_window has no such penalty inside loops, but on CPU its max-pool backward
(select_and_scatter) is slow everywhere; non-overlapping windows without padding (the usual 2x2
pool) are a reshape + max/mean there instead, same values and gradients (see `max_pool`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Union

import jax
import jax.numpy as jnp

Array = jax.Array
Padding = Union[str, int, Sequence[Sequence[int]]]
Pair = Union[int, Sequence[int]]


def output_size(n: int, k: int, s: int = 1, pad_total: int = 0) -> int:
    """floor((n + pad_total - k) / s) + 1: the output length of a window k sliding with stride s."""
    return (n + pad_total - k) // s + 1


def pair(value: Pair, name: str) -> tuple[int, int]:
    """An int or a pair of ints as a validated pair of positive ints."""
    v = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(v) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in v):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {name}={value!r}")
    return v  # type: ignore[return-value]


def resolve_padding(padding: Padding, in_hw: Sequence[int], k_hw: Sequence[int], strides: Sequence[int]) -> tuple:
    """Explicit ((top, bottom), (left, right)) for any padding form (SAME as XLA: extra at the end)."""
    if isinstance(padding, str):
        if padding.upper() == "VALID":
            return ((0, 0), (0, 0))
        if padding.upper() == "SAME":
            out = []
            for n, k, s in zip(in_hw, k_hw, strides):
                total = max((-(-n // s) - 1) * s + k - n, 0)
                out.append((total // 2, total - total // 2))
            return tuple(out)
        raise ValueError(
            f"padding must be 'VALID', 'SAME', an int or ((top, bottom), (left, right)), got padding={padding!r}"
        )
    if isinstance(padding, int) and not isinstance(padding, bool):
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got padding={padding!r}")
        return ((padding, padding), (padding, padding))
    try:
        pads = tuple((int(a), int(b)) for a, b in padding)
    except (TypeError, ValueError):
        pads = ()
    if len(pads) != 2 or any(p < 0 for pr in pads for p in pr):
        raise ValueError(
            f"padding must be 'VALID', 'SAME', an int or ((top, bottom), (left, right)) of ints >= 0, got padding={padding!r}"
        )
    return pads


def output_hw(
    in_hw: Sequence[int], k_hw: Sequence[int], strides: Pair = 1, padding: Padding = "VALID"
) -> tuple[int, int]:
    """(H_out, W_out) for an input (H, W), a window (kh, kw), strides and padding; raises if empty."""
    strides = pair(strides, "stride")
    pads = resolve_padding(padding, in_hw, k_hw, strides)
    out = []
    for n, k, s, (lo, hi) in zip(in_hw, k_hw, strides, pads):
        if k > n + lo + hi:
            raise ValueError(
                f"kernel/window size {tuple(k_hw)} is larger than the padded input {tuple(in_hw)} with padding {pads}"
            )
        out.append(output_size(n, k, s, lo + hi))
    return tuple(out)


def _as_nhwc(x: Array, name: str = "x") -> tuple[Array, tuple]:
    """Fold any leading batch axes (zero or more) into one: (*batch, H, W, C) -> (N, H, W, C)."""
    if x.ndim < 3:
        raise ValueError(
            f"{name} must be (H, W, C) or (*batch, H, W, C), got shape {tuple(x.shape)} (rank {x.ndim}); "
            "add a channel axis with x[..., None] for grayscale images"
        )
    batch = x.shape[:-3]
    return x.reshape((-1,) + x.shape[-3:]), batch


IMPLS = ("auto", "xla", "im2col")


def check_impl(impl: str) -> str:
    """A validated convolution implementation name ("auto", "xla" or "im2col")."""
    if not isinstance(impl, str) or impl not in IMPLS:
        raise ValueError(f"impl must be one of 'auto', 'xla', 'im2col', got impl={impl!r}")
    return impl


def resolve_impl(impl: str) -> str:
    """ "xla" or "im2col" for an impl name; "auto" is im2col on the CPU backend, xla elsewhere."""
    check_impl(impl)
    if impl == "auto":
        return "im2col" if jax.default_backend() == "cpu" else "xla"
    return impl


def _im2col(xp: Array, w: Array, out: Sequence[int], strides: Sequence[int]) -> Array:
    """xp: (N, *spatial_padded, C) already padded; w: (*k, C, F); out: the output spatial sizes.

    Gathers the prod(k) shifted strided slices of xp (each (N, *out, C)), concatenates them on the
    channel axis in w's (row-major window, channel) order, and does one matmul with w as
    (prod(k) * C, F).
    """
    k = w.shape[:-2]
    c = xp.shape[-1]
    slices = []
    for offsets in itertools.product(*(range(kk) for kk in k)):
        start = (0,) + tuple(offsets) + (0,)
        limit = (xp.shape[0],) + tuple(o + (n - 1) * s + 1 for o, n, s in zip(offsets, out, strides)) + (c,)
        slices.append(jax.lax.slice(xp, start, limit, (1,) + tuple(strides) + (1,)))
    patches = slices[0] if len(slices) == 1 else jnp.concatenate(slices, axis=-1)
    return jnp.dot(patches, w.reshape(-1, w.shape[-1]))


def conv2d(
    x: Array, w: Array, b: Array | None = None, stride: Pair = 1, padding: Padding = "VALID", *, impl: str = "auto"
) -> Array:
    """Cross-correlation y[n,i,j,f] = sum_{p,q,c} x_pad[n, i*s+p, j*s+q, c] * w[p,q,c,f] (+ b[f]).

    x: (*batch, H, W, C_in) (no batch axis is fine); w: (kh, kw, C_in, C_out); b: (C_out,) or None.
    impl: "auto" (im2col on CPU, xla elsewhere), "xla" or "im2col" (see the module docstring).
    """
    impl = resolve_impl(impl)
    if w.ndim != 4:
        raise ValueError(f"kernel w must be (kh, kw, C_in, C_out), got shape {tuple(w.shape)}")
    x4, batch = _as_nhwc(x)
    if x4.shape[-1] != w.shape[2]:
        raise ValueError(
            f"input has {x4.shape[-1]} channels but the kernel expects C_in={w.shape[2]} "
            f"(x {tuple(x.shape)}, w {tuple(w.shape)})"
        )
    strides = pair(stride, "stride")
    out_hw = output_hw(x4.shape[1:3], w.shape[:2], strides, padding)  # validates sizes
    pads = resolve_padding(padding, x4.shape[1:3], w.shape[:2], strides)
    if impl == "im2col":
        y = _im2col(jnp.pad(x4, ((0, 0),) + tuple(pads) + ((0, 0),)), w, out_hw, strides)
    else:
        y = jax.lax.conv_general_dilated(x4, w, strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if b is not None:
        y = y + b.reshape(1, 1, 1, -1)
    return y.reshape(batch + y.shape[1:])


def resolve_padding_1d(padding: Padding, n: int, k: int, stride: int) -> tuple[int, int]:
    """Explicit (left, right) for a 1-D padding: "VALID", "SAME" (as XLA: extra at the end), an int p
    (p on each side) or a pair (left, right)."""
    if isinstance(padding, str) or (isinstance(padding, int) and not isinstance(padding, bool)):
        return resolve_padding(padding, (n, 1), (k, 1), (stride, 1))[0]
    try:
        pads = tuple(int(p) for p in padding)
    except (TypeError, ValueError):
        pads = ()
    if len(pads) != 2 or any(p < 0 for p in pads) or any(isinstance(p, bool) for p in padding):
        raise ValueError(
            f"padding must be 'VALID', 'SAME', an int or a pair (left, right) of ints >= 0 for a 1-D "
            f"convolution, got padding={padding!r}"
        )
    return pads  # type: ignore[return-value]


def positive_int(value: int, name: str) -> int:
    """A validated positive int (bools rejected)."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {name}={value!r}")
    return value


def output_len(n: int, k: int, stride: int = 1, padding: Padding = "VALID") -> int:
    """L_out for an input length n, a window k, a stride and a 1-D padding; raises if empty."""
    stride = positive_int(stride, "stride")
    lo, hi = resolve_padding_1d(padding, n, k, stride)
    if k > n + lo + hi:
        raise ValueError(f"kernel size {k} is larger than the padded input length {n} with padding {(lo, hi)}")
    return output_size(n, k, stride, lo + hi)


def conv1d(
    x: Array, w: Array, b: Array | None = None, stride: int = 1, padding: Padding = "VALID", *, impl: str = "auto"
) -> Array:
    """Cross-correlation y[n,i,f] = sum_{p,c} x_pad[n, i*s+p, c] * w[p,c,f] (+ b[f]).

    x: (*batch, L, C_in) (no batch axis is fine); w: (k, C_in, C_out); b: (C_out,) or None.
    -> (*batch, L_out, C_out) with L_out = floor((L + pad_total - k) / s) + 1.
    impl: "auto" (im2col on CPU, xla elsewhere), "xla" or "im2col" (see the module docstring).
    """
    impl = resolve_impl(impl)
    if w.ndim != 3:
        raise ValueError(f"kernel w must be (k, C_in, C_out), got shape {tuple(w.shape)}")
    if x.ndim < 2:
        raise ValueError(
            f"x must be (L, C) or (*batch, L, C), got shape {tuple(x.shape)} (rank {x.ndim}); "
            "add a channel axis with x[..., None] for a single-channel sequence"
        )
    if x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"input has {x.shape[-1]} channels but the kernel expects C_in={w.shape[1]} "
            f"(x {tuple(x.shape)}, w {tuple(w.shape)})"
        )
    batch = x.shape[:-2]
    x3 = x.reshape((-1,) + x.shape[-2:])
    out_len = output_len(x3.shape[1], w.shape[0], stride, padding)  # validates stride, padding and sizes
    pads = resolve_padding_1d(padding, x3.shape[1], w.shape[0], stride)
    if impl == "im2col":
        y = _im2col(jnp.pad(x3, ((0, 0), tuple(pads), (0, 0))), w, (out_len,), (stride,))
    else:
        y = jax.lax.conv_general_dilated(x3, w, (stride,), (pads,), dimension_numbers=("NWC", "WIO", "NWC"))
    if b is not None:
        y = y + b.reshape(1, 1, -1)
    return y.reshape(batch + y.shape[1:])


def _pool_args(x, window, stride, padding):
    window = pair(window, "window")
    strides = window if stride is None else pair(stride, "stride")
    x4, batch = _as_nhwc(x)
    output_hw(x4.shape[1:3], window, strides, padding)
    pads = resolve_padding(padding, x4.shape[1:3], window, strides)
    return x4, batch, window, strides, pads


def _use_blocks(window, strides, pads) -> bool:
    """Non-overlapping windows without padding, on CPU: pool as a reshape (see `max_pool`)."""
    return tuple(window) == tuple(strides) and not any(p for pr in pads for p in pr) and jax.default_backend() == "cpu"


def _blocks(x4: Array, window: tuple) -> Array:
    """(N, H, W, C) -> (N, H // kh, kh, W // kw, kw, C): the non-overlapping windows (a VALID
    remainder dropped)."""
    (kh, kw), (n, h, w, c) = window, x4.shape
    return x4[:, : h // kh * kh, : w // kw * kw].reshape(n, h // kh, kh, w // kw, kw, c)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max_blocks(x4: Array, window: tuple) -> Array:
    return jnp.max(_blocks(x4, window), axis=(2, 4))


@_max_blocks.defjvp
def _max_blocks_jvp(window, primals, tangents):
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


def _reduce_window(x4, init, op, window, strides, pads):
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
    """
    x4, batch, window, strides, pads = _pool_args(x, window, stride, padding)
    if _use_blocks(window, strides, pads):
        y = _max_blocks(x4, window)
    else:
        y = _reduce_window(x4, -jnp.inf, jax.lax.max, window, strides, pads)
    return y.reshape(batch + y.shape[1:])


def avg_pool(x: Array, window: Pair, stride: Pair | None = None, padding: Padding = "VALID") -> Array:
    """Mean over each window of H and W; stride defaults to the window.

    With padding, each window's sum is divided by the number of real (unpadded) inputs it covers,
    not by the window size, so padding does not pull border averages towards zero. On CPU,
    non-overlapping windows without padding are a reshape + mean (as in `max_pool`).
    """
    x4, batch, window, strides, pads = _pool_args(x, window, stride, padding)
    if _use_blocks(window, strides, pads):
        y = jnp.mean(_blocks(x4, window), axis=(2, 4))
    else:
        y = _reduce_window(x4, 0.0, jax.lax.add, window, strides, pads)
        ones = jnp.ones((1,) + x4.shape[1:3] + (1,), x4.dtype)
        y = y / _reduce_window(ones, 0.0, jax.lax.add, window, strides, pads)
    return y.reshape(batch + y.shape[1:])
