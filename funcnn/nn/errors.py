"""What goes wrong with a layer, said in its name: `LayerError` and its kinds `ShapeError` and
`StateError`, and `named`, which prefixes a layer's path to the message as the error rises through
`serial` and the combinators.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["LayerError", "ShapeError", "StateError"]


class LayerError(ValueError):
    """Bad use of a layer; `serial` and the combinators prefix the layer's path to the message.

    The base of `ShapeError` and `StateError` (and a `ValueError`), so one `except` catches both.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn.nn import Dropout, LayerError, ShapeError
        >>> issubclass(ShapeError, LayerError), issubclass(LayerError, ValueError)
        (True, True)
        >>> try:
        ...     Dropout(0.5).apply({}, jnp.ones(3), train=True)  # no key to draw the mask from
        ... except LayerError as e:
        ...     print(e)
        Dropout(rate=0.5) needs a key in training mode (train=True): pass key= to apply, or ...
    """


class ShapeError(LayerError):
    """An input whose shape does not fit a layer.

    Example:
        >>> import jax
        >>> from funcnn.nn import Dense, Relu, serial
        >>> net = serial(Dense(4), Relu(), Dense(2))
        >>> net.init(jax.random.key(0), (28, 28))
        Traceback (most recent call last):
        ...
        funcnn.nn.errors.ShapeError: layer 'dense_0': Dense: expected a 1-D input shape (features,), got (28, 28); ...
    """


class StateError(LayerError):
    """A stateful layer used without its state (or with state that does not fit).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import BatchNorm, Dense, serial
        >>> net = serial(Dense(2), BatchNorm())
        >>> params = net.init(jax.random.key(0), (3,))
        >>> net.apply(params, jnp.ones((4, 3)))
        Traceback (most recent call last):
        ...
        funcnn.nn.errors.StateError: layer 'batchnorm_1': batchnorm carries state (running statistics) ...
    """


def named(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs), with a `LayerError`'s message prefixed by the layer path `name`.

    Nested networks build the whole path: `layer 'residual_3/main/conv2d_0': ...`.
    """
    try:
        return fn(*args, **kwargs)
    except LayerError as e:
        msg = str(e)
        prefix = "layer '"
        msg = f"{prefix}{name}/{msg[len(prefix) :]}" if msg.startswith(prefix) else f"{prefix}{name}': {msg}"
        raise type(e)(msg) from None
