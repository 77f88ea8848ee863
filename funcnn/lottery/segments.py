"""Training a population in segments: each segment one call of the compiled round program, then a
verified checkpoint (`seg_<done>/`, committed before the older ones are removed), so a killed round
resumes mid-way with bit-identical results; non-finite losses raise `NonFiniteLoss` or are skipped."""

from __future__ import annotations

import io as _io
import json
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnn import distributed, io
from funcnn.lottery.program import Carry

__all__ = ["NonFiniteLoss", "RoundResult"]

Params = Any  # a pytree of arrays; in a population, every leaf has a leading member axis


class NonFiniteLoss(FloatingPointError):
    """A member's training loss went non-finite (NaN or inf) by `iteration`: raised by
    `Study.train_round` unless `skip_nonfinite`; `run` re-raises it naming the round, arm and seed.

    Example:
        >>> from funcnn.lottery import NonFiniteLoss
        >>> e = NonFiniteLoss(member=3, iteration=200)
        >>> isinstance(e, FloatingPointError), e.member, e.iteration
        (True, 3, 200)
        >>> str(e)
        'non-finite training loss for population member 3 by iteration 200'
    """

    def __init__(self, member: int, iteration: int) -> None:
        self.member, self.iteration = member, iteration
        super().__init__(f"non-finite training loss for population member {member} by iteration {iteration}")


def segment_size(n_chunks: int, max_segments: int) -> int:
    """The smallest divisor of n_chunks that cuts it into at most `max_segments` equal segments."""
    return next(d for d in range(1, n_chunks + 1) if n_chunks % d == 0 and n_chunks // d <= max_segments)


def _npz_bytes(**arrays: Any) -> bytes:
    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


class RoundResult(NamedTuple):
    """A trained population: its carry (`carry.state` is the TrainState at the end), curves (P, C, M)
    after every `eval_every` steps in the order of `Study.metric_names`, ends (P, S, 4) after each of
    the S segments in the order of `Study.end_names`, the members whose loss went non-finite, and
    with `Spec.score_step` in this call's range, the params at that iteration (else None).

    `Study.train_round` returns one (see `Study` for a round trained end to end).

    Example:
        >>> import numpy as np
        >>> from funcnn.lottery.study import RoundResult
        >>> final, at_step_100 = {"w": np.array([0.5, -2.0])}, {"w": np.array([1.0, -1.0])}
        >>> curves, ends = np.zeros((2, 3, 3)), np.zeros((2, 1, 4))  # 2 members, 3 evaluations, 1 segment
        >>> result = RoundResult(None, curves, ends, failed=[], snapshot=at_step_100)
        >>> result.scored(100)["w"].tolist()  # with a score_step, the next mask is scored on the snapshot
        [1.0, -1.0]
    """

    carry: Carry
    curves: np.ndarray
    ends: np.ndarray
    failed: list
    snapshot: Any = None

    def scored(self, score_step: int | None) -> Params:
        """The params the next round's mask is scored on (saved as the round's trained.npz): the
        final ones, or with a score_step the snapshot taken there."""
        return self.carry.state.params if score_step is None else self.snapshot


def run_chunks(
    study: Any,
    carry: Carry,
    idx: Any,
    desc: str,
    *,
    checkpoint: Path | None = None,
    skip_nonfinite: bool = False,
    snapshot_chunk: int | None = None,
) -> RoundResult:
    """Train the members of `carry` on the batches `idx` (P, C, E, B) in equal segments, with a verified
    checkpoint in `checkpoint` after each (resumed from the newest one); `study` is a `Study`."""
    curves: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    done, bar, snapshot = 0, None, None
    failed: set[int] = set()
    # Equal segments (one also ends at the snapshot), so a resumed round is cut exactly as the run
    # that was killed.
    size = segment_size(idx.shape[1], study.spec.checkpoints_per_round)
    n = int(idx.shape[0])
    if checkpoint is not None:
        resumed = _load_progress(checkpoint, carry)
        if resumed is not None:
            carry, curves, ends, done, failed, snapshot = resumed
    host = lambda tree: jax.tree.map(np.asarray, distributed.gather(tree))
    if study.mesh is not None:
        # Pad the population to a multiple of the device count; the copies are dropped below.
        n_pad = distributed.padded_size(n, study.mesh)
        carry = distributed.put_population(distributed.pad_population(carry, n_pad), study.mesh)
        idx = distributed.pad_population(idx, n_pad)
    else:
        carry = host(carry)
    if study.progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=idx.shape[1] * study.spec.eval_every,
            initial=done * study.spec.eval_every,
            desc=desc,
            unit="it",
            leave=False,
        )
    while done < idx.shape[1]:
        end = min(done + size, idx.shape[1])
        if snapshot_chunk is not None and done < snapshot_chunk < end:
            end = snapshot_chunk
        seg_idx = idx[:, done:end]
        if study.mesh is not None:
            seg_idx = distributed.put_population(seg_idx, study.mesh)
        carry, (seg, seg_ends) = study.call_program(carry, seg_idx)
        seg, seg_ends = host((seg, seg_ends))
        seg = np.stack([seg[k][:n] for k in study.metric_names], axis=-1)
        seg_ends = np.stack([seg_ends[k][:n] for k in study.end_names], axis=-1)[:, None, :]
        # A chunk before a member's start (it waits: a later start) is NaN by design, not a failure.
        k = end - done
        waited = np.asarray(host(carry.wait))[:n, None] + study.spec.eval_every * (k - np.arange(k))[None] > 0
        bad = ~np.isfinite(seg[..., 0]) & ~waited
        for member, chunk in np.argwhere(bad):
            if int(member) in failed:
                continue
            it = (done + int(chunk) + 1) * study.spec.eval_every
            if not skip_nonfinite:
                raise NonFiniteLoss(int(member), it)
            failed.add(int(member))
        curves.append(seg)
        ends.append(seg_ends)
        step, done = end - done, end
        if done == snapshot_chunk:  # the params to score for the next round's mask (spec.score_step)
            snapshot = jax.tree.map(lambda a: np.asarray(a)[:n], distributed.gather(carry.state.params))
        if checkpoint is not None and done < idx.shape[1]:
            kept = jax.tree.map(lambda a: np.asarray(a)[:n], distributed.gather(carry))
            if distributed.is_writer():
                save_progress(
                    checkpoint,
                    kept,
                    np.concatenate(curves, axis=1),
                    done,
                    sorted(failed),
                    np.concatenate(ends, axis=1),
                    snapshot,
                )
        if bar is not None:
            bar.update(step * study.spec.eval_every)
            bar.set_postfix(test=f"{np.nanmean(seg_ends[:, -1, 1]):.3f}")
    if bar is not None:
        bar.close()
    carry = jax.tree.map(lambda a: np.asarray(a)[:n], distributed.gather(carry))
    return RoundResult(carry, np.concatenate(curves, axis=1), np.concatenate(ends, axis=1), sorted(failed), snapshot)


def save_progress(
    folder: Path,
    carry: Carry,
    curves: np.ndarray,
    done: int,
    failed: list,
    ends: np.ndarray,
    snapshot: Params | None = None,
) -> None:
    """A mid-round checkpoint in a folder of its own (`seg_<done>`), committed before the older
    ones are removed: a write that fails (a full disk) leaves the previous checkpoint loadable."""
    seg = folder / f"seg_{done:05d}"
    seg.mkdir(parents=True, exist_ok=True)
    io.save_tree(seg / "state.npz", carry)
    io.atomic_write_bytes(seg / "curves.npz", _npz_bytes(curves=curves, ends=ends))
    io.atomic_write_json(seg / "progress.json", {"done_chunks": done, "failed": failed})
    files = ["state.npz", "curves.npz", "progress.json"]
    if snapshot is not None:
        io.save_tree(seg / "snapshot.npz", snapshot)
        files.append("snapshot.npz")
    io.commit(seg, files)
    for old in folder.glob("seg_*"):
        if old != seg:
            shutil.rmtree(old, ignore_errors=True)


def _load_progress(
    folder: Path, like: Carry
) -> tuple[Carry, list[np.ndarray], list[np.ndarray], int, set[int], Params | None] | None:
    """The newest committed mid-round checkpoint (carry, [curves], [ends], done, failed), or None."""
    for seg in sorted(Path(folder).glob("seg_*"), reverse=True):
        if not io.verify_commit(seg):
            continue
        try:
            meta = json.loads((seg / "progress.json").read_text())
            carry = io.load_tree(seg / "state.npz", like)
            with np.load(seg / "curves.npz", allow_pickle=False) as z:
                curves, ends = [z["curves"]], [z["ends"]]
            snapshot = (
                io.load_tree(seg / "snapshot.npz", like.state.params) if (seg / "snapshot.npz").exists() else None
            )
            return carry, curves, ends, meta["done_chunks"], set(meta["failed"]), snapshot
        except (io.CheckpointError, OSError, ValueError, KeyError):
            continue  # unusable: try an older one, or redo the round from its start
    return None
