"""One mask-update rule for static, gradual, SET and RigL: a `Method` of plain values, made an optax
transformation by `transform` (a population of them: `stack`).

At an update step (step % every == 0, begin <= step <= end), per prunable leaf: drop, then grow back
to the target count (`prune.drop_and_grow`'s rule, with gradual's count schedule and SET's signed drop):

    target = round((1 - polynomial_sparsity(step, 1 - d)) n)  (gradual)  or the current count
    drop   = floor(n_on f) + (n_on - target) lowest |w|,  f = cosine_fraction(step, α, end) or α
    grow   = target - kept highest |g| (RigL) or uniform noise (SET) among the rest

Elsewhere u = M ⊙ inner.update(M ⊙ g) and -w at pruned entries, so pruned weights land on 0.0.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn.prune.densities import DISTRIBUTIONS, layer_densities
from funcnn.prune.drop_grow import leaf_update, take_lowest
from funcnn.prune.masks import check_arrays, is_floating, path_name, prunable, pure_structure
from funcnn.prune.sparse_schedules import cosine_fraction, polynomial_sparsity
from funcnn.sparsity.sparse_state import Numbers, SparseState, reset_where

__all__ = ["Method", "SparseTransformation", "transform"]

Array = jax.Array
Params = Any

GROWS = ("none", "random", "gradient")
ANNEALS = ("cosine", "constant")


class Method(NamedTuple):
    """One sparse-training method as plain values; `transform` makes it an optax transformation.

    name: a label ('static', 'gradual', 'set', 'rigl'); density: the final overall density of the
    prunable leaves, in (0, 1]; distribution: its layer densities (`prune.layer_densities`);
    fraction: the drop fraction α; anneal: 'cosine' (`prune.cosine_fraction` to `end`) or 'constant';
    grow: 'none', 'random' (SET) or 'gradient' (RigL); regrow_std: regrown weights start at
    N(0, 1) · regrow_std (0: at 0.0); signed: drop the fraction of the smallest positive and of the
    largest negative weights separately (SET's code); skip_step: no gradient step on a mask-update step
    (RigL); gradual: from dense to `density` by `prune.polynomial_sparsity(step, 1 - d, begin=begin,
    end=end, power=power)`; every: masks change at the steps with step % every == 0 and begin <= step <=
    end (every=0: never, a static mask).

    Example:
        >>> from funcnn import sparsity
        >>> m = sparsity.Method("rigl", 0.1, fraction=0.3, grow="gradient", skip_step=True, every=100, end=750)
        >>> m.distribution, m.anneal, m.regrow_std
        ('erk', 'cosine', 0.0)
    """

    name: str
    density: float
    distribution: str = "erk"
    fraction: float = 0.0
    anneal: str = "cosine"
    grow: str = "none"
    regrow_std: float = 0.0
    signed: bool = False
    skip_step: bool = False
    gradual: bool = False
    power: float = 3.0
    every: int = 0
    begin: int = 0
    end: int = 0


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_method(method: Method, fn: str) -> None:
    """ValueError naming the first bad field of `method`, its value and what is expected."""

    def bad(name: str, expected: str) -> ValueError:
        return ValueError(f"{fn}: {name} must be {expected}, got {name}={getattr(method, name)!r}")

    if not _is_real(method.density) or not 0 < method.density <= 1:
        raise bad("density", "in (0, 1]")
    if method.distribution not in DISTRIBUTIONS:
        raise bad("distribution", f"one of {DISTRIBUTIONS}")
    if not _is_real(method.fraction) or not 0 <= method.fraction <= 1:
        raise bad("fraction", "in [0, 1]")
    if method.anneal not in ANNEALS:
        raise bad("anneal", f"one of {ANNEALS}")
    if method.grow not in GROWS:
        raise bad("grow", f"one of {GROWS}")
    if not _is_real(method.regrow_std) or not method.regrow_std >= 0:
        raise bad("regrow_std", ">= 0")
    if not _is_real(method.power) or not method.power > 0:
        raise bad("power", "> 0")
    if not _is_int(method.every) or method.every < 0:
        raise bad("every", "an int >= 1 (or 0 for a mask that never changes)")
    if not _is_int(method.begin) or method.begin < 0:
        raise bad("begin", "an int >= 0")
    if not _is_int(method.end) or method.end < method.begin:
        raise ValueError(f"{fn}: end must be an int >= begin, got begin={method.begin!r}, end={method.end!r}")
    if method.every and method.anneal == "cosine" and method.fraction and method.end < 1:
        raise bad("end", "an int >= 1 (the step where the cosine drop fraction reaches 0)")


def numbers_for(method: Method, params: Params, spec: Params) -> Numbers:
    """The method's `Numbers` for these params (shapes only: the layer densities of its distribution)."""
    dens = layer_densities(params, method.density, method.distribution, spec=spec)
    changes = method.every > 0

    def f32(v: Any) -> Array:
        return jnp.asarray(v, jnp.float32)

    return Numbers(
        densities=tuple(f32(d) for d in dens.values()),
        fraction=f32(method.fraction),
        cosine=jnp.asarray(method.anneal == "cosine"),
        grow_gradient=jnp.asarray(method.grow == "gradient"),
        regrow_std=f32(method.regrow_std),
        signed=jnp.asarray(bool(method.signed)),
        skip=jnp.asarray(bool(method.skip_step) and changes),
        gradual=jnp.asarray(bool(method.gradual)),
        power=f32(method.power),
        begin=jnp.asarray(method.begin, jnp.int32),
        end=jnp.asarray(method.end, jnp.int32),
        changes=jnp.asarray(changes),
    )


class Schedule(NamedTuple):
    """What a population shares (Python values): every; the union [begin, end] of its members' windows;
    whether any member's masks change at all, any grows at random, any regrows nonzero values (the random
    draws are left out of the program where no member needs them: they dominate its compile time)."""

    every: int
    begin: int
    end: int
    changes: bool
    random_grow: bool = True
    regrow: bool = True

    def is_update(self, step: Array) -> Array:
        return (step % max(self.every, 1) == 0) & (step >= self.begin) & (step <= self.end)


class SparseTransformation(optax.GradientTransformationExtraArgs):
    """An optax transformation whose state (`SparseState`) holds masks that change during training.

    Made by `sparsity.static`, `gradual`, `set`, `rigl`, `transform` (one method) and `stack` (a
    population's). Beside `init` and `update` it carries what `funcnn.train` needs to train it in one
    program: `inner` (the wrapped transformation), `method` (None for a stack), `key`, `spec`,
    `schedule`, `numbers(params)` (this method's `Numbers`) and `init_with(params, numbers, key)`.

    Example:
        >>> import jax
        >>> import optax
        >>> from funcnn import sparsity
        >>> tx = sparsity.set(optax.sgd(0.1), density=0.2, every=50, fraction=0.3, key=jax.random.key(0), end=900)
        >>> isinstance(tx, optax.GradientTransformation), tx.method.name, tx.schedule.every
        (True, 'set', 50)
    """

    inner: optax.GradientTransformation
    method: Method | None
    key: Array
    spec: Params | None
    schedule: Schedule
    numbers: Callable[[Params], Numbers]
    init_with: Callable[[Params, Numbers, Array], SparseState]

    def __new__(cls, init: Any, update: Any, **attributes: Any) -> SparseTransformation:
        self = super().__new__(cls, init, update)
        for name, value in attributes.items():
            setattr(self, name, value)
        return self


def _spec_of(params: Params, spec: Params | None) -> list[bool]:
    return [bool(s) for s in jax.tree.leaves(prunable(params) if spec is None else spec)]


# One compiled program (called eagerly, it is one dispatch and one compile per tree shape, not a dozen
# small ones per leaf; under jit it is inlined).
@functools.partial(jax.jit, static_argnames="flags")
def _init_masks(params: Params, flags: tuple[bool, ...], numbers: Numbers, key: Array) -> Any:
    """Random masks with round(d n) entries (at least 1) per prunable leaf; all True for gradual ones."""
    leaves, treedef = jax.tree.flatten(params)
    noise = _uniform_parts(key, [np.shape(p) for p, f in zip(leaves, flags, strict=True) if f])
    out, j = [], 0
    for p, flag in zip(leaves, flags, strict=True):
        if not flag:
            out.append(jnp.ones(np.shape(p), bool))
            continue
        n = int(np.prod(np.shape(p), dtype=np.int64))
        count = jnp.clip(jnp.round(numbers.densities[j] * n).astype(jnp.int32), 1, n)
        keep = take_lowest(-noise[j].reshape(-1), jnp.ones(n, bool), count).reshape(np.shape(p))
        out.append(keep | numbers.gradual)
        j += 1
    return jax.tree.unflatten(treedef, out)


def _check_tree(fn: str, what: str, tree: Any, masks: Any) -> None:
    if pure_structure(tree) != pure_structure(masks):
        raise ValueError(
            f"{fn}: {what} must have the params' tree structure (the masks' from init);\n masks: "
            f"{pure_structure(masks)}\n {what}: {pure_structure(tree)}"
        )
    for (path, x), m in zip(jax.tree_util.tree_leaves_with_path(tree), jax.tree.leaves(masks), strict=True):
        if np.shape(x) != np.shape(m):
            raise ValueError(f"{fn}: {what} '{path_name(path)}' has shape {np.shape(x)}, its mask {np.shape(m)}")


def _select(flag: Array, a: Any, b: Any) -> Any:
    """a where flag else b, leaf by leaf (PRNG-key leaves through their data)."""

    def one(x: Any, y: Any) -> Any:
        if jax.dtypes.issubdtype(jnp.result_type(x), jax.dtypes.extended):
            impl = jax.random.key_impl(x)
            return jax.random.wrap_key_data(jnp.where(flag, jax.random.key_data(x), jax.random.key_data(y)), impl=impl)
        return jnp.where(flag, x, y)

    return jax.tree.map(one, a, b)


def _uniform_parts(key: Array, shapes: list[tuple], normal: bool = False) -> list[Array]:
    """One draw for all leaves (uniform on [0, 1), or N(0, 1)), cut into the leaves' shapes."""
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    draw = (jax.random.normal if normal else jax.random.uniform)(key, (sum(sizes),))
    cuts = np.cumsum([0, *sizes])
    return [draw[a:b].reshape(s) for a, b, s in zip(cuts[:-1], cuts[1:], shapes, strict=True)]


def _rule(
    state: SparseState, flags: list[bool], grads: Any, params: Any, u_in: Any, step: Array, schedule: Schedule
) -> tuple[list[Array], list[Array | None]]:
    """Each leaf's new mask (all leaves; unchanged where not prunable or not active) and regrowth values."""
    nb = state.numbers
    active = nb.changes & (step >= nb.begin) & (step <= nb.end)
    frac = jnp.where(nb.cosine, cosine_fraction(step, nb.fraction, jnp.maximum(nb.end, 1)), nb.fraction)
    k_grow = jax.random.fold_in(jax.random.fold_in(state.key, 1), step)
    k_init = jax.random.fold_in(jax.random.fold_in(state.key, 2), step)
    after = ~nb.skip & ~nb.gradual  # SET's order: the step first, then masks from the stepped weights
    new: list[Array] = []
    init: list[Array | None] = []
    j = 0
    m_leaves, w_leaves, g_leaves = jax.tree.leaves(state.masks), jax.tree.leaves(params), jax.tree.leaves(grads)
    u_leaves = jax.tree.leaves(u_in)
    shapes = [np.shape(m) for m, f in zip(m_leaves, flags, strict=True) if f]
    noise = _uniform_parts(k_grow, shapes) if schedule.random_grow else None
    normal = _uniform_parts(k_init, shapes, normal=True) if schedule.regrow else None
    for m, w, g, u, flag in zip(m_leaves, w_leaves, g_leaves, u_leaves, flags, strict=True):
        if not flag:
            new.append(m)
            init.append(None)
            continue
        w32 = jnp.asarray(w, jnp.float32)
        scored = w32 + jnp.where(after, jnp.asarray(u, jnp.float32), 0.0)
        n = m.size
        s = polynomial_sparsity(step, 1.0 - nb.densities[j], begin=nb.begin, end=nb.end, power=nb.power)
        target = jnp.where(nb.gradual, jnp.maximum(jnp.round((1.0 - s) * n).astype(jnp.int32), 1), n)
        grow = jnp.abs(jnp.asarray(g, jnp.float32))
        if noise is not None:
            grow = jnp.where(nb.grow_gradient, grow, noise[j])
        leaf = leaf_update(m, jnp.abs(scored), grow, frac, target, scored, nb.signed)
        new.append(jnp.where(active, leaf, m))
        init.append(None if normal is None else nb.regrow_std * normal[j])
        j += 1
    return new, init


def make(inner: optax.GradientTransformation, spec: Params | None, schedule: Schedule, fn: str) -> tuple:
    """(init_with, update) of the rule around `inner`."""
    inner = optax.with_extra_args_support(inner)

    def init_with(params: Params, numbers: Numbers, key: Array) -> SparseState:
        check_arrays(params, fn)
        flags = _spec_of(params, spec)
        masks = _init_masks(params, tuple(flags), numbers, key)
        return SparseState(jnp.zeros((), jnp.int32), masks, numbers, key, inner.init(params))

    def update(grads: Any, state: SparseState, params: Any = None, **extra: Any) -> tuple[Any, SparseState]:
        if params is None:
            raise ValueError(f"{fn}: update needs params (tx.update(grads, state, params)): it masks and scores them")
        _check_tree(fn, "grads", grads, state.masks)
        _check_tree(fn, "params", params, state.masks)
        flags = _spec_of(params, spec)
        treedef = jax.tree.structure(params)
        w_leaves, m_leaves = jax.tree.leaves(params), jax.tree.leaves(state.masks)

        def masked(tree: Any, masks: list[Array], other: list[Any]) -> Any:
            """tree where masks, else `other` (prunable floating leaves only)."""
            return jax.tree.unflatten(
                treedef,
                [
                    jnp.where(m, x, o).astype(jnp.result_type(x)) if f and is_floating(x) else x
                    for x, m, o, f in zip(jax.tree.leaves(tree), masks, other, flags, strict=True)
                ],
            )

        zeros = [jnp.zeros((), jnp.result_type(w)) if is_floating(w) else w for w in w_leaves]
        minus_w = [-w if is_floating(w) else w for w in w_leaves]
        step = state.step + 1
        u_in, inner_new = inner.update(masked(grads, m_leaves, zeros), state.inner_state, params, **extra)
        if not schedule.changes:
            return masked(u_in, m_leaves, minus_w), SparseState(step, state.masks, state.numbers, state.key, inner_new)

        # Only the mask rule (the selections) sits under the cond; the rest is elementwise and, off an update
        # step (the old masks, nothing regrown, no skip), reduces to the masked update. (A cond around it all
        # made XLA copy the params' and moments' buffers every step: 0.78-0.93x a hand-written step, now 1.00x.)
        def rule(_: None) -> tuple:
            return _rule(state, flags, grads, params, u_in, step, schedule)

        def same(_: None) -> tuple:  # the old masks; zeros in place of regrowth values
            values = jax.eval_shape(rule, 0)[1]
            return list(m_leaves), [None if v is None else jnp.zeros(v.shape, v.dtype) for v in values]

        nb, update_now = state.numbers, schedule.is_update(step)
        new, init = jax.lax.cond(update_now, rule, same, None)
        skip = update_now & nb.changes & (step >= nb.begin) & (step <= nb.end) & nb.skip
        regrown = [n & ~m for n, m in zip(new, m_leaves, strict=True)]
        u_leaves = []
        for u, w, n, r, v, f in zip(jax.tree.leaves(u_in), w_leaves, new, regrown, init, flags, strict=True):
            if not f or not is_floating(u):
                u_leaves.append(u)
                continue
            kept = jnp.where(skip, jnp.zeros_like(u), u)
            moved = jnp.where(r, ((0.0 if v is None else v) - w).astype(u.dtype), kept)
            u_leaves.append(jnp.where(n, moved, -w).astype(u.dtype))
        inner_state = _select(skip, state.inner_state, inner_new)
        inner_state = reset_where(inner_state, params, jax.tree.unflatten(treedef, regrown))
        masks = jax.tree.unflatten(jax.tree.structure(state.masks), new)
        return jax.tree.unflatten(treedef, u_leaves), SparseState(step, masks, state.numbers, state.key, inner_state)

    return init_with, update


def transform(
    inner: optax.GradientTransformation,
    method: Method,
    *,
    key: Array | None = None,
    spec: Params | None = None,
    fn: str = "sparsity.transform",
) -> SparseTransformation:
    """`method` around `inner`: an optax transformation whose state holds the moving masks.

    u = M' ⊙ inner.update(M ⊙ g) with -w at pruned entries (they land on 0.0), where M' are the masks
    after this call's update rule (see the module). key: typed PRNG key for the random initial masks
    and SET's regrowth (default key(0)); spec: which leaves are sparse (default `prune.prunable(params)`).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import sparsity
        >>> method = sparsity.Method("static", 0.5)
        >>> tx = sparsity.transform(optax.sgd(0.5), method, key=jax.random.key(0))
        >>> params = {"w": jnp.ones((2, 2))}
        >>> state = tx.init(params)
        >>> params = sparsity.sparsify(params, state)
        >>> updates, state = tx.update({"w": jnp.ones((2, 2))}, state, params)
        >>> optax.apply_updates(params, updates)["w"].tolist()  # kept weights stepped, pruned stay 0.0
        [[0.5, 0.5], [0.0, 0.0]]
    """
    if not isinstance(inner, optax.GradientTransformation):
        raise ValueError(
            f"{fn}: inner must be an optax.GradientTransformation (e.g. optax.adam(1e-3), not optax.adam), "
            f"got inner={inner!r}"
        )
    if not isinstance(method, Method):
        raise ValueError(f"{fn}: method must be a sparsity.Method, got method={method!r}")
    check_method(method, fn)
    if key is None:
        key = jax.random.key(0)
    if not (isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.ndim == 0):
        raise ValueError(f"{fn}: key must be one typed PRNG key (jax.random.key(seed)), got key={key!r}")
    schedule = Schedule(
        method.every, method.begin, method.end, method.every > 0, method.grow == "random", method.regrow_std > 0
    )
    init_with, update = make(inner, spec, schedule, fn)

    def numbers_of(params: Params) -> Numbers:
        return numbers_for(method, params, prunable(params) if spec is None else spec)

    def init(params: Params) -> SparseState:
        return init_with(params, numbers_of(params), key)

    return SparseTransformation(
        init, update, inner=inner, method=method, key=key, spec=spec, schedule=schedule, numbers=numbers_of,
        init_with=init_with,
    )  # fmt: skip
