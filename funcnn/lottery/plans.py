"""Arms made concrete for a study: `resolve` checks a study's arms and turns each into a `Plan` (its
parent, the lineage behind it, its rewind step, how its mask is made); each arm's own key
(`arm_key`); whether a study needs the dense run (`needs_dense_run`)."""

from __future__ import annotations

import inspect
import re
import warnings
import zlib
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax

from funcnn import _deprecation, prune
from funcnn.lottery import pruners as pruners_lib
from funcnn.lottery.arms import (
    BUILT_IN,
    SCHEDULES,
    WEIGHTS,
    Arm,
    ArmFn,
    at_init,
    fine_tuning,
    inverted,
    lr_rewinding,
    reinit,
    reinit_control,
    reinitialized,
    shuffled,
    weight_rewinding,
)
from funcnn.lottery.context import Context
from funcnn.lottery.ladder import units_prunable

__all__: list[str] = []  # the driver's parts (see funcnn.lottery.arms for the arms themselves)

Params = Any
Masks = Any


NAMED: dict[str, Callable[[], Arm]] = {
    "lr_rewinding": lr_rewinding,
    "fine_tuning": fine_tuning,
    "inverted": inverted,
    "shuffled": shuffled,
    "reinit_fresh": lambda: reinitialized("reinit_fresh", fresh=True),
    "snip": lambda: at_init("snip"),
    "grasp": lambda: at_init("grasp"),
    "synflow": lambda: at_init("synflow"),
}
"""More arms a study may name by string, each its built-in function's default."""


class Plan(NamedTuple):
    """An arm made concrete for a study (`resolve`): what the driver needs to build its members.

    root: the lineage whose last trained weights and masks fill the arm's `Context` (itself for a
    lineage; None for an offshoot without a parent). mask_fn(ctx) -> masks (None: the parent's mask).
    fn(ctx) -> (params, masks) replaces mask and weights; legacy: yesterday's 4-argument function.
    legacy_key: the built-in 'random' arm keeps the key it always had (so older run folders resume).
    at_init: its mask needs no trained weights. compiled: its mask reads the round only as an array,
    so one compiled program serves every round (a built-in pruner). builtin: 'random' for the built-in
    random-pruning control (the study's `random_fn`: the ticket's count per leaf, or per unit).
    """

    name: str
    lineage: bool
    parent: str | None
    root: str | None
    rewind_step: int
    weights: str
    schedule: str
    mask_fn: Callable[[Context], Masks] | None
    fn: Callable[[Context], tuple[Params, Masks]] | None
    legacy: ArmFn | None
    legacy_key: bool
    at_init: bool
    compiled: bool = False
    builtin: str | None = None


def _positional(fn: Callable[..., Any]) -> int | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def _as_arm(a: str | Arm) -> tuple[Arm, bool]:
    if isinstance(a, Arm):
        return a, False
    if a == "ticket":
        return weight_rewinding("ticket"), False
    if a == "reinit":
        return Arm("reinit", reinit_control), False
    if a == "random":
        return Arm("random", _no_random), True
    if isinstance(a, str) and a in NAMED:
        return NAMED[a](), False
    raise ValueError(f"arms must be names in {BUILT_IN + tuple(NAMED)} or Arm objects, got {a!r}")


def _no_random(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
    raise ValueError("the 'random' arm needs the study's prunable leaves (resolve it through lottery.Study)")


def resolve(arms: Iterable[str | Arm], spec_rewind_step: int = 0) -> tuple[Plan, ...]:
    """Plans from arm names and `Arm`s, checked: distinct names usable as file names, parents that are
    earlier arms, known weights and schedules, and no offshoot identical to its parent. A lineage
    without a pruner prunes as the Spec's fields say (its `mask_fn` is None); the built-in 'random'
    arm is marked `builtin='random'` (the study supplies its function).
    """
    plans: list[Plan] = []
    for given in arms:
        arm, legacy_key = _as_arm(given)
        name = arm.name
        where = f"arms: Arm {name!r}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
            raise ValueError(f"arms: an arm's name must be letters, digits and _.+- (a file name), got {name!r}")
        if arm.weights not in WEIGHTS:
            raise ValueError(f"{where}: weights must be one of {WEIGHTS}, got weights={arm.weights!r}")
        if arm.schedule not in SCHEDULES:
            raise ValueError(f"{where}: schedule must be one of {SCHEDULES}, got schedule={arm.schedule!r}")
        if arm.fn is not None and not callable(arm.fn):
            raise ValueError(f"{where} needs a callable fn(ctx) -> (params, mask) of a lottery.Context")
        pruner = arm.pruner
        if pruner is not None and not (isinstance(pruner, pruners_lib.Pruner) or callable(pruner)):
            raise ValueError(f"{where}: pruner must be a lottery.pruners.Pruner or a function ctx -> masks")
        n_pos = None if arm.fn is None else _positional(arm.fn)
        if arm.fn is not None and n_pos not in (1, 4):
            raise ValueError(
                f"{where}: fn must take one argument, a lottery.Context (or four: yesterday's arms, deprecated)"
            )
        lineages = [p.name for p in plans if p.lineage]
        parent = arm.parent
        if arm.lineage:
            parent = None
            if n_pos == 4:
                raise ValueError(f"{where}: a lineage's fn takes a Context (fn(ctx) -> (params, mask))")
        elif parent is None:
            parent = lineages[0] if lineages else None
        elif parent not in [p.name for p in plans]:
            raise ValueError(f"{where}: parent must name an earlier arm, got parent={parent!r}")
        if (
            not arm.lineage
            and arm.fn is None
            and pruner is None
            and arm.weights == "rewind"
            and (arm.schedule == "rewind" and arm.rewind_step is None)
        ):
            raise ValueError(
                f"{where} does nothing different from its parent: give it a fn, a pruner, weights, a schedule "
                "or a rewind_step (e.g. Arm(name, fn) with fn(ctx) -> (params, mask))"
            )
        if n_pos == 4 and parent is None:
            raise ValueError(f"{where}: yesterday's arm functions need a lineage (e.g. 'ticket') before them")
        if n_pos == 4 and arm.fn not in _ENGINE_FNS:
            warnings.warn(
                _deprecation.message(
                    f"{where}: fn(theta_rewind, theta_reinit, mask, key)",
                    "fn(ctx) -> (params, mask) of a lottery.Context (ctx.theta_rewind, ctx.theta_reinit, "
                    "ctx.parent_masks, ctx.key)",
                ),
                DeprecationWarning,
                stacklevel=2,
            )
        by_name = {p.name: p for p in plans}
        if arm.rewind_step is not None:
            k = int(arm.rewind_step)
        elif parent is not None:
            k = by_name[parent].rewind_step
        else:
            k = spec_rewind_step
        mask_fn = None if pruner is None else (pruner.fn if isinstance(pruner, pruners_lib.Pruner) else pruner)
        at_init_mask = isinstance(pruner, pruners_lib.Pruner) and pruner.at_init
        plans.append(
            Plan(
                name=name,
                lineage=bool(arm.lineage),
                parent=parent,
                root=name if arm.lineage else (by_name[parent].root if parent is not None else None),
                rewind_step=k,
                weights=arm.weights,
                schedule=arm.schedule,
                mask_fn=mask_fn,
                fn=arm.fn if n_pos == 1 else None,
                legacy=arm.fn if n_pos == 4 and not legacy_key else None,
                legacy_key=legacy_key,
                at_init=at_init_mask,
                compiled=(isinstance(pruner, pruners_lib.Pruner) and pruner.compiled and arm.fn is None)
                or legacy_key
                or (arm.fn is not None and arm.fn in _COMPILED_FNS),
                builtin="random" if legacy_key else None,
            )
        )
    names = [p.name for p in plans]
    if not plans or len(set(names)) != len(names):
        raise ValueError(f"arms must be one or more arms with distinct names, got arms={names}")
    return tuple(plans)


# Built-in arm functions that read nothing of the round (so they compile once for every round).
_COMPILED_FNS = (reinit_control, reinit)
# The engine's own 4-argument functions, which the strings 'reinit' and 'random' resolve to (no warning).
_ENGINE_FNS = (reinit_control, _no_random)


def arm_key(base: jax.Array, plan: Plan) -> jax.Array:
    """An arm's own key from its round-and-seed key: folded with a hash of its name, so that two arms
    built alike draw differently and adding an arm changes no other arm's draws (the built-in
    'random' arm keeps the round-and-seed key, as before)."""
    return base if plan.legacy_key else jax.random.fold_in(base, zlib.crc32(plan.name.encode()) & 0x7FFFFFFF)


def needs_dense_run(plans: tuple[Plan, ...]) -> bool:
    """Whether a study must train the dense net first (round 0): a lineage, trained weights, or a
    mask that is not made at initialization."""
    return any(
        p.lineage
        or p.weights == "trained"
        or p.legacy is not None
        or p.builtin is not None
        or p.fn is not None
        or (p.mask_fn is not None and not p.at_init)
        for p in plans
    )


def with_mask(params: Params, masks: Masks) -> Params:
    """params ⊙ masks, leaf by leaf (the driver's last step for every arm)."""
    return prune.rewind(params, masks)


def _units_prunable(prunable_spec: Any, params: Params, layout: Any) -> Any:
    return (
        units_prunable(prunable_spec, params)
        if layout is None
        else units_prunable(prunable_spec, params, layout=layout)
    )


def _structured_random(units: Any, layout: Any = None) -> ArmFn:
    """The random arm with a structure: `prune.structured_random_like` over the prunable leaves `units`."""

    def fn(theta_rewind: Params, theta_reinit: Params, mask: Masks, key: jax.Array) -> tuple[Params, Masks]:
        del theta_reinit
        if layout is None:
            return theta_rewind, prune.structured_random_like(key, mask, units)
        return theta_rewind, prune.structured_random_like(key, mask, units, unit_axis=layout)

    return fn


def _check_prunable(spec: Any, spec_prunable: Any) -> None:
    """Before any training: some leaf is prunable, and every `layer_rates` name is a prunable layer or leaf."""
    known = [prune.path_name(p) for p, s in jax.tree_util.tree_leaves_with_path(spec_prunable) if s]
    if not known:
        raise ValueError("spec prunable selects no leaf of the net's params; nothing could be pruned")
    for name in dict(spec.layer_rates):
        if not any(n == name or n.startswith(name + "/") for n in known):
            raise ValueError(
                f"spec layer_rates names {name!r}, which is no prunable layer or leaf of the net; prunable: {known}"
            )
