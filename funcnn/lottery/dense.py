"""Round 0: the dense run, one continuous run per member, with the rewind points saved on the way.

Every rewind step k an arm asks for (the Spec's `rewind_step`, and each arm's own) cuts the dense
run there: θk, its model state and its optimizer state are kept for the pruning rounds, and saved
in a folder of their own (`round_00.rewind` for the first k, `round_00.rewind-<k>` for the others)
so a kill after them keeps them. Lineages with different rewind steps share this one dense run.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

from funcnn import distributed, io
from funcnn.lottery.program import Carry
from funcnn.lottery.segments import RoundResult, _npz_bytes, run_chunks, segment_size
from funcnn.lottery.spec import Spec
from funcnn.lottery.study import Study

__all__: list[str] = []  # the driver's parts, not an API of their own (see funcnn.lottery.run)


def _train_between(runtime: Study, carry: Carry, start: int, stop: int, folder: Path) -> RoundResult:
    """The dense run from `start` to `stop` (a rewind step), saved on its own in `folder`."""
    spec = runtime.spec
    seeds = runtime.rep_seed
    if io.verify_commit(folder):
        try:
            carry_k = io.load_tree(folder / "state.npz", carry)
            with np.load(folder / "curves.npz", allow_pickle=False) as z:
                return RoundResult(carry_k, z["curves"], z["ends"], [])
        except (io.CheckpointError, OSError, ValueError, KeyError):
            pass
    chunks = (stop - start) // spec.eval_every
    idx = runtime.idx[seeds, start:stop].reshape(len(seeds), chunks, spec.eval_every, spec.batch_size)
    t0 = time.perf_counter()
    first = run_chunks(runtime, carry, idx, f"round 0 (to rewind step {stop})")
    runtime.seconds["train"] += time.perf_counter() - t0
    if distributed.is_writer():
        folder.mkdir(parents=True, exist_ok=True)
        io.save_tree(folder / "state.npz", first.carry)
        io.atomic_write_bytes(folder / "curves.npz", _npz_bytes(curves=first.curves, ends=first.ends))
        io.commit(folder, ["state.npz", "curves.npz"])
    return first


def rewind_folders(out: Path, ks: list[int]) -> list[Path]:
    """Where the dense run's pieces up to each rewind step are kept until round 0 is committed."""
    return [out / ("round_00.rewind" if i == 0 else f"round_00.rewind-{k}") for i, k in enumerate(ks)]


def train_dense(runtime: Study, out: Path, partial: Path, skip_nonfinite: bool) -> tuple[RoundResult, dict[int, dict]]:
    """Round 0 for every replicate; returns its result and the rewind points {k: {'params',
    'model_state', 'opt_state'}} (k = 0: θ0 and the initial model state)."""
    masks = jax.tree.map(lambda a: np.ones(np.shape(a), bool), runtime.theta0_host)
    seeds, settings = runtime.rep_seed, runtime.rep_setting
    rewinds: dict[int, dict] = {0: {"params": runtime.theta0, "model_state": runtime.state0, "opt_state": None}}
    ks = runtime.rewind_steps
    if not ks:
        result = runtime.train_round(
            runtime.theta0_host,
            masks,
            seeds,
            0,
            "round 0",
            checkpoint=partial,
            skip_nonfinite=skip_nonfinite,
            setting_of_member=settings,
        )
        return result, rewinds
    n = len(seeds)
    none = np.full(n, -1, np.int32)
    zero = np.zeros(n, np.int32)
    carry = runtime.start_carry(
        runtime.theta0_host, masks, seeds, 0, runtime.member_state0(seeds), None, settings, zero, none
    )
    pieces, start = [], 0
    for k, folder in zip(ks, rewind_folders(out, ks), strict=True):
        piece = _train_between(runtime, carry, start, k, folder)
        carry, start = piece.carry, k
        s = carry.state
        rewinds[k] = {"params": s.params, "model_state": s.model_state, "opt_state": s.opt_state}
        pieces.append(piece)
    # The dense run goes on from the last θk with its optimizer state (and its best validation params
    # so far): one continuous run.
    rest = runtime.train_round(
        carry.state.params,
        masks,
        seeds,
        start,
        "round 0",
        checkpoint=partial,
        skip_nonfinite=skip_nonfinite,
        carry=carry,
        setting_of_member=settings,
    )
    result = rest._replace(
        curves=np.concatenate([p.curves for p in pieces] + [rest.curves], axis=1),
        ends=np.concatenate([p.ends for p in pieces] + [rest.ends], axis=1),
    )
    return result, rewinds


def segment_ends(spec: Spec, ks: list[int], r: int, its: np.ndarray) -> list[int]:
    """The iterations at which a round's segments end (where the test set was evaluated): round 0 is
    cut at every rewind step k in `ks`."""

    def cut(chunk_its: np.ndarray) -> list[int]:
        if len(chunk_its) == 0:
            return []
        size = segment_size(len(chunk_its), spec.checkpoints_per_round)
        return [int(i) for i in chunk_its[size - 1 :: size]]

    if r == 0 and ks:
        bounds = [k // spec.eval_every for k in ks]
        out, lo = [], 0
        for b in bounds:
            out += cut(its[lo:b])
            lo = b
        return out + cut(its[lo:])
    return cut(its)
