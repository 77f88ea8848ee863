"""Straight-through sparse training: a sparse forward pass, dense weights updated (magnitude STE, N:M,
SR-STE's decay of the pruned weights).

The forward pass uses w̃ = M(w) ⊙ w, M recomputed from |w| at every step (the top round(d n) of each
prunable leaf, or n of every m along an axis); the gradient w.r.t. w̃ passes straight through to the
dense w (`ste_weights`). `ste` is the optax side: it adds SR-STE's λ (1 - M) ⊙ w to the gradient
(Zhou et al. 2021; λ = 0 is plain STE) and keeps the masks of the weights it last saw in its state.

    tx = sparsity.ste(optax.adam(1e-3), n=2, m=4)
    loss = lambda p: loss_fn(apply(tx.weights(p), x), y)    # sparse forward, dense gradient
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn.prune.drop_grow import n_of_m, take_lowest
from funcnn.prune.masks import check_arrays, check_spec, is_floating, prunable

__all__ = ["SteState", "SteTransformation", "ste", "ste_masks", "ste_weights"]

Array = jax.Array
Params = Any


class SteState(NamedTuple):
    """step: int32 update calls so far; masks: those of the params the last update received (the forward
    pass's; all True at init); inner_state: the wrapped transformation's.

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import sparsity
        >>> state = sparsity.ste(optax.sgd(0.1), density=0.5).init({"w": jnp.ones((2, 2))})
        >>> int(state.step), state.masks["w"].tolist()
        (0, [[True, True], [True, True]])
    """

    step: Array
    masks: Any
    inner_state: Any


def _check(fn: str, density: Any, n: Any, m: Any) -> None:
    if (density is None) == (n is None and m is None):
        raise ValueError(
            f"{fn}: give density= (magnitude STE) or n= and m= (N:M), got density={density!r}, n={n!r}, m={m!r}"
        )
    if density is not None:
        if not isinstance(density, numbers.Real) or isinstance(density, bool) or not 0 < float(density) <= 1:
            raise ValueError(f"{fn}: density must be in (0, 1], got density={density!r}")
    else:
        for name, value in (("n", n), ("m", m)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{fn}: {name} must be a positive int, got {name}={value!r}")
        if n > m:
            raise ValueError(f"{fn}: n must be <= m, got n={n}, m={m}")


def ste_masks(
    params: Params,
    *,
    density: float | None = None,
    n: int | None = None,
    m: int | None = None,
    axis: int = -2,
    spec: Params | None = None,
) -> Params:
    """The STE's masks of `params`: per prunable leaf its max(1, round(density · size)) largest |w|
    (ties: the lower flat index first), or the n largest |w| of every m consecutive entries along `axis`
    (default -2: a Dense (in, out) matrix's and an HWIO kernel's input axis). All True elsewhere.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import sparsity
        >>> w = {"w": jnp.array([[0.1, 4.0], [-3.0, 0.2], [0.5, -0.3], [2.0, 1.0]])}
        >>> sparsity.ste_masks(w, n=2, m=4)["w"].astype(int).tolist()  # 2 of 4 along the inputs, per output
        [[0, 1], [1, 0], [0, 0], [1, 1]]
    """
    fn = "sparsity.ste_masks"
    _check(fn, density, n, m)
    check_arrays(params, fn)
    spec = prunable(params) if spec is None else spec
    check_spec(params, spec, fn)

    def one(w: Any, flag: bool) -> Array:
        shape = np.shape(w)
        if not flag:
            return jnp.ones(shape, bool)
        score = jnp.abs(jnp.asarray(w, jnp.float32))
        if density is None:
            return n_of_m(score, int(n), int(m), axis=axis)  # type: ignore[arg-type]
        size = int(np.prod(shape, dtype=np.int64))
        keep = max(1, round(density * size))
        return take_lowest(-score.reshape(-1), jnp.ones(size, bool), keep).reshape(shape)

    leaves, treedef = jax.tree.flatten(params)
    return jax.tree.unflatten(treedef, [one(w, f) for w, f in zip(leaves, jax.tree.leaves(spec), strict=True)])


def _straight_through(params: Params, masks: Params) -> Params:
    def one(w: Any, mk: Array) -> Any:
        if not is_floating(w):
            return w
        return w + jax.lax.stop_gradient(jnp.where(mk, w, jnp.zeros_like(w)) - w)

    return jax.tree.map(one, params, masks)


def ste_weights(
    params: Params,
    *,
    density: float | None = None,
    n: int | None = None,
    m: int | None = None,
    axis: int = -2,
    spec: Params | None = None,
) -> Params:
    """w̃ = w + stop_gradient(M(w) ⊙ w - w): the sparse weights forward, the identity backward.

    M is `ste_masks` of the same arguments. Entries M prunes are exactly 0.0 in w̃; the gradient of a
    loss at w̃ reaches every entry of the dense w unchanged (the straight-through estimator).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import sparsity
        >>> w = {"w": jnp.array([[1.0, -3.0], [0.5, 2.0]])}
        >>> sparsity.ste_weights(w, density=0.5)["w"].tolist()
        [[0.0, -3.0], [0.0, 2.0]]
        >>> jax.grad(lambda p: jnp.sum(sparsity.ste_weights(p, density=0.5)["w"]))(w)["w"].tolist()  # dense
        [[1.0, 1.0], [1.0, 1.0]]
    """
    masks = ste_masks(params, density=density, n=n, m=m, axis=axis, spec=spec)
    return _straight_through(params, masks)


class SteTransformation(optax.GradientTransformationExtraArgs):
    """What `ste` returns: an optax transformation with `weights(params)`, the straight-through sparse
    weights of its own configuration (use them in the forward pass) and `masks_of(params)`.

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import sparsity
        >>> tx = sparsity.ste(optax.sgd(0.1), n=1, m=2)
        >>> tx.weights({"w": jnp.array([[1.0, 3.0], [-2.0, 0.5]])})["w"].tolist()  # 1 of 2 along the inputs
        [[0.0, 3.0], [-2.0, 0.0]]
    """

    weights: Callable[[Params], Params]
    masks_of: Callable[[Params], Params]

    def __new__(cls, init: Any, update: Any, **attributes: Any) -> SteTransformation:
        self = super().__new__(cls, init, update)
        for name, value in attributes.items():
            setattr(self, name, value)
        return self


def ste(
    inner: optax.GradientTransformation,
    *,
    density: float | None = None,
    n: int | None = None,
    m: int | None = None,
    axis: int = -2,
    decay: float = 0.0,
    spec: Params | None = None,
) -> SteTransformation:
    """Straight-through sparse training: g' = g + decay (1 - M) ⊙ w, then `inner` on the dense weights.

    M = `ste_masks(params, ...)` (density= for magnitude STE, n= and m= for N:M along `axis`), made from
    the params each update receives: the masks of the forward pass `tx.weights(params)` ran at these
    params. decay > 0 is SR-STE (Zhou et al. 2021: λ_W, 2e-4 in the paper), pulling pruned weights
    towards 0; decay = 0 is plain STE. The updates are dense: every weight moves; `sparsity.masks(state)`
    gives the last masks and `sparsity.sparsify(params, state)` the sparse net.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import sparsity
        >>> tx = sparsity.ste(optax.sgd(1.0), density=0.5, decay=0.1)
        >>> params = {"w": jnp.array([[1.0, -3.0], [0.5, 2.0]])}
        >>> state = tx.init(params)
        >>> grads = jax.grad(lambda p: jnp.sum(tx.weights(p)["w"]))(params)
        >>> updates, state = tx.update(grads, state, params)
        >>> [[round(float(u), 3) for u in row] for row in updates["w"]]  # -(1 + 0.1 w) pruned; -1 kept
        [[-1.1, -1.0], [-1.05, -1.0]]
    """
    fn = "sparsity.ste"
    _check(fn, density, n, m)
    if not isinstance(inner, optax.GradientTransformation):
        raise ValueError(f"{fn}: inner must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), got {inner!r}")
    if not isinstance(decay, numbers.Real) or isinstance(decay, bool) or not decay >= 0:
        raise ValueError(f"{fn}: decay must be >= 0, got decay={decay!r}")
    tx = optax.with_extra_args_support(inner)

    def masks_of(params: Params) -> Params:
        return ste_masks(params, density=density, n=n, m=m, axis=axis, spec=spec)

    def weights(params: Params) -> Params:
        return _straight_through(params, masks_of(params))

    def init(params: Params) -> SteState:
        check_arrays(params, fn)
        masks = jax.tree.map(lambda w: jnp.ones(np.shape(w), bool), params)
        return SteState(jnp.zeros((), jnp.int32), masks, tx.init(params))

    def update(grads: Any, state: SteState, params: Any = None, **extra: Any) -> tuple[Any, SteState]:
        if params is None:
            raise ValueError(f"{fn}: update needs params (tx.update(grads, state, params)): the masks come from them")
        masks = masks_of(params)

        def pull(g: Any, w: Any, mk: Array) -> Any:
            if not is_floating(g) or decay == 0:
                return g
            return g + (decay * jnp.where(mk, jnp.zeros_like(w), w)).astype(jnp.result_type(g))

        grads = jax.tree.map(pull, grads, params, masks)
        updates, inner_state = tx.update(grads, state.inner_state, params, **extra)
        return updates, SteState(state.step + 1, masks, inner_state)

    return SteTransformation(init, update, weights=weights, masks_of=masks_of)
