"""Iterative magnitude pruning (Frankle & Carbin 2019) with controls, many seeds in one program.

Round 0 trains the dense nets. Each later round prunes the previous round's trained ticket, rewinds
the survivors to θ0 (or to θk, the weights k iterations into the dense run), and trains, side by side
in one compiled program (members vmapped a few at a time), for every seed:
  ticket  - the magnitude-pruned mask with the rewound weights;
  reinit  - the same mask with a fresh θ0 drawn from the same initializer with another key;
  random  - a random mask with the ticket's per-layer density and the rewound weights.
The optimizer state is fresh at every round. With late rewinding (k > 0) later rounds train the
iterations k..T of the dense run's data order (OpenLTH's convention; the learning rate is constant).
Each completed round is committed to a run folder named by a hash of the config; a re-run resumes
after the last committed round.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import time
from io import StringIO
from pathlib import Path
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import data as data_lib
from funcnn import distributed, io, losses, models, prune, train

ARMS = ("ticket", "reinit", "random")
METRICS = ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy")


@dataclasses.dataclass(frozen=True)
class Config:
    """One lottery-ticket study. `rate`: fraction of surviving weights pruned per round in each hidden
    layer; `output_rate`: the same for the output layer (the paper: 0.2 and 0.1)."""

    dataset: str = "mnist1d"
    model: str = "mlp-300-300"
    n_val: int = 500
    learning_rate: float = 2e-3
    batch_size: int = 100
    iterations: int = 1500
    eval_every: int = 100
    rounds: int = 8
    rate: float = 0.4
    output_rate: float = 0.2
    conv_rate: Optional[float] = None  # rate for convolution kernels (None: the same as `rate`)
    scope: str = "layer"
    pruning: str = "iterative"  # or "oneshot": round r prunes the dense run straight to its density
    rewind_step: int = 0
    seeds: int = 4
    arms: tuple = ARMS
    seed: int = 0
    checkpoints_per_round: int = 10  # at most this many segments per round, each ending in a save
    population_chunk: int = 4  # members vmapped together; chunks run one after another (lax.map)

    def validate(self) -> "Config":
        def bad(name, expected):
            raise ValueError(f"config {name} must be {expected}, got {name}={getattr(self, name)!r}")

        for name in ("batch_size", "iterations", "eval_every", "seeds", "n_val", "checkpoints_per_round", "population_chunk"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                bad(name, "a positive int")
        if not isinstance(self.rounds, int) or self.rounds < 0:
            bad("rounds", "an int >= 0")
        if not self.learning_rate > 0:
            bad("learning_rate", "> 0")
        for name in ("rate", "output_rate") + (("conv_rate",) if self.conv_rate is not None else ()):
            if not 0 <= getattr(self, name) < 1:
                bad(name, "in [0, 1)")
        if self.scope not in ("layer", "global"):
            bad("scope", "'layer' or 'global'")
        if self.pruning not in ("iterative", "oneshot"):
            bad("pruning", "'iterative' or 'oneshot'")
        if self.iterations % self.eval_every:
            bad("iterations", f"a multiple of eval_every={self.eval_every}")
        if not 0 <= self.rewind_step < self.iterations or self.rewind_step % self.eval_every:
            bad("rewind_step", f"a multiple of eval_every={self.eval_every} in [0, iterations)")
        if not self.arms or self.arms[0] != "ticket" or any(a not in ARMS for a in self.arms) or len(set(self.arms)) != len(self.arms):
            bad("arms", f"'ticket' first, then any of {ARMS[1:]}")
        if self.dataset not in data_lib.DATASETS:
            bad("dataset", f"one of {data_lib.DATASETS}")
        models.build(self.model)
        return self

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["arms"] = list(self.arms)
        return d

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:10]


PRESETS: dict[str, Config] = {
    # MNIST-1D MLP: a few minutes on 2 CPU cores, down to ~2% of the weights in 8 rounds.
    "mnist1d": Config(),
    # Frankle & Carbin's LeNet-300-100 protocol, on Fashion-MNIST (offline) or MNIST.
    "lenet-fashion": Config(
        dataset="fashion-mnist", model="lenet_300_100", n_val=5000, learning_rate=1.2e-3, batch_size=60,
        iterations=50_000, eval_every=100, rounds=15, rate=0.2, output_rate=0.1, seeds=5,
    ),
    # Conv-2 (64-64 convs, pool, 256-256-10): convs pruned 10%, dense 20%, output 10% per round.
    # On CPU, XLA runs convolutions inside the compiled training loop slowly (jax-ml/jax#12868): use a GPU.
    "conv2-fashion": Config(
        dataset="fashion-mnist", model="conv2", n_val=5000, learning_rate=2e-4, batch_size=60,
        iterations=20_000, eval_every=100, rounds=15, rate=0.2, output_rate=0.1, conv_rate=0.1, seeds=5,
    ),
    "lenet-mnist": Config(
        dataset="mnist", model="lenet_300_100", n_val=5000, learning_rate=1.2e-3, batch_size=60,
        iterations=50_000, eval_every=100, rounds=15, rate=0.2, output_rate=0.1, seeds=5,
    ),
}


def density_ladder(config: Config, params_template) -> list[float]:
    """P_m (percent of prunable weights remaining) at each round 0..rounds, without training."""
    masks = prune.ones(params_template)
    out = [100.0]
    for r in range(1, config.rounds + 1):
        masks = _prune_masks(config, params_template, masks, params_template, r)
        out.append(float(prune.density(masks)["total"]) * 100)
    return out


def _layer_rates(config: Config, params, r: int) -> tuple[float, dict]:
    names = [n for n in params if any(jax.tree.leaves(prune.prunable(params[n])))]
    out_layer = sorted(names, key=lambda n: int(n.rsplit("_", 1)[1]))[-1]
    rate, out_rate = config.rate, config.output_rate
    conv_rate = config.rate if config.conv_rate is None else config.conv_rate
    if config.pruning == "oneshot":
        rate, out_rate, conv_rate = (1 - (1 - x) ** r for x in (rate, out_rate, conv_rate))
    if config.scope != "layer":
        return rate, {}
    overrides = {n: conv_rate for n in names if n.startswith("conv2d_")}
    overrides[out_layer] = out_rate
    return rate, overrides


def _prune_masks(config: Config, trained, masks, dense_trained, r: int):
    rate, layer_rates = _layer_rates(config, trained, r)
    if config.pruning == "oneshot":
        return prune.magnitude(dense_trained, prune.ones(dense_trained), rate, scope=config.scope, layer_rates=layer_rates)
    return prune.magnitude(trained, masks, rate, scope=config.scope, layer_rates=layer_rates)


def make_round_program(apply: Callable, tx: optax.GradientTransformation, eval_every: int, chunk: int = 4) -> Callable:
    """Build `program(states, idx, data) -> (states, curves)`, one program for all members (not jitted:
    `Study` jits it, or shards it over devices with `distributed.shard_population`).

    states: TrainState with a leading population axis; idx: (P, C, eval_every, B) batch indices;
    data: (x, y, x_val, y_val, x_test, y_test), shared. curves: (P, C, 5), the METRICS after each
    of the C chunks of `eval_every` steps. Members are vmapped `chunk` at a time and the chunks run
    one after another inside the program (`lax.map(..., batch_size=chunk)`): on CPU, vmapping all
    members at once ran at 0.75x the sequential speed for LeNet-300-100 (XLA copies the stacked
    weights), chunks of 2-4 at 1.05-1.1x.
    """
    step = train.make_train_step(apply, losses.softmax_cross_entropy, tx)
    evaluate = train.make_evaluate(apply, losses.softmax_cross_entropy)

    def member(state, idx, data):
        x, y, xv, yv, xt, yt = data

        def chunk_fn(s, idx_chunk):
            def body(s, i):
                s, m = step(s, (x[i], y[i]))
                return s, m["loss"]

            s, batch_losses = jax.lax.scan(body, s, idx_chunk)
            v, t = evaluate(s.params, xv, yv), evaluate(s.params, xt, yt)
            return s, jnp.stack([jnp.mean(batch_losses), v["loss"], v["accuracy"], t["loss"], t["accuracy"]])

        return jax.lax.scan(chunk_fn, state, idx)

    def program(states, idx, data):
        return jax.lax.map(lambda si: member(si[0], si[1], data), (states, idx), batch_size=chunk)

    return program


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _take(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


def _segment_size(n_chunks: int, max_segments: int) -> int:
    """The smallest divisor of n_chunks that cuts it into at most `max_segments` equal segments."""
    return next(d for d in range(1, n_chunks + 1) if n_chunks % d == 0 and n_chunks // d <= max_segments)


class Study:
    """What one run needs at hand: data, net, program, keys. Built by `prepare`."""

    def __init__(self, config: Config, progress: bool = True):
        self.config = config.validate()
        self.progress = progress
        key = jax.random.key(config.seed)
        self.k_data, self.k_init, self.k_reinit, self.k_order, self.k_random = jax.random.split(key, 5)
        d = data_lib.load(config.dataset)
        (x, y), (xv, yv) = data_lib.train_val_split(d.x_train, d.y_train, config.n_val, self.k_data)
        train.check_batch_size(config.batch_size, len(x))
        self.n_train = len(x)
        self.data = tuple(map(jnp.asarray, (x, y, xv, yv, d.x_test, d.y_test)))
        self.input_shape = x.shape[1:]
        self.net = models.build(config.model)
        self.tx = optax.adam(config.learning_rate)
        program = make_round_program(self.net.apply, self.tx, config.eval_every, config.population_chunk)
        # With several devices (or hosts), each device trains its slice of the population.
        self.mesh = distributed.population_mesh() if jax.device_count() > 1 else None
        if self.mesh is None:
            self.program = jax.jit(program)
        else:
            self.program = distributed.shard_population(program, self.mesh)
            self.data = distributed.replicate(self.data, self.mesh)
        seeds = jnp.arange(config.seeds)
        init = jax.vmap(lambda k: self.net.init(k, self.input_shape))
        self.theta0 = init(jax.vmap(lambda s: jax.random.fold_in(self.k_init, s))(seeds))
        self.theta0_reinit = init(jax.vmap(lambda s: jax.random.fold_in(self.k_reinit, s))(seeds))
        self.spec = prune.prunable(_take(self.theta0, 0))
        self.idx = self._batch_order()

    def _batch_order(self) -> jax.Array:
        """(seeds, iterations, batch) indices: each seed's data order, the same in every round and arm."""
        c = self.config
        per_epoch = self.n_train // c.batch_size
        epochs = math.ceil(c.iterations / per_epoch)

        def order(s):
            k = jax.random.fold_in(self.k_order, s)
            e = jax.vmap(lambda i: train.batch_indices(jax.random.fold_in(k, i), self.n_train, c.batch_size))(jnp.arange(epochs))
            return e.reshape(-1, c.batch_size)[: c.iterations]

        return jax.vmap(order)(jnp.arange(c.seeds))

    def train_population(self, params, masks, seed_of_member, start: int, desc: str, *,
                         checkpoint: Optional[Path] = None, skip_nonfinite: bool = False):
        """Train members from `start` to `iterations`.

        Returns (trained params, curves (P, C, 5), failed member indices). With `checkpoint` (a folder),
        the population state is saved after every segment and a later call resumes from it.
        A non-finite loss raises `NonFiniteLoss`, unless `skip_nonfinite`: then the member is
        reported in `failed` and the others go on (members never interact).
        """
        c = self.config
        n = train.population_size(params, "params")
        for name, tree in (("masks", masks), ("seed_of_member", seed_of_member)):
            if train.population_size(tree, name) != n:
                raise ValueError(f"{name} has population axis {train.population_size(tree, name)}, params has {n}")
        states = jax.vmap(lambda p, m: train.init_state(p, self.tx, m))(params, masks)
        n_chunks = (c.iterations - start) // c.eval_every
        idx = self.idx[seed_of_member][:, start:].reshape(len(seed_of_member), n_chunks, c.eval_every, c.batch_size)
        return self._run_chunks(states, idx, desc, checkpoint=checkpoint, skip_nonfinite=skip_nonfinite)

    def _run_chunks(self, states, idx, desc, *, checkpoint=None, skip_nonfinite=False):
        curves, done, bar = [], 0, None
        failed: set[int] = set()
        # Equal segments, so a resumed round is cut exactly as the run that was killed.
        size = _segment_size(idx.shape[1], self.config.checkpoints_per_round)
        n = int(idx.shape[0])
        if checkpoint is not None and io.verify_commit(checkpoint):
            # Resume mid-round: the same segments, data order and keys as the run that was killed.
            try:
                meta = json.loads((checkpoint / "progress.json").read_text())
                states = io.load_tree(checkpoint / "state.npz", states)
                curves = [np.load(checkpoint / "curves.npz", allow_pickle=False)["curves"]]
                done, failed = meta["done_chunks"], set(meta["failed"])
            except (io.CheckpointError, OSError, ValueError, KeyError):
                curves, done, failed = [], 0, set()  # unusable: redo the round from its start
        if self.mesh is not None:
            # Pad the population to a multiple of the device count; the copies are dropped below.
            n_pad = distributed.padded_size(n, self.mesh)
            states = distributed.put_population(distributed.pad_population(states, n_pad), self.mesh)
            idx = distributed.pad_population(idx, n_pad)
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=idx.shape[1] * self.config.eval_every, initial=done * self.config.eval_every,
                       desc=desc, unit="it", leave=False)
        while done < idx.shape[1]:
            seg_idx = idx[:, done : done + size]
            if self.mesh is not None:
                seg_idx = distributed.put_population(seg_idx, self.mesh)
            states, seg = self.program(states, seg_idx, self.data)
            seg = distributed.gather(seg)[:n]
            bad = ~np.isfinite(seg[..., 0])
            for member, chunk in np.argwhere(bad):
                if int(member) in failed:
                    continue
                it = (done + int(chunk) + 1) * self.config.eval_every
                if not skip_nonfinite:
                    raise NonFiniteLoss(int(member), it)
                failed.add(int(member))
            curves.append(seg)
            done += size
            if checkpoint is not None and done < idx.shape[1]:
                host_states = jax.tree.map(lambda a: a[:n], distributed.gather(states))
                if distributed.is_writer():
                    _save_progress(checkpoint, host_states, np.concatenate(curves, axis=1), done, sorted(failed))
            if bar is not None:
                bar.update(size * self.config.eval_every)
                bar.set_postfix(test_acc=f"{np.nanmean(seg[:, -1, 4]):.3f}")
        if bar is not None:
            bar.close()
        params = jax.tree.map(lambda a: jnp.asarray(a[:n]), distributed.gather(states.params))
        return params, np.concatenate(curves, axis=1), sorted(failed)


def _save_progress(folder: Path, states, curves: np.ndarray, done: int, failed: list) -> None:
    """Atomically replace the mid-round checkpoint: files first, then the COMMIT marker."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / io.COMMIT).unlink(missing_ok=True)  # from here until the new COMMIT, the old state is void
    io.save_tree(folder / "state.npz", states)
    io.atomic_write_bytes(folder / "curves.npz", _npz_bytes(curves=curves))
    io.atomic_write_json(folder / "progress.json", {"done_chunks": done, "failed": failed})
    io.commit(folder, ["state.npz", "curves.npz", "progress.json"])


def _npz_bytes(**arrays) -> bytes:
    import io as _io

    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


class NonFiniteLoss(FloatingPointError):
    def __init__(self, member: int, iteration: int):
        self.member, self.iteration = member, iteration
        super().__init__(f"non-finite training loss for population member {member} by iteration {iteration}")


def _summaries(curves: np.ndarray, eval_every: int, start: int) -> dict:
    """Per-member scalars from curves (P, C, 5)."""
    its = start + eval_every * (1 + np.arange(curves.shape[1]))
    val = np.where(np.isfinite(curves[:, :, 1]), curves[:, :, 1], np.inf)
    stop = np.argmin(val, axis=1)
    return {
        "final_test_accuracy": curves[:, -1, 4].tolist(),
        "best_test_accuracy": [float(np.max(c[np.isfinite(c)])) if np.isfinite(c).any() else float("nan") for c in curves[:, :, 4]],
        "early_stop_iteration": its[stop].tolist(),
        "early_stop_test_accuracy": curves[np.arange(len(stop)), stop, 4].tolist(),
        "final_val_loss": curves[:, -1, 1].tolist(),
    }


def run_dir(config: Config, root: str | Path = "runs/lottery_ticket", name: str = "study") -> Path:
    return Path(root) / f"{name}-{config.digest()}"


def run(config: Config, *, out: str | Path, progress: bool = True, log: Callable[[str], None] = print,
        skip_nonfinite: bool = False) -> dict:
    """Run (or resume) a study in folder `out`; returns the report (also written as results.json).

    Every file is written atomically; a round counts as done once its COMMIT marker (SHA-256 of its
    files) is in place, and a round whose files fail that check is trained again from the last good
    one. Within a round the population state is checkpointed `checkpoints_per_round` times, so a
    killed run resumes mid-round with bit-identical results. A non-finite loss raises
    FloatingPointError naming round, arm, seed and iteration; with `skip_nonfinite` the member is
    recorded in `failed_members` (its metrics NaN) and the others go on.
    """
    config = config.validate()
    out = Path(out)
    _prepare_folder(out, config)
    study = Study(config, progress)
    c, S = config, config.seeds
    rounds = []
    masks_prev = dense_trained = trained_ticket = None
    theta_rewind = study.theta0
    t_start = time.perf_counter()
    for r in range(c.rounds + 1):
        folder = out / f"round_{r:02d}"
        resumed = _load_round(folder, study, r, log) if folder.exists() else None
        if resumed is not None:
            rec, masks_prev, trained_ticket, rewind = resumed
            if r == 0:
                dense_trained = trained_ticket
                theta_rewind = rewind if rewind is not None else theta_rewind
            rounds.append(rec)
            log(f"round {r}: resumed from {folder}")
            continue
        t0 = time.perf_counter()
        partial = out / f"round_{r:02d}.partial"
        if r == 0:
            masks = member_masks = jax.vmap(prune.ones)(study.theta0)
            seeds, member_arm, start = jnp.arange(S), ["ticket"] * S, 0
            try:
                if c.rewind_step:
                    theta_rewind, first = _train_to_rewind_step(study, masks, out / "round_00.rewind")
                    trained, rest, failed = study.train_population(theta_rewind, masks, seeds, c.rewind_step, "round 0",
                                                                   checkpoint=partial, skip_nonfinite=skip_nonfinite)
                    # Adam's state restarts at k here; the dense run itself is continuous in the paper.
                    curves = np.concatenate([first, rest], axis=1)
                else:
                    trained, curves, failed = study.train_population(study.theta0, masks, seeds, 0, "round 0",
                                                                     checkpoint=partial, skip_nonfinite=skip_nonfinite)
            except NonFiniteLoss as e:
                raise _coordinates(e, r, member_arm, seeds) from None
            trained_ticket = dense_trained = trained
        else:
            masks = jax.vmap(lambda t, m, d: _prune_masks(c, t, m, d, r))(trained_ticket, masks_prev, dense_trained)
            pops_p, pops_m, member_arm = [], [], []
            for arm in c.arms:
                if arm == "ticket":
                    p, m = theta_rewind, masks
                elif arm == "reinit":
                    p, m = study.theta0_reinit, masks
                else:
                    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(study.k_random, r), s))(jnp.arange(S))
                    p, m = theta_rewind, jax.vmap(lambda k, m: prune.random_like(k, m, study.spec))(keys, masks)
                pops_p.append(p)
                pops_m.append(m)
                member_arm += [arm] * S
            params = jax.tree.map(lambda *xs: jnp.concatenate(xs), *pops_p)
            member_masks = jax.tree.map(lambda *xs: jnp.concatenate(xs), *pops_m)
            params = jax.vmap(prune.rewind)(params, member_masks)
            seeds, start = jnp.tile(jnp.arange(S), len(c.arms)), c.rewind_step
            try:
                trained, curves, failed = study.train_population(params, member_masks, seeds, start, f"round {r}",
                                                                 checkpoint=partial, skip_nonfinite=skip_nonfinite)
            except NonFiniteLoss as e:
                raise _coordinates(e, r, member_arm, seeds) from None
            trained_ticket = _take(trained, slice(0, S))
        t_train = time.perf_counter() - t0
        dens = jax.vmap(lambda m: prune.density(m, study.spec))(member_masks)
        rec = {
            "round": r,
            "arms": member_arm,
            "seeds": [int(s) for s in np.asarray(seeds)],
            "density": np.asarray(dens["total"]).tolist(),
            "layer_density": {k: np.asarray(v).tolist() for k, v in dens.items() if k != "total"},
            "iterations": (start + c.eval_every * (1 + np.arange(curves.shape[1]))).tolist(),
            "train_seconds": t_train,
            "failed_members": [{"member": m, "arm": member_arm[m], "seed": int(seeds[m])} for m in failed],
            **_summaries(curves, c.eval_every, start),
        }
        if distributed.is_writer():
            _commit_round(folder, rec, masks, trained_ticket, curves, theta_rewind if r == 0 and c.rewind_step else None)
            _remove_tree(partial)
            _remove_tree(out / "round_00.rewind")
        masks_prev = masks
        rounds.append(rec)
        log(_round_line(rec))
        if distributed.is_writer() and r < c.rounds:
            # The report so far, so a long run can be read (and plotted) before it ends.
            _write_report(out, _report(config, rounds, out, time.perf_counter() - t_start))
    report = _report(config, rounds, out, time.perf_counter() - t_start)
    if distributed.is_writer():
        _write_report(out, report)
    return report


def load_report(out: str | Path) -> dict:
    """The report of the rounds committed so far in run folder `out`, training nothing: what a long
    run has to show while it goes on, or after a kill. Stops at the first round that is missing or
    fails its checksum (a resumed run would train that one again)."""
    out = Path(out)
    try:
        fields = json.loads((out / "config.json").read_text())
        fields["arms"] = tuple(fields["arms"])
        config = Config(**fields).validate()
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ValueError(f"out {out} does not hold a lottery run with a readable config.json ({e})") from None
    rounds = []
    for r in range(config.rounds + 1):
        folder = out / f"round_{r:02d}"
        if not io.verify_commit(folder):
            break
        rounds.append(json.loads((folder / "metrics.json").read_text()))
    if not rounds:
        raise ValueError(f"out {out}: no round completed yet (round_00 has no valid COMMIT)")
    return _report(config, rounds, out, None)


def _coordinates(e: "NonFiniteLoss", r: int, member_arm: list, seeds) -> FloatingPointError:
    return FloatingPointError(
        f"non-finite training loss in round {r}, arm '{member_arm[e.member]}', seed {int(seeds[e.member])} "
        f"(population member {e.member}), by iteration {e.iteration}; completed rounds are kept on disk. "
        "Lower the learning rate, or pass skip_nonfinite=True to drop that member and go on."
    )


def _train_to_rewind_step(study: Study, masks, folder: Path):
    """Round 0's first k iterations; θk is committed on its own so a kill after it keeps it."""
    c = study.config
    states = jax.vmap(lambda p, m: train.init_state(p, study.tx, m))(study.theta0, masks)
    if io.verify_commit(folder):
        try:
            theta_k = io.load_tree(folder / "rewind.npz", study.theta0)
            return theta_k, np.load(folder / "curves.npz", allow_pickle=False)["curves"]
        except (io.CheckpointError, OSError, ValueError):
            pass
    k_chunks = c.rewind_step // c.eval_every
    idx = study.idx[:, : c.rewind_step].reshape(c.seeds, k_chunks, c.eval_every, c.batch_size)
    theta_k, first, _ = study._run_chunks(states, idx, "round 0 (to rewind step)")
    if distributed.is_writer():
        folder.mkdir(parents=True, exist_ok=True)
        io.save_tree(folder / "rewind.npz", theta_k)
        io.atomic_write_bytes(folder / "curves.npz", _npz_bytes(curves=first))
        io.commit(folder, ["rewind.npz", "curves.npz"])
    return theta_k, first


def _commit_round(folder: Path, rec: dict, masks, trained, curves, theta_rewind) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / io.COMMIT).unlink(missing_ok=True)
    io.save_tree(folder / "masks.npz", masks)
    io.save_tree(folder / "trained.npz", trained)
    io.atomic_write_bytes(folder / "curves.npz", _npz_bytes(curves=curves))
    files = ["masks.npz", "trained.npz", "curves.npz", "metrics.json"]
    if theta_rewind is not None:
        io.save_tree(folder / "rewind.npz", theta_rewind)
        files.append("rewind.npz")
    io.atomic_write_json(folder / "metrics.json", rec)
    io.commit(folder, files)  # the round counts as complete from this rename on


def _load_round(folder: Path, study: Study, r: int, log: Callable[[str], None]):
    """A committed round's (metrics, masks, trained ticket, θk or None), or None if it must be redone."""
    if not io.verify_commit(folder):
        if (folder / io.COMMIT).exists():
            log(f"round {r}: {folder} failed its checksum check (truncated or corrupted files); training it again")
        return None
    try:
        rec = json.loads((folder / "metrics.json").read_text())
        masks = io.load_tree(folder / "masks.npz", jax.vmap(prune.ones)(study.theta0))
        trained = io.load_tree(folder / "trained.npz", study.theta0)
        rewind = io.load_tree(folder / "rewind.npz", study.theta0) if r == 0 and study.config.rewind_step else None
    except (io.CheckpointError, OSError, ValueError) as e:
        log(f"round {r}: {e}; training it again")
        return None
    return rec, masks, trained, rewind


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _prepare_folder(out: Path, config: Config) -> None:
    if not distributed.is_writer():
        return  # process 0 owns the run folder (which must be on a file system all hosts share)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"output folder {out} cannot be created: {e}") from None
    for stale in out.rglob(".*.tmp"):
        stale.unlink(missing_ok=True)  # a write that a kill interrupted; never valid
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


def _round_line(rec: dict) -> str:
    parts = []
    arms = np.array(rec["arms"])
    for arm in dict.fromkeys(rec["arms"]):
        sel = arms == arm
        acc = np.array(rec["final_test_accuracy"])[sel]
        parts.append(f"{arm} {acc.mean() * 100:.1f}%")
    dens = np.array(rec["density"])[arms == "ticket"].mean() * 100
    return f"round {rec['round']:2d}  P_m {dens:6.2f}%  " + "  ".join(parts) + f"  ({rec['train_seconds']:.1f}s)"


def aggregate(rounds: list[dict]) -> list[dict]:
    """Mean and std over seeds of each round and arm's metrics."""
    rows = []
    for rec in rounds:
        arms = np.array(rec["arms"])
        for arm in dict.fromkeys(rec["arms"]):
            sel = arms == arm
            row = {"round": rec["round"], "arm": arm, "n_seeds": int(sel.sum()),
                   "percent_remaining": float(np.mean(np.array(rec["density"])[sel]) * 100)}
            for k in ("final_test_accuracy", "best_test_accuracy", "early_stop_iteration", "early_stop_test_accuracy"):
                v = np.array(rec[k], float)[sel]
                v = v[np.isfinite(v)]  # members that diverged (skip_nonfinite) are left out
                row[k + "_mean"] = float(v.mean()) if v.size else float("nan")
                row[k + "_std"] = float(v.std()) if v.size else float("nan")
            rows.append(row)
    return rows


def _report(config: Config, rounds: list[dict], out: Path, seconds: Optional[float]) -> dict:
    return {"config": config.to_json(), "summary": aggregate(rounds), "rounds": rounds,
            "complete": len(rounds) == config.rounds + 1, "rounds_completed": len(rounds),
            # Summed over rounds, so it counts a resumed run's earlier invocations too.
            "train_seconds_total": float(sum(r["train_seconds"] for r in rounds)),
            "wall_seconds_this_invocation": seconds, "folder": str(out)}


def _write_report(out: Path, report: dict) -> None:
    io.atomic_write_json(out / "results.json", report)
    _write_csv(out / "metrics.csv", report["summary"])


def _write_csv(path: Path, rows: list[dict]) -> None:
    """One CSV row per round and arm: the report's summary (mean and std over seeds)."""
    buf = StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    io.atomic_write_bytes(path, buf.getvalue().encode())


def summary_table(report: dict) -> str:
    """The printed table: one row per round, accuracy mean ± std per arm, early-stop iteration."""
    rows = report["summary"]
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    head = f"{'round':>5} {'P_m %':>7} " + " ".join(f"{a + ' acc %':>16}" for a in arms) + f" {'ticket stop it':>14}"
    lines = [head, "-" * len(head)]
    for rnd in sorted({r["round"] for r in rows}):
        sel = {r["arm"]: r for r in rows if r["round"] == rnd}
        t = sel["ticket"]
        cells = []
        for a in arms:
            if a in sel:
                cells.append(f"{sel[a]['final_test_accuracy_mean'] * 100:8.2f} ± {sel[a]['final_test_accuracy_std'] * 100:4.2f}")
            else:
                cells.append(f"{'-':>16}")
        lines.append(f"{rnd:>5} {t['percent_remaining']:7.2f} " + " ".join(f"{c:>16}" for c in cells)
                     + f" {t['early_stop_iteration_mean']:14.0f}")
    return "\n".join(lines)
