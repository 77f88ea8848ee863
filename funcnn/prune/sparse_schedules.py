"""Schedules of sparse training: Zhu & Gupta's polynomial sparsity and RigL's cosine drop fraction.

Both are pure functions of the step, jittable and vmappable; the step and every number may be an array
(traced under `jit` or `vmap`). Python numbers are checked at the call, with the argument and its value
in the message.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["cosine_fraction", "polynomial_sparsity"]

Array = jax.Array
Scalar = float | int | Array


def _check_unit(fn: str, name: str, value: Any, low_open: bool = False) -> None:
    """ValueError unless a Python number `value` is in [0, 1] ((0, 1] with low_open); arrays pass."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
        ok = (0 < v <= 1) if low_open else (0 <= v <= 1)
        if not ok:
            interval = "(0, 1]" if low_open else "[0, 1]"
            raise ValueError(f"{fn}: {name} must be in {interval}, got {name}={value!r}")


def _check_steps(fn: str, begin: Any, end: Any) -> None:
    for name, value in (("begin", begin), ("end", end)):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"{fn}: {name} must be >= 0, got {name}={value!r}")
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (begin, end)) and end < begin:
        raise ValueError(f"{fn}: end must be >= begin, got begin={begin!r}, end={end!r}")


def polynomial_sparsity(
    step: Scalar, final: Scalar, *, initial: Scalar = 0.0, begin: Scalar, end: Scalar, power: Scalar = 3
) -> Array:
    """Zhu & Gupta's (2017) sparsity at `step`, as TF Model Optimization's `PolynomialDecay` computes it.

        s = final + (initial - final) (1 - p)^power,   p = clip((step - begin) / (end - begin), 0, 1)

    so s = initial up to `begin` and s = final from `end` on (with end == begin, p = 1 from `begin` on).
    Every argument may be a Python number or an array (float32 result, shape of the broadcast arguments).
    jaxpruner's `PolynomialSchedule` uses p = (step + 1 - begin) / (end - begin) instead: its value at
    step t is this function's at step t + 1 (its test's 0.4375 at step 9 of 20 is 0.4168 here).

    Example:
        >>> from funcnn import prune
        >>> round(float(prune.polynomial_sparsity(9, 0.5, begin=0, end=20)), 4)  # 0.5 (1 - 0.55^3)
        0.4168
        >>> [round(float(prune.polynomial_sparsity(t, 0.9, begin=100, end=300)), 3) for t in (0, 100, 200, 300, 400)]
        [0.0, 0.0, 0.787, 0.9, 0.9]
    """
    fn = "polynomial_sparsity"
    _check_unit(fn, "final", final)
    _check_unit(fn, "initial", initial)
    _check_steps(fn, begin, end)
    if isinstance(power, numbers.Real) and not isinstance(power, bool) and not power > 0:
        raise ValueError(f"{fn}: power must be > 0, got power={power!r}")
    step, begin, end = (jnp.asarray(v, jnp.float32) for v in (step, begin, end))
    length = end - begin
    # end == begin: a step function at begin (p = 1 from there), not a division by zero
    p = jnp.where(length > 0, jnp.clip((step - begin) / jnp.where(length > 0, length, 1.0), 0.0, 1.0), step >= begin)
    final, initial = jnp.asarray(final, jnp.float32), jnp.asarray(initial, jnp.float32)
    return final + (initial - final) * (1.0 - p) ** jnp.asarray(power, jnp.float32)


def cosine_fraction(step: Scalar, fraction: Scalar, end: Scalar) -> Array:
    """RigL's drop fraction at `step` (Evci et al. 2020): fraction/2 (1 + cos(π min(step, end) / end)).

    `fraction` (α, 0.3 in the paper) at step 0, decaying to 0 at `end` and staying 0 after. Every
    argument may be a Python number or an array; float32 result. end must be > 0.

    Example:
        >>> from funcnn import prune
        >>> [round(float(prune.cosine_fraction(t, 0.3, 1000)), 4) for t in (0, 250, 500, 1000, 2000)]
        [0.3, 0.2561, 0.15, 0.0, 0.0]
    """
    fn = "cosine_fraction"
    _check_unit(fn, "fraction", fraction)
    if isinstance(end, numbers.Real) and not isinstance(end, bool) and not end > 0:
        raise ValueError(f"{fn}: end must be > 0, got end={end!r}")
    step, end = jnp.asarray(step, jnp.float32), jnp.asarray(end, jnp.float32)
    return jnp.asarray(fraction, jnp.float32) / 2 * (1 + jnp.cos(jnp.pi * jnp.minimum(step, end) / end))
