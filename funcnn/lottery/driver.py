"""The driver: rounds of iterative magnitude pruning, committed one by one to a run folder.

The only part of the lottery package that touches files. A run folder holds `identity.json` (what
the study is: its fields, the param tree, fingerprints of θ0, the data, the net and the optimizer),
`LOCK` (held while a process runs), one `round_XX/` per committed round and `round_XX.partial/`
mid-round checkpoints. A re-run resumes only a study with the same identity, and a committed round
only on top of the very round it was built on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import distributed, io, prune
from funcnn.lottery import report as report_lib
from funcnn.lottery.config import Config
from funcnn.lottery.identity import check_identity, identity
from funcnn.lottery.program import start_carry
from funcnn.lottery.spec import Spec, prune_round
from funcnn.lottery.study import NonFiniteLoss, RoundResult, Study, _npz_bytes, segment_size

__all__ = ["CheckpointWriteError", "RunFolderBusy", "load_report", "run", "run_dir"]


class RunFolderBusy(RuntimeError):
    """Another process holds the run folder's lock.

    `run` raises it at the start, before anything is read or trained: one process per run folder.

    Example:
        >>> import fcntl
        >>> import os
        >>> import tempfile
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import nn
        >>> from funcnn.lottery import RunFolderBusy, Spec, run
        >>> spec = Spec(nn.serial(nn.Dense(2)), optax.sgd(0.1), train=(jnp.zeros((8, 4)), jnp.zeros(8, "int32")))
        >>> with tempfile.TemporaryDirectory() as out:
        ...     fd = os.open(os.path.join(out, "LOCK"), os.O_RDWR | os.O_CREAT)
        ...     fcntl.flock(fd, fcntl.LOCK_EX)  # as a running study holds it
        ...     try:
        ...         run(spec, out=out)
        ...     except RunFolderBusy as e:
        ...         print("busy:", e)
        ...     os.close(fd)
        busy: run folder ... is in use by another process; wait for it to end (or stop it) before starting ...
    """


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, no permission); what was committed is intact.

    `run` raises it for any OSError while writing, with the original errno and file name; re-run
    once there is room to resume from the last checkpoint.

    Example:
        >>> import errno
        >>> from funcnn.lottery import CheckpointWriteError
        >>> e = CheckpointWriteError(errno.ENOSPC, "No space left on device", "runs/x/round_01/trained.npz")
        >>> isinstance(e, OSError), e.errno == errno.ENOSPC, e.filename
        (True, True, 'runs/x/round_01/trained.npz')
    """


def run_dir(config: Config, root: str | Path = "runs/lottery_ticket", name: str = "study") -> Path:
    """The folder of a config's run: `<root>/<name>-<hash of the config>`.

    The hash is `Config.digest()` of `config`: another config gets another folder. Nothing is created.

    Example:
        >>> from funcnn.lottery import Config, run_dir
        >>> path = run_dir(Config(seeds=2), name="mnist1d")
        >>> path.as_posix()
        'runs/lottery_ticket/mnist1d-...'
        >>> run_dir(Config(seeds=3), name="mnist1d") == path  # a different study, a different folder
        False
    """
    return Path(root) / f"{name}-{config.digest()}"


def _take(tree: Any, i: Any) -> Any:
    return jax.tree.map(lambda a: a[i], tree)


def _concat(trees: list) -> Any:
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees)


def run(
    study: Spec | Config,
    *,
    out: str | Path,
    progress: bool = True,
    log: Callable[[str], None] = print,
    skip_nonfinite: bool = False,
) -> dict:
    """Run (or resume) a study in folder `out`; returns the report (also written as results.json).

    Round 0 trains the dense nets, one continuous run (θk, its model state and optimizer state are
    saved at the rewind step k on the way). Each later round prunes the last ticket, and trains every
    arm from the rewind point with a fresh optimizer state whose schedule resumes at k (or the saved
    one, with `rewind_optimizer`), on iterations k..T of each seed's data order (OpenLTH's rewinding).

    Every file is written atomically; a round counts as done once its COMMIT marker (SHA-256 of its
    files) is in place, and a round whose files fail that check is trained again, with the rounds
    after it resumed only if it came out bit-identical. Within a round the population state is
    checkpointed `checkpoints_per_round` times, so a killed run resumes mid-round with bit-identical
    results. A re-run whose study differs in any way (fields, net, θ0, data, optimizer) stops with
    an error naming the difference. A non-finite loss raises FloatingPointError naming round, arm,
    seed and iteration; with `skip_nonfinite` the member is recorded in `failed_members` (its
    metrics NaN) and the others go on.

    Returns the report: `summary` (a row per round and arm, `aggregate`: means and stds over
    seeds), `rounds` (every round's record: per-member densities and summaries), `config` (the
    study's fields), `complete`, and timings. `summary_table(report)` prints it; `load_report(out)`
    reads it back. progress: tqdm bars; log: where the one-line round summaries go.

    Example:
        >>> import tempfile
        >>> import jax
        >>> import optax
        >>> from funcnn import nn
        >>> from funcnn.lottery import Spec, run
        >>> x = jax.random.normal(jax.random.key(0), (64, 4))
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))  # a 4-8-2 MLP
        >>> spec = Spec(net, optax.adam(1e-2), train=(x, y), n_val=16, iterations=20, batch_size=8, eval_every=10,
        ...             rounds=2, rate=0.5, seeds=2, arms=("ticket", "random"))
        >>> with tempfile.TemporaryDirectory() as out:
        ...     report = run(spec, out=out, progress=False, log=lambda line: None)
        ...     again = run(spec, out=out, progress=False, log=print)  # committed rounds: not trained again
        round 0: resumed from .../round_00
        round 1: resumed from .../round_01
        round 2: resumed from .../round_02
        >>> [(r["round"], r["arm"], r["percent_remaining"]) for r in report["summary"]]
        [(0, 'ticket', 100.0), (1, 'ticket', 50.0), (1, 'random', 50.0), (2, 'ticket', 25.0), (2, 'random', 25.0)]
        >>> report["complete"], again["summary"] == report["summary"]
        (True, True)
    """
    if not isinstance(study, (Spec, Config)):
        raise TypeError(f"study must be a lottery.Spec or lottery.Config, got study={type(study).__name__}")
    config = study.validate() if isinstance(study, Config) else None
    out = Path(out)
    _prepare_folder(out, config)
    with _lock(out):
        runtime = Study(study, progress)
        try:
            return _run(runtime, config, out, log, skip_nonfinite)
        except OSError as e:
            if isinstance(e, CheckpointWriteError):
                raise
            raise CheckpointWriteError(
                e.errno,
                f"{e.strerror or e}; writing {e.filename or out} failed: the last committed round and "
                f"mid-round checkpoint in {out} are intact; make room (or fix permissions) and re-run to resume",
                e.filename,
            ) from e


def _describe(runtime: Study, config: Config | None) -> dict:
    return config.to_json() if config is not None else runtime.spec.describe()


def _run(runtime: Study, config: Config | None, out: Path, log: Callable[[str], None], skip_nonfinite: bool) -> dict:
    spec, R = runtime.spec, runtime.n_replicates
    rep_seed, rep_setting = jnp.asarray(runtime.rep_seed), jnp.asarray(runtime.rep_setting)
    describe = _describe(runtime, config)
    if distributed.is_writer():
        check_identity(out, identity(runtime, describe))
    rounds = []
    masks_prev = dense_trained = trained_ticket = None
    rewind = {"params": runtime.theta0, "model_state": runtime.state0, "opt_state": None}
    parent = ""
    t_start = time.perf_counter()
    for r in range(spec.rounds + 1):
        folder = out / f"round_{r:02d}"
        resumed = _load_round(folder, runtime, r, log, parent) if folder.exists() else None
        if resumed is not None:
            rec, masks_prev, trained_ticket, loaded_rewind = resumed
            if r == 0:
                dense_trained = trained_ticket
                rewind.update({k: v for k, v in loaded_rewind.items() if v is not None})
            parent = lineage(folder)
            rounds.append(rec)
            log(f"round {r}: resumed from {folder}")
            continue
        t0 = time.perf_counter()
        partial = out / f"round_{r:02d}.partial"
        if r == 0:
            masks = member_masks = jax.vmap(prune.ones)(runtime.theta0)
            seeds, settings, member_arm, start = rep_seed, rep_setting, ["ticket"] * R, 0
            try:
                if spec.rewind_step:
                    first = _train_to_rewind_step(runtime, masks, out / "round_00.rewind")
                    k_state = first.carry.state
                    rewind = {
                        "params": k_state.params,
                        "model_state": k_state.model_state,
                        "opt_state": k_state.opt_state,
                    }
                    # The dense run goes on from θk with its optimizer state (and its best validation
                    # params so far): one continuous run.
                    rest = runtime.train_round(
                        k_state.params,
                        masks,
                        seeds,
                        spec.rewind_step,
                        "round 0",
                        checkpoint=partial,
                        skip_nonfinite=skip_nonfinite,
                        carry=first.carry,
                        setting_of_member=settings,
                    )
                    result = rest._replace(
                        curves=np.concatenate([first.curves, rest.curves], axis=1),
                        ends=np.concatenate([first.ends, rest.ends], axis=1),
                    )
                else:
                    result = runtime.train_round(
                        runtime.theta0,
                        masks,
                        seeds,
                        0,
                        "round 0",
                        checkpoint=partial,
                        skip_nonfinite=skip_nonfinite,
                        setting_of_member=settings,
                    )
            except NonFiniteLoss as e:
                raise _coordinates(e, r, member_arm, seeds) from None
            trained_ticket = dense_trained = result.scored(spec.score_step)
        else:
            masks = jax.vmap(lambda t, m, d, r=r: prune_round(spec, t, m, d, r, runtime.spec_prunable))(
                trained_ticket, masks_prev, dense_trained
            )
            # One key per seed (not per replicate): every sweep setting of a seed draws the same random mask.
            keys = jax.vmap(lambda s, r=r: jax.random.fold_in(jax.random.fold_in(runtime.k_random, r), s))(rep_seed)
            pops_p, pops_m, member_arm = [], [], []
            for arm in runtime.arms:
                p, m = jax.vmap(arm.fn)(rewind["params"], runtime.theta0_reinit, masks, keys)
                pops_p.append(p)
                pops_m.append(m)
                member_arm += [arm.name] * R
            n_arms = len(runtime.arms)
            params, member_masks = _concat(pops_p), _concat(pops_m)
            prune.check_masks(_take(params, 0), _take(member_masks, 0))
            params = jax.vmap(prune.rewind)(params, member_masks)
            seeds, start = jnp.tile(rep_seed, n_arms), spec.rewind_step
            settings = jnp.tile(rep_setting, n_arms)
            # Every arm starts from the rewind point's model state (running statistics of θk).
            model_state = None if rewind["model_state"] is None else _concat([rewind["model_state"]] * n_arms)
            opt_state = None
            if spec.rewind_optimizer and rewind["opt_state"] is not None:
                opt_state = _concat([rewind["opt_state"]] * n_arms)
            try:
                result = runtime.train_round(
                    params,
                    member_masks,
                    seeds,
                    start,
                    f"round {r}",
                    checkpoint=partial,
                    skip_nonfinite=skip_nonfinite,
                    model_state=model_state,
                    opt_state=opt_state,
                    setting_of_member=settings,
                )
            except NonFiniteLoss as e:
                raise _coordinates(e, r, member_arm, seeds) from None
            trained_ticket = _take(result.scored(spec.score_step), slice(0, R))
        t_train = time.perf_counter() - t0
        curves, failed = result.curves, result.failed
        dens = jax.vmap(lambda m: prune.density(m, runtime.spec_prunable))(member_masks)
        named = dict(zip(runtime.metric_names, np.moveaxis(curves, -1, 0), strict=True))
        ends = dict(zip(runtime.end_names, np.moveaxis(result.ends, -1, 0), strict=True))
        its = start + spec.eval_every * (1 + np.arange(curves.shape[1]))
        seg_its = _segment_ends(spec, r, its)  # where the test set was evaluated
        rec = {
            "round": r,
            "arms": member_arm,
            "seeds": [int(s) for s in np.asarray(seeds)],
            **({"settings": [runtime.setting_labels[int(v)] for v in np.asarray(settings)]} if runtime.sweep else {}),
            "density": np.asarray(dens["total"]).tolist(),
            "layer_density": {k: np.asarray(v).tolist() for k, v in dens.items() if k != "total"},
            "iterations": its.tolist(),
            "test_iterations": seg_its,
            "train_seconds": t_train,
            "failed_members": [{"member": m, "arm": member_arm[m], "seed": int(seeds[m])} for m in failed],
            "metric_name": spec.metric_name,
            "parent": parent,
            **report_lib.summaries(named, spec.eval_every, start, spec.metric_name, ends=ends),
        }
        if distributed.is_writer():
            saved_rewind = rewind if r == 0 and spec.rewind_step else None
            _commit_round(
                folder, rec, masks, trained_ticket, {**named, **{f"end_{k}": v for k, v in ends.items()}}, saved_rewind
            )
            _remove_tree(partial)
            _remove_tree(out / "round_00.rewind")
            parent = lineage(folder)
        masks_prev = masks
        rounds.append(rec)
        log(report_lib.round_line(rec))
        if distributed.is_writer() and r < spec.rounds:
            # The report so far, so a long run can be read (and plotted) before it ends.
            report_lib.write_report(
                out, report_lib.make_report(describe, spec.rounds, rounds, out, time.perf_counter() - t_start)
            )
    report = report_lib.make_report(describe, spec.rounds, rounds, out, time.perf_counter() - t_start)
    if distributed.is_writer():
        report_lib.write_report(out, report)
    return report


def _train_to_rewind_step(runtime: Study, masks: Any, folder: Path) -> RoundResult:
    """Round 0's first k iterations, as a `RoundResult` whose carry holds the TrainStates at k (params,
    model and optimizer state) and the best validation params so far; saved on their own so a kill
    after them keeps them."""
    spec = runtime.spec
    seeds = jnp.asarray(runtime.rep_seed)
    carry = start_carry(runtime.initial_states(runtime.theta0, masks, seeds, 0, setting_of_member=runtime.rep_setting))
    if io.verify_commit(folder):
        try:
            carry_k = io.load_tree(folder / "state.npz", carry)
            with np.load(folder / "curves.npz", allow_pickle=False) as z:
                return RoundResult(carry_k, z["curves"], z["ends"], [])
        except (io.CheckpointError, OSError, ValueError, KeyError):
            pass
    k_chunks = spec.rewind_step // spec.eval_every
    idx = runtime.idx[seeds, : spec.rewind_step].reshape(len(seeds), k_chunks, spec.eval_every, spec.batch_size)
    first = runtime._run_chunks(carry, idx, "round 0 (to rewind step)")
    if distributed.is_writer():
        folder.mkdir(parents=True, exist_ok=True)
        io.save_tree(folder / "state.npz", first.carry)
        io.atomic_write_bytes(folder / "curves.npz", _npz_bytes(curves=first.curves, ends=first.ends))
        io.commit(folder, ["state.npz", "curves.npz"])
    return first


def _segment_ends(spec: Spec, r: int, its: np.ndarray) -> list[int]:
    """The iterations at which a round's segments end (where the test set was evaluated)."""

    def cut(chunk_its: np.ndarray) -> list[int]:
        size = segment_size(len(chunk_its), spec.checkpoints_per_round)
        return [int(i) for i in chunk_its[size - 1 :: size]]

    if r == 0 and spec.rewind_step:
        k = spec.rewind_step // spec.eval_every
        return cut(its[:k]) + cut(its[k:])
    return cut(its)


def _coordinates(e: NonFiniteLoss, r: int, member_arm: list[str], seeds: Any) -> FloatingPointError:
    return FloatingPointError(
        f"non-finite training loss in round {r}, arm '{member_arm[e.member]}', seed {int(seeds[e.member])} "
        f"(population member {e.member}), by iteration {e.iteration}; completed rounds are kept on disk. "
        "Lower the learning rate, or pass skip_nonfinite=True to drop that member and go on."
    )


# ---- committed rounds and their lineage -----------------------------------------------------------

_LINEAGE_FILES = ("masks.npz", "trained.npz", "rewind.npz", "rewind_state.npz", "rewind_opt.npz")


def lineage(folder: Path) -> str:
    """The digest of what later rounds are built on: the round's masks, trained and rewind weights."""
    digests = json.loads((Path(folder) / io.COMMIT).read_text())
    picked = {k: v for k, v in sorted(digests.items()) if k in _LINEAGE_FILES}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()


def _commit_round(folder: Path, rec: dict, masks: Any, trained: Any, curves: dict, rewind: dict | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / io.COMMIT).unlink(missing_ok=True)
    io.save_tree(folder / "masks.npz", masks)
    io.save_tree(folder / "trained.npz", trained)
    io.atomic_write_bytes(folder / "curves.npz", _npz_bytes(**curves))
    files = ["masks.npz", "trained.npz", "curves.npz", "metrics.json"]
    if rewind is not None:
        for name, key in (
            ("rewind.npz", "params"),
            ("rewind_state.npz", "model_state"),
            ("rewind_opt.npz", "opt_state"),
        ):
            if rewind[key] is not None:
                io.save_tree(folder / name, rewind[key])
                files.append(name)
    io.atomic_write_json(folder / "metrics.json", rec)
    io.commit(folder, files)  # the round counts as complete from this rename on


def _load_round(
    folder: Path, runtime: Study, r: int, log: Callable[[str], None], parent: str
) -> tuple[dict, Any, Any, dict] | None:
    """A committed round's (metrics, masks, trained ticket, rewind dict), or None if it must be redone."""
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
        masks = io.load_tree(folder / "masks.npz", jax.vmap(prune.ones)(runtime.theta0))
        trained = io.load_tree(folder / "trained.npz", runtime.theta0)
        rewind = {"params": None, "model_state": None, "opt_state": None}
        if r == 0 and runtime.spec.rewind_step:
            rewind["params"] = io.load_tree(folder / "rewind.npz", runtime.theta0)
            like = runtime.initial_states(
                runtime.theta0, jax.vmap(prune.ones)(runtime.theta0), jnp.asarray(runtime.rep_seed), 0
            )
            if (folder / "rewind_state.npz").exists():
                rewind["model_state"] = io.load_tree(folder / "rewind_state.npz", like.model_state)
            if (folder / "rewind_opt.npz").exists():
                rewind["opt_state"] = io.load_tree(folder / "rewind_opt.npz", like.opt_state)
    except (io.CheckpointError, OSError, ValueError) as e:
        log(f"round {r}: {e}; training it again")
        return None
    return rec, masks, trained, rewind


def _remove_tree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


# ---- the run folder: config, identity, lock -------------------------------------------------------


def _prepare_folder(out: Path, config: Config | None) -> None:
    if not distributed.is_writer():
        return  # process 0 owns the run folder (which must be on a file system all hosts share)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"output folder {out} cannot be created: {e}") from None
    for stale in out.rglob(".*.tmp"):
        stale.unlink(missing_ok=True)  # a write that a kill interrupted; never valid
    if config is None:
        return
    cfg = out / "config.json"
    if cfg.exists():
        try:
            existing = json.loads(cfg.read_text())
        except ValueError:
            existing = None
        if existing != config.to_json():
            raise ValueError(
                f"output folder {out} holds a run with a different config ({cfg}); "
                "choose another --out or delete that folder"
            )
    else:
        try:
            io.atomic_write_json(cfg, config.to_json())
        except OSError as e:
            raise ValueError(f"output folder {out} is not writable: {e}") from None


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """Hold `out/LOCK` (an flock, released by the OS even when the process is killed)."""
    if not distributed.is_writer():
        yield
        return
    path = out / "LOCK"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = path.read_text().strip() or "another process"
        os.close(fd)
        if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        raise RunFolderBusy(
            f"run folder {out} is in use by {holder}; wait for it to end (or stop it) before starting another run there"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(
            fd, f"process {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode()
        )
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def load_report(out: str | Path) -> dict:
    """The report of the rounds committed so far in run folder `out`, training nothing: what a long
    run has to show while it goes on, or after a kill. Stops at the first round that is missing or
    fails its checksum (a resumed run would train that one again).

    Example:
        >>> import tempfile
        >>> import jax
        >>> import optax
        >>> from funcnn import nn
        >>> from funcnn.lottery import Spec, load_report, run
        >>> x = jax.random.normal(jax.random.key(0), (64, 4))
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))  # a 4-8-2 MLP
        >>> spec = Spec(net, optax.adam(1e-2), train=(x, y), n_val=16, iterations=20, batch_size=8, eval_every=10,
        ...             rounds=0, seeds=2)
        >>> with tempfile.TemporaryDirectory() as out:
        ...     report = run(spec, out=out, progress=False, log=lambda line: None)  # the dense round only
        ...     loaded = load_report(out)
        >>> loaded["rounds_completed"], loaded["complete"], loaded["summary"] == report["summary"]
        (1, True, True)
        >>> with tempfile.TemporaryDirectory() as empty:
        ...     load_report(empty)
        Traceback (most recent call last):
        ...
        ValueError: out ... does not hold a lottery run with a readable config.json or identity.json (...)
    """
    out = Path(out)
    try:
        if (out / "config.json").exists():
            fields = json.loads((out / "config.json").read_text())
            fields["arms"] = tuple(fields["arms"])
            describe = Config(**fields).validate().to_json()
        else:
            describe = json.loads((out / "identity.json").read_text())["study"]
        total = int(describe["rounds"])
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ValueError(
            f"out {out} does not hold a lottery run with a readable config.json or identity.json ({e})"
        ) from None
    rounds = []
    for r in range(total + 1):
        folder = out / f"round_{r:02d}"
        if not io.verify_commit(folder):
            break
        rounds.append(json.loads((folder / "metrics.json").read_text()))
    if not rounds:
        raise ValueError(f"out {out}: no round completed yet (round_00 has no valid COMMIT)")
    return report_lib.make_report(describe, total, rounds, out, None)
