"""The course's activations as parameterless layers (PReLU has a learnable `alpha`), Flatten and Reshape."""

from __future__ import annotations

import math

import jax.numpy as jnp

from funcnn import activations as act
from funcnn.nn.layer import Layer, ShapeError, as_shape, no_params, stateless


def Sigmoid() -> Layer:
    """1 / (1 + exp(-x)), elementwise."""
    return stateless("sigmoid", act.sigmoid)


def Tanh() -> Layer:
    """tanh(x), elementwise."""
    return stateless("tanh", act.tanh)


def Arctan() -> Layer:
    """arctan(x), elementwise."""
    return stateless("arctan", act.arctan)


def BinaryStep() -> Layer:
    """1 where x >= 0 else 0. Its gradient is zero almost everywhere, so nothing before it learns."""
    return stateless("binary_step", act.binary_step)


def Relu() -> Layer:
    """max(x, 0), elementwise."""
    return stateless("relu", act.relu)


def Softplus() -> Layer:
    """log(1 + exp(x)), elementwise."""
    return stateless("softplus", act.softplus)


def ELU(alpha: float = 1.0) -> Layer:
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    if not alpha > 0:
        raise ValueError(f"ELU: alpha must be > 0, got alpha={alpha!r}")
    return stateless("elu", lambda x: act.elu(x, alpha))


def PReLU(alpha_init: float = 0.25) -> Layer:
    """x for x >= 0, alpha * x otherwise, with one learnable scalar: params `{"alpha": ()}`."""

    def init(key, input_shape):
        del key
        as_shape(input_shape)
        return {"alpha": jnp.asarray(alpha_init, jnp.float32)}

    def apply(params, x, *, key=None, train=False):
        del key, train
        return act.prelu(x, params["alpha"])

    return Layer("prelu", init, apply, as_shape)


def Flatten(ndim: int | None = None) -> Layer:
    """Flatten feature axes into one: (*batch, *feature_shape) -> (*batch, prod(feature_shape)).

    ndim: how many trailing axes are features. None (default) means every axis after the first, so
    the input has exactly one batch axis; give `ndim` (3 for (H, W, C) images) to allow any number of
    leading batch axes.
    """
    if ndim is not None and (not isinstance(ndim, int) or ndim < 1):
        raise ValueError(f"Flatten: ndim must be a positive int or None, got ndim={ndim!r}")

    def output_shape(input_shape):
        shape = as_shape(input_shape)
        if ndim is not None and len(shape) != ndim:
            raise ShapeError(f"Flatten(ndim={ndim}): expected a {ndim}-D input shape, got {shape}")
        return (math.prod(shape),)

    init = no_params(output_shape)

    def apply(params, x, *, key=None, train=False):
        del params, key, train
        n = x.ndim - 1 if ndim is None else ndim
        if n < 1 or x.ndim < n:
            raise ShapeError(f"Flatten: expected a batch axis and feature axes, got input shape {x.shape}")
        return x.reshape(x.shape[: x.ndim - n] + (-1,))

    return Layer("flatten", init, apply, output_shape)


def Reshape(shape, ndim: int | None = None) -> Layer:
    """Reshape the feature axes: (*batch, *feature_shape) -> (*batch, *shape), prod(shape) = prod(feature_shape).

    ndim: how many trailing axes of the input are features, as in `Flatten`. None (default) means
    every axis after the first (exactly one batch axis); give `ndim` (e.g. 1 after Dense) to allow any
    number of leading batch axes.
    """
    try:
        target = tuple(shape)
    except TypeError:
        target = None
    if not target or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in target):
        raise ValueError(f"Reshape: shape must be a non-empty tuple of positive ints, got shape={shape!r}")
    if ndim is not None and (not isinstance(ndim, int) or isinstance(ndim, bool) or ndim < 1):
        raise ValueError(f"Reshape: ndim must be a positive int or None, got ndim={ndim!r}")
    size = math.prod(target)

    def output_shape(input_shape):
        in_shape = as_shape(input_shape)
        if ndim is not None and len(in_shape) != ndim:
            raise ShapeError(f"Reshape(ndim={ndim}): expected a {ndim}-D input shape, got {in_shape}")
        if math.prod(in_shape) != size:
            raise ShapeError(
                f"Reshape: cannot reshape input shape {in_shape} ({math.prod(in_shape)} values) "
                f"to shape {target} ({size} values)"
            )
        return target

    init = no_params(output_shape)

    def apply(params, x, *, key=None, train=False):
        del params, key, train
        n = x.ndim - 1 if ndim is None else ndim
        if n < 1 or x.ndim < n or math.prod(x.shape[x.ndim - n :]) != size:
            raise ShapeError(
                f"Reshape: cannot reshape input {tuple(x.shape)} to (*batch, "
                f"{', '.join(map(str, target))}) with {'one batch axis' if ndim is None else f'ndim={ndim}'}"
            )
        return x.reshape(x.shape[: x.ndim - n] + target)

    return Layer("reshape", init, apply, output_shape)
