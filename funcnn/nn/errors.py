"""What goes wrong with a layer, said in its name: `LayerError` and its kinds `ShapeError` and
`StateError`, and `named`, which prefixes a layer's path to the message as the error rises through
`serial` and the combinators; `through`, serial's loop, which names Flatten when one example without its
batch axis reached it (the layer after it is where the shapes stop fitting).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from funcnn import checks

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


def key_checked(kind: str, init: Callable[..., Any]) -> Callable[..., Any]:
    """A layer's `init` that first checks its key (`checks.prng_key`): an int or a non-key array is a
    `TypeError` naming `key` and how to make one, not JAX's own error from deep inside the initializers."""
    if getattr(init, "_checks_key", False):
        return init

    @functools.wraps(init)
    def checked(key: Any, input_shape: Any, *args: Any, **kwargs: Any) -> Any:
        checks.prng_key(key, who=f"{kind}.init(key, input_shape)")
        return init(key, input_shape, *args, **kwargs)

    checked._checks_key = True  # type: ignore[attr-defined]
    return checked


def through(
    names: Sequence[str], layers: Sequence[Any], x: Any, step: Callable[[int, Any], Any], with_state: bool = False
) -> Any:
    """x through every layer in turn, `x = step(i, x)` (with_state: `x, state[names[i]] = step(i, x)`, and
    (x, state) returned). A `ShapeError` after a Flatten is re-raised naming the Flatten when the same
    layers would have taken its input as one example (checked on shapes alone, `jax.eval_shape`): that
    input had no batch axis (Flatten() keeps the first axis as the batch axis, so a (28, 28, 1) image
    became 28 rows of 28 features)."""
    flat, state = None, {}  # flat: (index, input) of the last Flatten
    one = (lambda i, z: step(i, z)[0]) if with_state else step
    for i, layer in enumerate(layers):
        try:
            y = step(i, x)
        except ShapeError as e:
            raise (flat is not None and _unbatched(names, one, *flat, i, e)) or e from None
        if with_state:
            y, state[names[i]] = y
        flat = (i, x) if getattr(layer, "kind", None) == "flatten" else flat
        x = y
    return (x, state) if with_state else x


def _unbatched(names: Sequence[str], step: Callable[[int, Any], Any], f: int, x: Any, i: int, e: Exception) -> Any:
    shape = tuple(np.shape(x))

    def one_example(z: Any) -> Any:
        for j in range(f, i + 1):
            z = step(j, z)
        return z

    try:  # the layers from the Flatten to the one that failed, on x[None]
        jax.eval_shape(one_example, jax.ShapeDtypeStruct((1, *shape), getattr(x, "dtype", np.float32)))
    except (ValueError, TypeError):
        return None
    why = str(e).split(": ", 1)[-1]
    return ShapeError(
        f"layer '{names[f]}': input of shape {shape} has no batch axis (one example?): Flatten() keeps the first "
        f"axis as the batch axis, so layer '{names[i]}' failed ({why}); pass a batch of one, x[None] (or use "
        f"Flatten(ndim={len(shape)}) for any number of batch axes)"
    )
