"""A round's files: written atomically and committed (SHA-256 of each file in COMMIT), read back only
if every checksum holds, and the digest of what later rounds are built on (`lineage`).

A round folder holds metrics.json, curves.npz, and for every arm its masks and trained weights:
the first arm's as masks.npz / trained.npz (the ticket's, as always), every other arm's as
masks_<arm>.npz / trained_<arm>.npz; for a net with model state (BatchNorm's running statistics) every
arm's trained state beside its weights, as trained_state[_<arm>].npz; round 0 also the rewind points
(rewind.npz, rewind_state.npz, rewind_opt.npz at the Spec's rewind step; rewind_k<k>*.npz at other
arms' steps). `lottery.load_round` reads an arm's files back.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from funcnn import io
from funcnn.lottery.segments import _npz_bytes
from funcnn.lottery.study import Study

__all__: list[str] = []  # the driver's parts, not an API of their own (see funcnn.lottery.run)

_REWIND_FILES = (("rewind", "params"), ("rewind_state", "model_state"), ("rewind_opt", "opt_state"))


def arm_file(kind: str, arm_index: int, name: str) -> str:
    """'masks.npz' for the first arm, 'masks_<name>.npz' for the others (kind: masks, trained, trained_state)."""
    return f"{kind}.npz" if arm_index == 0 else f"{kind}_{name}.npz"


def rewind_file(kind: str, k: int, spec_k: int) -> str:
    return f"{kind}.npz" if k == spec_k else f"{kind}_k{k}.npz"


def _in_lineage(name: str) -> bool:
    return name.startswith(("masks", "trained", "rewind")) and name.endswith(".npz")


def lineage(folder: Path) -> str:
    """The digest of what later rounds are built on: the round's masks, trained and rewind weights."""
    digests = json.loads((Path(folder) / io.COMMIT).read_text())
    picked = {k: v for k, v in sorted(digests.items()) if _in_lineage(k)}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()


def commit_round(folder: Path, rec: dict, trees: dict[str, Any], curves: dict) -> None:
    """Write {file name: tree} (None trees skipped), curves.npz and metrics.json, then COMMIT."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / io.COMMIT).unlink(missing_ok=True)
    files = []
    for name, tree in trees.items():
        if tree is not None:
            io.save_tree(folder / name, tree)
            files.append(name)
    io.atomic_write_bytes(folder / "curves.npz", _npz_bytes(**curves))
    files += ["curves.npz", "metrics.json"]
    io.atomic_write_json(folder / "metrics.json", rec)
    io.commit(folder, files)  # the round counts as complete from this rename on


def round_trees(
    runtime: Study, members_masks: dict[str, Any], trained: dict[str, Any], states: dict[str, Any]
) -> dict[str, Any]:
    """The files of a pruning round: each arm's masks, trained weights and trained model state."""
    out: dict[str, Any] = {}
    for i, plan in enumerate(runtime.plans):
        out[arm_file("masks", i, plan.name)] = members_masks[plan.name]
        out[arm_file("trained", i, plan.name)] = trained[plan.name]
        if plan.name in states:
            out[arm_file("trained_state", i, plan.name)] = states[plan.name]
    return out


def rewind_trees(runtime: Study, rewinds: dict[int, dict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in runtime.rewind_steps:
        for kind, key in _REWIND_FILES:
            out[rewind_file(kind, k, runtime.spec.rewind_step)] = rewinds[k][key]
    return out


def load_round(
    folder: Path, runtime: Study, r: int, log: Callable[[str], None], parent: str
) -> tuple[dict, dict[str, tuple], dict[int, dict]] | None:
    """A committed round's (metrics, {lineage: (trained, masks, model_state)}, rewind points), or
    None if it must be trained again (a failed checksum, a file that does not fit, another parent)."""
    if not io.verify_commit(folder):
        if (folder / io.COMMIT).exists():
            log(f"round {r}: {folder} failed its checksum check (truncated or corrupted files); training it again")
        return None
    try:
        rec = json.loads((folder / "metrics.json").read_text())
        if r > 0 and rec.get("parent", parent) != parent:
            log(
                f"round {r}: it was built on a round {r - 1} that has since been trained again with a different "
                "result; training it again"
            )
            return None
        like = templates(runtime)
        ones = like.masks
        lineages: dict[str, tuple] = {}
        for i, plan in enumerate(runtime.plans):
            if not (plan.lineage or (r == 0 and i == 0)):
                continue
            if r == 0 and i > 0:
                continue
            state_file = folder / arm_file("trained_state", i, plan.name)
            state = io.load_tree(state_file, like.model_state) if state_file.exists() else None
            lineages[plan.name] = (
                io.load_tree(folder / arm_file("trained", i, plan.name), like.params),
                io.load_tree(folder / arm_file("masks", i, plan.name), ones),
                state,
            )
        rewinds: dict[int, dict] = {}
        if r == 0:
            for k in runtime.rewind_steps:
                rw: dict[str, Any] = {"params": None, "model_state": None, "opt_state": None}
                rw["params"] = io.load_tree(folder / rewind_file("rewind", k, runtime.spec.rewind_step), like.params)
                for kind, key, tree in (
                    ("rewind_state", "model_state", like.model_state),
                    ("rewind_opt", "opt_state", like.opt_state),
                ):
                    path = folder / rewind_file(kind, k, runtime.spec.rewind_step)
                    if path.exists():
                        rw[key] = io.load_tree(path, tree)
                rewinds[k] = rw
    except (io.CheckpointError, OSError, ValueError) as e:
        log(f"round {r}: {e}; training it again")
        return None
    return rec, lineages, rewinds


def templates(runtime: Study) -> Any:
    """The shapes of a population's TrainState (`jax.ShapeDtypeStruct`s, nothing computed): what
    a round's files are loaded into."""
    R = runtime.n_replicates
    i32 = np.zeros(R, np.int32)
    params = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), runtime.theta0_host)
    masks = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, np.bool_), params)
    state0 = runtime.member_state0(runtime.rep_seed)
    carry = jax.eval_shape(runtime.carry_program, params, masks, i32, np.int32(0), state0, i32, i32, i32, None, i32)
    return carry.state._replace(masks=masks)


def remove_tree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
