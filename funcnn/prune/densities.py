"""Layer densities for a target overall density: uniform, Erdős–Rényi and Erdős–Rényi-Kernel (ERK).

Each prunable leaf gets a density d_l; the non-uniform rules make d_l proportional to a raw value,
d_l = ε raw_l, with ε chosen so that Σ d_l n_l = density · Σ n_l (n_l the leaf's size). A leaf whose
d_l would exceed 1 is kept dense and ε recomputed for the rest, until none exceeds 1 (RigL's rule).
From the shapes only: Python floats, no arrays read.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import numpy as np

from funcnn.prune.masks import check_arrays, check_spec, path_name, prunable

__all__ = ["DISTRIBUTIONS", "layer_densities"]

Params = Any

DISTRIBUTIONS = ("uniform", "erdos_renyi", "erk")
"""The layer-density rules `layer_densities` knows."""


def _raw(shape: tuple[int, ...], distribution: str, power: float) -> float:
    """ER: (n_in + n_out) / (n_in n_out) of the last two axes; ERK: (Σ shape / Π shape)^power."""
    if distribution == "erdos_renyi" and len(shape) >= 2:
        n_in, n_out = shape[-2:]
        return (n_in + n_out) / (n_in * n_out)
    size = int(np.prod(shape, dtype=np.int64)) or 1
    return ((sum(shape) or 1) / size) ** power  # a 0-d leaf counts as (1,)


def _capped(raw: dict[str, float], size: dict[str, int], density: float) -> dict[str, float]:
    """ε raw_l for each leaf with Σ d_l n_l = density Σ n_l, leaves over 1 kept dense (iterated)."""
    budget = density * sum(size.values())
    dense: set[str] = set()
    eps = 0.0
    while True:
        rest = [k for k in raw if k not in dense]
        if not rest:
            break
        eps = (budget - sum(size[k] for k in dense)) / sum(raw[k] * size[k] for k in rest)
        over = {k for k in rest if eps * raw[k] > 1}
        if not over:
            break
        dense |= over  # ε only grows as leaves are capped, so every leaf over 1 now stays over
    return {k: 1.0 if k in dense else eps * raw[k] for k in raw}


def layer_densities(
    params: Params,
    density: float | None = None,
    distribution: str = "erk",
    *,
    epsilon: float | None = None,
    power: float = 1.0,
    spec: Params | None = None,
) -> dict[str, float]:
    """{prunable leaf name: density}, for an overall `density` (or a given ε) under `distribution`.

    'uniform': d_l = density. 'erdos_renyi' (Mocanu et al. 2018): raw_l = (n_in + n_out)/(n_in n_out)
    of the leaf's last two axes (a conv kernel's channels). 'erk' (Evci et al. 2020): raw_l = (Σ dims /
    Π dims)^power, every axis counted (power < 1 softens it; 1 is `prune.erk_densities`). Then
    d_l = ε raw_l with ε fitting the overall density, capped at 1 with the rest redistributed.
    epsilon= instead of density= fixes ε itself (SET's ε = 13): d_l = min(1, ε raw_l). spec defaults
    to `prune.prunable(params)` (weight matrices and kernels). Python floats from the shapes only.

    Example: 'a' (2, 2) would get 2.17 and is capped; 'b' (10, 10) gets the rest, 48 of its 100.

        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"a": jnp.zeros((2, 2)), "b": jnp.zeros((10, 10))}
        >>> {k: round(d, 6) for k, d in prune.layer_densities(params, 0.5, "erk").items()}
        {'a': 1.0, 'b': 0.48}
        >>> prune.layer_densities(params, 0.5, "uniform")
        {'a': 0.5, 'b': 0.5}
        >>> {k: round(d, 3) for k, d in prune.layer_densities(params, distribution="erdos_renyi", epsilon=2).items()}
        {'a': 1.0, 'b': 0.4}
    """
    fn = "layer_densities"
    check_arrays(params, fn)
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"{fn}: distribution must be one of {DISTRIBUTIONS}, got distribution={distribution!r}")
    if (density is None) == (epsilon is None):
        raise ValueError(
            f"{fn}: give exactly one of density= and epsilon=, got density={density!r}, epsilon={epsilon!r}"
        )
    if density is not None and (
        not isinstance(density, numbers.Real) or isinstance(density, bool) or not 0 < density <= 1
    ):
        raise ValueError(f"{fn}: density must be in (0, 1], got density={density!r}")
    if epsilon is not None:
        if distribution == "uniform":
            raise ValueError(f"{fn}: epsilon= is for 'erdos_renyi' and 'erk'; 'uniform' takes density=")
        if not isinstance(epsilon, numbers.Real) or isinstance(epsilon, bool) or not epsilon > 0:
            raise ValueError(f"{fn}: epsilon must be > 0, got epsilon={epsilon!r}")
    if not isinstance(power, numbers.Real) or isinstance(power, bool) or not power > 0:
        raise ValueError(f"{fn}: power must be > 0, got power={power!r}")
    spec = prunable(params) if spec is None else spec
    check_spec(params, spec, fn)
    shapes = {
        path_name(path): tuple(int(d) for d in np.shape(leaf))
        for (path, leaf), s in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(spec), strict=True)
        if s
    }
    if not shapes:
        raise ValueError(f"{fn}: params have no prunable leaf (spec is all False)")
    if distribution == "uniform":
        return dict.fromkeys(shapes, float(density or 0.0))
    raw = {k: _raw(s, distribution, power) for k, s in shapes.items()}
    if epsilon is not None:
        return {k: min(1.0, epsilon * r) for k, r in raw.items()}
    if density == 1:
        return dict.fromkeys(shapes, 1.0)
    size = {k: int(np.prod(s, dtype=np.int64)) for k, s in shapes.items()}
    return _capped(raw, size, float(density or 0.0))
