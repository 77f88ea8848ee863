"""Pruners: how a round's mask is made, as a function of a `Context`.

    pruner = pruners.snip()                  # at init, at the parent's density this round
    pruner = pruners.snip(density=0.1)       # at init, 10% of the prunable weights, global
    arm = arms.at_init("snip")               # the same as an arm of a study

A `Pruner` is a name, `fn(ctx) -> masks` for one member (the driver vmaps it over seeds), and
whether it needs trained weights (`at_init=False`: it scores the lineage's last trained weights)
or only θ0 (`at_init=True`: SNIP, GraSP, SynFlow, random; a study of those alone needs no dense
run). Any function `fn(ctx) -> masks` is a pruner too (taken as `at_init=False`).

Targets: an at-init pruner keeps `density` of the prunable weights (one global threshold, the
papers' choice), or with `density=None` exactly as many weights as its parent arm's mask of this
round (the ticket's density, so criteria compare at equal sparsity). `invert=True` keeps the
lowest scores instead (Frankle et al. 2021's inversion sanity check).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn import prune
from funcnn.lottery.context import Context
from funcnn.prune.selection import _drop_lowest

__all__ = ["CRITERIA", "Pruner", "grasp", "inverted", "magnitude", "random", "shuffle", "snip", "synflow"]

Params = Any
Masks = Any


class Pruner(NamedTuple):
    """A named pruning rule: `fn(ctx) -> masks` (one member); at_init: it needs only θ0, no training;
    compiled: fn reads `ctx.round` only as an array (or not at all), so the driver compiles it once
    for every round (the built-in pruners); a pruner of your own gets `ctx.round` as a Python int
    and runs eagerly, unless it says compiled=True.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery.pruners import Pruner
        >>> keep_all = Pruner("keep_all", lambda ctx: ctx.masks)
        >>> keep_all.name, keep_all.at_init, keep_all.compiled
        ('keep_all', False, False)
    """

    name: str
    fn: Callable[[Context], Masks]
    at_init: bool = False
    compiled: bool = False


def _prunable_leaves(tree: Any, spec: Any) -> list[int]:
    return [i for i, f in enumerate(jax.tree.leaves(spec)) if f]


def keep_global(scores: Params, masks: Masks, spec: Any, keep: jax.Array | int) -> Masks:
    """Of the prunable entries still alive in `masks`, keep the `keep` highest `scores` (one global
    threshold; exact count, ties by position); other leaves are returned as they are."""
    s_leaves = jax.tree.leaves(scores)
    m_leaves, treedef = jax.tree.flatten(masks)
    idx = _prunable_leaves(masks, spec)
    flat_s = jnp.concatenate([jnp.asarray(s_leaves[i], jnp.float32).reshape(-1) for i in idx])
    flat_m = jnp.concatenate([m_leaves[i].reshape(-1) for i in idx])
    alive = jnp.sum(flat_m).astype(jnp.int32)
    flat = _drop_lowest(flat_s, flat_m, alive - jnp.minimum(jnp.asarray(keep, jnp.int32), alive))
    out, start = list(m_leaves), 0
    for i in idx:
        n = m_leaves[i].size
        out[i] = flat[start : start + n].reshape(m_leaves[i].shape)
        start += n
    return jax.tree.unflatten(treedef, out)


def _alive(masks: Masks, spec: Any) -> jax.Array:
    leaves = jax.tree.leaves(masks)
    return jnp.sum(jnp.stack([jnp.sum(leaves[i]).astype(jnp.int32) for i in _prunable_leaves(masks, spec)]))


def _n_prunable(masks: Masks, spec: Any) -> int:
    leaves = jax.tree.leaves(masks)
    return sum(int(leaves[i].size) for i in _prunable_leaves(masks, spec))


def _target(ctx: Context, density: float | None, who: str) -> jax.Array:
    """The number of prunable weights to keep: density x all of them, or the parent's count."""
    if density is not None:
        return jnp.asarray(round(density * _n_prunable(ctx.masks, ctx.spec_prunable)), jnp.int32)
    if ctx.parent_masks is None:
        raise ValueError(
            f"pruner {who!r} with density=None keeps its parent arm's count, but this arm has no parent; "
            "give it a parent arm or an absolute density (e.g. density=0.1)"
        )
    return _alive(ctx.parent_masks, ctx.spec_prunable)


def _data(ctx: Context) -> tuple[Callable[..., Any], jax.Array, jax.Array, Callable[..., Any]]:
    """(forward, x, y, loss) of a context: the criteria that need data need all four."""
    assert ctx.forward is not None and ctx.batch is not None and ctx.loss is not None
    x, y = ctx.batch
    return ctx.forward, x, y, ctx.loss


def _forward(ctx: Context) -> Callable[..., Any]:
    assert ctx.forward is not None
    return ctx.forward


def _key(ctx: Context) -> jax.Array:
    assert ctx.key is not None
    return ctx.key


def _check_density(density: float | None, who: str) -> None:
    if density is not None and not (isinstance(density, (int, float)) and 0 < density <= 1):
        raise ValueError(f"pruners.{who}: density must be None or in (0, 1], got density={density!r}")


def _at_init(name: str, score: Callable[[Context, Masks], Params], density: float | None, invert: bool) -> Pruner:
    _check_density(density, name)

    def fn(ctx: Context) -> Masks:
        ones = prune.ones(ctx.theta0)
        s = score(ctx, ones)
        if invert:
            s = jax.tree.map(jnp.negative, s)
        return keep_global(s, ones, ctx.spec_prunable, _target(ctx, density, name))

    return Pruner(name + ("_inverted" if invert else ""), fn, at_init=True, compiled=True)


def _snip(ctx: Context, ones: Masks) -> Params:
    forward, x, y, loss = _data(ctx)
    return prune.snip_scores(forward, ctx.theta0, ones, x, y, loss)


def _grasp(ctx: Context, ones: Masks, temperature: float) -> Params:
    forward, x, y, loss = _data(ctx)
    return prune.grasp_scores(forward, ctx.theta0, ones, x, y, loss, temperature)


def snip(density: float | None = None, *, invert: bool = False) -> Pruner:
    """SNIP (Lee et al. 2019) at θ0: keep the highest |g ⊙ w| on the seed's first batch (eval mode).

    Example:
        >>> from funcnn.lottery import pruners
        >>> pruners.snip().name, pruners.snip(0.1, invert=True).name, pruners.snip().at_init
        ('snip', 'snip_inverted', True)
    """
    return _at_init(
        "snip",
        lambda ctx, ones: _snip(ctx, ones),
        density,
        invert,
    )


def grasp(density: float | None = None, *, temperature: float = 200.0, invert: bool = False) -> Pruner:
    """GraSP (Wang et al. 2020) at θ0: keep the highest w ⊙ Hg (remove the highest -w ⊙ Hg).

    Example:
        >>> from funcnn.lottery import pruners
        >>> pruners.grasp(0.02).name
        'grasp'
    """
    return _at_init(
        "grasp",
        lambda ctx, ones: _grasp(ctx, ones, temperature),
        density,
        invert,
    )


def synflow(density: float | None = None, *, iterations: int = 100, invert: bool = False) -> Pruner:
    """SynFlow (Tanaka et al. 2020) at θ0, data-free: `iterations` rounds of rescoring, density^(j/n)
    at round j (the paper's schedule); inverted: the final scores of one-shot SynFlow, negated.

    Example:
        >>> from funcnn.lottery import pruners
        >>> pruners.synflow(iterations=10).name
        'synflow'
    """
    _check_density(density, "synflow")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"pruners.synflow: iterations must be an int >= 1, got iterations={iterations!r}")
    if invert:
        return _at_init(
            "synflow",
            lambda ctx, ones: prune.synflow_scores(_forward(ctx), ctx.theta0, ones, ctx.input_shape),
            density,
            True,
        )

    def fn(ctx: Context) -> Masks:
        ones = prune.ones(ctx.theta0)
        keep = _target(ctx, density, "synflow")
        d = keep.astype(jnp.float32) / _n_prunable(ones, ctx.spec_prunable)
        # density = keep / n: the schedule's last step keeps round(density x n) = keep weights.
        return prune.synflow(
            _forward(ctx), ctx.theta0, ones, d, ctx.input_shape, iterations, scope="global", spec=ctx.spec_prunable
        )

    return Pruner("synflow", fn, at_init=True, compiled=True)


def random(density: float | None = None) -> Pruner:
    """A uniformly random mask at init (one global draw from the arm's key): the at-init baseline.

    Example:
        >>> from funcnn.lottery import pruners
        >>> pruners.random(0.1).at_init
        True
    """

    def score(ctx: Context, ones: Masks) -> Params:
        leaves, treedef = jax.tree.flatten(ones)
        keys = jax.random.split(_key(ctx), len(leaves))
        return jax.tree.unflatten(
            treedef, [jax.random.uniform(k, jnp.shape(m)) for k, m in zip(keys, leaves, strict=True)]
        )

    return _at_init("random", score, density, False)


def shuffle(*, scope: str = "layer") -> Pruner:
    """The layerwise shuffle of the parent's mask this round (random pruning at the parent's
    per-layer density: Frankle et al. 2021's first sanity check; `prune.random_like`).

    Example:
        >>> from funcnn.lottery import pruners
        >>> pruners.shuffle().name
        'shuffle'
    """

    def fn(ctx: Context) -> Masks:
        if ctx.parent_masks is None:
            raise ValueError("pruner 'shuffle' shuffles its parent arm's mask: give the arm a parent")
        return prune.random_like(_key(ctx), ctx.parent_masks, ctx.spec_prunable, scope=scope)

    return Pruner("shuffle", fn, at_init=True, compiled=True)


def inverted() -> Pruner:
    """Magnitude pruning inverted: of the lineage's last survivors (`ctx.masks`), keep the SMALLEST
    |w| of its last trained weights, as many per prunable leaf as the parent's mask keeps this round.

    Example:
        >>> from funcnn.lottery import pruners
        >>> pruners.inverted().name, pruners.inverted().at_init
        ('inverted', False)
    """

    def fn(ctx: Context) -> Masks:
        if ctx.parent_masks is None:
            raise ValueError("pruner 'inverted' keeps its parent arm's counts: give the arm a parent")
        m_leaves, treedef = jax.tree.flatten(ctx.masks)
        t_leaves, p_leaves = jax.tree.leaves(ctx.trained), jax.tree.leaves(ctx.parent_masks)
        out = list(m_leaves)
        for i in _prunable_leaves(ctx.masks, ctx.spec_prunable):
            flat_m = m_leaves[i].reshape(-1)
            keep = jnp.sum(p_leaves[i]).astype(jnp.int32)
            scores = -jnp.abs(t_leaves[i]).astype(jnp.float32).reshape(-1)
            drop = jnp.sum(flat_m).astype(jnp.int32) - keep
            out[i] = _drop_lowest(scores, flat_m, drop).reshape(m_leaves[i].shape)
        return jax.tree.unflatten(treedef, out)

    return Pruner("inverted", fn, compiled=True)


def magnitude(
    rate: float = 0.2,
    *,
    scope: str = "layer",
    layer_rates: dict[str, float] | None = None,
    rounding: str = "nearest",
) -> Pruner:
    """Iterative magnitude pruning of the lineage's own last trained weights: `rate` of the survivors
    per round (`prune.magnitude`); a lineage without a pruner follows the Spec's fields instead.

    Example:
        >>> from funcnn.lottery import pruners
        >>> pruners.magnitude(0.4, scope="global").name
        'magnitude'
    """
    if not (isinstance(rate, (int, float)) and 0 <= rate < 1):
        raise ValueError(f"pruners.magnitude: rate must be in [0, 1), got rate={rate!r}")

    def fn(ctx: Context) -> Masks:
        return prune.magnitude(
            ctx.trained,
            ctx.masks,
            rate,
            scope=scope,
            layer_rates=layer_rates,
            spec=ctx.spec_prunable,
            rounding=rounding,
        )

    return Pruner("magnitude", fn, compiled=True)


CRITERIA: dict[str, Callable[..., Pruner]] = {"snip": snip, "grasp": grasp, "synflow": synflow, "random": random}
"""The pruning-at-initialization criteria by name (`arms.at_init(name)`)."""
