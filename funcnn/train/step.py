"""One training step and one epoch: `make_train_step` (a pure update), `make_epoch` (a `lax.scan`
of it over batches), `batch_indices` (a seeded shuffle cut into batches), and the keys of steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn.train.contract import Net, as_forward
from funcnn.train.train_state import Array, Batch, Params, Step, TrainState, apply_masks

__all__ = ["batch_indices", "make_epoch", "make_train_step"]

LossFn = Callable[[Array, Array], Array]

# fit's per-step Dropout keys come from its `key` folded with this (its epochs fold 0, 1, 2, ...).
_STEP_KEY_FOLD = 1 << 30


def step_key(state: TrainState) -> Array | None:
    """The key of the step about to be taken: fold_in(state.key, state.step), or None. state.key may be
    a typed key or its raw uint32 key data (a population's carry holds plain arrays); the step's key is
    typed either way, with the same bits."""
    if state.key is None:
        return None
    key = state.key
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)
    return jax.random.fold_in(key, state.step)


def make_train_step(
    net: Net,
    loss: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    augment: Callable[[Array, Array], Array] | None = None,
) -> Step:
    """Build `step(state, (x, y)) -> (state, {"loss": J})`: one gradient-descent update, pure.

    J = loss(net(params, x; train=True), y); W <- W + optimizer.update(dJ/dW). `net` is any form
    `as_net` takes (a Layer, an object with init/apply, a pair (init, apply)) or a bare apply
    function; its model state is threaded through `state.model_state`. Not jitted: wrap it in
    `jax.jit`, `jax.vmap` or `lax.scan` as needed.

    augment(key, x) -> x' (e.g. `funcnn.data.cifar10.augment`, random crops and flips) transforms each
    training batch before the forward pass, keyed by the step: with k = fold_in(state.key,
    state.step), (k_augment, k_net) = split(k), and the net (Dropout) gets k_net. So it needs a
    TrainState with a key, and a resumed run draws the same augmentations. Evaluation never augments.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> import optax
        >>> from funcnn import losses, nn, train
        >>> net = nn.serial(nn.Dense(4), nn.Tanh(), nn.Dense(1))  # a 2-4-1 MLP
        >>> x = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
        >>> y = x[:, :1] - x[:, 1:]  # a linear target
        >>> tx = optax.sgd(0.1)
        >>> state = train.init_state(net.init(jax.random.key(0), (2,)), tx)
        >>> step = jax.jit(train.make_train_step(net, losses.mse, tx))
        >>> history = []
        >>> for _ in range(5):
        ...     state, metrics = step(state, (x, y))
        ...     history.append(round(float(metrics["loss"]), 3))
        >>> history, int(state.step)  # the loss before each of 5 full-batch updates
        ([0.557, 0.51, 0.47, 0.436, 0.406], 5)
    """
    forward = as_forward(net)
    if augment is not None and not callable(augment):
        raise ValueError(f"augment must be None or a function augment(key, x) -> x, got augment={augment!r}")

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Array]]:
        x, y = batch
        key = step_key(state)
        if augment is not None:
            if key is None:
                raise ValueError(
                    "augment needs a TrainState with a key (train.init_state(..., key=jax.random.key(seed))): "
                    "it draws each step's augmentation from fold_in(state.key, state.step)"
                )
            k_augment, key = jax.random.split(key)
            x = augment(k_augment, x)

        def objective(p: Params) -> tuple[Array, Params | None]:
            y_hat, model_state = forward(p, state.model_state, x, key=key, train=True)
            return loss(y_hat, y), model_state

        (value, model_state), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        if state.masks is not None:
            grads = apply_masks(grads, state.masks)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if state.masks is not None:
            params = apply_masks(params, state.masks)
        new = TrainState(params, opt_state, state.step + 1, state.masks, model_state, state.key)
        return new, {"loss": value}

    return step


def make_epoch(
    step: Step, batch_sharding: jax.sharding.Sharding | None = None
) -> Callable[[TrainState, Array, Array, Array], tuple[TrainState, Array]]:
    """Build `epoch(state, x, y, idx) -> (state, losses)`: `lax.scan` of `step` over batches.

    x: (n, ...) and y: (n,) the whole training set; idx: (n_batches, batch_size) int indices into it
    (see `batch_indices`); losses: (n_batches,). With `batch_sharding` (data parallelism), each
    batch is split over devices along its first axis and XLA all-reduces the gradients.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> import optax
        >>> from funcnn import losses, nn, train
        >>> net = nn.serial(nn.Dense(4), nn.Tanh(), nn.Dense(1))
        >>> x = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
        >>> y = x[:, :1] - x[:, 1:]  # a linear target
        >>> tx = optax.sgd(0.1)
        >>> state = train.init_state(net.init(jax.random.key(0), (2,)), tx)
        >>> epoch = jax.jit(train.make_epoch(train.make_train_step(net, losses.mse, tx)))
        >>> idx = train.batch_indices(jax.random.key(2), 8, 4)  # 2 batches of 4
        >>> state, first = epoch(state, x, y, idx)
        >>> state, second = epoch(state, x, y, idx)
        >>> first.shape, int(state.step)  # one loss per batch; 2 epochs of 2 steps
        ((2,), 4)
        >>> [round(float(v), 3) for v in first], [round(float(v), 3) for v in second]  # both batches improve
        ([0.635, 0.503], [0.563, 0.399])
    """

    def shard(a: Array) -> Array:
        return a if batch_sharding is None else jax.lax.with_sharding_constraint(a, batch_sharding)

    def epoch(state: TrainState, x: Array, y: Array, idx: Array) -> tuple[TrainState, Array]:
        def body(s: TrainState, i: Array) -> tuple[TrainState, Array]:
            s, metrics = step(s, (shard(x[i]), shard(y[i])))
            return s, metrics["loss"]

        return jax.lax.scan(body, state, idx)

    return epoch


def population_size(tree: Any, name: str = "population") -> int:
    """The common leading-axis size of every leaf of `tree`; ValueError naming `name` if they differ."""
    sizes: dict[int, str] = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if jnp.ndim(leaf) == 0:
            raise ValueError(f"{name}: leaf {jax.tree_util.keystr(path)} has no leading population axis (a scalar)")
        sizes.setdefault(int(jnp.shape(leaf)[0]), jax.tree_util.keystr(path))
    if len(sizes) != 1:
        detail = ", ".join(f"{where} has {n}" for n, where in sizes.items())
        raise ValueError(f"{name}: population axes differ in size ({detail}); every leaf needs the same leading axis")
    return next(iter(sizes))


def batch_indices(key: Array, n: int, batch_size: int) -> Array:
    """A seeded shuffle of range(n) cut into (n // batch_size, batch_size) batches (the rest dropped).

    Example:
        >>> import jax
        >>> from funcnn import train
        >>> idx = train.batch_indices(jax.random.key(0), 10, 4)
        >>> idx.shape  # 10 // 4 = 2 batches; the 2 examples left over sit out this epoch
        (2, 4)
        >>> len(set(idx.ravel().tolist())), int(idx.max()) < 10  # 8 different examples
        (8, True)
    """
    check_batch_size(batch_size, n)
    n_batches = n // batch_size
    return jax.random.permutation(key, n)[: n_batches * batch_size].reshape(n_batches, batch_size)


def check_batch_size(batch_size: int, n: int) -> None:
    """Raise ValueError unless batch_size is an int in [1, n] (n: the dataset size)."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0 or batch_size > n:
        raise ValueError(f"batch_size must be an int in [1, {n}] (the dataset size), got batch_size={batch_size!r}")
