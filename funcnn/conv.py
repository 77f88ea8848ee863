"""Convolution as plain functions, channels-last (NHWC images, HWIO kernels; NWC
sequences, WIO kernels for `conv1d`).

Padding is "VALID", "SAME", an int p (p on every side) or ((top, bottom), (left, right)) (for 1-D:
(left, right)); strides are an int or a pair (1-D: an int). Each spatial output size is
out = floor((n + pad_total - k) / s) + 1.

impl (conv2d, conv1d): "xla" is `lax.conv_general_dilated`; "im2col" pads x, takes the kh x kw
shifted strided slices, concatenates them on the channel axis and does one matmul with w reshaped to
(kh*kw*C_in, C_out); "mixed" computes the forward pass with XLA's convolution and the gradients with
im2col's (a custom VJP; the input gradient of a stride-1 convolution by XLA's convolution in its
canonical layout); "auto" (default) is mixed on the CPU backend and xla elsewhere (decided at trace
time). Why: XLA:CPU sends convolutions to its fast Eigen path only in the entry computation
(xla/service/cpu/conv_canonicalization.cc, jax-ml/jax#12868), so the gradient convolutions of a
training step inside `lax.scan` or a while loop run as a naive loop nest (Conv-2 at batch 60: ~70x
slower than the same step in a Python loop; `python -m benchmarks.conv_step`); vmapped weights
(populations) become grouped convolutions with a slow backward (jax-ml/jax#13800), where im2col
gives batched matmuls. The two are equal up to float rounding. im2col holds a patch buffer of
(N, H_out, W_out, kh*kw*C_in) floats; outside loops, on CPU, XLA's convolution is ~1.3x faster for
mid-size layers (16-32 channels) and about even at 64 channels. Canonical convolutions (the forward
pass, and the input gradient written as one) stay fast inside loops, hence "mixed": one Conv-2 step
at batch 60 in `lax.scan` on one core ran 4.90 steps/s against im2col's 4.34, and evaluating 5,000
images inside a loop 2.7 s against 8.7 s (2026-11-28). Its costs: a vmapped population of kernels
makes its convolutions grouped ones (4 vmapped Conv-2 members 0.61x im2col's speed; train such
populations one member at a time on CPU, as `lottery` does), and, as a custom VJP, no forward-mode
autodiff (`jax.jvp`, `jax.hessian`): pass impl="im2col" or "xla" for those.

Window arithmetic (padding, strides, output sizes) is `funcnn.windows`, shared with pooling; pooling
is `funcnn.pool` (`pool.max_pool`, `pool.avg_pool`). Their old names here (conv.max_pool,
conv.output_size, conv.pair, ...) still reach them for one release, with a `DeprecationWarning`.
"""

from __future__ import annotations

import functools
import importlib
import itertools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from funcnn import _deprecation, windows
from funcnn.windows import Padding, Pair  # the types of conv2d's and conv1d's arguments

__all__ = ["conv1d", "conv2d", "resolve_impl"]

# Old names of other modules' functions, reached here until funcnn 0.4 (each warns): name -> its module.
_MOVED = {
    "max_pool": "funcnn.pool",
    "avg_pool": "funcnn.pool",
    **dict.fromkeys(
        ("output_size", "output_hw", "output_len", "pair", "positive_int", "resolve_padding", "resolve_padding_1d"),
        "funcnn.windows",
    ),
    "Pads": "funcnn.windows",
    "_as_nhwc": "funcnn.windows",
}


def __getattr__(name: str) -> Any:
    """conv.max_pool, conv.output_size, ...: the old names of pool's and windows' functions (they warn)."""
    if name in _MOVED:
        _deprecation.warn(f"funcnn.conv.{name}", f"{_MOVED[name]}.{name}")
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


Array = jax.Array


IMPLS = ("auto", "xla", "im2col", "mixed")


def check_impl(impl: str) -> str:
    """A validated convolution implementation name ("auto", "xla", "im2col" or "mixed")."""
    if not isinstance(impl, str) or impl not in IMPLS:
        raise ValueError(f"impl must be one of 'auto', 'xla', 'im2col', 'mixed', got impl={impl!r}")
    return impl


def resolve_impl(impl: str) -> str:
    """ "xla", "im2col" or "mixed" for an impl name; "auto" is mixed on the CPU backend, xla elsewhere.

    Example:
        >>> import jax
        >>> from funcnn import conv
        >>> conv.resolve_impl("xla")
        'xla'
        >>> conv.resolve_impl("auto") == {"cpu": "mixed"}.get(jax.default_backend(), "xla")
        True
        >>> conv.resolve_impl("fft")
        Traceback (most recent call last):
        ValueError: impl must be one of 'auto', 'xla', 'im2col', 'mixed', got impl='fft'
    """
    check_impl(impl)
    if impl == "auto":
        return "mixed" if jax.default_backend() == "cpu" else "xla"
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
        limit = (
            (xp.shape[0],) + tuple(o + (n - 1) * s + 1 for o, n, s in zip(offsets, out, strides, strict=True)) + (c,)
        )
        slices.append(jax.lax.slice(xp, start, limit, (1,) + tuple(strides) + (1,)))
    patches = slices[0] if len(slices) == 1 else jnp.concatenate(slices, axis=-1)
    return jnp.dot(patches, w.reshape(-1, w.shape[-1]))


def _xla_conv(x: Array, w: Array, strides: tuple, pads: tuple) -> Array:
    """XLA's convolution, channels-last (NWC/WIO or NHWC/HWIO by rank)."""
    dn = ("NWC", "WIO", "NWC") if x.ndim == 3 else ("NHWC", "HWIO", "NHWC")
    return jax.lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=dn)


def _im2col_conv(x: Array, w: Array, strides: tuple, pads: tuple, out: tuple) -> Array:
    """im2col: pad, gather the shifted slices, one matmul (see `_im2col`)."""
    return _im2col(jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),)), w, out, strides)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _mixed_conv(x: Array, w: Array, strides: tuple, pads: tuple, out: tuple) -> Array:
    """XLA's convolution forward and for dL/dx (stride 1), im2col's for dL/dw: the same function as
    both, each part on its fastest path on CPU (see the module docstring)."""
    return _xla_conv(x, w, strides, pads)


def _mixed_fwd(x: Array, w: Array, strides: tuple, pads: tuple, out: tuple) -> tuple[Array, tuple[Array, Array]]:
    return _xla_conv(x, w, strides, pads), (x, w)


def _mixed_bwd(strides: tuple, pads: tuple, out: tuple, res: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    x, w = res
    if any(s != 1 for s in strides):  # strided: both gradients as im2col's (XLA's would need lhs dilation)
        return jax.vjp(lambda x, w: _im2col_conv(x, w, strides, pads, out), x, w)[1](g)
    # dL/dx: XLA's convolution of g with the kernel flipped and its in/out axes swapped, written in
    # the canonical layout that XLA:CPU runs on Eigen inside loops too. dL/dw: im2col's (patches^T g).
    k = w.shape[:-2]
    w_t = jnp.swapaxes(jnp.flip(w, tuple(range(len(k)))), -1, -2)
    padding = tuple((kk - 1 - lo, n + lo - o) for kk, (lo, _), n, o in zip(k, pads, x.shape[1:-1], out, strict=True))
    dx = _xla_conv(g, w_t, strides, padding)
    dw = jax.vjp(lambda w: _im2col_conv(x, w, strides, pads, out), w)[1](g)[0]
    return dx, dw


_mixed_conv.defvjp(_mixed_fwd, _mixed_bwd)


def _conv(
    impl: str, x: Array, w: Array, strides: Sequence[int], pads: Sequence[Sequence[int]], out: Sequence[int]
) -> Array:
    """Dispatch to an implementation; x is (N, *spatial, C), already validated."""
    strides, out = tuple(strides), tuple(out)
    pads = tuple(tuple(int(v) for v in p) for p in pads)
    if impl == "im2col":
        return _im2col_conv(x, w, strides, pads, out)
    if impl == "mixed":
        return _mixed_conv(x, w, strides, pads, out)
    return _xla_conv(x, w, strides, pads)


def conv2d(
    x: Array, w: Array, b: Array | None = None, stride: Pair = 1, padding: Padding = "VALID", *, impl: str = "auto"
) -> Array:
    """Cross-correlation y[n,i,j,f] = sum_{p,q,c} x_pad[n, i*s+p, j*s+q, c] * w[p,q,c,f] (+ b[f]).

    x: (*batch, H, W, C_in) (no batch axis is fine); w: (kh, kw, C_in, C_out); b: (C_out,) or None.
    impl: "auto" (mixed on CPU, xla elsewhere), "xla", "im2col" or "mixed" (see the module docstring).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import conv
        >>> x = jnp.arange(16.0).reshape(4, 4, 1)  # one 4x4 grayscale image (H, W, C), no batch axis
        >>> w = jnp.ones((3, 3, 1, 1))  # sums each 3x3 window
        >>> conv.conv2d(x, w)[..., 0].tolist()  # VALID: (4 - 3) / 1 + 1 = 2 per side
        [[45.0, 54.0], [81.0, 90.0]]
        >>> conv.conv2d(x, w, impl="xla")[..., 0].tolist()  # XLA's convolution: the same sums
        [[45.0, 54.0], [81.0, 90.0]]
        >>> x8, w6, b6 = jnp.ones((8, 28, 28, 1)), jnp.ones((5, 5, 1, 6)), jnp.zeros(6)  # 8 images, 6 filters
        >>> conv.conv2d(x8, w6, b6, stride=2, padding="SAME", impl="xla").shape
        (8, 14, 14, 6)
    """
    impl = resolve_impl(impl)
    if w.ndim != 4:
        raise ValueError(f"kernel w must be (kh, kw, C_in, C_out), got shape {tuple(w.shape)}")
    x4, batch = windows._as_nhwc(x)
    if x4.shape[-1] != w.shape[2]:
        raise ValueError(
            f"input has {x4.shape[-1]} channels but the kernel expects C_in={w.shape[2]} "
            f"(x {tuple(x.shape)}, w {tuple(w.shape)})"
        )
    strides = windows.pair(stride, "stride")
    out_hw = windows.output_hw(x4.shape[1:3], w.shape[:2], strides, padding)  # validates sizes
    pads = windows.resolve_padding(padding, x4.shape[1:3], w.shape[:2], strides)
    y = _conv(impl, x4, w, strides, pads, out_hw)
    if b is not None:
        y = y + b.reshape(1, 1, 1, -1)
    return y.reshape(batch + y.shape[1:])


def conv1d(
    x: Array,
    w: Array,
    b: Array | None = None,
    stride: int = 1,
    padding: Padding | Sequence[int] = "VALID",
    *,
    impl: str = "auto",
) -> Array:
    """Cross-correlation y[n,i,f] = sum_{p,c} x_pad[n, i*s+p, c] * w[p,c,f] (+ b[f]).

    x: (*batch, L, C_in) (no batch axis is fine); w: (k, C_in, C_out); b: (C_out,) or None.
    -> (*batch, L_out, C_out) with L_out = floor((L + pad_total - k) / s) + 1.
    impl: "auto" (mixed on CPU, xla elsewhere), "xla", "im2col" or "mixed" (see the module docstring).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import conv
        >>> x = jnp.array([0.0, 1.0, 4.0, 9.0, 16.0])[:, None]  # (L, C_in) = (5, 1): the squares
        >>> w = jnp.array([-1.0, 1.0])[:, None, None]  # (k, C_in, C_out) = (2, 1, 1): x[i + 1] - x[i]
        >>> conv.conv1d(x, w)[:, 0].tolist()  # the odd numbers
        [1.0, 3.0, 5.0, 7.0]
        >>> conv.conv1d(x, w, padding="SAME")[:, 0].tolist()  # SAME pads (0, 1): a zero after the 16
        [1.0, 3.0, 5.0, 7.0, -16.0]
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
    out_len = windows.output_len(x3.shape[1], w.shape[0], stride, padding)  # validates stride, padding and sizes
    pads = windows.resolve_padding_1d(padding, x3.shape[1], w.shape[0], stride)
    y = _conv(impl, x3, w, (stride,), (pads,), (out_len,))
    if b is not None:
        y = y + b.reshape(1, 1, -1)
    return y.reshape(batch + y.shape[1:])
