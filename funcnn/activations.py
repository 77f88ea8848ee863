"""The course's activation functions and their analytic derivatives.

Every function maps an array elementwise to an array of the same shape and dtype. `jax.nn` is used
where it has the function; `derivative(name)` returns the hand-derived derivative, so a test can hold
it against `jax.grad`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "DERIVATIVES",
    "FUNCTIONS",
    "KINKS",
    "arctan",
    "binary_step",
    "derivative",
    "elu",
    "get",
    "prelu",
    "relu",
    "sigmoid",
    "softplus",
    "tanh",
]

Array = jax.Array

sigmoid = jax.nn.sigmoid
tanh = jnp.tanh
arctan = jnp.arctan
relu = jax.nn.relu
softplus = jax.nn.softplus


def binary_step(x: Array) -> Array:
    """Heaviside step: 1 where x >= 0, else 0 (dtype of x).

    Its gradient is zero almost everywhere (and undefined at 0): the step is flat on both sides, so
    `jax.grad` returns 0 and a network of binary-step units cannot learn by gradient descent. That is
    why the course replaces it with sigmoid-like units.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import activations
        >>> activations.binary_step(jnp.array([-2.0, 0.0, 3.0])).tolist()
        [0.0, 1.0, 1.0]
        >>> float(jax.grad(activations.binary_step)(0.5))
        0.0
    """
    return jnp.where(x >= 0, jnp.ones_like(x), jnp.zeros_like(x))


def prelu(x: Array, alpha: Array | float = 0.25) -> Array:
    """Parametric ReLU: x for x >= 0, alpha * x otherwise (alpha learnable in the `PReLU` layer).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import activations
        >>> activations.prelu(jnp.array([-2.0, 0.0, 3.0])).tolist()
        [-0.5, 0.0, 3.0]
        >>> activations.prelu(jnp.array([-2.0, 3.0]), alpha=0.1).tolist()
        [-0.2, 3.0]
    """
    return jnp.where(x >= 0, x, alpha * x)


def elu(x: Array, alpha: float = 1.0) -> Array:
    """ELU: x for x > 0, alpha * (exp(x) - 1) otherwise.

    Example:
        >>> import math
        >>> import jax.numpy as jnp
        >>> from funcnn import activations
        >>> y = activations.elu(jnp.array([-1.0, 2.0]))
        >>> round(float(y[0]), 6), round(math.exp(-1) - 1, 6), float(y[1])
        (-0.632121, -0.632121, 2.0)
    """
    return jax.nn.elu(x, alpha)


# Analytic derivatives, written from the formulas, never from jax.grad.
def _d_sigmoid(x: Array) -> Array:
    s = sigmoid(x)
    return s * (1 - s)


def _d_tanh(x: Array) -> Array:
    return 1 - jnp.tanh(x) ** 2


def _d_arctan(x: Array) -> Array:
    return 1 / (1 + x**2)


def _d_binary_step(x: Array) -> Array:
    return jnp.zeros_like(x)


def _d_relu(x: Array) -> Array:
    # 0 at the kink, matching jax.grad's convention for relu.
    return jnp.where(x > 0, jnp.ones_like(x), jnp.zeros_like(x))


def _d_prelu(x: Array, alpha: Array | float = 0.25) -> Array:
    return jnp.where(x >= 0, jnp.ones_like(x), alpha * jnp.ones_like(x))


def _d_elu(x: Array, alpha: float = 1.0) -> Array:
    return jnp.where(x > 0, jnp.ones_like(x), alpha * jnp.exp(x))


def _d_softplus(x: Array) -> Array:
    return sigmoid(x)


FUNCTIONS: dict[str, Callable[..., Array]] = {
    "sigmoid": sigmoid,
    "tanh": tanh,
    "arctan": arctan,
    "binary_step": binary_step,
    "relu": relu,
    "prelu": prelu,
    "elu": elu,
    "softplus": softplus,
}
"""Every activation by name: `get(name)` looks it up here."""

DERIVATIVES: dict[str, Callable[..., Array]] = {
    "sigmoid": _d_sigmoid,
    "tanh": _d_tanh,
    "arctan": _d_arctan,
    "binary_step": _d_binary_step,
    "relu": _d_relu,
    "prelu": _d_prelu,
    "elu": _d_elu,
    "softplus": _d_softplus,
}
"""The analytic derivative of each activation in `FUNCTIONS`, by name (see `derivative`)."""

KINKS: dict[str, tuple[float, ...]] = {
    "binary_step": (0.0,),
    "relu": (0.0,),
    "prelu": (0.0,),
    "elu": (0.0,),
}
"""Where the derivative is not defined; tests and plots compare away from these points."""


def _check_name(name: str) -> None:
    if name not in FUNCTIONS:
        raise ValueError(f"unknown activation name={name!r}; expected one of {sorted(FUNCTIONS)}")


def get(name: str) -> Callable[..., Array]:
    """The activation function called `name` (one of `FUNCTIONS`).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import activations
        >>> sorted(activations.FUNCTIONS)
        ['arctan', 'binary_step', 'elu', 'prelu', 'relu', 'sigmoid', 'softplus', 'tanh']
        >>> float(activations.get("sigmoid")(jnp.array(0.0)))
        0.5
    """
    _check_name(name)
    return FUNCTIONS[name]


def derivative(name: str) -> Callable[..., Array]:
    """The analytic derivative d f(x) / dx of the activation called `name`, elementwise.

    sigmoid'(0) = s(1 - s) = 1/4, as `jax.grad` finds; relu' is taken as 0 at the kink.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import activations
        >>> float(activations.derivative("sigmoid")(jnp.array(0.0)))
        0.25
        >>> float(jax.grad(activations.sigmoid)(0.0))
        0.25
        >>> activations.derivative("relu")(jnp.array([-1.0, 0.0, 2.0])).tolist()
        [0.0, 0.0, 1.0]
    """
    _check_name(name)
    return DERIVATIVES[name]
