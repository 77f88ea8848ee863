"""Convolution and pooling layers over channels-last images (H, W, C), on `funcnn.conv`."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from funcnn import conv
from funcnn.nn.layer import Layer, ShapeError, as_shape


def _image_shape(kind: str, input_shape) -> tuple[int, int, int]:
    shape = as_shape(input_shape)
    if len(shape) != 3:
        raise ShapeError(f"{kind}: expected an image input shape (H, W, C), got {shape}; "
                         "add a channel axis (e.g. (28, 28, 1)) for grayscale")
    return shape


def _checked(kind, fn):
    try:
        return fn()
    except ValueError as e:
        if isinstance(e, ShapeError):
            raise
        raise ShapeError(f"{kind}: {e}") from None


def Conv2D(
    features: int,
    kernel_size,
    stride=1,
    padding="VALID",
    w_init=jax.nn.initializers.glorot_normal(),
    b_init=jax.nn.initializers.zeros,
) -> Layer:
    """2-D convolution, params {"w": (kh, kw, C_in, features), "b": (features,)}.

    x: (*batch, H, W, C_in) -> (*batch, H_out, W_out, features), with
    H_out = floor((H + pad_total - kh) / s) + 1 (see `funcnn.conv.output_size`).
    """
    if not isinstance(features, int) or features <= 0:
        raise ValueError(f"Conv2D: features must be a positive int, got features={features!r}")
    k_hw = conv.pair(kernel_size, "kernel_size")
    strides = conv.pair(stride, "stride")
    conv.resolve_padding(padding, (1, 1), (1, 1), (1, 1))  # reject unknown paddings now

    def output_shape(input_shape):
        h, w, _ = _image_shape("Conv2D", input_shape)
        return _checked("Conv2D", lambda: conv.output_hw((h, w), k_hw, strides, padding)) + (features,)

    def init(key, input_shape):
        output_shape(input_shape)
        c_in = input_shape[-1]
        kw_, kb = jax.random.split(key)
        return {"w": w_init(kw_, k_hw + (c_in, features), jnp.float32), "b": b_init(kb, (features,), jnp.float32)}

    def apply(params, x, *, key=None, train=False):
        del key, train
        return _checked("Conv2D", lambda: conv.conv2d(x, params["w"], params["b"], strides, padding))

    return Layer("conv2d", init, apply, output_shape)


def _pool_layer(kind: str, fn, window, stride, padding) -> Layer:
    window = conv.pair(window, "window")
    stride = window if stride is None else conv.pair(stride, "stride")
    conv.resolve_padding(padding, (1, 1), (1, 1), (1, 1))

    def output_shape(input_shape):
        h, w, c = _image_shape(kind, input_shape)
        return _checked(kind, lambda: conv.output_hw((h, w), window, stride, padding)) + (c,)

    def init(key, input_shape):
        del key
        output_shape(input_shape)
        return {}

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
