"""Convolution and pooling layers over channels-last images (H, W, C) and sequences (L, C), on `funcnn.conv`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import jax
import jax.numpy as jnp

from funcnn import conv, pool, windows
from funcnn.nn.layer import Layer, Params, Shape, ShapeError, as_shape, no_params
from funcnn.windows import Padding, Pair

__all__ = ["AvgPool", "Conv1D", "Conv2D", "GlobalAvgPool", "MaxPool"]

Array = jax.Array
Initializer = Callable[..., Array]
T = TypeVar("T")
_glorot_normal = jax.nn.initializers.glorot_normal()  # the default w_init, built once (as a default argument was)


def _image_shape(kind: str, input_shape: Shape) -> tuple[int, int, int]:
    shape = as_shape(input_shape)
    if len(shape) != 3:
        raise ShapeError(
            f"{kind}: expected an image input shape (H, W, C), got {shape}; "
            "add a channel axis (e.g. (28, 28, 1)) for grayscale"
        )
    return shape


def _checked(kind: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except ValueError as e:
        if isinstance(e, ShapeError):
            raise
        raise ShapeError(f"{kind}: {e}") from None


def _checked_impl(kind: str, impl: str) -> None:
    try:
        conv.check_impl(impl)
    except ValueError as e:
        raise ValueError(f"{kind}: {e}") from None


def _sequence_shape(kind: str, input_shape: Shape) -> tuple[int, int]:
    shape = as_shape(input_shape)
    if len(shape) != 2:
        raise ShapeError(
            f"{kind}: expected a sequence input shape (L, C), got {shape}; "
            "add a channel axis (e.g. (100, 1)) for a single-channel sequence"
        )
    return shape


def _kernel_params(
    key: Array, w_shape: tuple[int, ...], w_init: Initializer, b_init: Initializer, use_bias: bool
) -> dict[str, Array]:
    """{"w": w_init(w_shape), "b": b_init((features,))} (no "b" without bias); features = w_shape[-1]."""
    kw_, kb = jax.random.split(key)
    params = {"w": w_init(kw_, w_shape, jnp.float32)}
    if use_bias:
        params["b"] = b_init(kb, (w_shape[-1],), jnp.float32)
    return params


def Conv2D(
    features: int,
    kernel_size: Pair,
    stride: Pair = 1,
    padding: Padding = "VALID",
    w_init: Initializer = _glorot_normal,
    b_init: Initializer = jax.nn.initializers.zeros,
    use_bias: bool = True,
    impl: str = "auto",
) -> Layer:
    """2-D convolution, params {"w": (kh, kw, C_in, features), "b": (features,)} ("w" only when
    use_bias=False).

    impl: "auto" (default: "mixed" on the CPU backend, `lax.conv_general_dilated` elsewhere), "xla",
    "im2col" or "mixed" (XLA's forward, im2col's gradients); equal up to float rounding (see
    `funcnn.conv`: on CPU, XLA's gradient convolutions inside `lax.scan` are many times slower).

    x: (*batch, H, W, C_in) -> (*batch, H_out, W_out, features), with
    H_out = floor((H + pad_total - kh) / s) + 1 (see `funcnn.windows.output_size`).

    Initializers follow `jax.nn.initializers` (`init(key, shape, dtype)`; fan_in = kh * kw * C_in).
    For He/Kaiming init as PyTorch's `kaiming_normal_` (fan_in, untruncated normal; what OpenLTH
    uses) pass `w_init=jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")`;
    `jax.nn.initializers.he_normal()` has the same variance but draws from a truncated normal.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Conv2D
        >>> layer = Conv2D(1, kernel_size=2, w_init=jax.nn.initializers.ones)
        >>> params = layer.init(jax.random.key(0), (3, 3, 1))
        >>> params["w"].shape, params["b"].shape
        ((2, 2, 1, 1), (1,))
        >>> y = layer.apply(params, jnp.ones((1, 3, 3, 1)))  # each output sums a 2x2 window of ones
        >>> y.shape, y[0, :, :, 0].tolist()
        ((1, 2, 2, 1), [[4.0, 4.0], [4.0, 4.0]])
        >>> Conv2D(8, 3, stride=2, padding="SAME").output_shape((28, 28, 1))
        (14, 14, 8)
    """
    if not isinstance(features, int) or isinstance(features, bool) or features <= 0:
        raise ValueError(f"Conv2D: features must be a positive int, got features={features!r}")
    if not isinstance(use_bias, bool):
        raise ValueError(f"Conv2D: use_bias must be True or False, got use_bias={use_bias!r}")
    _checked_impl("Conv2D", impl)
    k_hw = windows.pair(kernel_size, "kernel_size")
    strides = windows.pair(stride, "stride")
    windows.resolve_padding(padding, (1, 1), (1, 1), (1, 1))  # reject unknown paddings now

    def output_shape(input_shape: Shape) -> Shape:
        h, w, _ = _image_shape("Conv2D", input_shape)
        return _checked("Conv2D", lambda: windows.output_hw((h, w), k_hw, strides, padding)) + (features,)

    def init(key: Array, input_shape: Shape) -> Params:
        output_shape(input_shape)
        return _kernel_params(key, k_hw + (input_shape[-1], features), w_init, b_init, use_bias)

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del key, train
        b = params["b"] if use_bias else None
        return _checked("Conv2D", lambda: conv.conv2d(x, params["w"], b, strides, padding, impl=impl))

    return Layer("conv2d", init, apply, output_shape)


def Conv1D(
    features: int,
    kernel_size: int,
    stride: int = 1,
    padding: Padding = "VALID",
    w_init: Initializer = _glorot_normal,
    b_init: Initializer = jax.nn.initializers.zeros,
    use_bias: bool = True,
    impl: str = "auto",
) -> Layer:
    """1-D convolution, params {"w": (k, C_in, features), "b": (features,)} ("w" only when
    use_bias=False).

    x: (*batch, L, C_in) -> (*batch, L_out, features), with L_out = floor((L + pad_total - k) / s) + 1;
    padding is "VALID", "SAME", an int or a pair (left, right) (see `funcnn.conv.conv1d`).
    Initializers as in `Conv2D` (fan_in = k * C_in; He init: see there); impl as in `Conv2D`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Conv1D
        >>> layer = Conv1D(1, kernel_size=2, w_init=jax.nn.initializers.ones)
        >>> params = layer.init(jax.random.key(0), (4, 1))
        >>> params["w"].shape
        (2, 1, 1)
        >>> y = layer.apply(params, jnp.array([0.0, 1.0, 2.0, 3.0]).reshape(1, 4, 1))  # sums of neighbours
        >>> y.shape, y[0, :, 0].tolist()
        ((1, 3, 1), [1.0, 3.0, 5.0])
    """
    if not isinstance(features, int) or isinstance(features, bool) or features <= 0:
        raise ValueError(f"Conv1D: features must be a positive int, got features={features!r}")
    if not isinstance(use_bias, bool):
        raise ValueError(f"Conv1D: use_bias must be True or False, got use_bias={use_bias!r}")
    _checked_impl("Conv1D", impl)
    windows.positive_int(kernel_size, "kernel_size")
    windows.positive_int(stride, "stride")
    windows.resolve_padding_1d(padding, 1, 1, 1)  # reject unknown paddings now

    def output_shape(input_shape: Shape) -> Shape:
        n, _ = _sequence_shape("Conv1D", input_shape)
        return (_checked("Conv1D", lambda: windows.output_len(n, kernel_size, stride, padding)), features)

    def init(key: Array, input_shape: Shape) -> Params:
        output_shape(input_shape)
        return _kernel_params(key, (kernel_size, input_shape[-1], features), w_init, b_init, use_bias)

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del key, train
        b = params["b"] if use_bias else None
        return _checked("Conv1D", lambda: conv.conv1d(x, params["w"], b, stride, padding, impl=impl))

    return Layer("conv1d", init, apply, output_shape)


def _pool_layer(kind: str, fn: Callable[..., Array], window: Pair, stride: Pair | None, padding: Padding) -> Layer:
    window_hw = windows.pair(window, "window")
    stride_hw = window_hw if stride is None else windows.pair(stride, "stride")
    windows.resolve_padding(padding, (1, 1), (1, 1), (1, 1))

    def output_shape(input_shape: Shape) -> Shape:
        h, w, c = _image_shape(kind, input_shape)
        return _checked(kind, lambda: windows.output_hw((h, w), window_hw, stride_hw, padding)) + (c,)

    init = no_params(output_shape)

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del params, key, train
        return _checked(kind, lambda: fn(x, window_hw, stride_hw, padding))

    return Layer(kind.lower(), init, apply, output_shape)


def MaxPool(window: Pair = 2, stride: Pair | None = None, padding: Padding = "VALID") -> Layer:
    """Max pooling over H and W; the stride defaults to the window (halving H and W for 2x2).

    x: (*batch, H, W, C) -> (*batch, H_out, W_out, C); no params.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import MaxPool
        >>> layer = MaxPool(2)
        >>> params = layer.init(jax.random.key(0), (4, 4, 1))
        >>> y = layer.apply(params, jnp.arange(16.0).reshape(1, 4, 4, 1))
        >>> params, y.shape, y[0, :, :, 0].tolist()
        ({}, (1, 2, 2, 1), [[5.0, 7.0], [13.0, 15.0]])
    """
    return _pool_layer("MaxPool", pool.max_pool, window, stride, padding)


def AvgPool(window: Pair = 2, stride: Pair | None = None, padding: Padding = "VALID") -> Layer:
    """Average pooling over H and W; the stride defaults to the window. With padding, each window
    is divided by its number of real (unpadded) inputs.

    x: (*batch, H, W, C) -> (*batch, H_out, W_out, C); no params.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import AvgPool
        >>> layer = AvgPool(2)
        >>> params = layer.init(jax.random.key(0), (4, 4, 1))
        >>> y = layer.apply(params, jnp.arange(16.0).reshape(1, 4, 4, 1))
        >>> y.shape, y[0, :, :, 0].tolist()
        ((1, 2, 2, 1), [[2.5, 4.5], [10.5, 12.5]])
    """
    return _pool_layer("AvgPool", pool.avg_pool, window, stride, padding)


def GlobalAvgPool(spatial_dims: int = 2) -> Layer:
    """Mean over the spatial axes: (*batch, H, W, C) -> (*batch, C), y[c] = mean_{i,j} x[i, j, c].

    spatial_dims: how many axes before the channel axis are averaged: 2 (default) for images
    (H, W, C), 1 for sequences (L, C). Any number of leading batch axes is allowed.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import GlobalAvgPool
        >>> layer = GlobalAvgPool()
        >>> params = layer.init(jax.random.key(0), (2, 2, 2))
        >>> x = jnp.arange(8.0).reshape(1, 2, 2, 2)  # channel 0: 0, 2, 4, 6; channel 1: 1, 3, 5, 7
        >>> y = layer.apply(params, x)
        >>> y.shape, y.tolist()
        ((1, 2), [[3.0, 4.0]])
    """
    if not isinstance(spatial_dims, int) or isinstance(spatial_dims, bool) or spatial_dims < 1:
        raise ValueError(f"GlobalAvgPool: spatial_dims must be a positive int, got spatial_dims={spatial_dims!r}")
    axes = {1: "L, C", 2: "H, W, C"}.get(spatial_dims, ", ".join(f"S{i}" for i in range(spatial_dims)) + ", C")

    def output_shape(input_shape: Shape) -> Shape:
        shape = as_shape(input_shape)
        if len(shape) != spatial_dims + 1:
            raise ShapeError(
                f"GlobalAvgPool(spatial_dims={spatial_dims}): expected an input shape ({axes}), "
                f"got {shape}" + ("; use GlobalAvgPool(spatial_dims=1) for sequences (L, C)" if len(shape) == 2 else "")
            )
        return shape[-1:]

    init = no_params(output_shape)

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del params, key, train
        if x.ndim < spatial_dims + 1:
            raise ShapeError(
                f"GlobalAvgPool(spatial_dims={spatial_dims}): expected input of shape "
                f"(*batch, {axes}), got {tuple(x.shape)}"
            )
        return jnp.mean(x, axis=tuple(range(x.ndim - spatial_dims - 1, x.ndim - 1)))

    return Layer("globalavgpool", init, apply, output_shape)
