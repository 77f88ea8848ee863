"""Initializers of the reference implementations: OpenLTH's (PyTorch's kaiming_normal_, BatchNorm
scale ~ U[0, 1)) and PyTorch's default nn.Linear / nn.Conv init.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

__all__: list[str] = []  # building blocks of the factories, not part of the API

# PyTorch's kaiming_normal_ (fan_in, gain sqrt(2), untruncated normal): OpenLTH's conv/linear init.
# jax.nn.initializers.he_normal() has the same variance but draws from a truncated normal.
KAIMING_NORMAL = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")
# OpenLTH's BatchNorm init: scale (gamma) ~ U[0, 1), offset (beta) = 0.
BN_SCALE_INIT = jax.nn.initializers.uniform(1.0)
# PyTorch's default nn.Linear / nn.Conv weight init, kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
TORCH_W_INIT = jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int) -> Callable[..., jax.Array]:
    """PyTorch's default bias init for a layer with `fan_in` inputs: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init
