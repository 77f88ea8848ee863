"""One pruning round's members: every arm's mask and weights from its `Context`, and their training.

`build` makes the round's population (arm-major: every seed of arm 0, then of arm 1, ...) from the
lineages' last trained weights and masks; `train` trains it, one `Study.train_round` call per
data start (arms that train iterations k..T for one k share a call, so a study whose arms all rewind
to one k is one compiled program, as before), and joins the results on one grid of iterations.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import prune
from funcnn.lottery import plans as plans_lib
from funcnn.lottery.context import Context
from funcnn.lottery.study import RoundResult, Study

__all__: list[str] = []  # the driver's parts, not an API of their own (see funcnn.lottery.run)

Params = Any
Masks = Any


class Lineage(NamedTuple):
    """A lineage's state between rounds (leaves with a leading replicate axis): the weights its next
    mask is scored on, its mask, and its trained model state (None for a net without one)."""

    trained: Params
    masks: Masks
    model_state: Params | None


class Members(NamedTuple):
    """A round's population, arm-major. start: each member's first iteration (data and step);
    schedule_start: where its schedule starts; hold: the step its schedule is held at (-1: none)."""

    params: Params
    masks: Masks
    arm: list[str]
    seeds: np.ndarray
    settings: np.ndarray
    start: np.ndarray
    schedule_start: np.ndarray
    hold: np.ndarray
    model_state: Params | None
    opt_state: Any
    mask_seconds: float


def _concat(trees: list) -> Any:
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees)


def _take(tree: Any, i: Any) -> Any:
    return jax.tree.map(lambda a: a[i], tree)


def build(
    runtime: Study, r: int, lineages: dict[str, Lineage], rewinds: dict[int, dict], dense_trained: Params
) -> tuple[Members, dict[str, Masks]]:
    """Round r's members and each arm's masks (by name), from the lineages after round r - 1 and the
    rewind points {k: {'params', 'model_state', 'opt_state'}} of the dense run."""
    spec, R = runtime.spec, runtime.n_replicates
    T = spec.iterations
    rep_seed = jnp.asarray(runtime.rep_seed)
    x, y = runtime.data[0], runtime.data[1]
    first_batch = runtime.idx[rep_seed, 0]  # (R, B): each replicate's seed's first batch
    ones = jax.vmap(prune.ones)(runtime.theta0)
    masks_now: dict[str, Masks] = {}
    pops_p, pops_m, member_arm, starts, scheds, holds, states = [], [], [], [], [], [], []
    t0 = time.perf_counter()
    for plan in runtime.plans:
        rw = rewinds[plan.rewind_step]
        root = lineages.get(plan.root) if plan.root is not None else None
        trained = root.trained if root is not None else dense_trained
        prev = root.masks if root is not None else ones
        parent = masks_now.get(plan.parent) if plan.parent is not None else None
        base = jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(runtime.k_random, r), s))(rep_seed)
        keys = jax.vmap(lambda k, p=plan: plans_lib.arm_key(k, p))(base)
        reinit = runtime.theta0_reinit
        if plan.weights == "fresh":
            k_fresh = jax.random.fold_in(runtime.k_reinit, 1_000_003 + r)  # a new draw every round
            reinit = jax.vmap(lambda s, k=k_fresh: runtime.net.init(jax.random.fold_in(k, s), runtime.input_shape))(
                rep_seed
            )

        member = _member(runtime, plan)
        args = (rep_seed, keys, runtime.theta0, rw["params"], reinit, trained, prev, parent, dense_trained)
        batch = (x[first_batch], y[first_batch])
        if plan.compiled:  # one program for every round: the round rides in as an array
            program = runtime.mask_programs.get(plan.name)
            if program is None:
                program = runtime.mask_programs[plan.name] = jax.jit(jax.vmap(member, in_axes=(None,) + (0,) * 11))
            params, mask = program(jnp.int32(r), *args, *batch)
        else:
            params, mask = jax.vmap(lambda *a, r=r, f=member: f(r, *a))(*args, *batch)
        prune.check_masks(_take(params, 0), _take(mask, 0))
        masks_now[plan.name] = mask
        pops_p.append(params)
        pops_m.append(mask)
        member_arm += [plan.name] * R
        k = plan.rewind_step
        start = 0 if plan.schedule == "start" else k
        starts.append(np.full(R, start))
        scheds.append(np.full(R, T - 1 if plan.schedule == "end" else start))
        holds.append(np.full(R, T - 1 if plan.schedule == "end" else -1))
        if plan.weights == "trained" and root is not None and root.model_state is not None:
            states.append(root.model_state)
        else:
            states.append(rw["model_state"])
    mask_seconds = time.perf_counter() - t0
    n_arms = len(runtime.plans)
    params, member_masks = _concat(pops_p), _concat(pops_m)
    params = jax.vmap(prune.rewind)(params, member_masks)
    model_state = None if states[0] is None else _concat(states)
    opt_state = None
    if spec.rewind_optimizer and rewinds[runtime.plans[0].rewind_step]["opt_state"] is not None:
        opt_state = _concat([rewinds[runtime.plans[0].rewind_step]["opt_state"]] * n_arms)
    members = Members(
        params,
        member_masks,
        member_arm,
        np.tile(runtime.rep_seed, n_arms),
        np.tile(runtime.rep_setting, n_arms),
        np.concatenate(starts),
        np.concatenate(scheds),
        np.concatenate(holds),
        model_state,
        opt_state,
        mask_seconds,
    )
    return members, masks_now


def _member(runtime: Study, plan: plans_lib.Plan) -> Any:
    """One member's (params, mask) of an arm: its mask from its Context, its weights by `plan.weights`."""
    spec = runtime.spec

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
        if plan.legacy is not None:  # yesterday's arm: fn(theta_rewind, theta_reinit, mask, key)
            return plan.legacy(rewound, fresh, parent_masks, key)
        ctx = Context(
            r, seed, key, theta0, rewound, fresh, last, last_masks, parent_masks, dense,
            (bx, by), runtime.eval_forward, spec.loss, runtime.spec_prunable, runtime.input_shape,
        )  # fmt: skip
        if plan.fn is not None:
            return plan.fn(ctx)
        mask = parent_masks if plan.mask_fn is None else plan.mask_fn(ctx)
        weights = {"rewind": rewound, "trained": last, "reinit": fresh, "fresh": fresh, "init": theta0}
        return weights[plan.weights], mask

    return member


def _pad_front(a: np.ndarray, length: int) -> np.ndarray:
    """(P, C, ...) -> (P, length, ...), NaN in front: curves of members that started later."""
    if a.shape[1] == length:
        return a
    pad = np.full((a.shape[0], length - a.shape[1]) + a.shape[2:], np.nan, a.dtype)
    return np.concatenate([pad, a], axis=1)


def train(
    runtime: Study, members: Members, r: int, partial: Path, skip_nonfinite: bool
) -> tuple[RoundResult, Params, Params | None, list[Path]]:
    """Train a round's members; returns (the joined result, every member's scored params, every
    member's final model state, the checkpoint folders used). Members that start later (a larger
    k) have NaN curves before their start; all end at `iterations`."""
    starts = sorted(set(members.start.tolist()))
    n = len(members.arm)
    pieces: list[tuple[np.ndarray, RoundResult]] = []
    folders = []
    uniform = len(set(members.schedule_start.tolist())) == 1 and starts == [int(members.schedule_start[0])]
    for start in starts:
        sel = np.flatnonzero(members.start == start)
        folder = partial if start == starts[-1] else partial.with_name(f"{partial.name}-from{start:06d}")
        folders.append(folder)
        pick = lambda tree, sel=sel: None if tree is None else _take(tree, jnp.asarray(sel))
        held = members.hold[sel]
        result = runtime.train_round(
            pick(members.params),
            pick(members.masks),
            jnp.asarray(members.seeds[sel]),
            int(start),
            f"round {r}" + ("" if len(starts) == 1 else f" (from {start})"),
            checkpoint=folder,
            skip_nonfinite=skip_nonfinite,
            model_state=pick(members.model_state),
            opt_state=pick(members.opt_state),
            setting_of_member=jnp.asarray(members.settings[sel]),
            schedule_start=None if uniform else members.schedule_start[sel],
            hold=held if (held >= 0).any() else None,
        )
        pieces.append((sel, result))
    if len(pieces) == 1:
        result = pieces[0][1]
        return result, result.scored(runtime.spec.score_step), result.carry.state.model_state, folders
    length = max(res.curves.shape[1] for _, res in pieces)
    s_len = max(res.ends.shape[1] for _, res in pieces)
    order = np.argsort(np.concatenate([sel for sel, _ in pieces]))  # back to arm-major order
    join = lambda trees: jax.tree.map(lambda *xs: jnp.concatenate(xs)[jnp.asarray(order)], *trees)
    curves = np.concatenate([_pad_front(res.curves, length) for _, res in pieces])[order]
    ends = np.concatenate([_pad_front(res.ends, s_len) for _, res in pieces])[order]
    failed = sorted(int(sel[m]) for sel, res in pieces for m in res.failed)
    carry = join([res.carry for _, res in pieces])
    scored = join([res.carry.state.params if res.snapshot is None else res.snapshot for _, res in pieces])
    model_state = carry.state.model_state
    del n
    return RoundResult(carry, curves, ends, failed, None), scored, model_state, folders
