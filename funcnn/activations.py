"""The course's activation functions and their analytic derivatives.

Every function maps an array elementwise to an array of the same shape and dtype. `jax.nn` is used
where it has the function; `derivative(name)` returns the hand-derived derivative, so a test can hold
it against `jax.grad`.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

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
    """
    return jnp.where(x >= 0, jnp.ones_like(x), jnp.zeros_like(x))


def prelu(x: Array, alpha: Array | float = 0.25) -> Array:
    """Parametric ReLU: x for x >= 0, alpha * x otherwise (alpha learnable in the `PReLU` layer)."""
    return jnp.where(x >= 0, x, alpha * x)


def elu(x: Array, alpha: float = 1.0) -> Array:
    """ELU: x for x > 0, alpha * (exp(x) - 1) otherwise."""
    return jax.nn.elu(x, alpha)


# Analytic derivatives, written from the formulas, never from jax.grad.
def _d_sigmoid(x):
    s = sigmoid(x)
    return s * (1 - s)


def _d_tanh(x):
    return 1 - jnp.tanh(x) ** 2


def _d_arctan(x):
    return 1 / (1 + x**2)


def _d_binary_step(x):
    return jnp.zeros_like(x)


def _d_relu(x):
    # 0 at the kink, matching jax.grad's convention for relu.
    return jnp.where(x > 0, jnp.ones_like(x), jnp.zeros_like(x))


def _d_prelu(x, alpha=0.25):
    return jnp.where(x >= 0, jnp.ones_like(x), alpha * jnp.ones_like(x))


def _d_elu(x, alpha=1.0):
    return jnp.where(x > 0, jnp.ones_like(x), alpha * jnp.exp(x))


def _d_softplus(x):
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

# Where the derivative is not defined; tests and plots compare away from these points.
KINKS: dict[str, tuple[float, ...]] = {
    "binary_step": (0.0,),
    "relu": (0.0,),
    "prelu": (0.0,),
    "elu": (0.0,),
}


def _check_name(name: str) -> None:
    if name not in FUNCTIONS:
        raise ValueError(f"unknown activation name={name!r}; expected one of {sorted(FUNCTIONS)}")


def get(name: str) -> Callable[..., Array]:
    """The activation function called `name` (one of `FUNCTIONS`)."""
    _check_name(name)
    return FUNCTIONS[name]


def derivative(name: str) -> Callable[..., Array]:
    """The analytic derivative d f(x) / dx of the activation called `name`, elementwise."""
    _check_name(name)
    return DERIVATIVES[name]
