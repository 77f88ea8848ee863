"""The sparse-training methods, each an optax transformation around any other: static, gradual, SET, RigL.

Each builds a `Method` (plain values) and hands it to `transform`: one rule, so that a population whose
members differ in method, density and seed trains as one program (`stack`, `train.fit_population`).

    params = sparsity.sparsify(params, state)            # once, at the start: no forward pass is dense
    tx = sparsity.rigl(optax.adam(1e-3), density=0.1, every=100, fraction=0.3, key=key, end=7500)
    updates, state = tx.update(grads, state, params)     # grads: the dense gradient (unmasked)
    params = optax.apply_updates(params, updates)        # pruned weights are exactly 0.0

Steps count calls: the k-th call of `update` is step k (k = 1, 2, ...); masks change at the steps with
begin <= step <= end and step % every == 0.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from funcnn.sparsity.rule import Method, SparseTransformation, transform

__all__ = ["gradual", "rigl", "set", "static"]

Array = jax.Array
Params = Any


def _need_key(fn: str, key: Any) -> Array:
    if key is None:
        raise ValueError(f"{fn}: key is required (jax.random.key(seed)): it draws the random initial masks")
    return key


def static(
    inner: optax.GradientTransformation,
    *,
    density: float,
    key: Array,
    distribution: str = "erk",
    spec: Params | None = None,
) -> SparseTransformation:
    """Static sparse training: one random mask at init, never changed (SET's FixProb baseline).

    Each prunable leaf keeps round(d_l n_l) entries (at least 1) chosen uniformly at random, d_l the
    layer density of `distribution` ('uniform', 'erdos_renyi', 'erk'; `prune.layer_densities`) for the
    overall `density` in (0, 1]. u = M ⊙ inner.update(M ⊙ g), pruned weights landing on 0.0.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import sparsity
        >>> params = {"w": jnp.ones((10, 10)), "b": jnp.zeros(10)}
        >>> tx = sparsity.static(optax.adam(1e-3), density=0.3, key=jax.random.key(0), distribution="uniform")
        >>> state = tx.init(params)
        >>> int(sparsity.masks(state)["w"].sum()), int(sparsity.masks(state)["b"].sum())
        (30, 10)
    """
    fn = "sparsity.static"
    method = Method("static", density, distribution)
    return transform(inner, method, key=_need_key(fn, key), spec=spec, fn=fn)


def gradual(
    inner: optax.GradientTransformation,
    *,
    density: float,
    end: int,
    every: int,
    begin: int = 0,
    power: float = 3,
    distribution: str = "uniform",
    spec: Params | None = None,
) -> SparseTransformation:
    """Gradual magnitude pruning (Zhu & Gupta 2017): from dense to `density` by a polynomial schedule.

    At each update step t (t % every == 0, begin <= t <= end) each prunable leaf keeps its
    max(1, round((1 - s_t) n)) largest |w| among its surviving weights, s_t = `prune.polynomial_sparsity(t,
    1 - d, begin=begin, end=end, power=power)`, d its layer density ('uniform' as in the paper); masks
    only lose entries and are made from the params and gradient this call receives; the gradient step
    is applied. `end` must be an update step (a multiple of `every`), where s reaches 1 - d.

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import sparsity
        >>> params = {"w": jnp.arange(1.0, 17.0).reshape(4, 4)}
        >>> tx = sparsity.gradual(optax.sgd(0.0), density=0.25, begin=0, end=4, every=2)
        >>> state = tx.init(params)
        >>> counts = []
        >>> for _ in range(4):
        ...     updates, state = tx.update({"w": jnp.zeros((4, 4))}, state, params)
        ...     params = optax.apply_updates(params, updates)
        ...     counts.append(int(sparsity.masks(state)["w"].sum()))
        >>> counts  # s(2) = 0.75 (1 - 0.5^3) = 0.656: 6 kept; s(4) = 0.75: 4 kept, the largest
        [16, 6, 6, 4]
        >>> params["w"][3].tolist()
        [13.0, 14.0, 15.0, 16.0]
    """
    fn = "sparsity.gradual"
    if isinstance(every, int) and isinstance(end, int) and every >= 1 and end % every:
        raise ValueError(
            f"{fn}: end must be an update step (a multiple of every) so that the density is reached, got "
            f"end={end}, every={every}; try end={end - end % every}"
        )
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(f"{fn}: every must be an int >= 1, got every={every!r}")
    method = Method("gradual", density, distribution, gradual=True, power=power, every=every, begin=begin, end=end)
    return transform(inner, method, spec=spec, fn=fn)


def set(
    inner: optax.GradientTransformation,
    *,
    density: float,
    every: int,
    fraction: float,
    key: Array,
    end: int,
    begin: int = 0,
    distribution: str = "erk",
    anneal: str = "cosine",
    skip_step: bool = False,
    signed: bool = True,
    regrow_std: float = 0.1,
    spec: Params | None = None,
) -> SparseTransformation:
    """SET (Mocanu et al. 2018): drop the weights closest to zero, regrow as many at random.

    At each update step, per prunable leaf: drop floor(n_pos f) of the smallest positive and floor(n_neg f)
    of the largest negative weights, f = `prune.cosine_fraction(step, fraction, end)` (anneal='constant':
    f = fraction, the ζ of SET's code); regrow as many uniformly among all other entries, the just
    dropped included. Defaults follow SET's original code: the gradient step is applied and then the
    masks are made from the stepped weights (skip_step=False; jaxpruner skips it), the two signs are
    dropped separately (signed=True; signed=False drops the lowest |w|, jaxpruner's), and regrown weights
    start at N(0, 1) · 0.1 (regrow_std=0.1; 0.0 starts them at 0.0, jaxpruner's). Every optimizer moment
    of a regrown weight is zero afterwards (any optax state; a weight dropped and regrown in the same
    step keeps its value and moments, as in RigL's code). Initial masks: random, round(d_l n_l) per leaf.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import sparsity
        >>> params = {"w": jax.random.normal(jax.random.key(1), (8, 8))}
        >>> tx = sparsity.set(optax.sgd(0.1, momentum=0.9), density=0.25, every=1, fraction=0.3,
        ...                   key=jax.random.key(0), end=10, anneal="constant", distribution="uniform")
        >>> state = tx.init(params)
        >>> params = sparsity.sparsify(params, state)
        >>> before = sparsity.masks(state)["w"]
        >>> updates, state = tx.update({"w": jnp.ones((8, 8))}, state, params)
        >>> after = sparsity.masks(state)["w"]
        >>> int(before.sum()), int(after.sum()), int((after & ~before).sum())  # 16 kept; 4 regrown
        (16, 16, 4)
    """
    fn = "sparsity.set"
    method = Method(
        "set", density, distribution, fraction, anneal, "random", regrow_std, signed, skip_step, False, 3.0,
        every, begin, end,
    )  # fmt: skip
    _check_every(fn, every)
    return transform(inner, method, key=_need_key(fn, key), spec=spec, fn=fn)


def rigl(
    inner: optax.GradientTransformation,
    *,
    density: float,
    every: int,
    fraction: float,
    key: Array,
    end: int,
    begin: int = 0,
    distribution: str = "erk",
    anneal: str = "cosine",
    skip_step: bool = True,
    regrow_std: float = 0.0,
    spec: Params | None = None,
) -> SparseTransformation:
    """RigL (Evci et al. 2020): drop the smallest |w|, regrow where the dense gradient is largest.

    At each update step, per prunable leaf: drop floor(n_on f) kept weights with the lowest |w|,
    f = `prune.cosine_fraction(step, fraction, end)`; grow as many with the highest |g| among all other
    entries (the just dropped included), g the gradient this update receives: the dense gradient w.r.t.
    the masked weights, as long as nothing masks it before (funcnn's step does not). Regrown weights
    start at 0.0 and every optimizer moment of them is zero afterwards (found structurally in any optax
    state). Defaults follow RigL's code: no gradient step on a mask-update step (skip_step=True; False
    steps first with the old masks, as SET's code), zeros for new weights; ties go to the lower flat
    index instead of RigL's tiny noise. Initial masks: random with ERK layer densities.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import sparsity
        >>> params = {"w": jnp.ones((4, 4))}
        >>> tx = sparsity.rigl(optax.adam(0.1), density=0.5, every=1, fraction=0.5, key=jax.random.key(0), end=10)
        >>> state = tx.init(params)
        >>> params = sparsity.sparsify(params, state)
        >>> grads = {"w": jnp.arange(16.0).reshape(4, 4)}  # the largest |g| at the end
        >>> updates, state = tx.update(grads, state, params)
        >>> new = sparsity.masks(state)["w"]
        >>> int(new.sum()), bool(new[3, 3])  # count kept; the largest gradient's entry grown
        (8, True)
    """
    fn = "sparsity.rigl"
    method = Method(
        "rigl", density, distribution, fraction, anneal, "gradient", regrow_std, False, skip_step, False, 3.0,
        every, begin, end,
    )  # fmt: skip
    _check_every(fn, every)
    return transform(inner, method, key=_need_key(fn, key), spec=spec, fn=fn)


def _check_every(fn: str, every: Any) -> None:
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(f"{fn}: every must be an int >= 1, got every={every!r}")
