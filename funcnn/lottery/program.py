"""The population round program: every member of a round (seeds x arms) trained in one compiled call.

    program = make_round_program(net, optimizer, eval_every=100)
    carry, (curves, ends) = program(carry, idx, data)

Pure and not jitted: `Study` jits it, or shards it over devices with `distributed.shard_population`.
Validation is evaluated after every `eval_every` steps; the best-validation params ride in the
carry (Frankle & Carbin's early stopping, measured without stopping), and the test set is evaluated
once per call, on the final and on the best-validation params: at a fraction of the cost of a test
evaluation every `eval_every` steps (which `test_curve=True` keeps, for figures of the whole curve).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from funcnn import cpu, interpolation, losses, train

__all__ = ["Carry", "RoundProgram", "end_names", "make_round_program", "metric_names", "start_carry"]

# The data every member shares: (x, y, x_val, y_val, x_test, y_test).
RoundData = tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]
RoundProgram = Callable[[Any, jax.Array, Any], tuple[Any, tuple[dict[str, jax.Array], dict[str, jax.Array]]]]
"""`program(carry, idx, data) -> (carry, (curves, ends))`, what `make_round_program` builds."""


class Carry(NamedTuple):
    """What a member carries through a round: its TrainState, and the params and model state of its
    best validation loss so far (strictly lower wins, so the first minimum is kept, like argmin),
    that loss and the index of its chunk (-1 before any), the chunks done, and the steps it still
    waits before its first one (0 for a member that trains from the call's first step: members of
    several starts share a call, the later ones idle, their curves NaN, until their start).

    In a population every leaf has a leading member axis P (`start_carry` builds one).

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import train
        >>> from funcnn.lottery.program import Carry, start_carry
        >>> carry = start_carry(train.init_state({"w": jnp.ones(3)}, optax.sgd(0.1)))
        >>> Carry._fields
        ('state', 'best_params', 'best_model_state', 'best_loss', 'best_chunk', 'chunk', 'wait')
        >>> float(carry.best_loss), int(carry.best_chunk), int(carry.chunk)  # no validation yet
        (inf, -1, 0)
    """

    state: train.TrainState
    best_params: Any
    best_model_state: Any
    best_loss: jax.Array
    best_chunk: jax.Array
    chunk: jax.Array
    wait: jax.Array


def start_carry(state: train.TrainState, wait: Any = None) -> Carry:
    """A member's carry at the start of a round (works on a population: leaves keep their axes).

    The best params start as the state's own, with best_loss +inf, best_chunk -1, chunk 0 and wait
    (steps before the member's first; default 0), each of shape `state.step.shape` (`()` for one
    member, `(P,)` for a population).

    Example:
        >>> import jax
        >>> import optax
        >>> from funcnn import nn, train
        >>> from funcnn.lottery.program import start_carry
        >>> net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))  # a 4-8-2 MLP
        >>> params = jax.vmap(lambda k: net.init(k, (4,)))(jax.random.split(jax.random.key(0), 2))
        >>> states = jax.vmap(lambda p: train.init_state(p, optax.sgd(0.1)))(params)  # 2 members
        >>> carry = start_carry(states)
        >>> carry.best_loss.shape, carry.best_chunk.tolist(), carry.best_params["dense_0"]["w"].shape
        ((2,), [-1, -1], (2, 4, 8))
    """
    lead = jnp.shape(state.step)
    return Carry(
        state,
        state.params,
        state.model_state,
        jnp.full(lead, jnp.inf, jnp.float32),
        jnp.full(lead, -1, jnp.int32),
        jnp.zeros(lead, jnp.int32),
        jnp.zeros(lead, jnp.int32) if wait is None else jnp.asarray(wait, jnp.int32).reshape(lead),
    )


def metric_names(metric_name: str = "accuracy", test_curve: bool = True) -> tuple[str, ...]:
    """The curves a round records after every `eval_every` steps, in order.

    Example:
        >>> from funcnn.lottery.program import metric_names
        >>> metric_names()
        ('train_loss', 'val_loss', 'val_accuracy', 'test_loss', 'test_accuracy')
        >>> metric_names("top5", test_curve=False)  # the round program's default: no test curve
        ('train_loss', 'val_loss', 'val_top5')
    """
    names = ("train_loss", "val_loss", f"val_{metric_name}")
    return names + (("test_loss", f"test_{metric_name}") if test_curve else ())


def end_names(metric_name: str = "accuracy") -> tuple[str, ...]:
    """What each call records at its end: the test loss and metric of the final and of the best params.

    Example:
        >>> from funcnn.lottery.program import end_names
        >>> end_names()
        ('test_loss', 'test_accuracy', 'best_test_loss', 'best_test_accuracy')
    """
    return ("test_loss", f"test_{metric_name}", "best_test_loss", f"best_test_{metric_name}")


def make_round_program(
    net: train.Net,
    optimizer: optax.GradientTransformation,
    eval_every: int,
    chunk: int | None = 4,
    *,
    loss: train.LossFn = losses.softmax_cross_entropy,
    metric: train.LossFn = losses.accuracy,
    metric_name: str = "accuracy",
    test_curve: bool = False,
    unroll: int = 1,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    statistics_batches: int = 0,
    waits: bool = False,
) -> RoundProgram:
    """Build `program(carry, idx, data) -> (carry, (curves, ends))`, one program for all members.

    The program trains P members side by side (every seed and arm of a round), each for C chunks of
    E = `eval_every` steps on batches of B examples, evaluating the validation set after every
    chunk and the test set once, at the end of the call. It is pure and not jitted: wrap it in
    `jax.jit` (as `Study` does) or `distributed.shard_population`. Call it again with the carry it
    returned to go on with the same round in segments (the best-validation params and the chunk
    count carry over; the test set is then evaluated at the end of every segment).

    Shapes: P members, C chunks (evaluations) per call, E steps per chunk, B examples per batch.

    Arguments of `make_round_program`:

    - net: a funcnn Layer (model state and Dropout keys ride in each member's TrainState) or an
      apply(params, x, ...) function.
    - optimizer: the optax optimizer each member's `opt_state` was made by (`train.init_state`).
    - eval_every: E, for callers' clarity only: the program reads E from `idx`'s third axis.
    - chunk: members vmapped together (a group of members, not the chunks of steps); the groups run
      one after another inside the program (`lax.map(..., batch_size=chunk)`); 1 runs the members
      one after another without vmap; None vmaps all members at once (the choice on a GPU). On CPU,
      vmapping all members at once ran at 0.75x the sequential speed for LeNet-300-100 (XLA copies
      the stacked weights), groups of 2-4 at 1.05-1.1x; conv nets are fastest one at a time there
      (`study.default_chunk`). Results do not depend on it beyond float rounding.
    - loss(logits, labels) -> scalar, the training objective; metric(logits, labels) -> scalar,
      recorded as `val_<metric_name>` and `test_<metric_name>`.
    - test_curve: also evaluate the test set after every chunk (two more curves).
    - unroll: `lax.scan`'s unroll of the steps of a chunk (fewer loop iterations for the GPU's
      launch-bound loops).
    - augment(key, x) -> x': a keyed transform of each training batch (e.g. `funcnn.data.cifar10.augment`),
      drawn from each member's step key (`train.make_train_step`); evaluation never augments.
    - statistics_batches: K > 0 recomputes a stateful net's running statistics from the chunk's first K
      training batches (`interpolation.recompute_statistics`) after every chunk, before its evaluation;
      they go on as the member's running statistics. 0 evaluates with the running averages as trained.
    - waits: whether members may wait for a later start (`Carry.wait` > 0): their steps before it are not
      taken and their curves are NaN there; the chunks are then the program's outer loop, so a chunk that
      no member of the call trains yet is skipped (`lax.cond`), one that some do is computed for all.

    Arguments of `program(carry, idx, data)`:

    - carry: a `Carry` with a leading population axis P on every leaf: `start_carry(states)` for
      states stacked with `jax.vmap(train.init_state)`, masks included (pruned weights stay 0).
      Each member's `state.step` drives its optimizer's schedule and its Dropout keys.
    - idx: int (P, C, E, B): the rows of x and y in every step's batch, per member.
    - data: (x, y, x_val, y_val, x_test, y_test), arrays shared by all members (not vmapped).

    What `program` returns:

    - carry: the `Carry` after C x E more steps per member: `carry.state` the final TrainStates,
      `carry.best_params` those of each member's lowest validation loss so far.
    - curves: a dict of (P, C) arrays named by `metric_names(metric_name, test_curve)`: the mean
      training loss over each chunk, then the validation loss and metric after it (eval mode, with
      the member's running statistics), and with `test_curve` the test loss and metric too.
    - ends: a dict of (P,) arrays named by `end_names(metric_name)`: the test loss and metric after
      the last chunk, and those of the best-validation params so far.

    Index curves and ends by name: they come back as dicts whose keys jax has sorted.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import nn, prune, train
        >>> from funcnn.lottery.program import end_names, make_round_program, metric_names, start_carry
        >>> P, C, E, B = 2, 3, 5, 8  # members, chunks, steps a chunk (eval_every), batch size
        >>> net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))  # a 4-8-2 MLP
        >>> tx = optax.adam(1e-2)
        >>> x = jax.random.normal(jax.random.key(0), (64, 4))
        >>> y = (x[:, 0] > 0).astype(jnp.int32)
        >>> data = (x[:32], y[:32], x[32:48], y[32:48], x[48:], y[48:])  # train, validation, test
        >>> params = jax.vmap(lambda k: net.init(k, (4,)))(jax.random.split(jax.random.key(1), P))
        >>> states = jax.vmap(lambda p: train.init_state(p, tx, prune.ones(p)))(params)
        >>> idx = jax.random.randint(jax.random.key(2), (P, C, E, B), 0, 32)  # each member's batches
        >>> program = jax.jit(make_round_program(net, tx, eval_every=E))
        >>> carry, (curves, ends) = program(start_carry(states), idx, data)
        >>> {name: curves[name].shape for name in metric_names(test_curve=False)}  # (P, C)
        {'train_loss': (2, 3), 'val_loss': (2, 3), 'val_accuracy': (2, 3)}
        >>> {name: ends[name].shape for name in end_names()}  # (P,)
        {'test_loss': (2,), 'test_accuracy': (2,), 'best_test_loss': (2,), 'best_test_accuracy': (2,)}
        >>> carry.state.step.tolist(), carry.chunk.tolist()  # C x E = 15 steps each
        ([15, 15], [3, 3])
    """
    del eval_every  # the chunk length is idx's third axis; kept in the signature for callers' clarity
    step = train.make_train_step(net, loss, optimizer, augment=augment)
    evaluate = train.make_evaluate(net, loss, metric)
    names = metric_names(metric_name, test_curve)

    def chunk_fn(c: Carry, idx_chunk: jax.Array, data: RoundData) -> tuple[Carry, dict[str, jax.Array]]:
        """One member's chunk: E steps (none while it waits), statistics, validation, its best so far."""
        x, y, xv, yv, xt, yt = data

        def body(s: train.TrainState, i: jax.Array) -> tuple[train.TrainState, jax.Array]:
            s, m = step(s, (x[i], y[i]))
            return s, m["loss"]

        def train_chunk(state: train.TrainState) -> tuple[train.TrainState, jax.Array]:
            stepped, batch_losses = jax.lax.scan(body, state, idx_chunk, unroll=unroll)
            if statistics_batches and stepped.model_state is not None:  # statistics follow the weights
                stats = interpolation.recompute_statistics(
                    net, stepped.params, stepped.model_state, x, idx_chunk[:statistics_batches]
                )
                stepped = stepped._replace(model_state=stats)
            return stepped, batch_losses

        active = c.wait <= 0
        s, batch_losses = train_chunk(c.state)
        if waits:  # a member that waits (a later start) keeps its state; starts are whole chunks apart
            s = jax.tree.map(lambda a, b: jnp.where(active, a, b), s, c.state)
        v = evaluate(s.params, xv, yv, s.model_state)
        better = (active & (v["loss"] < c.best_loss)) if waits else v["loss"] < c.best_loss
        pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(better, a, b), new, old)
        c = Carry(
            s,
            pick(s.params, c.best_params),
            pick(s.model_state, c.best_model_state),
            jnp.where(better, v["loss"], c.best_loss),
            jnp.where(better, c.chunk, c.best_chunk),
            c.chunk + 1,
            c.wait - idx_chunk.shape[0],
        )
        values = [jnp.mean(batch_losses), v["loss"], v["accuracy"]]
        if test_curve:
            t = evaluate(s.params, xt, yt, s.model_state)
            values += [t["loss"], t["accuracy"]]
        if waits:
            values = [jnp.where(active, val, jnp.float32(jnp.nan)) for val in values]
        return c, dict(zip(names, values, strict=True))

    def ends_fn(carry: Carry, data: RoundData) -> dict[str, jax.Array]:
        """The test loss and metric of a member's final and best-validation params."""
        xt, yt = data[4], data[5]
        t = evaluate(carry.state.params, xt, yt, carry.state.model_state)
        b = evaluate(carry.best_params, xt, yt, carry.best_model_state)
        values = [t["loss"], t["accuracy"], b["loss"], b["accuracy"]]
        if waits:  # test evaluations of a member that has not trained yet are NaN
            values = [jnp.where(carry.wait < 0, v, jnp.nan) for v in values]
        return dict(zip(end_names(metric_name), values, strict=True))

    def member(carry: Carry, idx: jax.Array, data: RoundData) -> tuple[Carry, tuple[dict, dict]]:
        carry, curves = jax.lax.scan(lambda c, i: chunk_fn(c, i, data), carry, idx)
        return carry, (curves, ends_fn(carry, data))

    def waiting_program(carry: Carry, idx: jax.Array, data: RoundData) -> tuple[Carry, tuple[dict, dict]]:
        # The chunks outside, the members (one group: a call's members) inside: a chunk that no member
        # trains yet (all wait for a later start) is skipped by an unbatched cond, not computed and dropped.
        over = (lambda f: jax.vmap(f)) if chunk != 1 else (lambda f: lambda *a: jax.lax.map(lambda t: f(*t), a))

        def all_members(c: Carry, idx_c: jax.Array) -> tuple[Carry, dict[str, jax.Array]]:
            train_all = lambda c: over(lambda ci, ii: chunk_fn(ci, ii, data))(c, idx_c)
            shapes = jax.eval_shape(train_all, c)[1]

            def idle(c: Carry) -> tuple[Carry, dict[str, jax.Array]]:
                later = c._replace(chunk=c.chunk + 1, wait=c.wait - idx_c.shape[1])
                return later, {k: jnp.full(v.shape, jnp.nan, v.dtype) for k, v in shapes.items()}

            return jax.lax.cond(jnp.any(c.wait <= 0), train_all, idle, c)

        carry, curves = jax.lax.scan(all_members, carry, jnp.swapaxes(idx, 0, 1))
        curves = {k: jnp.swapaxes(v, 0, 1) for k, v in curves.items()}  # (C, P) -> (P, C)
        return carry, (curves, over(lambda c: ends_fn(c, data))(carry))

    def program(carry: Carry, idx: jax.Array, data: RoundData) -> tuple[Carry, tuple[dict, dict]]:
        if waits:
            return waiting_program(carry, idx, data)
        return cpu.map_members(lambda ci: member(ci[0], ci[1], data), (carry, idx), chunk)

    return program
