"""The course's activations as parameterless layers (PReLU has a learnable `alpha`), Flatten and Reshape."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from funcnn import activations as act
from funcnn.nn.layer import Layer, Params, Shape, ShapeError, as_shape, no_params, stateless

__all__ = [
    "ELU",
    "Arctan",
    "BinaryStep",
    "Flatten",
    "PReLU",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Softplus",
    "Tanh",
]

Array = jax.Array


def Sigmoid() -> Layer:
    """1 / (1 + exp(-x)), elementwise.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Sigmoid
        >>> layer = Sigmoid()
        >>> params = layer.init(jax.random.key(0), (2,))
        >>> y = layer.apply(params, jnp.array([0.0, 2.0]))
        >>> params, [round(v, 4) for v in y.tolist()]
        ({}, [0.5, 0.8808])
    """
    return stateless("sigmoid", act.sigmoid)


def Tanh() -> Layer:
    """tanh(x), elementwise.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Tanh
        >>> layer = Tanh()
        >>> params = layer.init(jax.random.key(0), (2,))
        >>> y = layer.apply(params, jnp.array([0.0, 1.0]))
        >>> params, [round(v, 4) for v in y.tolist()]
        ({}, [0.0, 0.7616])
    """
    return stateless("tanh", act.tanh)


def Arctan() -> Layer:
    """arctan(x), elementwise.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Arctan
        >>> layer = Arctan()
        >>> params = layer.init(jax.random.key(0), (2,))
        >>> y = layer.apply(params, jnp.array([0.0, 1.0]))
        >>> params, [round(v, 4) for v in y.tolist()]  # arctan(1) = pi / 4
        ({}, [0.0, 0.7854])
    """
    return stateless("arctan", act.arctan)


def BinaryStep() -> Layer:
    """1 where x >= 0 else 0. Its gradient is zero almost everywhere, so nothing before it learns.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import BinaryStep
        >>> layer = BinaryStep()
        >>> params = layer.init(jax.random.key(0), (3,))
        >>> y = layer.apply(params, jnp.array([-1.0, 0.0, 2.0]))
        >>> params, y.tolist()
        ({}, [0.0, 1.0, 1.0])
    """
    return stateless("binary_step", act.binary_step)


def Relu() -> Layer:
    """max(x, 0), elementwise.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Relu
        >>> layer = Relu()
        >>> params = layer.init(jax.random.key(0), (3,))
        >>> y = layer.apply(params, jnp.array([-1.0, 0.0, 2.0]))
        >>> params, y.tolist()
        ({}, [0.0, 0.0, 2.0])
    """
    return stateless("relu", act.relu)


def Softplus() -> Layer:
    """log(1 + exp(x)), elementwise.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Softplus
        >>> layer = Softplus()
        >>> params = layer.init(jax.random.key(0), (2,))
        >>> y = layer.apply(params, jnp.array([0.0, 1.0]))
        >>> params, [round(v, 4) for v in y.tolist()]  # log 2, log(1 + e)
        ({}, [0.6931, 1.3133])
    """
    return stateless("softplus", act.softplus)


def ELU(alpha: float = 1.0) -> Layer:
    """x for x > 0, alpha * (exp(x) - 1) otherwise.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import ELU
        >>> layer = ELU()
        >>> params = layer.init(jax.random.key(0), (2,))
        >>> y = layer.apply(params, jnp.array([-1.0, 2.0]))
        >>> params, [round(v, 4) for v in y.tolist()]  # exp(-1) - 1, 2
        ({}, [-0.6321, 2.0])
    """
    if not alpha > 0:
        raise ValueError(f"ELU: alpha must be > 0, got alpha={alpha!r}")
    return stateless("elu", lambda x: act.elu(x, alpha))


def PReLU(alpha_init: float = 0.25) -> Layer:
    """x for x >= 0, alpha * x otherwise, with one learnable scalar: params `{"alpha": ()}`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import PReLU
        >>> layer = PReLU(alpha_init=0.25)
        >>> params = layer.init(jax.random.key(0), (2,))
        >>> params["alpha"].shape, float(params["alpha"])
        ((), 0.25)
        >>> layer.apply(params, jnp.array([-2.0, 3.0])).tolist()
        [-0.5, 3.0]
    """

    def init(key: Array, input_shape: Shape) -> Params:
        del key
        as_shape(input_shape)
        return {"alpha": jnp.asarray(alpha_init, jnp.float32)}

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del key, train
        return act.prelu(x, params["alpha"])

    return Layer("prelu", init, apply, as_shape)


def Flatten(ndim: int | None = None) -> Layer:
    """Flatten feature axes into one: (*batch, *feature_shape) -> (*batch, prod(feature_shape)).

    ndim: how many trailing axes are features. None (default) means every axis after the first, so
    the input has exactly one batch axis; give `ndim` (3 for (H, W, C) images) to allow any number of
    leading batch axes.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Flatten
        >>> layer = Flatten()
        >>> params = layer.init(jax.random.key(0), (2, 2, 3))
        >>> params, layer.output_shape((2, 2, 3)), layer.apply(params, jnp.ones((5, 2, 2, 3))).shape
        ({}, (12,), (5, 12))
        >>> Flatten(ndim=3).apply({}, jnp.ones((4, 5, 2, 2, 3))).shape  # two batch axes
        (4, 5, 12)
    """
    if ndim is not None and (not isinstance(ndim, int) or ndim < 1):
        raise ValueError(f"Flatten: ndim must be a positive int or None, got ndim={ndim!r}")

    def output_shape(input_shape: Shape) -> Shape:
        shape = as_shape(input_shape)
        if ndim is not None and len(shape) != ndim:
            raise ShapeError(f"Flatten(ndim={ndim}): expected a {ndim}-D input shape, got {shape}")
        return (math.prod(shape),)

    init = no_params(output_shape)

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del params, key, train
        n = x.ndim - 1 if ndim is None else ndim
        if n < 1 or x.ndim < n:
            raise ShapeError(f"Flatten: expected a batch axis and feature axes, got input shape {x.shape}")
        return x.reshape(x.shape[: x.ndim - n] + (-1,))

    return Layer("flatten", init, apply, output_shape)


def Reshape(shape: Sequence[int], ndim: int | None = None) -> Layer:
    """Reshape the feature axes: (*batch, *feature_shape) -> (*batch, *shape), prod(shape) = prod(feature_shape).

    ndim: how many trailing axes of the input are features, as in `Flatten`. None (default) means
    every axis after the first (exactly one batch axis); give `ndim` (e.g. 1 after Dense) to allow any
    number of leading batch axes.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Reshape
        >>> layer = Reshape((2, 3))
        >>> params = layer.init(jax.random.key(0), (6,))
        >>> y = layer.apply(params, jnp.arange(6.0).reshape(1, 6))
        >>> params, y.shape, y[0].tolist()
        ({}, (1, 2, 3), [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
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

    def output_shape(input_shape: Shape) -> Shape:
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

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del params, key, train
        n = x.ndim - 1 if ndim is None else ndim
        if n < 1 or x.ndim < n or math.prod(x.shape[x.ndim - n :]) != size:
            raise ShapeError(
                f"Reshape: cannot reshape input {tuple(x.shape)} to (*batch, "
                f"{', '.join(map(str, target))}) with {'one batch axis' if ndim is None else f'ndim={ndim}'}"
            )
        return x.reshape(x.shape[: x.ndim - n] + target)

    return Layer("reshape", init, apply, output_shape)
