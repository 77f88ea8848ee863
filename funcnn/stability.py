"""Linear mode connectivity and instability (Frankle et al. 2020, arXiv:1912.05671).

    copies = train_copies(net, theta_k, optimizer, loss, (x, y), steps=T - k, batch_size=B,
                          order_seeds=[1, 2], key=key, start=k, opt_state=opt_state_k)
    b = barrier(net, copies.params, (x, y), (x_test, y_test), model_state=copies.model_state,
                stat_idx=statistics_batches(key, len(x), B, 20))
    b.test_barrier   # (pairs,): max_α E(θ_a + α(θ_b - θ_a)) - (E(θ_a) + E(θ_b)) / 2, E = 1 - accuracy

A net is *stable* at step k when copies trained from θk under different data orders (SGD noise) end
linearly connected: the barrier (instability) is about 0 (the paper's threshold: 2% error).
`stability` does both steps from one θk; `sweep_rewind_steps` trains one parent run, keeps θk (with its
optimizer and model state) at each k of a list and measures the barrier of copies from each.

Data order: seed s's order is the concatenation over epochs e = 0, 1, ... of
`train.batch_indices(fold_in(fold_in(key, s), e), n, batch_size)` (as `lottery.Study` orders its
seeds); a copy started at step k takes positions k, k + 1, ... of its seed's order, so a copy whose
seed is the parent's, started from the parent's state at k, continues the parent run exactly.

The barrier, the linear path and BatchNorm's recomputed statistics: `funcnn.interpolation` (also here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import cpu, losses, train
from funcnn.interpolation import DEFAULT_ALPHAS, Alphas, Barrier, ByIdentity, barrier, interpolate, recompute_statistics

__all__ = [
    "DEFAULT_ALPHAS",
    "Barrier",
    "Stability",
    "Sweep",
    "barrier",
    "data_order",
    "interpolate",
    "recompute_statistics",
    "stability",
    "statistics_batches",
    "sweep_rewind_steps",
    "train_copies",
]

Array = jax.Array
Params = Any
Net = train.Net
Data = train.Data
LossFn = train.LossFn
_DROPOUT_FOLD = (1 << 30) + 1  # the default Dropout base: fold_in(key, 2**30 + 1)
_STAT_FOLD = 1 << 30  # statistics_batches folds this into the order key (order seeds must stay below it)


class Stability(NamedTuple):
    """copies: the trained copies' TrainState (leading copy axis N); barrier: their `Barrier`.

    Example:
        >>> from funcnn import stability
        >>> stability.Stability._fields  # what `stability.stability` returns
        ('copies', 'barrier')
    """

    copies: train.TrainState
    barrier: Barrier


class Sweep(NamedTuple):
    """rewind_steps (K,); barriers: one `Barrier` per k; train_barrier, test_barrier (K, M).

    Example:
        >>> from funcnn import stability
        >>> stability.Sweep._fields  # what `sweep_rewind_steps` returns
        ('rewind_steps', 'barriers', 'train_barrier', 'test_barrier')
    """

    rewind_steps: np.ndarray
    barriers: tuple[Barrier, ...]
    train_barrier: Array
    test_barrier: Array


def data_order(
    key: Array, seeds: Sequence[int] | np.ndarray, n: int, batch_size: int, *, start: int, steps: int
) -> Array:
    """(S, steps, batch_size) indices: positions start .. start + steps - 1 of each seed's data order.

    Example: 8 examples in batches of 4 are 2 steps per epoch; 5 steps run into a third epoch.

        >>> import jax
        >>> from funcnn import stability
        >>> order = stability.data_order(jax.random.key(0), [1, 2], 8, 4, start=0, steps=5)
        >>> order.shape  # (seeds, steps, batch_size)
        (2, 5, 4)
        >>> later = stability.data_order(jax.random.key(0), [1, 2], 8, 4, start=3, steps=2)
        >>> later.tolist() == order[:, 3:].tolist()  # a copy started at step 3 continues each order
        True
    """
    train.check_batch_size(batch_size, n)
    for name, v in (("start", start), ("steps", steps)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must be an int >= 0, got {name}={v!r}")
    epochs = max(1, math.ceil((start + steps) / (n // batch_size)))

    def order(s: Array) -> Array:
        k = jax.random.fold_in(key, s)
        e = jax.vmap(lambda i: train.batch_indices(jax.random.fold_in(k, i), n, batch_size))(jnp.arange(epochs))
        return e.reshape(-1, batch_size)[start : start + steps]

    return jax.vmap(order)(jnp.asarray(seeds))


def statistics_batches(key: Array, n: int, batch_size: int, batches: int) -> Array:
    """(batches, batch_size) indices for `recompute_statistics`: a shuffle from fold_in(key, 2**30).

    Example:
        >>> import jax
        >>> from funcnn import stability
        >>> stability.statistics_batches(jax.random.key(0), 100, 10, 3).shape  # 3 of the 10 batches of an epoch
        (3, 10)
    """
    most = n // max(batch_size, 1)
    if not isinstance(batches, (int, np.integer)) or not 1 <= batches <= most:
        raise ValueError(f"stat_batches must be an int in [1, {most}] (batches in one epoch), got stat_batches="
                         f"{batches!r}; or 0 to interpolate the running statistics instead")  # fmt: skip
    return train.batch_indices(jax.random.fold_in(key, _STAT_FOLD), n, batch_size)[:batches]


@partial(jax.jit, static_argnames=("net", "loss", "optimizer", "chunk"))
def _train_program(
    states: train.TrainState,
    idx: Array,
    x: Array,
    y: Array,
    *,
    net: ByIdentity,
    loss: ByIdentity,
    optimizer: ByIdentity,
    chunk: int | None,
) -> train.TrainState:
    step = train.make_train_step(net.value, loss.value, optimizer.value)
    body = lambda s, i: (step(s, (x[i], y[i]))[0], None)
    return cpu.map_members(lambda si: jax.lax.scan(body, si[0], si[1])[0], (states, idx), chunk)


def train_copies(
    net: Net,
    theta_k: Params,
    optimizer: optax.GradientTransformation,
    loss: LossFn,
    data: tuple[Data, Data],
    *,
    steps: int,
    batch_size: int,
    order_seeds: Sequence[int],
    key: Array,
    start: int = 0,
    model_state: Params | None = None,
    opt_state: Any = None,
    masks: Params | None = None,
    dropout_key: Array | None = None,
    chunk: int | None = None,
) -> train.TrainState:
    """Train N = len(order_seeds) copies of θk for `steps` steps, copy i on seed order_seeds[i]'s data
    order (positions start ..; see the module doc), all in one jitted program (a `lax.scan`
    over steps, vmapped over copies in chunks of `chunk`; None: `cpu.default_chunk`, which trains
    conv nets one copy at a time on CPU). Returns their TrainState with a
    leading axis N. data: (x (n, ...), y (n,)). opt_state: θk's optimizer state (default: a fresh
    `optimizer.init`); model_state: θk's running statistics (default: `net.init_state`); the step
    counter starts at `start`. masks keep pruned weights at 0; copy i's Dropout key is
    fold_in(dropout_key, order_seeds[i]) (default dropout_key: fold_in(key, 2**30 + 1)). net, loss and
    optimizer need not be hashable: the program is reused for the same objects.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> import optax
        >>> from funcnn import losses, nn, stability
        >>> net = nn.serial(nn.Dense(4), nn.Tanh(), nn.Dense(2))  # a 2-4-2 classifier
        >>> x, x_test = np.random.default_rng(0).normal(size=(2, 8, 2)).astype(np.float32)  # 8 points each
        >>> y, y_test = (x[:, 0] > x[:, 1]).astype(np.int32), (x_test[:, 0] > x_test[:, 1]).astype(np.int32)
        >>> copies = stability.train_copies(
        ...     net, net.init(jax.random.key(0), (2,)), optax.sgd(0.5), losses.softmax_cross_entropy, (x, y),
        ...     steps=4, batch_size=4, order_seeds=[1, 2], key=jax.random.key(2))
        >>> copies.step.tolist(), copies.params["dense_0"]["w"].shape  # 2 copies, 4 steps each
        ([4, 4], (2, 2, 4))
    """
    x, y = data
    train.validate_data(x, y)
    seeds = np.asarray(order_seeds)
    if seeds.ndim != 1 or not len(seeds) or not np.issubdtype(seeds.dtype, np.integer) or seeds.min() < 0:
        raise ValueError(f"order_seeds must be a non-empty 1-D sequence of ints >= 0, got order_seeds={order_seeds!r}")
    idx = data_order(key, seeds, len(x), batch_size, start=start, steps=steps)
    if model_state is None and hasattr(net, "init_state"):
        model_state = net.init_state(tuple(np.shape(x)[1:]))
    params = theta_k if masks is None else train.apply_masks(theta_k, masks)
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    base = train.TrainState(params, opt_state, jnp.asarray(start, jnp.int32), masks, model_state)
    states = jax.tree.map(lambda a: jnp.broadcast_to(a, (len(seeds),) + jnp.shape(a)), base)
    if dropout_key is None:  # nets with Dropout need a key in training; one of the copies' own by default
        dropout_key = jax.random.fold_in(key, _DROPOUT_FOLD)
    states = states._replace(key=jax.vmap(lambda s: jax.random.fold_in(dropout_key, s))(jnp.asarray(seeds)))
    chunk = cpu.chunk_or_default(chunk, net, np.shape(x)[1:])
    x, y = jnp.asarray(x), jnp.asarray(y)
    net_, loss_, tx_ = ByIdentity(net), ByIdentity(loss), ByIdentity(optimizer)
    return _train_program(states, idx, x, y, net=net_, loss=loss_, optimizer=tx_, chunk=chunk)


def stability(
    net: Net,
    theta_k: Params,
    optimizer: optax.GradientTransformation,
    loss: LossFn,
    train_data: tuple[Data, Data],
    test_data: tuple[Data, Data],
    *,
    steps: int,
    batch_size: int,
    key: Array,
    copies: int = 2,
    order_seeds: Sequence[int] | None = None,
    start: int = 0,
    alphas: Alphas = DEFAULT_ALPHAS,
    model_state: Params | None = None,
    opt_state: Any = None,
    masks: Params | None = None,
    stat_batches: int = 20,
    dropout_key: Array | None = None,
    metric: LossFn = losses.accuracy,
    chunk: int | None = None,
    train_eval: int | None = None,
) -> Stability:
    """Train `copies` copies of θk (seeds order_seeds, default 1 .. copies) and measure every pair's barrier.

    With running statistics, `stat_batches` training batches (`statistics_batches(key, ...)`, the same
    for every point) recompute them at each α; stat_batches=0 interpolates them instead. train_eval:
    as in `barrier`.

    Example: two copies of one init (data orders of seeds 1 and 2), 4 SGD steps each, then their barrier.

        >>> import jax
        >>> import numpy as np
        >>> import optax
        >>> from funcnn import losses, nn, stability
        >>> net = nn.serial(nn.Dense(4), nn.Tanh(), nn.Dense(2))  # a 2-4-2 classifier
        >>> x, x_test = np.random.default_rng(0).normal(size=(2, 8, 2)).astype(np.float32)  # 8 points each
        >>> y, y_test = (x[:, 0] > x[:, 1]).astype(np.int32), (x_test[:, 0] > x_test[:, 1]).astype(np.int32)
        >>> result = stability.stability(
        ...     net, net.init(jax.random.key(0), (2,)), optax.sgd(0.5), losses.softmax_cross_entropy, (x, y),
        ...     (x_test, y_test), steps=4, batch_size=4, key=jax.random.key(2), alphas=[0.0, 0.5, 1.0])
        >>> result.copies.step.tolist(), result.barrier.pairs.tolist()  # 2 copies: 1 pair
        ([4, 4], [[0, 1]])
        >>> result.barrier.test_error[0].tolist()  # test error at α = 0, 1/2, 1 (in eighths)
        [0.0, 0.0, 0.125]
        >>> result.barrier.test_barrier.tolist()  # max - mean of the ends: 0.125 - (0 + 0.125) / 2
        [0.0625]
    """
    ok = isinstance(copies, (int, np.integer)) and not isinstance(copies, bool) and copies >= 2
    seeds = (list(range(1, copies + 1)) if ok else []) if order_seeds is None else list(order_seeds)
    if len(seeds) < 2:
        raise ValueError(
            f"copies must be an int >= 2 (a barrier needs two copies), got copies={copies!r}, "
            f"order_seeds={order_seeds!r}"
        )
    pop = train_copies(
        net,
        theta_k,
        optimizer,
        loss,
        train_data,
        steps=steps,
        batch_size=batch_size,
        order_seeds=seeds,
        key=key,
        start=start,
        model_state=model_state,
        opt_state=opt_state,
        masks=masks,
        dropout_key=dropout_key,
        chunk=chunk,
    )
    stateful = pop.model_state is not None and bool(jax.tree.leaves(pop.model_state))
    stat_idx = (
        statistics_batches(key, len(train_data[0]), batch_size, stat_batches) if stateful and stat_batches else None
    )
    b = barrier(
        net,
        pop.params,
        train_data,
        test_data,
        alphas=alphas,
        model_state=pop.model_state,
        stat_idx=stat_idx,
        loss=loss,
        metric=metric,
        chunk=chunk,
        train_eval=train_eval,
    )
    return Stability(pop, b)


def sweep_rewind_steps(
    net: Net,
    params0: Params,
    optimizer: optax.GradientTransformation,
    loss: LossFn,
    train_data: tuple[Data, Data],
    test_data: tuple[Data, Data],
    *,
    steps: int,
    rewind_steps: Sequence[int],
    batch_size: int,
    key: Array,
    parent_seed: int = 0,
    model_state: Params | None = None,
    masks: Params | None = None,
    dropout_key: Array | None = None,
    **kwargs: Any,
) -> Sweep:
    """Instability as a function of k: one parent run from params0 on seed `parent_seed`'s order, its
    state (params, optimizer and model state) kept at each k in rewind_steps, then `stability` of
    copies trained from each θk to step `steps` (steps - k steps; kwargs: copies, order_seeds,
    alphas, stat_batches, metric, chunk, train_eval). One compiled training program per distinct length.

    Example: rewinding to k = 0 and k = 2 of a 4-step run (two copies from each θk).

        >>> import jax
        >>> import numpy as np
        >>> import optax
        >>> from funcnn import losses, nn, stability
        >>> net = nn.serial(nn.Dense(4), nn.Tanh(), nn.Dense(2))  # a 2-4-2 classifier
        >>> x, x_test = np.random.default_rng(0).normal(size=(2, 8, 2)).astype(np.float32)  # 8 points each
        >>> y, y_test = (x[:, 0] > x[:, 1]).astype(np.int32), (x_test[:, 0] > x_test[:, 1]).astype(np.int32)
        >>> sweep = stability.sweep_rewind_steps(
        ...     net, net.init(jax.random.key(0), (2,)), optax.sgd(0.5), losses.softmax_cross_entropy, (x, y),
        ...     (x_test, y_test), steps=4, rewind_steps=[0, 2], batch_size=4, key=jax.random.key(2),
        ...     alphas=[0.0, 0.5, 1.0])
        >>> sweep.test_barrier.shape  # (rewind steps, pairs)
        (2, 1)
        >>> sweep.test_barrier[:, 0].tolist()  # the barrier at k = 0 and at k = 2
        [0.0625, 0.0625]
    """
    ks = np.asarray(rewind_steps)
    ints = ks.ndim == 1 and len(ks) and np.issubdtype(ks.dtype, np.integer)
    if not ints or ks.min() < 0 or ks.max() > steps or np.any(np.diff(ks) <= 0):
        raise ValueError(
            f"rewind_steps must be a strictly increasing 1-D sequence of ints in [0, steps={steps}], "
            f"got rewind_steps={rewind_steps!r}"
        )
    params, opt_state, done, results = params0, None, 0, []
    for k in ks.tolist():
        if k > done:
            parent = train_copies(
                net,
                params,
                optimizer,
                loss,
                train_data,
                steps=k - done,
                batch_size=batch_size,
                order_seeds=[parent_seed],
                key=key,
                start=done,
                model_state=model_state,
                opt_state=opt_state,
                masks=masks,
                dropout_key=dropout_key,
            )
            params, opt_state, model_state = jax.tree.map(
                lambda a: a[0], (parent.params, parent.opt_state, parent.model_state)
            )
            done = k
        results.append(
            stability(
                net,
                params,
                optimizer,
                loss,
                train_data,
                test_data,
                steps=steps - k,
                batch_size=batch_size,
                key=key,
                start=k,
                model_state=model_state,
                opt_state=opt_state,
                masks=masks,
                dropout_key=dropout_key,
                **kwargs,
            ).barrier
        )
    return Sweep(
        ks, tuple(results), jnp.stack([r.train_barrier for r in results]), jnp.stack([r.test_barrier for r in results])
    )
