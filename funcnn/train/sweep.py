"""`lr_sweep`: the same init trained at several learning rates, with the same data order, as one
vmapped program (the curve that says whether a rate is too high or too low).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import checks
from funcnn import losses as losses_lib
from funcnn.train.contract import Net, as_forward, as_net
from funcnn.train.evaluate import Data, validate_data
from funcnn.train.step import _STEP_KEY_FOLD, LossFn, batch_indices, check_batch_size, make_epoch, make_train_step
from funcnn.train.train_state import Array, Params, TrainState, init_state

__all__ = ["lr_sweep"]


def lr_sweep(
    net: Net,
    params: Params,
    train: tuple[Data, Data],
    *,
    rates: Sequence[float] | np.ndarray,
    epochs: int,
    batch_size: int,
    key: Array,
    loss: LossFn = losses_lib.softmax_cross_entropy,
    optimizer: Callable[..., optax.GradientTransformation] = optax.sgd,
) -> dict[str, Any]:
    """Train the same init at each learning rate in `rates`, with the same data order, as one vmapped
    program. Returns {"rates": (R,), "loss": (R, epochs) mean training loss per epoch, "step_loss":
    (R, epochs * steps per epoch) each step's batch loss (where a diverging rate first goes non-finite),
    "initial_loss": float}. Non-finite losses (divergence) are kept as they are (inf or nan).
    net: any form `as_net` takes, or a bare apply function.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn import nn, train
        >>> net = nn.serial(nn.Dense(4), nn.Tanh(), nn.Dense(2))
        >>> x = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
        >>> y = (x[:, 0] > x[:, 1]).astype(np.int32)
        >>> sweep = train.lr_sweep(net, net.init(jax.random.key(0), (2,)), (x, y), rates=[0.01, 0.1, 1.0],
        ...                        epochs=2, batch_size=4, key=jax.random.key(2))
        >>> sweep["loss"].shape, round(sweep["initial_loss"], 2)  # (rates, epochs)
        ((3, 2), 0.76)
        >>> [round(float(v), 2) for v in sweep["loss"][:, -1]]  # after 2 epochs: the largest rate went furthest
        [0.76, 0.69, 0.34]
    """
    as_net(net, needs_init=False)  # a bad net is named before any work
    checks.prng_key(key, who="lr_sweep")
    x, y = train
    validate_data(x, y)
    check_batch_size(batch_size, len(x))
    lrs = np.asarray(rates, np.float32)
    if lrs.ndim != 1 or not np.all(lrs > 0):
        raise ValueError(f"rates must be a 1-D sequence of learning rates > 0, got rates={lrs.tolist()!r}")
    tx = optax.inject_hyperparams(optimizer)(learning_rate=float(lrs[0]))
    model_state = net.init_state(tuple(np.shape(x)[1:])) if hasattr(net, "init_state") else None
    base = init_state(params, tx, model_state=model_state, key=jax.random.fold_in(key, _STEP_KEY_FOLD))

    def with_lr(lr: Array) -> TrainState:
        hyper = dict(base.opt_state.hyperparams, learning_rate=lr)
        return base._replace(opt_state=base.opt_state._replace(hyperparams=hyper))

    states = jax.vmap(with_lr)(jnp.asarray(lrs))
    epoch = jax.jit(jax.vmap(make_epoch(make_train_step(net, loss, tx)), in_axes=(0, None, None, None)))
    x, y = jnp.asarray(x), jnp.asarray(y)
    initial = float(loss(as_forward(net)(params, model_state, x)[0], y))
    curves, steps = [], []
    for e in range(epochs):
        states, batch_losses = epoch(states, x, y, batch_indices(jax.random.fold_in(key, e), len(x), batch_size))
        curves.append(np.asarray(jnp.mean(batch_losses, axis=1)))
        steps.append(np.asarray(batch_losses))
    step_loss = np.concatenate(steps, axis=1)
    return {"rates": lrs, "loss": np.stack(curves, axis=1), "step_loss": step_loss, "initial_loss": initial}
