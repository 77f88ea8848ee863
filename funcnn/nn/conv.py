"""Convolution and pooling layers over channels-last images (H, W, C) and sequences (L, C), on `funcnn.conv`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from funcnn import conv
from funcnn.nn.layer import Layer, ShapeError, as_shape, no_params


def _image_shape(kind: str, input_shape) -> tuple[int, int, int]:
    shape = as_shape(input_shape)
    if len(shape) != 3:
        raise ShapeError(
            f"{kind}: expected an image input shape (H, W, C), got {shape}; "
            "add a channel axis (e.g. (28, 28, 1)) for grayscale"
        )
    return shape


def _checked(kind, fn):
    try:
        return fn()
    except ValueError as e:
        if isinstance(e, ShapeError):
            raise
        raise ShapeError(f"{kind}: {e}") from None


def _checked_impl(kind: str, impl) -> None:
    try:
        conv.check_impl(impl)
    except ValueError as e:
        raise ValueError(f"{kind}: {e}") from None


def _sequence_shape(kind: str, input_shape) -> tuple[int, int]:
    shape = as_shape(input_shape)
    if len(shape) != 2:
        raise ShapeError(
            f"{kind}: expected a sequence input shape (L, C), got {shape}; "
            "add a channel axis (e.g. (100, 1)) for a single-channel sequence"
        )
    return shape


def _kernel_params(key, w_shape: tuple, w_init, b_init, use_bias: bool) -> dict:
    """{"w": w_init(w_shape), "b": b_init((features,))} (no "b" without bias); features = w_shape[-1]."""
    kw_, kb = jax.random.split(key)
    params = {"w": w_init(kw_, w_shape, jnp.float32)}
    if use_bias:
        params["b"] = b_init(kb, (w_shape[-1],), jnp.float32)
    return params


def Conv2D(
    features: int,
    kernel_size,
    stride=1,
    padding="VALID",
    w_init=jax.nn.initializers.glorot_normal(),
    b_init=jax.nn.initializers.zeros,
    use_bias: bool = True,
    impl: str = "auto",
) -> Layer:
    """2-D convolution, params {"w": (kh, kw, C_in, features), "b": (features,)} ("w" only when
    use_bias=False).

    impl: "auto" (default: im2col + one matmul on the CPU backend, `lax.conv_general_dilated`
    elsewhere), "xla" or "im2col"; equal up to float rounding (see `funcnn.conv`: on CPU, XLA's
    convolutions inside `lax.scan` are many times slower than im2col).

    x: (*batch, H, W, C_in) -> (*batch, H_out, W_out, features), with
    H_out = floor((H + pad_total - kh) / s) + 1 (see `funcnn.conv.output_size`).

    Initializers follow `jax.nn.initializers` (`init(key, shape, dtype)`; fan_in = kh * kw * C_in).
    For He/Kaiming init as PyTorch's `kaiming_normal_` (fan_in, untruncated normal; what OpenLTH
    uses) pass `w_init=jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")`;
    `jax.nn.initializers.he_normal()` has the same variance but draws from a truncated normal.
    """
    if not isinstance(features, int) or isinstance(features, bool) or features <= 0:
        raise ValueError(f"Conv2D: features must be a positive int, got features={features!r}")
    if not isinstance(use_bias, bool):
        raise ValueError(f"Conv2D: use_bias must be True or False, got use_bias={use_bias!r}")
    _checked_impl("Conv2D", impl)
    k_hw = conv.pair(kernel_size, "kernel_size")
    strides = conv.pair(stride, "stride")
    conv.resolve_padding(padding, (1, 1), (1, 1), (1, 1))  # reject unknown paddings now

    def output_shape(input_shape):
        h, w, _ = _image_shape("Conv2D", input_shape)
        return _checked("Conv2D", lambda: conv.output_hw((h, w), k_hw, strides, padding)) + (features,)

    def init(key, input_shape):
        output_shape(input_shape)
        return _kernel_params(key, k_hw + (input_shape[-1], features), w_init, b_init, use_bias)

    def apply(params, x, *, key=None, train=False):
        del key, train
        b = params["b"] if use_bias else None
        return _checked("Conv2D", lambda: conv.conv2d(x, params["w"], b, strides, padding, impl=impl))

    return Layer("conv2d", init, apply, output_shape)


def Conv1D(
    features: int,
    kernel_size: int,
    stride: int = 1,
    padding="VALID",
    w_init=jax.nn.initializers.glorot_normal(),
    b_init=jax.nn.initializers.zeros,
    use_bias: bool = True,
    impl: str = "auto",
) -> Layer:
    """1-D convolution, params {"w": (k, C_in, features), "b": (features,)} ("w" only when
    use_bias=False).

    x: (*batch, L, C_in) -> (*batch, L_out, features), with L_out = floor((L + pad_total - k) / s) + 1;
    padding is "VALID", "SAME", an int or a pair (left, right) (see `funcnn.conv.conv1d`).
    Initializers as in `Conv2D` (fan_in = k * C_in; He init: see there); impl as in `Conv2D`.
    """
    if not isinstance(features, int) or isinstance(features, bool) or features <= 0:
        raise ValueError(f"Conv1D: features must be a positive int, got features={features!r}")
    if not isinstance(use_bias, bool):
        raise ValueError(f"Conv1D: use_bias must be True or False, got use_bias={use_bias!r}")
    _checked_impl("Conv1D", impl)
    conv.positive_int(kernel_size, "kernel_size")
    conv.positive_int(stride, "stride")
    conv.resolve_padding_1d(padding, 1, 1, 1)  # reject unknown paddings now

    def output_shape(input_shape):
        n, _ = _sequence_shape("Conv1D", input_shape)
        return (_checked("Conv1D", lambda: conv.output_len(n, kernel_size, stride, padding)), features)

    def init(key, input_shape):
        output_shape(input_shape)
        return _kernel_params(key, (kernel_size, input_shape[-1], features), w_init, b_init, use_bias)

    def apply(params, x, *, key=None, train=False):
        del key, train
        b = params["b"] if use_bias else None
        return _checked("Conv1D", lambda: conv.conv1d(x, params["w"], b, stride, padding, impl=impl))

    return Layer("conv1d", init, apply, output_shape)


def _pool_layer(kind: str, fn, window, stride, padding) -> Layer:
    window = conv.pair(window, "window")
    stride = window if stride is None else conv.pair(stride, "stride")
    conv.resolve_padding(padding, (1, 1), (1, 1), (1, 1))

    def output_shape(input_shape):
        h, w, c = _image_shape(kind, input_shape)
        return _checked(kind, lambda: conv.output_hw((h, w), window, stride, padding)) + (c,)

    init = no_params(output_shape)

    def apply(params, x, *, key=None, train=False):
        del params, key, train
        return _checked(kind, lambda: fn(x, window, stride, padding))

    return Layer(kind.lower(), init, apply, output_shape)


def MaxPool(window=2, stride=None, padding="VALID") -> Layer:
    """Max pooling over H and W; the stride defaults to the window (halving H and W for 2x2)."""
    return _pool_layer("MaxPool", conv.max_pool, window, stride, padding)


def AvgPool(window=2, stride=None, padding="VALID") -> Layer:
    """Average pooling over H and W; the stride defaults to the window. With padding, each window
    is divided by its number of real (unpadded) inputs."""
    return _pool_layer("AvgPool", conv.avg_pool, window, stride, padding)


def GlobalAvgPool(spatial_dims: int = 2) -> Layer:
    """Mean over the spatial axes: (*batch, H, W, C) -> (*batch, C), y[c] = mean_{i,j} x[i, j, c].

    spatial_dims: how many axes before the channel axis are averaged: 2 (default) for images
    (H, W, C), 1 for sequences (L, C). Any number of leading batch axes is allowed.
    """
    if not isinstance(spatial_dims, int) or isinstance(spatial_dims, bool) or spatial_dims < 1:
        raise ValueError(f"GlobalAvgPool: spatial_dims must be a positive int, got spatial_dims={spatial_dims!r}")
    axes = {1: "L, C", 2: "H, W, C"}.get(spatial_dims, ", ".join(f"S{i}" for i in range(spatial_dims)) + ", C")

    def output_shape(input_shape):
        shape = as_shape(input_shape)
        if len(shape) != spatial_dims + 1:
            raise ShapeError(
                f"GlobalAvgPool(spatial_dims={spatial_dims}): expected an input shape ({axes}), "
                f"got {shape}" + ("; use GlobalAvgPool(spatial_dims=1) for sequences (L, C)" if len(shape) == 2 else "")
            )
        return shape[-1:]

    init = no_params(output_shape)

    def apply(params, x, *, key=None, train=False):
        del params, key, train
        if x.ndim < spatial_dims + 1:
            raise ShapeError(
                f"GlobalAvgPool(spatial_dims={spatial_dims}): expected input of shape "
                f"(*batch, {axes}), got {tuple(x.shape)}"
            )
        return jnp.mean(x, axis=tuple(range(x.ndim - spatial_dims - 1, x.ndim - 1)))

    return Layer("globalavgpool", init, apply, output_shape)
