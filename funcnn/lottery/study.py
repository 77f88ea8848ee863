"""What one run needs at hand: data on the devices, the study's few compiled programs, θ0, and
`train_round`, which trains members in segments with a verified checkpoint after each.

One pass: a `Spec` (or `Config`) is checked once (`spec.checked`: fields and resolved arms), then
`Study` draws everything the study's key decides in one program (`programs.make_start`) and builds the
round program, which runs on groups of a fixed number of members so every round shares it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from jax.sharding import Mesh

from funcnn import distributed, train
from funcnn.cpu import default_chunk  # re-exported: its first home was here
from funcnn.lottery import arms as arms_lib
from funcnn.lottery import members as members_lib
from funcnn.lottery import plans as plans_lib
from funcnn.lottery import probes
from funcnn.lottery import programs as programs_lib
from funcnn.lottery import spec as spec_lib
from funcnn.lottery.config import Config
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

    Holds the data (`data`: x, y, x_val, y_val, x_test, y_test on the device), every replicate's θ0 and
    reinit draw (`theta0`, `theta0_reinit`: leaves with a leading axis of `n_replicates` = seeds x
    sweep settings), each seed's batch order (`idx`: (seeds, iterations, batch_size) indices, numpy),
    the round program (`program`, jitted; called on groups of `group` members) and the arms resolved
    (`plans`). `train_round` trains a population of members from any params and masks. `seconds`
    accumulates where the time went ('data', 'init', 'train', 'masks').

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
    program: Callable[..., Any]

    def __init__(self, spec: Spec | Config, progress: bool = True) -> None:
        self._build(*spec_lib.checked(spec), progress)

    @classmethod
    def from_checked(cls, spec: Spec, config: Config | None, plans: tuple, progress: bool = True) -> Study:
        """A Study from what `spec.checked` returned (`run` checks a study once, before its folder)."""
        study = cls.__new__(cls)
        study._build(spec, config, plans, progress)
        return study

    def _build(self, spec: Spec, config: Config | None, plans: tuple, progress: bool) -> None:
        t0 = time.perf_counter()
        self.spec, self.config, self.progress = spec, config, progress
        self.seconds = {"data": 0.0, "init": 0.0, "train": 0.0, "masks": 0.0}
        self.sweep = {k: np.asarray(v, np.float64) for k, v in sorted(dict(spec.sweep).items())}
        n_settings = len(next(iter(self.sweep.values()))) if self.sweep else 1
        # Replicates: every seed under every sweep setting (setting-major); without a sweep, the seeds.
        self.rep_seed = np.tile(np.arange(spec.seeds), n_settings)
        self.rep_setting = np.repeat(np.arange(n_settings), spec.seeds)
        self.n_replicates = len(self.rep_seed)
        self.setting_labels = [", ".join(f"{k}={v[i]:g}" for k, v in self.sweep.items()) for i in range(n_settings)]
        x, y = map(np.asarray, spec.train)
        self.input_shape = tuple(spec.input_shape or x.shape[1:])
        self.net = train.as_net(spec.net, name="spec net")
        n_val = spec.n_val if spec.val is None else None
        n_train = len(x) - (n_val or 0)
        train.check_batch_size(spec.batch_size, n_train)
        if spec.batch_order == "sequential" and n_train % spec.batch_size:
            raise ValueError(
                f"spec batch_order='sequential' needs the training set size ({n_train}) to be "
                f"a multiple of batch_size, got batch_size={spec.batch_size}"
            )
        start = programs_lib.make_start(
            self.net.init,
            self.input_shape,
            n=len(x),
            n_val=n_val,
            seeds=self.rep_seed,
            iterations=spec.iterations,
            batch_size=spec.batch_size,
            sequential=spec.batch_order == "sequential",
        )
        init_state = getattr(self.net, "init_state", None)
        # Optimization level 1: this program runs once, and compiles ~4x faster (random-number code);
        # θ0 comes out bit-identical to level 2's (checked for MLPs, LeNet, Conv-2, ResNet-20, VGG-16).
        self.start_program = jax.jit(
            lambda seed: programs_lib.keys_and(start, seed, init_state, self.input_shape),
            compiler_options={"xla_backend_optimization_level": 1},
        )
        try:
            (perm, self.theta0, self.theta0_reinit, idx), self.keys, state0 = self._start(self.net)
        except TypeError:  # a jitted program returns arrays only: find the leaves that are none
            bad = programs_lib.non_arrays(self.net.init(jax.random.key(0), self.input_shape))
            if not bad:
                raise
            raise ValueError(
                f"spec net: init returned non-array leaves {bad}; partition them off (e.g. "
                "eqx.partition(model, eqx.is_array)) so params hold arrays only"
            ) from None
        self.idx = np.asarray(idx)
        self.seconds["init"] += time.perf_counter() - t0
        t1 = time.perf_counter()
        if n_val:
            p = np.asarray(perm)
            (x, y), (xv, yv) = (x[p[n_val:]], y[p[n_val:]]), (x[p[:n_val]], y[p[:n_val]])
        else:
            xv, yv = np.asarray(spec.val[0]), np.asarray(spec.val[1])  # type: ignore[index]
        xt, yt = map(np.asarray, spec.test) if spec.test is not None else (xv, yv)
        self.n_train = len(x)
        self.host_data = (x, y, xv, yv, xt, yt)
        self.data = tuple(jax.device_put(a) for a in self.host_data)
        self.seconds["data"] += time.perf_counter() - t1
        self.state0 = state0
        self.theta0_host = jax.tree.map(np.asarray, self.theta0)
        member0 = jax.tree.map(lambda a: a[0], self.theta0_host)
        self.spec_prunable = probes.prunable(self.net, member0, state0, x, spec.prunable)
        plans_lib._check_prunable(spec, self.spec_prunable)
        self.plans = plans
        self.holds = any(p.schedule == "end" for p in plans)
        # Fine-tuning arms hold their schedule at its last step: every member's optimizer then carries
        # a hold (-1 for the others, whose updates are unchanged).
        self.tx = hold_schedule(spec.optimizer) if self.holds else spec.optimizer
        self.dense_run = plans_lib.needs_dense_run(plans)
        self.rewind_steps = sorted(
            {p.rewind_step for p in plans if p.rewind_step}
            | ({spec.rewind_step} if spec.rewind_step and self.dense_run else set())
        )
        one_state = None if state0 is None else jax.tree.map(lambda a: np.asarray(a)[0], state0)
        as_forward = train.as_forward(self.net)
        self.eval_forward = lambda params, x: as_forward(params, one_state, x, train=False)[0]
        self.unit_layout = getattr(self.net, "unit_layout", None)
        self.random_fn = arms_lib.random_control(self.spec_prunable, spec.scope)
        if spec.structure is not None:
            self.unit_layout = probes.unit_layout(self.net, self.eval_forward, member0, self.host_data[0][:4])
            # The built-in random control keeps as many random whole units per leaf as the ticket.
            units = plans_lib._units_prunable(self.spec_prunable, member0, self.unit_layout)
            if not any(jax.tree.leaves(units)):
                raise ValueError(
                    f"spec structure={spec.structure!r} prunes no layer: the only prunable layer is the output "
                    "layer, whose units are never pruned"
                )
            self.random_fn = plans_lib._structured_random(units, self.unit_layout)
        self.arms = tuple(arms_lib.Arm(p.name, self.random_fn if p.builtin else p.legacy) for p in plans)
        if self.sweep:
            probe = jax.eval_shape(self.tx.init, member0)
            missing = object()
            for name in self.sweep:
                if optax.tree_utils.tree_get(probe, name, missing) is missing:
                    raise ValueError(
                        f"spec sweep names {name!r}, which the optimizer does not expose; build it with "
                        f"optax.inject_hyperparams, e.g. optax.inject_hyperparams(optax.adam)({name}=...)"
                    )
        self._programs(spec)

    def _start(self, net: Any) -> tuple[Any, dict[str, np.ndarray], Params | None]:
        del net
        out, keys, state0 = self.start_program(np.int32(self.spec.seed))
        keys = {k: np.asarray(v) for k, v in keys.items()}
        if state0 is not None:  # the net's initial state, the same for every replicate
            state0 = jax.tree.map(lambda a: np.broadcast_to(np.asarray(a), (self.n_replicates, *np.shape(a))), state0)
        return out, keys, state0

    def _programs(self, spec: Spec) -> None:
        """The round program (jitted, or sharded over a mesh) and the data each device reads."""
        stateful = self.state0 is not None and bool(jax.tree.leaves(self.state0))
        k = spec.recompute_statistics
        self.statistics_batches = (10 if stateful else 0) if k is None else (k if stateful else 0)
        # Members of a round start where their arm's schedule says: one call trains them all, the later
        # ones waiting until their start.
        self.waits = len({0 if p.schedule == "start" else p.rewind_step for p in self.plans}) > 1
        self.metric_names = metric_names(spec.metric_name, spec.test_curve)
        self.end_names = end_names(spec.metric_name)
        chunk = spec.population_chunk
        if chunk is None:
            chunk = default_chunk(self.net, self.input_shape)
        self.chunk = chunk
        self.round_fn = make_round_program(
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
            statistics_batches=self.statistics_batches,
            waits=self.waits,
        )
        # With several devices (or hosts), each device trains its groups of the population.
        self.layout = distributed.population_layout()
        self.mesh: Mesh | None = None
        self.devices = jax.local_devices() if self.layout == "split" else jax.local_devices()[:1]
        if self.layout == "shard":
            self.mesh = distributed.population_mesh()
            self.program = distributed.shard_population(self.round_fn, self.mesh)
            self.program_data: Any = distributed.replicate(self.data, self.mesh)
        else:
            self.program = jax.jit(self.round_fn)
            self.program_data = [jax.device_put(self.data, d) for d in self.devices]
        self.group = programs_lib.group_size(self.n_replicates, chunk, len(self.devices))
        self.carry_program = jax.jit(
            programs_lib.make_carry(self.tx, self.holds, self.sweep, self.keys["step"], start_carry)
        )
        fn = members_lib.members_fn(self)
        traced = members_lib.traced_round(self.plans, spec)
        self.members_program = jax.jit(fn) if traced else jax.jit(fn, static_argnums=0)
        self.host_masks = False  # set by the identity where an arm cannot be lowered

    def call_program(self, carry: Carry, idx: np.ndarray) -> Any:
        """One segment of the round program for every member: on groups of `group` members (one
        executable for every population size), or sharded over the mesh."""
        if self.mesh is not None:
            return self.program(carry, idx, self.program_data)
        # chunk None (a GPU's default): every member of the call vmapped at once, one call.
        n = int(idx.shape[0])
        group = self.group if self.chunk is not None else -(-n // len(self.devices))
        return programs_lib.run_groups(self.program, carry, idx, self.program_data, self.devices, group)

    def _spec_pruner(self, ctx: Any) -> Masks:
        """How a lineage without a pruner prunes: the Spec's fields (`spec.prune_round`)."""
        return prune_round(
            self.spec, ctx.trained, ctx.masks, ctx.dense_trained, ctx.round, self.spec_prunable, self.unit_layout
        )

    # Kept for callers of the earlier API, which named the prunable spec `spec`.
    @property
    def prunable_spec(self) -> Any:
        return self.spec_prunable

    def member_state0(self, seed_of_member: Any) -> Params | None:
        """Each member's initial model state (None for a net without one)."""
        if self.state0 is None:
            return None
        return jax.tree.map(lambda a: np.asarray(a)[np.asarray(seed_of_member)], self.state0)

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
        """TrainStates for members (one compiled program): fresh optimizer state with its schedule at
        `start` (or at each member's `schedule_start`; held there for good where `hold` >= 0), or
        `opt_state`, each member's sweep setting in its hyperparameters, the model state given (default:
        the initial one), a Dropout key per seed, step = start."""
        seed_of_member = np.asarray(seed_of_member)
        n = seed_of_member.shape[0]
        model_state = self.member_state0(seed_of_member) if model_state is None else model_state
        setting = np.zeros(n, np.int32) if setting_of_member is None else np.asarray(setting_of_member, np.int32)
        sched = np.full(n, start, np.int32) if schedule_start is None else np.asarray(schedule_start, np.int32)
        held = np.full(n, -1, np.int32) if hold is None else np.asarray(hold, np.int32)
        if hold is not None and not self.holds and bool(np.any(held >= 0)):
            raise ValueError("hold needs a study whose arms include one with schedule='end' (fine-tuning)")
        return self.start_carry(
            params, masks, seed_of_member, start, model_state, opt_state, setting, sched, held
        ).state

    def start_carry(
        self,
        params: Params,
        masks: Masks,
        seed_of_member: np.ndarray,
        start: int,
        model_state: Params | None,
        opt_state: Any,
        setting: np.ndarray,
        sched: np.ndarray,
        held: np.ndarray,
        wait: np.ndarray | None = None,
    ) -> Carry:
        """Members' carries at the start of a call (`initial_states` in one compiled program, called on
        groups of `group` members as the round program is: one executable for every population size)."""
        n = seed_of_member.shape[0]
        wait = np.zeros(n, np.int32) if wait is None else np.asarray(wait, np.int32)
        members = (params, masks, seed_of_member.astype(np.int32), model_state, setting, sched, held, opt_state, wait)
        group = self.group if self.chunk is not None else n
        parts = []
        for lo in range(0, n, group):
            p, m, sd, ms, st, sc, hd, op, wt = programs_lib.slice_members(members, lo, lo + group, n)
            out = self.carry_program(p, m, sd, np.int32(start), ms, st, sc, hd, op, wt)
            keep = min(group, n - lo)
            parts.append(out if n <= group else jax.tree.map(lambda a, k=keep: np.asarray(a)[:k], out))
        return parts[0] if len(parts) == 1 else jax.tree.map(lambda *xs: np.concatenate(xs), *parts)

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
        member_start: Any = None,
    ) -> RoundResult:
        """Train members from iteration `start` to `stop` (default: `iterations`) in segments.

        A fresh TrainState per member (`initial_states`, with each member's `schedule_start` and
        `hold` if given), or `carry` to go on with a round (its best validation params and all). With
        `member_start` (each member's first iteration, >= start), a member waits until then: its
        steps before are not taken and its curves there are NaN, so members of several starts train
        in one call. With `checkpoint` (a folder), the carry is saved after every segment and a later
        call resumes from it. A non-finite loss raises `NonFiniteLoss`, unless `skip_nonfinite`: then
        the member is reported in `failed` and the others go on.
        """
        c = self.spec
        stop = c.iterations if stop is None else stop
        n = train.population_size(params, "params")
        for name, tree in (("masks", masks), ("seed_of_member", seed_of_member)):
            if train.population_size(tree, name) != n:
                raise ValueError(f"{name} has population axis {train.population_size(tree, name)}, params has {n}")
        seeds = np.asarray(seed_of_member)
        if carry is None:
            model_state = self.member_state0(seeds) if model_state is None else model_state
            setting = np.zeros(n, np.int32) if setting_of_member is None else np.asarray(setting_of_member, np.int32)
            sched = np.full(n, start, np.int32) if schedule_start is None else np.asarray(schedule_start, np.int32)
            held = np.full(n, -1, np.int32) if hold is None else np.asarray(hold, np.int32)
            if hold is not None and not self.holds and bool(np.any(held >= 0)):
                raise ValueError("hold needs a study whose arms include one with schedule='end' (fine-tuning)")
            wait = None if member_start is None else np.asarray(member_start, np.int32) - np.int32(start)
            if wait is not None and (wait > 0).any() and not self.waits:
                raise ValueError("member_start: this study's arms all start alike; its round program has no waiting")
            carry = self.start_carry(params, masks, seeds, start, model_state, opt_state, setting, sched, held, wait)
        n_chunks = (stop - start) // c.eval_every
        idx = self.idx[seeds][:, start:stop].reshape(n, n_chunks, c.eval_every, c.batch_size)
        snap = None
        if c.score_step is not None and start < c.score_step <= stop:
            snap = (c.score_step - start) // c.eval_every  # after this many chunks of this call
        t0 = time.perf_counter()
        try:
            return run_chunks(
                self, carry, idx, desc, checkpoint=checkpoint, skip_nonfinite=skip_nonfinite, snapshot_chunk=snap
            )
        finally:
            self.seconds["train"] += time.perf_counter() - t0

    def train_population(
        self, params: Params, masks: Masks, seed_of_member: Any, start: int, desc: str, **kwargs: Any
    ) -> tuple[Params, np.ndarray, list]:
        """`train_round`'s (trained params, curves (P, C, M) in the order of `metric_names`, failed)."""
        result = self.train_round(params, masks, seed_of_member, start, desc, **kwargs)
        return result.carry.state.params, result.curves, result.failed
