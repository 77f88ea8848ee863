"""A round's members, every arm of every replicate, as one program: `members_fn` (jitted by `Study`).

Each arm's mask and weights come from its `Context` (vmapped over replicates); offshoots read their
parent's mask of the same round inside the same program. The round is an array in the program
(`traced_round`: compiled once for every round) when every arm reads it only as an array.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import prune
from funcnn.lottery import plans as plans_lib
from funcnn.lottery.context import Context

__all__: list[str] = []  # the driver's parts, not an API of their own (see funcnn.lottery.run)

Params = Any
Masks = Any


def traced_round(plans: tuple[plans_lib.Plan, ...], spec: Any) -> bool:
    """Whether the round is an array in the members program (compiled once for every round): every arm
    that makes a mask reads `ctx.round` only as an array (built-in pruners and arms)."""
    # The Spec's own pruning reads the round only for one-shot pruning and absolute sparsities.
    spec_pruner = spec.pruning == "iterative" and spec.sparsities is None
    return all(
        p.compiled or (p.fn is None and p.legacy is None and p.mask_fn is None and (spec_pruner or not p.lineage))
        for p in plans
    )


def members_fn(runtime: Any, batched: bool = True) -> Callable[..., tuple[dict[str, Params], dict[str, Masks]]]:
    """`fn(r, theta0, rewound, reinit, lineages, dense, batch) -> ({arm: params}, {arm: masks})` for
    every arm of a round, every replicate (vmapped): the members program before jit. rewound: {k: θk};
    lineages: {root: (trained, masks)}; batch: (x, y) of each replicate's first batch. batched=False
    runs each replicate in a Python loop on concrete arrays (for arms that cannot be traced)."""
    spec, plans = runtime.spec, runtime.plans
    seeds = np.asarray(runtime.rep_seed)

    def fn(
        r: Any,
        theta0: Params,
        rewound: dict[int, Params],
        reinit: Params,
        lineages: dict[str, tuple[Params, Masks]],
        dense: Params,
        batch: tuple[jax.Array, jax.Array],
    ) -> tuple[dict[str, Params], dict[str, Masks]]:
        rep_seed = jnp.asarray(seeds)
        k_random = jax.random.wrap_key_data(jnp.asarray(runtime.keys["random"]))
        k_reinit = jax.random.wrap_key_data(jnp.asarray(runtime.keys["reinit"]))
        base = jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(k_random, r), s))(rep_seed)
        ones = jax.vmap(prune.ones)(theta0)
        params_by_arm: dict[str, Params] = {}
        masks_by_arm: dict[str, Masks] = {}
        for plan in plans:
            keys = jax.vmap(lambda k, p=plan: plans_lib.arm_key(k, p))(base)
            fresh = reinit
            if plan.weights == "reinit" and plan.name != "reinit":
                # Its own draw, once per seed (two reinit arms built alike must not train the same nets);
                # the arm named 'reinit' keeps the study's reinit draw (θ0_reinit), as it always had.
                k_own = jax.random.fold_in(k_reinit, zlib.crc32(plan.name.encode()) & 0x7FFFFFFF)
                fresh = jax.vmap(lambda s, k=k_own: runtime.net.init(jax.random.fold_in(k, s), runtime.input_shape))(
                    rep_seed
                )
            if plan.weights == "fresh":
                k_fresh = jax.random.fold_in(k_reinit, 1_000_003 + r)  # a new draw every round
                fresh = jax.vmap(lambda s, k=k_fresh: runtime.net.init(jax.random.fold_in(k, s), runtime.input_shape))(
                    rep_seed
                )
            root = lineages.get(plan.root) if plan.root is not None else None
            trained, last = root if root is not None else (dense, ones)
            parent = masks_by_arm.get(plan.parent) if plan.parent is not None else None
            member = _member(runtime, plan, spec)
            args = (rep_seed, keys, theta0, rewound[plan.rewind_step], fresh, trained, last, parent, dense, *batch)
            if batched:
                params, mask = jax.vmap(lambda *a, f=member: f(r, *a))(*args)
            else:  # host code: one replicate after another, its arrays concrete
                each = [member(r, *jax.tree.map(lambda a, i=i: _pick(a, i), args)) for i in range(len(rep_seed))]
                params, mask = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *each)
            prune.check_masks(jax.tree.map(lambda a: a[0], params), jax.tree.map(lambda a: a[0], mask))
            masks_by_arm[plan.name] = mask
            params_by_arm[plan.name] = jax.vmap(prune.rewind)(params, mask)
        return params_by_arm, masks_by_arm

    return fn


def arm_fn(runtime: Any, plan: plans_lib.Plan) -> Callable[..., tuple[Params, Masks]]:
    """One arm's members program on its own (for the identity, which names the arm that changed):
    `fn(r, keys, theta0, rewound, fresh, trained, last, parent, dense, bx, by) -> (params, masks)`,
    every argument with a leading replicate axis (parent: the parent arm's masks, or None)."""
    member = _member(runtime, plan, runtime.spec)
    seeds = np.asarray(runtime.rep_seed)

    def fn(r: Any, *args: Any) -> tuple[Params, Masks]:
        return jax.vmap(lambda *a: member(r, *a))(jnp.asarray(seeds), *args)

    return fn


def _pick(a: Any, i: int) -> Any:
    return a[i] if isinstance(a, jax.Array) else np.asarray(a)[i]


def _member(runtime: Any, plan: plans_lib.Plan, spec: Any) -> Any:
    """One member's (params, mask) of an arm: its mask from its Context, its weights by `plan.weights`."""

    def member(
        r: Any,
        seed: jax.Array,
        key: jax.Array,
        theta0: Params,
        rewound: Params,
        fresh: Params,
        last: Params,
        last_masks: Masks,
        parent_masks: Masks | None,
        dense: Params,
        bx: jax.Array,
        by: jax.Array,
    ) -> tuple[Params, Masks]:
        if plan.builtin == "random":  # the built-in random control (a structure-aware one with a structure)
            return runtime.random_fn(rewound, fresh, parent_masks, key)
        if plan.legacy is not None:  # yesterday's arm: fn(theta_rewind, theta_reinit, mask, key)
            return plan.legacy(rewound, fresh, parent_masks, key)
        ctx = Context(
            r, seed, key, theta0, rewound, fresh, last, last_masks, parent_masks, dense,
            (bx, by), runtime.eval_forward, spec.loss, runtime.spec_prunable, runtime.input_shape,
        )  # fmt: skip
        if plan.fn is not None:
            return plan.fn(ctx)
        mask_fn = runtime._spec_pruner if (plan.lineage and plan.mask_fn is None) else plan.mask_fn
        mask = parent_masks if mask_fn is None else mask_fn(ctx)
        weights = {"rewind": rewound, "trained": last, "reinit": fresh, "fresh": fresh, "init": theta0}
        return weights[plan.weights], mask

    return member
