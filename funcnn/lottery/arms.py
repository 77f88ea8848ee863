"""Arms: what each pruning round trains, and where each arm's mask, weights and schedule come from.

An arm is a `NamedTuple` of choices (see `Arm`); the built-in ones are made by functions:

    weight_rewinding()   the ticket: a lineage, pruned by magnitude, rewound to θk (Frankle & Carbin)
    lr_rewinding()       a lineage that keeps its trained weights, the schedule replayed from k (Renda et al.)
    fine_tuning()        a lineage that keeps its trained weights, at the schedule's final rate
    reinitialized()      an offshoot: its parent's mask on a fresh init (once per seed, or every round)
    shuffled()           an offshoot: its parent's mask shuffled within each layer (random pruning)
    inverted()           an offshoot: the parent's counts, the smallest weights kept (Frankle et al. 2021)
    at_init("snip")      an offshoot: SNIP / GraSP / SynFlow / random at θ0, at the parent's density

A *lineage* prunes its own trained weights every round with its own pruner; an *offshoot* starts
each round from another arm's (its parent's) mask of that round. Strings name the classic arms:
'ticket', 'reinit', 'random' (and 'lr_rewinding', 'fine_tuning', 'inverted', 'snip', 'grasp',
'synflow'). An arm of your own is `Arm(name, fn)` with `fn(ctx) -> (params, mask)` of a `Context`.

Deprecated (they warn, and go in funcnn 0.4): the arm functions `ticket`, `reinit` and
`random_pruning(spec, scope)` (use `weight_rewinding()`, `reinitialized()`, `shuffled()`), and an
`Arm(name, fn)` whose fn takes yesterday's four arguments `(theta_rewind, theta_reinit, mask, key)`
(write `fn(ctx)`: `ctx.theta_rewind`, `ctx.theta_reinit`, `ctx.parent_masks`, `ctx.key`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn import _deprecation, prune
from funcnn.lottery import pruners as pruners_lib
from funcnn.lottery.context import Context

__all__ = [
    "SCHEDULES",
    "WEIGHTS",
    "Arm",
    "ArmFn",
    "at_init",
    "fine_tuning",
    "inverted",
    "lr_rewinding",
    "reinit_same_sign",
    "reinitialized",
    "shuffled",
    "weight_rewinding",
]

Params = Any  # a pytree of arrays
Masks = Any  # bool arrays, like params
ArmFn = Callable[[Params, Params, Masks, jax.Array], tuple[Params, Masks]]
"""Yesterday's arm function of one member (deprecated; write `fn(ctx)`):
`fn(theta_rewind, theta_reinit, mask, key) -> (params, mask)`."""

WEIGHTS = ("rewind", "trained", "reinit", "fresh", "init")
"""Where an arm's weights start: θk ('rewind'), the lineage's last trained weights ('trained'), the
seed's reinit draw ('reinit'), a fresh draw every round ('fresh'), θ0 ('init')."""
SCHEDULES = ("rewind", "start", "end")
"""Where an arm's learning-rate schedule starts: at its rewind step k, training iterations k..T
('rewind'); at 0, training 0..T ('start': Renda et al.'s full learning-rate rewinding); held at
the rate of the last iteration T - 1 while training k..T ('end': fine-tuning)."""


class Arm(NamedTuple):
    """One arm of a study: a name and where its mask, weights and schedule come from.

    fn: None, or `fn(ctx) -> (params, mask)` of a `Context` (it then decides mask and weights;
      yesterday's `fn(theta_rewind, theta_reinit, mask, key)` still runs, with a `DeprecationWarning`).
      pruner: a `pruners.Pruner` or a function `ctx -> mask` (None: a lineage prunes as the Spec's fields
      say; an offshoot takes its parent's mask). weights: one of `WEIGHTS`; schedule: one of `SCHEDULES`.
      lineage: prune its own trained weights every round (its trained weights feed its next round).
      parent: an offshoot's parent arm (an earlier arm's name; default the first lineage). rewind_step:
      its k (None: the Spec's, or for an offshoot its parent's). The driver zeroes pruned weights
      (`prune.rewind`) after fn.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery.arms import Arm
        >>> # the ticket's mask (this arm's parent's) on the rewound weights, signs flipped
        >>> flipped = Arm("flipped", lambda ctx: (jax.tree.map(jnp.negative, ctx.theta_rewind), ctx.parent_masks))
        >>> flipped.name, flipped.lineage, flipped.weights
        ('flipped', False, 'rewind')
        >>> Arm("ft", weights="trained", schedule="end", lineage=True).lineage
        True
    """

    name: str
    fn: Callable[..., tuple[Any, Any]] | None = None
    pruner: Any = None
    weights: str = "rewind"
    schedule: str = "rewind"
    lineage: bool = False
    parent: str | None = None
    rewind_step: int | None = None


def weight_rewinding(name: str = "ticket", *, rewind_step: int | None = None, pruner: Any = None) -> Arm:
    """The winning ticket as a lineage: its own mask pruned each round, survivors rewound to θk,
    the schedule resumed at k (OpenLTH). Two of them with different `rewind_step`s share the dense run.

    Example:
        >>> from funcnn.lottery import arms
        >>> arm = arms.weight_rewinding("ticket_k100", rewind_step=100)
        >>> arm.lineage, arm.weights, arm.schedule, arm.rewind_step
        (True, 'rewind', 'rewind', 100)
    """
    return Arm(name, pruner=pruner, lineage=True, rewind_step=rewind_step)


def lr_rewinding(
    name: str = "lr_rewinding", *, rewind_step: int | None = None, full: bool = False, pruner: Any = None
) -> Arm:
    """Learning-rate rewinding (Renda, Frankle & Carbin 2020) as a lineage: keep the trained survivors,
    replay the schedule from k for T - k iterations (full=True: from 0, for T iterations).

    Example:
        >>> from funcnn.lottery import arms
        >>> arms.lr_rewinding().weights, arms.lr_rewinding(full=True).schedule
        ('trained', 'start')
    """
    return Arm(
        name,
        pruner=pruner,
        weights="trained",
        schedule="start" if full else "rewind",
        lineage=True,
        rewind_step=rewind_step,
    )


def fine_tuning(name: str = "fine_tuning", *, rewind_step: int | None = None, pruner: Any = None) -> Arm:
    """Fine-tuning as a lineage: keep the trained survivors and train T - k iterations at the
    schedule's final learning rate (that of iteration T - 1) throughout.

    Example:
        >>> from funcnn.lottery import arms
        >>> arm = arms.fine_tuning()
        >>> arm.weights, arm.schedule, arm.lineage
        ('trained', 'end', True)
    """
    return Arm(name, pruner=pruner, weights="trained", schedule="end", lineage=True, rewind_step=rewind_step)


def reinitialized(name: str = "reinit", *, parent: str | None = None, fresh: bool = False) -> Arm:
    """Random reinitialization: the parent's mask on a reinit draw (fresh=False: drawn once per seed and
    used every round, as Frankle & Carbin; fresh=True: a new draw every round). Each such arm draws
    with a key of its own name, so two built alike train different nets; the arm named 'reinit' uses
    the study's reinit draw (`Study.theta0_reinit`, the `Context.theta_reinit` every arm sees).

    Example:
        >>> from funcnn.lottery import arms
        >>> arms.reinitialized().weights, arms.reinitialized("reinit_fresh", fresh=True).weights
        ('reinit', 'fresh')
    """
    return Arm(name, weights="fresh" if fresh else "reinit", parent=parent)


def shuffled(name: str = "shuffled", *, parent: str | None = None, scope: str = "layer") -> Arm:
    """Random pruning as the layerwise shuffle of the parent's mask this round, on θk: a uniformly random
    mask with the parent's count in each prunable leaf (scope 'layer'), or in each layer's pooled leaves
    (scope 'layer_joint'); a fresh mask every round.

    Example:
        >>> from funcnn.lottery import arms
        >>> arms.shuffled("snip_shuffled", parent="snip").pruner.name
        'shuffle'
    """
    return Arm(name, pruner=pruners_lib.shuffle(scope=scope), parent=parent)


def inverted(name: str = "inverted", *, parent: str | None = None) -> Arm:
    """Score inversion for magnitude pruning: the parent's per-leaf counts, the smallest trained
    weights kept (the largest pruned), on θk. It inverts weight magnitudes whatever the parent is:
    with parent='snip' it keeps the smallest |w| at SNIP's counts, not the lowest SNIP scores; for
    a criterion's own inversion use `at_init(criterion, invert=True)`.

    Example:
        >>> from funcnn.lottery import arms
        >>> arms.inverted().pruner.name
        'inverted'
    """
    return Arm(name, pruner=pruners_lib.inverted(), parent=parent)


def at_init(
    criterion: str,
    name: str | None = None,
    *,
    parent: str | None = None,
    density: float | None = None,
    invert: bool = False,
    weights: str = "init",
    **options: Any,
) -> Arm:
    """A pruning-at-initialization arm: `criterion` ('snip', 'grasp', 'synflow', 'random') scores θ0
    and keeps the parent's count this round (density=None) or `density` of the prunable weights;
    trained from θ0 for all T iterations (rewind step 0). options go to the pruner (temperature,
    iterations).

    Example:
        >>> from funcnn.lottery import arms
        >>> arm = arms.at_init("synflow", density=0.02, iterations=10)
        >>> arm.name, arm.pruner.at_init, arm.rewind_step
        ('synflow', True, 0)
        >>> arms.at_init("snip", invert=True).name
        'snip_inverted'
    """
    if criterion not in pruners_lib.CRITERIA:
        raise ValueError(f"at_init: criterion must be one of {sorted(pruners_lib.CRITERIA)}, got {criterion!r}")
    make = pruners_lib.CRITERIA[criterion]
    pruner = make(density, **options) if criterion == "random" else make(density, invert=invert, **options)
    return Arm(name or pruner.name, pruner=pruner, weights=weights, parent=parent, rewind_step=0)


def reinit_same_sign(ctx: Context, *legacy: Any) -> tuple[Params, Masks]:
    """Frankle & Carbin's appendix control, an arm's `fn(ctx)`: the reinit draw's magnitudes with the
    rewound weights' signs, on the parent's mask (`Arm("same_sign", reinit_same_sign)`).

    Yesterday's call `reinit_same_sign(theta_rewind, theta_reinit, mask, key)` still works, with a
    `DeprecationWarning` (it goes in funcnn 0.4).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery import Context, reinit_same_sign
        >>> rewind, fresh, mask = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([-3.0, 0.5])}, {"w": jnp.ones(2, bool)}
        >>> ctx = Context(round=1, seed=jnp.int32(0), key=None, theta0=rewind, theta_rewind=rewind,
        ...               theta_reinit=fresh, trained=rewind, masks=mask, parent_masks=mask, dense_trained=rewind,
        ...               batch=None, forward=None, loss=None, spec_prunable={"w": True}, input_shape=(2,))
        >>> params, _ = reinit_same_sign(ctx)
        >>> params["w"].tolist()  # |fresh| with sign(rewind)
        [3.0, -0.5]
    """
    if legacy:
        _deprecation.warn(
            "lottery.reinit_same_sign(theta_rewind, theta_reinit, mask, key)",
            "reinit_same_sign(ctx) with a lottery.Context (as an arm: Arm(name, reinit_same_sign))",
        )
        theta_rewind, (theta_reinit, mask, _) = ctx, legacy
    else:
        theta_rewind, theta_reinit, mask = ctx.theta_rewind, ctx.theta_reinit, ctx.parent_masks
    params = jax.tree.map(lambda r, n: jnp.sign(r) * jnp.abs(n), theta_rewind, theta_reinit)
    return params, mask


# The engine's own arm functions (un-warned, not in __all__): the built-in 'reinit' arm and the 'random' control.
def reinit_control(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
    """The same mask on the reinit draw."""
    del theta_rewind, key
    return theta_reinit, mask


def random_control(spec: Any, scope: str = "layer") -> ArmFn:
    """A uniformly random mask with the given mask's count in each prunable leaf of `spec` (or in each
    layer's pooled leaves, scope 'layer_joint'), on the rewound weights."""

    def fn(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
        del theta_reinit
        return theta_rewind, prune.random_like(key, mask, spec, scope=scope)

    return fn


# Deprecated (not in __all__): yesterday's 4-argument arm functions, kept for one release.
def ticket(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
    """Deprecated: the ticket is `weight_rewinding()` (or the string 'ticket'). Returns (theta_rewind, mask)."""
    _deprecation.warn("lottery.ticket", "lottery.weight_rewinding() (or the arm name 'ticket')")
    del theta_reinit, key
    return theta_rewind, mask


def reinit(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
    """Deprecated: random reinitialization is `reinitialized()` (or the string 'reinit')."""
    _deprecation.warn("lottery.reinit", "lottery.reinitialized() (or the arm name 'reinit')")
    return reinit_control(theta_rewind, theta_reinit, mask, key)


def random_pruning(spec: Any, scope: str = "layer") -> ArmFn:
    """Deprecated: random pruning is `shuffled()` (or the string 'random')."""
    _deprecation.warn("lottery.random_pruning", "lottery.shuffled(scope=...) (or the arm name 'random')")
    return random_control(spec, scope)


# The arms a study names by string ('ticket' first in the presets); `spec.ARMS` re-exports them.
BUILT_IN = ("ticket", "reinit", "random")
