"""One pruning round's members: every arm's mask and weights from its `Context` in one compiled
program, and their training in one call.

`build` makes the round's population (arm-major: every seed of arm 0, then of arm 1, ...) from the
lineages' last trained weights and masks with `members_program`: every arm of every seed, compiled
once for every round (the round rides in as an array) when the arms' pruners read it only as an array
(the built-in ones), or once per round otherwise. `train` trains all members in one call: members
that start later (a larger rewind step k) wait in the same program until their start.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnn import checks
from funcnn.lottery import members as members_lib
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
    return jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *trees)


def build(
    runtime: Study, r: int, lineages: dict[str, Lineage], rewinds: dict[int, dict], dense_trained: Params
) -> tuple[Members, dict[str, Masks]]:
    """Round r's members and each arm's masks (by name), from the lineages after round r - 1 and the
    rewind points {k: {'params', 'model_state', 'opt_state'}} of the dense run."""
    spec, R = runtime.spec, runtime.n_replicates
    T = spec.iterations
    t0 = time.perf_counter()
    first = runtime.idx[runtime.rep_seed, 0]  # (R, B): each replicate's seed's first batch
    batch = (runtime.host_data[0][first], runtime.host_data[1][first])
    rewound = {k: rewinds[k]["params"] for k in sorted({p.rewind_step for p in runtime.plans})}
    lin = {name: (v.trained, v.masks) for name, v in lineages.items()}
    if runtime.host_masks:  # an arm that cannot be lowered: on the host, one replicate at a time
        params_by_arm, masks_by_arm = host_members(runtime, r, lin, rewinds, dense_trained)
    else:
        program = runtime.members_program
        round_arg = np.int32(r) if members_lib.traced_round(runtime.plans, runtime.spec) else r
        # No runtime checks in the program (a host callback would keep it out of the persistent cache):
        # rates are Python numbers, checked as it is traced, and a member's weights are finite unless
        # its loss went non-finite, which the round program reports.
        with checks.deferred():
            params_by_arm, masks_by_arm = program(
                round_arg, runtime.theta0, rewound, runtime.theta0_reinit, lin, dense_trained, batch
            )
    params_by_arm, masks_by_arm = jax.tree.map(np.asarray, (params_by_arm, masks_by_arm))
    starts, scheds, holds, states, member_arm = [], [], [], [], []
    for plan in runtime.plans:
        root = lineages.get(plan.root) if plan.root is not None else None
        member_arm += [plan.name] * R
        k = plan.rewind_step
        start = 0 if plan.schedule == "start" else k
        starts.append(np.full(R, start))
        scheds.append(np.full(R, T - 1 if plan.schedule == "end" else start))
        holds.append(np.full(R, T - 1 if plan.schedule == "end" else -1))
        if plan.weights == "trained" and root is not None and root.model_state is not None:
            states.append(root.model_state)
        else:
            states.append(rewinds[k]["model_state"])
    mask_seconds = time.perf_counter() - t0
    names = [p.name for p in runtime.plans]
    n_arms = len(names)
    opt_state = None
    if spec.rewind_optimizer and rewinds[runtime.plans[0].rewind_step]["opt_state"] is not None:
        opt_state = _concat([rewinds[runtime.plans[0].rewind_step]["opt_state"]] * n_arms)
    members = Members(
        _concat([params_by_arm[n] for n in names]),
        _concat([masks_by_arm[n] for n in names]),
        member_arm,
        np.tile(runtime.rep_seed, n_arms),
        np.tile(runtime.rep_setting, n_arms),
        np.concatenate(starts),
        np.concatenate(scheds),
        np.concatenate(holds),
        None if states[0] is None else _concat(states),
        opt_state,
        mask_seconds,
    )
    runtime.seconds["masks"] += mask_seconds
    return members, masks_by_arm


def host_members(
    runtime: Study, r: int, lineages: dict[str, tuple], rewinds: dict[int, dict], dense: Params
) -> tuple[dict[str, Params], dict[str, Masks]]:
    """Every arm's (params, masks) of round r made on the host, replicate by replicate: for studies
    whose arms cannot be lowered into the masks program (their identity probes them instead)."""
    first = runtime.idx[runtime.rep_seed, 0]
    batch = (runtime.host_data[0][first], runtime.host_data[1][first])
    rewound = {k: rewinds[k]["params"] for k in sorted({p.rewind_step for p in runtime.plans})}
    fn = members_lib.members_fn(runtime, batched=False)
    return fn(r, runtime.theta0_host, rewound, jax.tree.map(np.asarray, runtime.theta0_reinit), lineages, dense, batch)


def train(
    runtime: Study, members: Members, r: int, partial: Path, skip_nonfinite: bool
) -> tuple[RoundResult, Params, Params | None, list[Path]]:
    """Train a round's members in one call; returns (the result, every member's scored params, every
    member's final model state, the checkpoint folders used). Members that start later (a larger
    k) wait until their start: their curves are NaN before it; all end at `iterations`."""
    first = int(members.start.min())
    uniform = len(set(members.schedule_start.tolist())) == 1 and int(members.schedule_start[0]) == first
    late = bool((members.start > first).any())
    result = runtime.train_round(
        members.params,
        members.masks,
        members.seeds,
        first,
        f"round {r}",
        checkpoint=partial,
        skip_nonfinite=skip_nonfinite,
        model_state=members.model_state,
        opt_state=members.opt_state,
        setting_of_member=members.settings,
        schedule_start=None if uniform else members.schedule_start,
        hold=members.hold if (members.hold >= 0).any() else None,
        member_start=members.start if late else None,
    )
    return result, result.scored(runtime.spec.score_step), result.carry.state.model_state, [partial]
