"""What one run needs at hand: data on the device, the compiled round program, keys, θ0, and
`train_population`, which trains members in segments with a verified checkpoint after each."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from funcnn import data as data_lib
from funcnn import distributed, prune, train
from funcnn.cpu import default_chunk  # re-exported: its first home was here
from funcnn.lottery import arms as arms_lib
from funcnn.lottery import plans as plans_lib
from funcnn.lottery.config import Config
from funcnn.lottery.plans import _check_prunable, _structured_random, _units_prunable
from funcnn.lottery.program import Carry, end_names, make_round_program, metric_names, start_carry
from funcnn.lottery.schedule import advance_schedule, hold_schedule  # advance_schedule's first home was here
from funcnn.lottery.segments import NonFiniteLoss, RoundResult, run_chunks
from funcnn.lottery.segments import _load_progress as _load_progress  # re-exported: their first home was here
from funcnn.lottery.segments import _npz_bytes as _npz_bytes
from funcnn.lottery.segments import save_progress as save_progress
from funcnn.lottery.segments import segment_size as segment_size
from funcnn.lottery.spec import Spec, prune_round

__all__ = ["NonFiniteLoss", "RoundResult", "Study", "advance_schedule", "default_chunk"]

Params = Any  # a pytree of arrays; in a population, every leaf has a leading member axis
Masks = Any  # bool arrays, like params


class Study:
    """A `Spec` (or a `Config`) made ready to train: built once per run by `run`.

    Holds the data on the device (`data`: x, y, x_val, y_val, x_test, y_test), the jitted round
    program (`program`), the keys, every replicate's θ0 and reinit draw (`theta0`,
    `theta0_reinit`: leaves with a leading axis of `n_replicates` = seeds x sweep settings) and each
    seed's batch order (`idx`: (seeds, iterations, batch_size) indices). `train_round` trains a
    population of members from any params and masks.

    Example:
        >>> import jax
        >>> import optax
        >>> from funcnn import nn, prune
        >>> from funcnn.lottery import Spec, Study
        >>> x = jax.random.normal(jax.random.key(0), (64, 4))
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))  # a 4-8-2 MLP
        >>> spec = Spec(net, optax.adam(1e-2), train=(x, y), n_val=16, iterations=20, batch_size=8, eval_every=10,
        ...             seeds=2)
        >>> study = Study(spec, progress=False)
        >>> study.theta0["dense_0"]["w"].shape, study.idx.shape, study.n_train  # 16 of 64 held out
        ((2, 4, 8), (2, 20, 8), 48)
        >>> masks = jax.vmap(prune.ones)(study.theta0)
        >>> result = study.train_round(study.theta0, masks, study.rep_seed, 0, "dense")
        >>> result.curves.shape, study.metric_names  # (members, evaluations, metrics)
        ((2, 2, 3), ('train_loss', 'val_loss', 'val_accuracy'))
    """

    spec: Spec
    config: Config | None
    progress: bool
    data: tuple[jax.Array, ...]
    n_train: int
    input_shape: tuple[int, ...]
    net: Any
    tx: optax.GradientTransformation
    metric_names: tuple[str, ...]
    end_names: tuple[str, ...]
    layout: str
    mesh: Mesh | None
    program: Callable[..., Any]
    program_data: Any
    sweep: dict[str, np.ndarray]
    rep_seed: np.ndarray
    rep_setting: np.ndarray
    n_replicates: int
    setting_labels: list[str]
    theta0: Params
    theta0_reinit: Params
    state0: Params | None
    spec_prunable: Any
    arms: tuple[arms_lib.Arm, ...]
    plans: tuple[plans_lib.Plan, ...]
    unit_layout: Any
    holds: bool
    dense_run: bool
    rewind_steps: list[int]
    eval_forward: Callable[[Params, jax.Array], jax.Array]
    mask_programs: dict[str, Any]
    idx: jax.Array

    def __init__(self, spec: Spec | Config, progress: bool = True) -> None:
        if isinstance(spec, Config):
            self.config = spec.validate()
            spec = spec.to_spec()
        elif isinstance(spec, Spec):
            self.config = None
        else:
            raise TypeError(f"study must be a lottery.Spec or lottery.Config, got study={type(spec).__name__}")
        self.spec = spec.validate()
        self.progress = progress
        key = jax.random.key(spec.seed)
        self.k_data, self.k_init, self.k_reinit, self.k_order, self.k_random = jax.random.split(key, 5)
        self.k_step = jax.random.fold_in(key, 5)  # per-member bases of the Dropout keys
        x, y = map(np.asarray, spec.train)
        if spec.val is None:
            (x, y), (xv, yv) = data_lib.train_val_split(x, y, spec.n_val, self.k_data)
        else:
            xv, yv = map(np.asarray, spec.val)
        xt, yt = map(np.asarray, spec.test) if spec.test is not None else (xv, yv)
        train.check_batch_size(spec.batch_size, len(x))
        self.n_train = len(x)
        self.data = tuple(map(jnp.asarray, (x, y, xv, yv, xt, yt)))
        self.input_shape = tuple(spec.input_shape or x.shape[1:])
        self.net = train.as_net(spec.net, name="spec net")
        self.tx = spec.optimizer
        # Fine-tuning arms hold their schedule at its last step: every member's optimizer then carries
        # a hold (-1 for the others, whose updates are unchanged).
        self.holds = any(p.schedule == "end" for p in plans_lib.resolve(spec.arms, spec.rewind_step))
        if self.holds:
            self.tx = hold_schedule(self.tx)
        self.metric_names = metric_names(spec.metric_name, spec.test_curve)
        self.end_names = end_names(spec.metric_name)
        chunk = spec.population_chunk
        if chunk is None:
            chunk = default_chunk(self.net, self.input_shape)
        program = make_round_program(
            self.net,
            self.tx,
            spec.eval_every,
            chunk,
            loss=spec.loss,
            metric=spec.metric,
            metric_name=spec.metric_name,
            test_curve=spec.test_curve,
            unroll=spec.unroll,
            augment=spec.augment,
        )
        # With several devices (or hosts), each device trains its slice of the population.
        self.layout = distributed.population_layout()
        self.mesh = None
        if self.layout == "one":
            self.program = jax.jit(program)
            self.program_data = self.data
        elif self.layout == "split":
            devices = jax.local_devices()
            self.program = distributed.split_population(program, devices)
            self.program_data = [jax.device_put(self.data, d) for d in devices]
        else:
            self.mesh = mesh = distributed.population_mesh()
            self.program = distributed.shard_population(program, mesh)
            self.program_data = distributed.replicate(self.data, mesh)
        # Replicates: every seed under every sweep setting (setting-major); without a sweep, the seeds.
        self.sweep = {k: np.asarray(v, np.float64) for k, v in sorted(dict(spec.sweep).items())}
        n_settings = len(next(iter(self.sweep.values()))) if self.sweep else 1
        self.rep_seed = np.tile(np.arange(spec.seeds), n_settings)
        self.rep_setting = np.repeat(np.arange(n_settings), spec.seeds)
        self.n_replicates = len(self.rep_seed)
        self.setting_labels = [", ".join(f"{k}={v[i]:g}" for k, v in self.sweep.items()) for i in range(n_settings)]
        seeds = jnp.asarray(self.rep_seed)
        init = jax.vmap(lambda k: self.net.init(k, self.input_shape))
        try:
            self.theta0 = init(jax.vmap(lambda s: jax.random.fold_in(self.k_init, s))(seeds))
            self.theta0_reinit = init(jax.vmap(lambda s: jax.random.fold_in(self.k_reinit, s))(seeds))
            bad = [
                prune.path_name(p)
                for p, leaf in jax.tree_util.tree_leaves_with_path(self.theta0)
                if not isinstance(leaf, jax.Array)
            ]
        except TypeError:  # vmap refuses non-array outputs: find them in one plain init
            one = self.net.init(self.k_init, self.input_shape)
            bad = [
                prune.path_name(p)
                for p, leaf in jax.tree_util.tree_leaves_with_path(one)
                if not isinstance(leaf, (jax.Array, np.ndarray))
            ]
            if not bad:
                raise
        if bad:
            raise ValueError(
                f"spec net: init returned non-array leaves {bad}; partition them off (e.g. "
                "eqx.partition(model, eqx.is_array)) so params hold arrays only"
            )
        # Model state (running statistics) for each seed: the net's initial state, the same for all.
        state0 = self.net.init_state(self.input_shape) if hasattr(self.net, "init_state") else None
        self.state0 = (
            None
            if state0 is None
            else jax.tree.map(lambda a: jnp.broadcast_to(a, (self.n_replicates,) + jnp.shape(a)), state0)
        )
        self.spec_prunable = prune.prunable(jax.tree.map(lambda a: a[0], self.theta0), spec.prunable)
        _check_prunable(spec, self.spec_prunable)
        member0 = jax.tree.map(lambda a: a[0], self.theta0)
        self.unit_layout = getattr(self.net, "unit_layout", None)
        random_fn = arms_lib.random_pruning(self.spec_prunable, spec.scope)
        if spec.structure is not None:
            # The built-in random control keeps as many random whole units per leaf as the ticket.
            units = _units_prunable(self.spec_prunable, member0, self.unit_layout)
            if not any(jax.tree.leaves(units)):
                raise ValueError(
                    f"spec structure={spec.structure!r} prunes no layer: the only prunable layer is the output "
                    "layer, whose units are never pruned"
                )
            random_fn = _structured_random(units, self.unit_layout)
        self.plans = plans_lib.resolve(
            spec.arms, spec.rewind_step, default_pruner=self._spec_pruner, random_fn=random_fn
        )
        self.arms = tuple(arms_lib.Arm(p.name, p.legacy) for p in self.plans)  # names, as before
        for p in self.plans:
            if not 0 <= p.rewind_step < spec.iterations or p.rewind_step % spec.eval_every:
                raise ValueError(
                    f"spec arms: Arm {p.name!r} has rewind_step={p.rewind_step}; expected a multiple of "
                    f"eval_every={spec.eval_every} in [0, iterations={spec.iterations})"
                )
        if spec.rewind_optimizer and len({(p.rewind_step, p.weights, p.schedule) for p in self.plans}) > 1:
            raise ValueError(
                "spec rewind_optimizer=True restores the optimizer state saved at the rewind step, which only "
                "studies whose arms all rewind alike (same rewind_step, weights and schedule) can share"
            )
        self.dense_run = plans_lib.needs_dense_run(self.plans)
        self.mask_programs: dict[str, Any] = {}  # the compiled mask programs of built-in pruners, by arm
        self.rewind_steps = sorted(
            {p.rewind_step for p in self.plans if p.rewind_step}
            | ({spec.rewind_step} if spec.rewind_step and self.dense_run else set())
        )
        one_state = None if self.state0 is None else jax.tree.map(lambda a: a[0], self.state0)
        as_forward = train.as_forward(self.net)
        self.eval_forward = lambda params, x: as_forward(params, one_state, x, train=False)[0]
        if self.sweep:
            probe = self.tx.init(jax.tree.map(lambda a: a[0], self.theta0))
            missing = object()
            for name in self.sweep:
                if optax.tree_utils.tree_get(probe, name, missing) is missing:
                    raise ValueError(
                        f"spec sweep names {name!r}, which the optimizer does not expose; build it with "
                        f"optax.inject_hyperparams, e.g. optax.inject_hyperparams(optax.adam)({name}=...)"
                    )
        self.idx = self._batch_order()

    def _spec_pruner(self, ctx: Any) -> Masks:
        """How a lineage without a pruner prunes: the Spec's fields (`spec.prune_round`)."""
        return prune_round(
            self.spec, ctx.trained, ctx.masks, ctx.dense_trained, ctx.round, self.spec_prunable, self.unit_layout
        )

    # Kept for callers of the earlier API, which named the prunable spec `spec`.
    @property
    def prunable_spec(self) -> Any:
        return self.spec_prunable

    def _batch_order(self) -> jax.Array:
        """(seeds, iterations, batch) indices: each seed's data order, the same in every round and arm.
        batch_order 'sequential': step t takes examples (t * B) mod n ... + B - 1, for every seed (the
        MNIST-1D notebook's `bix = (step * 100) % 4000`)."""
        c = self.spec
        if c.batch_order == "sequential":
            if self.n_train % c.batch_size:
                raise ValueError(
                    f"spec batch_order='sequential' needs the training set size ({self.n_train}) to be "
                    f"a multiple of batch_size, got batch_size={c.batch_size}"
                )
            t = (jnp.arange(c.iterations) * c.batch_size) % self.n_train
            one = t[:, None] + jnp.arange(c.batch_size)[None]
            return jnp.broadcast_to(one, (c.seeds,) + one.shape)
        per_epoch = self.n_train // c.batch_size
        epochs = math.ceil(c.iterations / per_epoch)

        def order(s: jax.Array) -> jax.Array:
            k = jax.random.fold_in(self.k_order, s)
            e = jax.vmap(lambda i: train.batch_indices(jax.random.fold_in(k, i), self.n_train, c.batch_size))(
                jnp.arange(epochs)
            )
            return e.reshape(-1, c.batch_size)[: c.iterations]

        return jax.vmap(order)(jnp.arange(c.seeds))

    def member_state0(self, seed_of_member: Any) -> Params | None:
        """Each member's initial model state (None for a net without one)."""
        if self.state0 is None:
            return None
        return jax.tree.map(lambda a: a[np.asarray(seed_of_member)], self.state0)

    def initial_states(
        self,
        params: Params,
        masks: Masks,
        seed_of_member: Any,
        start: int,
        model_state: Params | None = None,
        opt_state: Any = None,
        setting_of_member: Any = None,
        schedule_start: Any = None,
        hold: Any = None,
    ) -> train.TrainState:
        """TrainStates for members: fresh optimizer state with its schedule at `start` (or at each
        member's `schedule_start`; held there for good where `hold` >= 0), or `opt_state`, each member's
        sweep setting in its hyperparameters, the model state given (default: the initial one), a
        Dropout key per seed, step = start."""
        seed_of_member = jnp.asarray(seed_of_member)
        n = seed_of_member.shape[0]
        model_state = self.member_state0(seed_of_member) if model_state is None else model_state
        keys = jax.vmap(lambda s: jax.random.fold_in(self.k_step, s))(seed_of_member)
        setting = jnp.zeros_like(seed_of_member) if setting_of_member is None else jnp.asarray(setting_of_member)
        sched = jnp.full((n,), start, jnp.int32) if schedule_start is None else jnp.asarray(schedule_start, jnp.int32)
        held = jnp.full((n,), -1, jnp.int32) if hold is None else jnp.asarray(hold, jnp.int32)
        if hold is not None and not self.holds and bool(jnp.any(held >= 0)):
            raise ValueError("hold needs a study whose arms include one with schedule='end' (fine-tuning)")

        def one(
            p: Params, m: Masks, ms: Params | None, k: jax.Array, v: jax.Array, sc: jax.Array, h: jax.Array
        ) -> train.TrainState:
            s = train.init_state(p, self.tx, m, model_state=ms, key=k)
            o = advance_schedule(s.opt_state, start if schedule_start is None else sc)
            if self.holds:
                o = o._replace(hold=h)
            for name, values in self.sweep.items():
                old = optax.tree_utils.tree_get(o, name)
                o = optax.tree_utils.tree_set(o, **{name: jnp.asarray(values, old.dtype)[v]})
            return s._replace(opt_state=o, step=jnp.asarray(start, jnp.int32))

        states = jax.vmap(one)(params, masks, model_state, keys, setting, sched, held)
        if opt_state is not None:
            states = states._replace(opt_state=opt_state)
        return states

    def train_round(
        self,
        params: Params,
        masks: Masks,
        seed_of_member: Any,
        start: int,
        desc: str,
        *,
        checkpoint: Path | None = None,
        skip_nonfinite: bool = False,
        model_state: Params | None = None,
        opt_state: Any = None,
        carry: Carry | None = None,
        stop: int | None = None,
        setting_of_member: Any = None,
        schedule_start: Any = None,
        hold: Any = None,
    ) -> RoundResult:
        """Train members from iteration `start` to `stop` (default: `iterations`) in segments.

        A fresh TrainState per member (`initial_states`, with each member's `schedule_start` and
        `hold` if given), or `carry` to go on with a round (its best validation params and all). With
        `checkpoint` (a folder), the carry is saved after every segment and a later call resumes from
        it. A non-finite loss raises `NonFiniteLoss`, unless `skip_nonfinite`: then the member is
        reported in `failed` and the others go on.
        """
        c = self.spec
        stop = c.iterations if stop is None else stop
        n = train.population_size(params, "params")
        for name, tree in (("masks", masks), ("seed_of_member", seed_of_member)):
            if train.population_size(tree, name) != n:
                raise ValueError(f"{name} has population axis {train.population_size(tree, name)}, params has {n}")
        if carry is None:
            carry = start_carry(
                self.initial_states(
                    params,
                    masks,
                    seed_of_member,
                    start,
                    model_state,
                    opt_state,
                    setting_of_member,
                    schedule_start=schedule_start,
                    hold=hold,
                )
            )
        n_chunks = (stop - start) // c.eval_every
        idx = self.idx[jnp.asarray(seed_of_member)][:, start:stop].reshape(n, n_chunks, c.eval_every, c.batch_size)
        snap = None
        if c.score_step is not None and start < c.score_step <= stop:
            snap = (c.score_step - start) // c.eval_every  # after this many chunks of this call
        return self._run_chunks(
            carry, idx, desc, checkpoint=checkpoint, skip_nonfinite=skip_nonfinite, snapshot_chunk=snap
        )

    def train_population(
        self, params: Params, masks: Masks, seed_of_member: Any, start: int, desc: str, **kwargs: Any
    ) -> tuple[Params, np.ndarray, list]:
        """`train_round`'s (trained params, curves (P, C, M) in the order of `metric_names`, failed)."""
        result = self.train_round(params, masks, seed_of_member, start, desc, **kwargs)
        return result.carry.state.params, result.curves, result.failed

    def _run_chunks(self, carry: Carry, idx: jax.Array, desc: str, **kwargs: Any) -> RoundResult:
        return run_chunks(self, carry, idx, desc, **kwargs)
