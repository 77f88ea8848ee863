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
'synflow'). Yesterday's arm functions `fn(theta_rewind, theta_reinit, mask, key) -> (params, mask)`
still work (`Arm(name, fn)`: an offshoot of the first lineage's mask).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn import prune
from funcnn.lottery import pruners as pruners_lib

__all__ = [
    "SCHEDULES",
    "WEIGHTS",
    "Arm",
    "ArmFn",
    "at_init",
    "fine_tuning",
    "inverted",
    "lr_rewinding",
    "random_pruning",
    "reinit",
    "reinit_same_sign",
    "reinitialized",
    "shuffled",
    "ticket",
    "weight_rewinding",
]

Params = Any  # a pytree of arrays
Masks = Any  # bool arrays, like params
ArmFn = Callable[[Params, Params, Masks, jax.Array], tuple[Params, Masks]]
"""Yesterday's arm function of one member: `fn(theta_rewind, theta_reinit, mask, key) -> (params, mask)`."""

WEIGHTS = ("rewind", "trained", "reinit", "fresh", "init")
"""Where an arm's weights start: θk ('rewind'), the lineage's last trained weights ('trained'), the
seed's reinit draw ('reinit'), a fresh draw every round ('fresh'), θ0 ('init')."""
SCHEDULES = ("rewind", "start", "end")
"""Where an arm's learning-rate schedule starts: at its rewind step k, training iterations k..T
('rewind'); at 0, training 0..T ('start': Renda et al.'s full learning-rate rewinding); held at
the rate of the last iteration T - 1 while training k..T ('end': fine-tuning)."""


class Arm(NamedTuple):
    """One arm of a study: a name and where its mask, weights and schedule come from.

    fn: None, or `fn(ctx) -> (params, mask)` of a `Context` (it then decides mask and weights), or
      yesterday's `fn(theta_rewind, theta_reinit, mask, key)`. pruner: a `pruners.Pruner` or a function
      `ctx -> mask` (None: a lineage prunes as the Spec's fields say; an offshoot takes its parent's
      mask). weights: one of `WEIGHTS`; schedule: one of `SCHEDULES`. lineage: prune its own trained
      weights every round (its trained weights feed its next round). parent: an offshoot's parent arm
      (an earlier arm's name; default the first lineage). rewind_step: its k (None: the Spec's, or
      for an offshoot its parent's). The driver zeroes pruned weights (`prune.rewind`) after fn.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery.arms import Arm
        >>> flipped = Arm("flipped", lambda rewind, fresh, mask, key: (jax.tree.map(jnp.negative, rewind), mask))
        >>> params, mask = flipped.fn({"w": jnp.array([1.0, -2.0])}, None, {"w": jnp.array([True, True])}, None)
        >>> flipped.name, params["w"].tolist()  # the ticket's mask on the rewound weights, signs flipped
        ('flipped', [-1.0, 2.0])
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


def shuffled(name: str = "shuffled", *, parent: str | None = None) -> Arm:
    """Random pruning as the layerwise shuffle of the parent's mask this round, on θk.

    Example:
        >>> from funcnn.lottery import arms
        >>> arms.shuffled("snip_shuffled", parent="snip").pruner.name
        'shuffle'
    """
    return Arm(name, pruner=pruners_lib.shuffle(), parent=parent)


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


def ticket(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
    """The winning ticket: the magnitude mask on the rewound weights.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery.arms import ticket
        >>> rewind, fresh = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([-3.0, 0.5])}
        >>> params, mask = ticket(rewind, fresh, {"w": jnp.array([True, False])}, jax.random.key(0))
        >>> params["w"].tolist(), mask["w"].tolist()  # the driver then zeroes the pruned -2.0
        ([1.0, -2.0], [True, False])
    """
    del theta_reinit, key
    return theta_rewind, mask


def reinit(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
    """Random reinitialization (Frankle & Carbin's control): the same mask on a fresh init.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery.arms import reinit
        >>> rewind, fresh = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([-3.0, 0.5])}
        >>> params, mask = reinit(rewind, fresh, {"w": jnp.array([True, False])}, jax.random.key(0))
        >>> params["w"].tolist(), mask["w"].tolist()
        ([-3.0, 0.5], [True, False])
    """
    del theta_rewind, key
    return theta_reinit, mask


def random_pruning(spec: Any, scope: str = "layer") -> ArmFn:
    """Random pruning: a uniformly random mask with the ticket's count in each prunable leaf (`spec`),
    or in each layer's pooled leaves with scope 'layer_joint', on the rewound weights. A fresh mask
    every round (the key is the round's), not nested in the last one.

    spec: the prunable leaves (`prune.prunable(params)`); returns the arm's fn.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> from funcnn.lottery.arms import random_pruning
        >>> rewind = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
        >>> mask = {"w": jnp.arange(12).reshape(3, 4) < 3, "b": jnp.ones(4, bool)}  # 3 of 12 weights
        >>> fn = random_pruning(prune.prunable(rewind))
        >>> params, random_mask = fn(rewind, None, mask, jax.random.key(0))
        >>> int(random_mask["w"].sum()), int(random_mask["b"].sum())  # the ticket's count, anywhere
        (3, 4)
    """

    def fn(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
        del theta_reinit
        return theta_rewind, prune.random_like(key, mask, spec, scope=scope)

    return fn


def reinit_same_sign(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
    """Frankle & Carbin's appendix control: the fresh init's magnitudes with the rewound weights' signs.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery.arms import reinit_same_sign
        >>> rewind, fresh = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([-3.0, 0.5])}
        >>> params, mask = reinit_same_sign(rewind, fresh, {"w": jnp.array([True, True])}, jax.random.key(0))
        >>> params["w"].tolist()  # |fresh| with sign(rewind)
        [3.0, -0.5]
    """
    del key
    params = jax.tree.map(lambda r, n: jnp.sign(r) * jnp.abs(n), theta_rewind, theta_reinit)
    return params, mask


# The arms a study names by string ('ticket' first in the presets); `spec.ARMS` re-exports them.
BUILT_IN = ("ticket", "reinit", "random")
