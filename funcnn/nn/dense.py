"""Dense (fully connected) layer: y = x @ w + b."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from funcnn.nn.layer import Layer, Params, Shape, ShapeError, add_bias, as_shape, check_input

__all__ = ["Dense"]

Initializer = Callable[..., jax.Array]
_glorot_normal = jax.nn.initializers.glorot_normal()  # the default w_init, built once (as a default argument was)


def Dense(
    features: int,
    w_init: Initializer = _glorot_normal,
    b_init: Initializer = jax.nn.initializers.zeros,
) -> Layer:
    """A dense layer with params `{"w": (fan_in, features), "b": (features,)}`, `y = x @ w + b`.

    x: (*batch, fan_in) -> y: (*batch, features). Initializers follow `jax.nn.initializers`
    (`init(key, shape, dtype)`); the default is Glorot normal for w and zeros for b.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Dense
        >>> layer = Dense(2, w_init=jax.nn.initializers.ones)
        >>> params = layer.init(jax.random.key(0), (3,))
        >>> params["w"].shape, params["b"].shape
        ((3, 2), (2,))
        >>> layer.apply(params, jnp.array([[1.0, 2.0, 3.0]])).tolist()  # 1 + 2 + 3 per unit, bias 0
        [[6.0, 6.0]]
    """
    if not isinstance(features, int) or isinstance(features, bool) or features <= 0:
        raise ValueError(f"Dense: features must be a positive int, got features={features!r}")

    def output_shape(input_shape: Shape) -> Shape:
        shape = as_shape(input_shape)
        if len(shape) != 1:
            raise ShapeError(f"Dense: expected a 1-D input shape (features,), got {shape}; add Flatten() before it?")
        return (features,)

    def init(key: jax.Array, input_shape: Shape) -> Params:
        output_shape(input_shape)  # validates the rank
        (fan_in,) = as_shape(input_shape)
        kw, kb = jax.random.split(key)
        return {"w": w_init(kw, (fan_in, features), jnp.float32), "b": b_init(kb, (features,), jnp.float32)}

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        del key, train
        fan_in = params["w"].shape[0]
        check_input("Dense", x, (fan_in,), "add Flatten() before it?" if x.ndim > 2 else "")
        return add_bias(x @ params["w"], params["b"])

    return Layer("dense", init, apply, output_shape)
