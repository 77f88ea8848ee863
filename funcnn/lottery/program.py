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

from funcnn import losses, train


class Carry(NamedTuple):
    """What a member carries through a round: its TrainState, and the params and model state of its
    best validation loss so far (strictly lower wins, so the first minimum is kept, like argmin),
    that loss and the index of its chunk (-1 before any), and the chunks done."""

    state: train.TrainState
    best_params: Any
    best_model_state: Any
    best_loss: jax.Array
    best_chunk: jax.Array
    chunk: jax.Array


def start_carry(state: train.TrainState) -> Carry:
    """A member's carry at the start of a round (works on a population: leaves keep their axes)."""
    lead = jnp.shape(state.step)
    return Carry(
        state,
        state.params,
        state.model_state,
        jnp.full(lead, jnp.inf, jnp.float32),
        jnp.full(lead, -1, jnp.int32),
        jnp.zeros(lead, jnp.int32),
    )


def metric_names(metric_name: str = "accuracy", test_curve: bool = True) -> tuple[str, ...]:
    """The curves a round records after every `eval_every` steps, in order."""
    names = ("train_loss", "val_loss", f"val_{metric_name}")
    return names + (("test_loss", f"test_{metric_name}") if test_curve else ())


def end_names(metric_name: str = "accuracy") -> tuple[str, ...]:
    """What each call records at its end: the test loss and metric of the final and of the best params."""
    return ("test_loss", f"test_{metric_name}", "best_test_loss", f"best_test_{metric_name}")


def make_round_program(
    net,
    optimizer: optax.GradientTransformation,
    eval_every: int,
    chunk: int | None = 4,
    *,
    loss: Callable = losses.softmax_cross_entropy,
    metric: Callable = losses.accuracy,
    metric_name: str = "accuracy",
    test_curve: bool = False,
    unroll: int = 1,
) -> Callable:
    """Build `program(carry, idx, data) -> (carry, (curves, ends))`, one program for all members.

    net: a funcnn Layer (model state and Dropout keys ride in each member's TrainState) or an
    apply(params, x, ...) function. carry: `Carry` with a leading population axis P (`start_carry`);
    idx: (P, C, eval_every, B) batch indices; data: (x, y, x_val, y_val, x_test, y_test), shared.
    curves: a dict of (P, C) arrays named by `metric_names(metric_name, test_curve)`: the mean
    training loss over each chunk of `eval_every` steps, then the validation loss and metric after
    it (eval mode, with the member's running statistics), and with `test_curve` the test loss and
    metric too. ends: a dict of (P,) arrays named by `end_names`: the test loss and metric after the
    last chunk, and those of the best-validation params so far.
    chunk: members vmapped together; the chunks run one after another inside the program
    (`lax.map(..., batch_size=chunk)`); None vmaps all members at once (the choice on a GPU). On
    CPU, vmapping all members at once ran at 0.75x the sequential speed for LeNet-300-100 (XLA
    copies the stacked weights), chunks of 2-4 at 1.05-1.1x. unroll: `lax.scan`'s unroll of the
    steps of a chunk (fewer loop iterations for the GPU's launch-bound loops).
    """
    del eval_every  # the chunk length is idx's third axis; kept in the signature for callers' clarity
    step = train.make_train_step(net, loss, optimizer)
    evaluate = train.make_evaluate(net, loss, metric)
    names = metric_names(metric_name, test_curve)

    def member(carry: Carry, idx, data):
        x, y, xv, yv, xt, yt = data

        def chunk_fn(c: Carry, idx_chunk):
            def body(s, i):
                s, m = step(s, (x[i], y[i]))
                return s, m["loss"]

            s, batch_losses = jax.lax.scan(body, c.state, idx_chunk, unroll=unroll)
            v = evaluate(s.params, xv, yv, s.model_state)
            better = v["loss"] < c.best_loss
            pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(better, a, b), new, old)
            c = Carry(
                s,
                pick(s.params, c.best_params),
                pick(s.model_state, c.best_model_state),
                jnp.where(better, v["loss"], c.best_loss),
                jnp.where(better, c.chunk, c.best_chunk),
                c.chunk + 1,
            )
            values = [jnp.mean(batch_losses), v["loss"], v["accuracy"]]
            if test_curve:
                t = evaluate(s.params, xt, yt, s.model_state)
                values += [t["loss"], t["accuracy"]]
            return c, dict(zip(names, values))

        carry, curves = jax.lax.scan(chunk_fn, carry, idx)
        t = evaluate(carry.state.params, xt, yt, carry.state.model_state)
        b = evaluate(carry.best_params, xt, yt, carry.best_model_state)
        ends = dict(zip(end_names(metric_name), (t["loss"], t["accuracy"], b["loss"], b["accuracy"])))
        return carry, (curves, ends)

    def program(carry, idx, data):
        n = idx.shape[0]
        if chunk is None or chunk >= n:
            return jax.vmap(lambda c, i: member(c, i, data))(carry, idx)
        return jax.lax.map(lambda ci: member(ci[0], ci[1], data), (carry, idx), batch_size=chunk)

    return program
