"""The driver: rounds of iterative magnitude pruning, committed one by one to a run folder.

The only part of the lottery package that touches files. A run folder holds `identity.json` (what
the study is: its fields, the param tree, θ0's and the data's digests, and the digests of its
compiled programs), `LOCK` (held while a process runs), one `round_XX/` per committed round and
`round_XX.partial/` mid-round checkpoints. A re-run resumes only a study with the same identity,
and a committed round only on top of the very round it was built on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from funcnn import compile_cache, distributed
from funcnn.lottery import commits
from funcnn.lottery import dense as dense_lib
from funcnn.lottery import figures as figures_lib
from funcnn.lottery import report as report_lib
from funcnn.lottery import rounds as rounds_lib
from funcnn.lottery.commits import lineage as lineage  # its first home was here
from funcnn.lottery.config import Config
from funcnn.lottery.folder import CheckpointWriteError, RunFolderBusy, _lock, _prepare_folder, load_report, run_dir
from funcnn.lottery.identity import check_identity, identity
from funcnn.lottery.ledger import Ledger
from funcnn.lottery.spec import Spec, checked
from funcnn.lottery.study import NonFiniteLoss, Study

__all__ = ["CheckpointWriteError", "RunFolderBusy", "load_report", "run", "run_dir"]  # the folder's: from folder.py


def run(
    study: Spec | Config,
    *,
    out: str | Path,
    progress: bool = True,
    log: Callable[[str], None] = print,
    skip_nonfinite: bool = False,
    allow_version_change: bool = False,
    figures: bool = True,
) -> dict:
    """Run (or resume) a study in folder `out`; returns the report (also written as results.json).

    Round 0 trains the dense nets, one continuous run (θk, its model state and optimizer state are
    saved at the rewind step k on the way). Each later round prunes the last ticket, and trains every
    arm from the rewind point with a fresh optimizer state whose schedule resumes at k (or the saved
    one, with `rewind_optimizer`), on iterations k..T of each seed's data order (OpenLTH's rewinding).

    A study is a handful of compiled programs (θ0 and batch orders, members' states, a round's masks,
    the round's training), kept in JAX's persistent compilation cache (`funcnn.compile_cache`:
    `$FUNCNN_CACHE/xla`, off with FUNCNN_COMPILATION_CACHE=0), so a second run compiles nearly nothing.

    Every file is written atomically; a round counts as done once its COMMIT marker (SHA-256 of its
    files) is in place, and a round whose files fail that check is trained again, with the rounds
    after it resumed only if it came out bit-identical. Within a round the population state is
    checkpointed `checkpoints_per_round` times, so a killed run resumes mid-round with bit-identical
    results. A re-run whose study computes anything differently (its programs' lowered text, θ0, the
    data, its fields; `identity`) stops with an error naming the part that differs. A run folder
    written by another jax/jaxlib version whose programs lower differently is refused too, naming
    both versions: pass `allow_version_change=True` if you know the study is the same. A non-finite
    loss raises FloatingPointError naming round, arm, seed and iteration; with `skip_nonfinite` the
    member is recorded in `failed_members` (its metrics NaN) and the others go on.

    Returns the report: `summary` (a row per round and arm, `aggregate`: means and stds over
    seeds), `rounds` (every committed round's record: per-member densities and summaries), `config`
    (the study's fields), `complete`, `seconds` (this invocation's wall time by part: they add up to
    `wall_seconds_this_invocation`). `summary_table(report)` prints it; `load_report(out)` reads it
    back. progress: tqdm bars; log: where the one-line round summaries go; figures: False draws no
    PNGs (`report["figures"]` is empty; a sweep or a test that reads only the numbers saves their time).

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
    ledger = Ledger()
    with ledger.clock:
        with ledger.phase("data and θ0"):
            spec, config, plans = checked(study)
        out = Path(out)
        _prepare_folder(out, config)
        ledger.cache = compile_cache.enable()
        with _lock(out):
            with ledger.phase("data and θ0"):
                runtime = Study.from_checked(spec, config, plans, progress)
            try:
                return _run(runtime, config, out, log, skip_nonfinite, allow_version_change, ledger, figures)
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


def _host_ones(tree: Any) -> Any:
    return jax.tree.map(lambda a: np.ones(np.shape(a), bool), tree)


def _take(tree: Any, sel: Any) -> Any:
    return jax.tree.map(lambda a: np.asarray(a)[sel], tree)


def _run(
    runtime: Study,
    config: Config | None,
    out: Path,
    log: Callable[[str], None],
    skip_nonfinite: bool,
    allow_version_change: bool,
    ledger: Ledger,
    figures: bool,
) -> dict:
    spec, R = runtime.spec, runtime.n_replicates
    describe = _describe(runtime, config)
    with ledger.phase("identity"):
        stored_rounds = check_identity(out, identity(runtime, describe), allow_version_change=allow_version_change)
    total = max(spec.rounds, stored_rounds)  # a folder may hold more rounds than this study asks for
    rounds: list[dict] = []
    lineages: dict[str, rounds_lib.Lineage] = {}
    rewinds: dict[int, dict] = {0: {"params": runtime.theta0_host, "model_state": runtime.state0, "opt_state": None}}
    dense_trained, dense_state = runtime.theta0_host, runtime.state0
    ones = _host_ones(runtime.theta0_host)
    parent = ""
    first_round = 0 if runtime.dense_run else 1
    for r in range(first_round, total + 1):
        folder = out / f"round_{r:02d}"
        with ledger.phase("loading committed rounds"):
            resumed = commits.load_round(folder, runtime, r, log, parent) if folder.exists() else None
        if resumed is not None:
            rec, loaded, loaded_rewinds = resumed
            if r == 0:
                dense_trained, _, dense_state = loaded[runtime.plans[0].name]
                rewinds.update(loaded_rewinds)
                lineages = _start_lineages(runtime, dense_trained, ones, dense_state)
            else:
                lineages.update({k: rounds_lib.Lineage(*v) for k, v in loaded.items()})
            if distributed.is_writer():  # a kill between the commit and these removals leaves them stale
                for f in [out / f"round_{r:02d}.partial", *dense_lib.rewind_folders(out, runtime.rewind_steps)]:
                    commits.remove_tree(f)
            parent = commits.lineage(folder)
            rounds.append(rec)
            log(f"round {r}: resumed from {folder}")
            continue
        if r > spec.rounds:
            break  # the folder's later rounds are not this study's to train
        t0 = time.perf_counter()
        partial = out / f"round_{r:02d}.partial"
        if r == 0:
            with ledger.phase("training"):
                try:
                    result, rewinds = dense_lib.train_dense(runtime, out, partial, skip_nonfinite)
                except NonFiniteLoss as e:
                    raise _coordinates(e, r, [runtime.plans[0].name] * R, runtime.rep_seed) from None
            dense_trained = result.scored(spec.score_step)
            dense_state = result.carry.state.model_state
            lineages = _start_lineages(runtime, dense_trained, ones, dense_state)
            member_arm, seeds, settings = [runtime.plans[0].name] * R, runtime.rep_seed, runtime.rep_setting
            member_masks, start, mask_seconds, folders = ones, 0, 0.0, [partial]
            trees = {"masks.npz": ones, "trained.npz": dense_trained, "trained_state.npz": dense_state}
            trees |= commits.rewind_trees(runtime, rewinds)
        else:
            with ledger.phase("masks"):
                members, masks_now = rounds_lib.build(runtime, r, lineages, rewinds, dense_trained)
            with ledger.phase("training"):
                try:
                    result, scored, states, folders = rounds_lib.train(runtime, members, r, partial, skip_nonfinite)
                except NonFiniteLoss as e:
                    raise _coordinates(e, r, members.arm, members.seeds) from None
            member_arm, seeds, settings = members.arm, members.seeds, members.settings
            member_masks, start, mask_seconds = members.masks, int(members.start.min()), members.mask_seconds
            trained_by_arm, states_by_arm = {}, {}
            for i, plan in enumerate(runtime.plans):
                sel = np.arange(i * R, (i + 1) * R)
                trained_by_arm[plan.name] = _take(scored, sel)
                state = None if states is None else _take(states, sel)
                if state is not None:
                    states_by_arm[plan.name] = state  # every arm's trained statistics, with its weights
                if plan.lineage:
                    lineages[plan.name] = rounds_lib.Lineage(trained_by_arm[plan.name], masks_now[plan.name], state)
            trees = commits.round_trees(runtime, masks_now, trained_by_arm, states_by_arm)
        t_train = time.perf_counter() - t0
        curves, failed = result.curves, result.failed
        dens = report_lib.densities(member_masks, runtime.spec_prunable)
        named = dict(zip(runtime.metric_names, np.moveaxis(curves, -1, 0), strict=True))
        ends = dict(zip(runtime.end_names, np.moveaxis(result.ends, -1, 0), strict=True))
        its = start + spec.eval_every * (1 + np.arange(curves.shape[1]))
        seg_its = dense_lib.segment_ends(spec, runtime.rewind_steps, r, its)  # where the test set was evaluated
        rec = {
            "round": r,
            "arms": member_arm,
            "seeds": [int(s) for s in np.asarray(seeds)],
            **({"settings": [runtime.setting_labels[int(v)] for v in np.asarray(settings)]} if runtime.sweep else {}),
            "density": dens["total"].tolist(),
            "layer_density": {k: v.tolist() for k, v in dens.items() if k != "total"},
            "iterations": its.tolist(),
            "test_iterations": seg_its,
            "train_seconds": t_train,
            **({"mask_seconds": mask_seconds} if r > 0 else {}),
            "failed_members": [{"member": m, "arm": member_arm[m], "seed": int(seeds[m])} for m in failed],
            "metric_name": spec.metric_name,
            **({"statistics_batches": runtime.statistics_batches} if runtime.statistics_batches else {}),
            "parent": parent,
            **report_lib.summaries(named, spec.eval_every, start, spec.metric_name, ends=ends),
        }
        with ledger.phase("saves"):
            if distributed.is_writer():
                commits.commit_round(folder, rec, trees, {**named, **{f"end_{k}": v for k, v in ends.items()}})
                for f in folders:
                    commits.remove_tree(f)
                for f in dense_lib.rewind_folders(out, runtime.rewind_steps):
                    commits.remove_tree(f)
                parent = commits.lineage(folder)
            rounds.append(rec)
            log(report_lib.round_line(rec))
            if distributed.is_writer() and r < spec.rounds:
                # The report so far, so a long run can be read (and plotted) before it ends.
                report_lib.write_report(out, _report(describe, total, rounds, out, ledger, first_round))
    with ledger.phase("saves"):
        report = _report(describe, total, rounds, out, ledger, first_round)
        if distributed.is_writer():
            report_lib.write_report(out, report)
    report["figures"] = []
    if figures and distributed.is_writer():
        with ledger.phase("figures"):
            report["figures"] = [str(p) for p in figures_lib.plot(report, out)]
    report.update(_report_times(ledger))
    if distributed.is_writer():
        report_lib.write_report(out, report)  # with the figures' time, so the parts add up
    return report


def _report_times(ledger: Ledger) -> dict:
    seconds = ledger.summary()
    return {
        "wall_seconds_this_invocation": sum(seconds.values()),
        "seconds": seconds,
        "compile": {"programs": ledger.clock.programs, "loaded": ledger.clock.loaded, "cache": str(ledger.cache)},
    }


def _report(describe: dict, total: int, rounds: list, out: Path, ledger: Ledger, first_round: int) -> dict:
    report = report_lib.make_report(describe, total, rounds, out, None, first_round=first_round)
    return report | _report_times(ledger)


def _start_lineages(runtime: Study, dense: Any, ones: Any, state: Any) -> dict[str, rounds_lib.Lineage]:
    """Every lineage starts from the dense run: its trained weights, all-True masks, its model state."""
    return {p.name: rounds_lib.Lineage(dense, ones, state) for p in runtime.plans if p.lineage}


def _coordinates(e: NonFiniteLoss, r: int, member_arm: list[str], seeds: Any) -> FloatingPointError:
    return FloatingPointError(
        f"non-finite training loss in round {r}, arm '{member_arm[e.member]}', seed {int(seeds[e.member])} "
        f"(population member {e.member}), by iteration {e.iteration}; completed rounds are kept on disk. "
        "Lower the learning rate, or pass skip_nonfinite=True to drop that member and go on."
    )
