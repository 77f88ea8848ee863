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
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import cpu, losses, train

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
# α values: a 1-D sequence in [0, 1]
Alphas = Sequence[float] | np.ndarray | Array
DEFAULT_ALPHAS = np.linspace(0.0, 1.0, 11, dtype=np.float32)
_STAT_FOLD = 1 << 30  # statistics_batches folds this into the order key (order seeds must stay below it)


class Barrier(NamedTuple):
    """The error along each pair's segment. alphas (P,); pairs (M, 2) copy indices (a, b);
    train_error, test_error, train_loss, test_loss (M, P) at θ_a + α(θ_b - θ_a), error = 1 - metric;
    train_barrier, test_barrier (M,) = max over α of the error - mean of the errors at α = 0 and 1;
    recomputed_statistics: True when each interpolated net's running statistics were recomputed
    (`recompute_statistics`), False when there are none or they were interpolated like the params.

    Example:
        >>> from funcnn import stability
        >>> stability.Barrier._fields[-3:]  # what `barrier` returns, ending with the heights
        ('train_barrier', 'test_barrier', 'recomputed_statistics')
    """

    alphas: Array
    pairs: np.ndarray
    train_error: Array
    test_error: Array
    train_loss: Array
    test_loss: Array
    train_barrier: Array
    test_barrier: Array
    recomputed_statistics: bool


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


def _lerp(a: Array, b: Array, alpha: Array) -> Array:
    """a + α(b - a) below α = 1/2, b - (1 - α)(b - a) from it: exactly a at α = 0, b at α = 1, and a
    wherever a == b (the two-sided form of C++'s std::lerp)."""
    d = b - a
    return jnp.where(alpha < 0.5, a + alpha * d, b - (1 - alpha) * d)


def _mix(tree_a: Params, tree_b: Params, alpha: Array | float) -> Params:
    """`_lerp` leafwise, α cast to each leaf's dtype."""
    return jax.tree.map(lambda a, b: _lerp(a, b, jnp.asarray(alpha, a.dtype)), tree_a, tree_b)


def interpolate(params_a: Params, params_b: Params, alphas: Alphas) -> Params:
    """θ_a + α(θ_b - θ_a) leafwise for each α: leaves (*s) -> (P, *s), P = len(alphas).

    Bit-exact ends: α = 0 gives params_a and α = 1 gives params_b (see `_lerp`), and every α gives
    params_a when the two are equal. alphas: a 1-D sequence in [0, 1].

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import stability
        >>> a, b = {"w": jnp.array([0.0, 2.0])}, {"w": jnp.array([1.0, 4.0])}
        >>> stability.interpolate(a, b, [0.0, 0.5, 1.0])["w"].tolist()  # (P, 2): a, the midpoint, b
        [[0.0, 2.0], [0.5, 3.0], [1.0, 4.0]]
    """
    _check_same_tree(params_a, params_b)
    a = _check_alphas(alphas, ends=False)
    return jax.tree.map(lambda x, y: jax.vmap(lambda al: _lerp(x, y, al.astype(x.dtype)))(a), params_a, params_b)


def recompute_statistics(net: Net, params: Params, model_state: Params, x: Array, idx: Array) -> Params:
    """Running statistics recomputed for `params` from the batches x[idx[b]], b < B (train mode).

    idx: (B, batch) int indices into x (n, ...). The convention is PyTorch's `momentum=None`: each
    statistic is the plain average over the B batches of its batch value (mean; unbiased variance),
    as if every BatchNorm were reset and accumulated with weights 1/B. Chosen over running the
    layers' own moving average from `init_state` because the result then depends neither on the
    reset value nor on the order of the batches, and weighs all B batches alike (an average with
    momentum 0.1 leans on its last ~10). The layers' momentum m is read off their update rule
    new = (1 - m) * old + m * batch_stat: from old = 0 the update gives m * batch_stat, and from an old
    value S large enough that m * batch_stat falls below float32's resolution it gives (1 - m) * S
    exactly (every stateful layer must update this way, as BatchNorm does; m comes back as
    1 - fl32(1 - m), within 3e-7 of m). Entries with m = 0 (never updated in training) keep
    `model_state`'s value. Cost: B + 1 train-mode forward passes. A stateless
    net (model_state None or without arrays) returns model_state unchanged. Pure; deterministic.

    Example: batches [0, 1, 2, 3] and [4, 5, 6, 7] have means 1.5 and 5.5 and unbiased variances 5/3.

        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import nn, stability
        >>> net = nn.serial(nn.BatchNorm())
        >>> params, model_state = net.init(jax.random.key(0), (1,)), net.init_state((1,))
        >>> x, idx = jnp.arange(8.0).reshape(8, 1), jnp.arange(8).reshape(2, 4)
        >>> stats = stability.recompute_statistics(net, params, model_state, x, idx)["batchnorm_0"]
        >>> round(float(stats["mean"][0]), 4), round(float(stats["var"][0]), 4)  # (1.5 + 5.5) / 2, 5/3
        (3.5, 1.6667)
    """
    if model_state is None or not jax.tree.leaves(model_state):
        return model_state
    forward, x = train.as_forward(net), jnp.asarray(x)
    run = lambda old, i: forward(params, old, x[i], train=True)[1]
    zero = jax.tree.map(jnp.zeros_like, model_state)
    total = jax.lax.scan(lambda acc, i: (jax.tree.map(jnp.add, acc, run(zero, i)), None), zero, idx)[0]
    first = run(zero, idx[0])
    big = jax.tree.map(lambda t: jnp.exp2(jnp.ceil(jnp.log2(jnp.maximum(jnp.abs(t), 1))) + 40).astype(t.dtype), first)
    kept = run(big, idx[0])

    def average(total: Array, kept: Array, big: Array, old: Array) -> Array:
        m = 1 - kept / big
        return jnp.where(m > 0, total / (idx.shape[0] * jnp.where(m > 0, m, 1)), old)

    return jax.tree.map(average, total, kept, big, model_state)


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
    if not isinstance(batches, (int, np.integer)) or not 1 <= batches <= n // max(batch_size, 1):
        raise ValueError(
            f"stat_batches must be an int in [1, {n // max(batch_size, 1)}] (batches in one epoch), "
            f"got stat_batches={batches!r}; or 0 to interpolate the running statistics instead"
        )
    return train.batch_indices(jax.random.fold_in(key, _STAT_FOLD), n, batch_size)[:batches]


def _chunk(net: Net, x: Data, chunk: int | None) -> int | None:
    """`chunk` checked, or where None `cpu.default_chunk` (all vmapped on an accelerator; on CPU 4,
    or 1 for conv nets)."""
    if chunk is None:
        return cpu.default_chunk(net, tuple(np.shape(x)[1:]))
    if not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk must be None or an int >= 1 (copies vmapped together), got chunk={chunk!r}")
    return int(chunk)


def _over_members(fn: Callable[[Any], Any], xs: Any, chunk: int | None) -> Any:
    """fn over the leading axis of xs: `jax.vmap`; `lax.map` in vmapped batches of `chunk` members;
    with chunk 1 a plain `lax.map` (nothing vmapped, so a conv kernel stays one kernel)."""
    n = jax.tree.leaves(xs)[0].shape[0]
    if chunk is None or chunk >= n:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs) if chunk == 1 else jax.lax.map(fn, xs, batch_size=chunk)


@partial(jax.jit, static_argnames=("net", "loss", "optimizer", "chunk"))
def _train_program(
    states: train.TrainState,
    idx: Array,
    x: Array,
    y: Array,
    *,
    net: Net,
    loss: LossFn,
    optimizer: optax.GradientTransformation,
    chunk: int | None,
) -> train.TrainState:
    step = train.make_train_step(net, loss, optimizer)
    body = lambda s, i: (step(s, (x[i], y[i]))[0], None)
    return _over_members(lambda si: jax.lax.scan(body, si[0], si[1])[0], (states, idx), chunk)


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
    fold_in(dropout_key, order_seeds[i]).

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
    if dropout_key is not None:
        states = states._replace(key=jax.vmap(lambda s: jax.random.fold_in(dropout_key, s))(jnp.asarray(seeds)))
    return _train_program(
        states,
        idx,
        jnp.asarray(x),
        jnp.asarray(y),
        net=net,
        loss=loss,
        optimizer=optimizer,
        chunk=_chunk(net, x, chunk),
    )


@partial(jax.jit, static_argnames=("net", "loss", "metric", "chunk"))
def _barrier_program(
    pa: Params,
    pb: Params,
    sa: Params | None,
    sb: Params | None,
    alphas: Array,
    stat_idx: Array | None,
    x: Array,
    xe: Array,
    ye: Array,
    xt: Array,
    yt: Array,
    *,
    net: Net,
    loss: LossFn,
    metric: LossFn,
    chunk: int | None,
) -> tuple[Array, Array, Array, Array]:
    evaluate = train.make_evaluate(net, loss, metric)

    def point(
        p_a: Params, p_b: Params, s_a: Params | None, s_b: Params | None, alpha: Array
    ) -> tuple[Array, Array, Array, Array]:
        p, s = _mix(p_a, p_b, alpha), _mix(s_a, s_b, alpha)
        if stat_idx is not None:
            s = recompute_statistics(net, p, s, x, stat_idx)
        tr, te = evaluate(p, xe, ye, s), evaluate(p, xt, yt, s)
        return 1 - tr["accuracy"], 1 - te["accuracy"], tr["loss"], te["loss"]

    def pair(args: tuple[Params, Params, Params | None, Params | None]) -> tuple[Array, Array, Array, Array]:
        return jax.vmap(point, in_axes=(None, None, None, None, 0))(*args, alphas)

    return _over_members(pair, (pa, pb, sa, sb), chunk)


def barrier(
    net: Net,
    params: Params,
    train_data: tuple[Data, Data],
    test_data: tuple[Data, Data],
    *,
    pairs: Sequence[Sequence[int]] | np.ndarray | None = None,
    alphas: Alphas = DEFAULT_ALPHAS,
    model_state: Params | None = None,
    stat_idx: Array | None = None,
    loss: LossFn = losses.softmax_cross_entropy,
    metric: LossFn = losses.accuracy,
    chunk: int | None = None,
    train_eval: int | None = None,
) -> Barrier:
    """The error barrier between trained copies: every pair x every α in one jitted program.

    params, model_state: N copies (leading axis N; model_state None for a stateless net). pairs: (M, 2)
    copy indices (default: all i < j). alphas: (P,) increasing from 0 to 1. Errors are 1 - metric on the
    whole train and test sets, in eval mode. With stat_idx (B, batch) and running statistics, each
    interpolated net's statistics are recomputed from those training batches first (endpoints
    included, so every point is treated alike); without, they are interpolated like the params.
    chunk: pairs vmapped together (the α points always are; None: `cpu.default_chunk`).
    train_eval: measure the train error on the first `train_eval` training examples only (a cheaper
    estimate for big nets; the statistics still come from stat_idx over the whole set).

    Example: two nets from different inits, untrained, on 8 test points (errors in eighths).

        >>> import jax
        >>> import numpy as np
        >>> import optax
        >>> from funcnn import losses, nn, stability
        >>> net = nn.serial(nn.Dense(4), nn.Tanh(), nn.Dense(2))  # a 2-4-2 classifier
        >>> x, x_test = np.random.default_rng(0).normal(size=(2, 8, 2)).astype(np.float32)  # 8 points each
        >>> y, y_test = (x[:, 0] > x[:, 1]).astype(np.int32), (x_test[:, 0] > x_test[:, 1]).astype(np.int32)
        >>> two = jax.vmap(net.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), 2), (2,))
        >>> b = stability.barrier(net, two, (x, y), (x_test, y_test), alphas=[0.0, 0.5, 1.0])
        >>> b.pairs.tolist(), b.test_error.shape  # one pair, 3 points on its segment
        ([[0, 1]], (1, 3))
        >>> b.test_error[0].tolist(), b.test_barrier.tolist()  # barrier: 1.0 - (0.625 + 1.0) / 2
        ([0.625, 0.75, 1.0], [0.1875])
    """
    n = train.population_size(params, "params")
    pairs = np.array(list(itertools.combinations(range(n), 2)) if pairs is None else pairs, dtype=np.int64)
    if (
        pairs.ndim != 2
        or pairs.shape[1] != 2
        or not len(pairs)
        or pairs.min() < 0
        or pairs.max() >= n
        or np.any(pairs[:, 0] == pairs[:, 1])
    ):
        raise ValueError(
            f"pairs must be (M, 2) indices of two different copies in [0, {n}), got pairs={pairs.tolist()!r}"
        )
    alphas = _check_alphas(alphas, ends=True)
    if model_state is not None and not jax.tree.leaves(model_state):
        model_state = None
    recompute = model_state is not None and stat_idx is not None
    take = lambda tree, i: jax.tree.map(lambda leaf: leaf[i], tree)
    (x, y), (xt, yt) = (tuple(map(jnp.asarray, d)) for d in (train_data, test_data))
    if train_eval is not None and not (isinstance(train_eval, (int, np.integer)) and 0 < train_eval <= len(x)):
        raise ValueError(
            f"train_eval must be an int in [1, {len(x)}] (training examples), got train_eval={train_eval!r}"
        )
    xe, ye = (x, y) if train_eval is None else (x[:train_eval], y[:train_eval])
    tr_e, te_e, tr_l, te_l = _barrier_program(
        take(params, pairs[:, 0]),
        take(params, pairs[:, 1]),
        take(model_state, pairs[:, 0]),
        take(model_state, pairs[:, 1]),
        alphas,
        jnp.asarray(stat_idx) if recompute else None,
        x,
        xe,
        ye,
        xt,
        yt,
        net=net,
        loss=loss,
        metric=metric,
        chunk=_chunk(net, x, chunk),
    )
    height = lambda e: jnp.max(e, axis=1) - (e[:, 0] + e[:, -1]) / 2
    return Barrier(alphas, pairs, tr_e, te_e, tr_l, te_l, height(tr_e), height(te_e), recompute)


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
    if (
        ks.ndim != 1
        or not len(ks)
        or not np.issubdtype(ks.dtype, np.integer)
        or ks.min() < 0
        or ks.max() > steps
        or np.any(np.diff(ks) <= 0)
    ):
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


def _check_same_tree(a: Params, b: Params) -> None:
    """Raise ValueError unless a and b have the same tree structure and leaf shapes."""
    # jaxlib ships no type stubs for PyTreeDef, so mypy cannot see its comparison operators
    if jax.tree.structure(a) != jax.tree.structure(b):  # type: ignore[operator]
        raise ValueError(
            f"params_b must have params_a's tree structure (copies of one net), got "
            f"{jax.tree.structure(b)} vs {jax.tree.structure(a)}"
        )
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True):
        if jnp.shape(x) != jnp.shape(y):
            raise ValueError(
                f"params_b{jax.tree_util.keystr(path)} has shape {jnp.shape(y)}, expected {jnp.shape(x)} (params_a's)"
            )


def _check_alphas(alphas: Alphas, *, ends: bool) -> Array:
    """alphas as a float32 array after checking them (a traced array passes through unchecked)."""
    if isinstance(alphas, jax.core.Tracer):
        return alphas
    a = np.asarray(alphas, dtype=np.float32)
    ok = a.ndim == 1 and a.size and np.all(np.isfinite(a)) and a.min() >= 0 and a.max() <= 1
    if ends:
        ok = ok and a.size >= 2 and a[0] == 0 and a[-1] == 1 and np.all(np.diff(a) > 0)
    if not ok:
        want = "increasing from 0 to 1 (both included)" if ends else "in [0, 1]"
        raise ValueError(f"alphas must be a 1-D sequence {want}, e.g. np.linspace(0, 1, 11); got alphas={alphas!r}")
    return jnp.asarray(a)
