"""The straight line between two networks, and the error barrier along it (Frankle et al. 2020).

    path = interpolate(params_a, params_b, alphas)   # leaves (*s) -> (P, *s): θ_a + α(θ_b - θ_a)
    b = barrier(net, copies, (x, y), (x_test, y_test), stat_idx=idx)
    b.test_barrier   # (pairs,): max_α E(θ_α) - (E(θ_a) + E(θ_b)) / 2, E = 1 - accuracy

Two trained nets are *linearly connected* when the error does not rise along the segment between
them (barrier about 0). BatchNorm statistics of an interpolated net are not the interpolated
statistics: `recompute_statistics` recomputes them from training batches (`barrier(stat_idx=...)`).
`funcnn.stability` trains the copies whose barrier this measures.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import cpu, losses, train

__all__ = ["DEFAULT_ALPHAS", "Barrier", "barrier", "interpolate", "recompute_statistics"]

Array = jax.Array
Params = Any
Net = train.Net
Data = train.Data
LossFn = train.LossFn
# α values: a 1-D sequence in [0, 1]
Alphas = Sequence[float] | np.ndarray | Array
DEFAULT_ALPHAS = np.linspace(0.0, 1.0, 11, dtype=np.float32)


class Barrier(NamedTuple):
    """The error along each pair's segment. alphas (P,); pairs (M, 2) copy indices (a, b);
    train_error, test_error, train_loss, test_loss (M, P) at θ_a + α(θ_b - θ_a), error = 1 - metric;
    train_barrier, test_barrier (M,) = max over α of the error - mean of the errors at α = 0 and 1;
    recomputed_statistics: True when each interpolated net's running statistics were recomputed
    (`recompute_statistics`), False when there are none or they were interpolated like the params.

    Example:
        >>> from funcnn import interpolation
        >>> interpolation.Barrier._fields[-3:]  # what `barrier` returns, ending with the heights
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
        >>> from funcnn import interpolation
        >>> a, b = {"w": jnp.array([0.0, 2.0])}, {"w": jnp.array([1.0, 4.0])}
        >>> interpolation.interpolate(a, b, [0.0, 0.5, 1.0])["w"].tolist()  # (P, 2): a, the midpoint, b
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
    `model_state`'s value. A net whose `Layer.statistics` is set (`funcnn.interop.from_equinox`:
    equinox's BatchNorm keeps a first-step flag or a step counter beside its statistics) recomputes by
    that rule. Dropout, in train mode here, draws its masks from one fixed key. Cost: B + 1 train-mode
    forward passes. A stateless net (model_state None or without arrays) returns model_state
    unchanged. Pure; deterministic.

    Example: batches [0, 1, 2, 3] and [4, 5, 6, 7] have means 1.5 and 5.5 and unbiased variances 5/3.

        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import interpolation, nn
        >>> net = nn.serial(nn.BatchNorm())
        >>> params, model_state = net.init(jax.random.key(0), (1,)), net.init_state((1,))
        >>> x, idx = jnp.arange(8.0).reshape(8, 1), jnp.arange(8).reshape(2, 4)
        >>> stats = interpolation.recompute_statistics(net, params, model_state, x, idx)["batchnorm_0"]
        >>> round(float(stats["mean"][0]), 4), round(float(stats["var"][0]), 4)  # (1.5 + 5.5) / 2, 5/3
        (3.5, 1.6667)
    """
    if model_state is None or not jax.tree.leaves(model_state):
        return model_state
    layer = train.as_net(net, needs_init=False)
    if layer.statistics is not None:  # a library whose state needs its own rule (equinox's flags, counters)
        return layer.statistics(params, model_state, jnp.asarray(x), jnp.asarray(idx))
    forward, x = train.as_forward(net), jnp.asarray(x)
    # Dropout layers (train mode) draw from one fixed key: the same masks for a batch wherever it is
    # run, which the momentum read-off below relies on; nets without Dropout ignore it.
    key = jax.random.key(0)
    run = lambda old, i: forward(params, old, x[i], key=key, train=True)[1]
    zero = jax.tree.map(jnp.zeros_like, model_state)
    total = jax.lax.scan(lambda acc, i: (jax.tree.map(jnp.add, acc, run(zero, i)), None), zero, idx)[0]
    first = run(zero, idx[0])
    big = jax.tree.map(lambda t: jnp.exp2(jnp.ceil(jnp.log2(jnp.maximum(jnp.abs(t), 1))) + 40).astype(t.dtype), first)
    kept = run(big, idx[0])

    def average(total: Array, kept: Array, big: Array, old: Array) -> Array:
        m = 1 - kept / big
        return jnp.where(m > 0, total / (idx.shape[0] * jnp.where(m > 0, m, 1)), old)

    return jax.tree.map(average, total, kept, big, model_state)


class ByIdentity:
    """A static argument of a jitted program hashed by identity: a net (or loss) need not hash, and the
    program is reused for the same object (a new object is traced anew).

    Example:
        >>> from funcnn.interpolation import ByIdentity
        >>> net = {"not": "hashable"}
        >>> ByIdentity(net) == ByIdentity(net), ByIdentity(net) == ByIdentity(dict(net))
        (True, False)
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByIdentity) and other.value is self.value


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
    net: ByIdentity,
    loss: ByIdentity,
    metric: ByIdentity,
    chunk: int | None,
) -> tuple[Array, Array, Array, Array]:
    the_net = net.value
    evaluate = train.make_evaluate(the_net, loss.value, metric.value)

    def point(
        p_a: Params, p_b: Params, s_a: Params | None, s_b: Params | None, alpha: Array
    ) -> tuple[Array, Array, Array, Array]:
        p, s = _mix(p_a, p_b, alpha), _mix(s_a, s_b, alpha)
        if stat_idx is not None:
            s = recompute_statistics(the_net, p, s, x, stat_idx)
        tr, te = evaluate(p, xe, ye, s), evaluate(p, xt, yt, s)
        return 1 - tr["accuracy"], 1 - te["accuracy"], tr["loss"], te["loss"]

    def pair(args: tuple[Params, Params, Params | None, Params | None]) -> tuple[Array, Array, Array, Array]:
        return jax.vmap(point, in_axes=(None, None, None, None, 0))(*args, alphas)

    return cpu.map_members(pair, (pa, pb, sa, sb), chunk)


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
        >>> from funcnn import interpolation, nn
        >>> net = nn.serial(nn.Dense(4), nn.Tanh(), nn.Dense(2))  # a 2-4-2 classifier
        >>> x, x_test = np.random.default_rng(0).normal(size=(2, 8, 2)).astype(np.float32)  # 8 points each
        >>> y, y_test = (x[:, 0] > x[:, 1]).astype(np.int32), (x_test[:, 0] > x_test[:, 1]).astype(np.int32)
        >>> two = jax.vmap(net.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), 2), (2,))
        >>> b = interpolation.barrier(net, two, (x, y), (x_test, y_test), alphas=[0.0, 0.5, 1.0])
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
        net=ByIdentity(net),
        loss=ByIdentity(loss),
        metric=ByIdentity(metric),
        chunk=cpu.chunk_or_default(chunk, net, np.shape(x)[1:]),
    )
    height = lambda e: jnp.max(e, axis=1) - (e[:, 0] + e[:, -1]) / 2
    return Barrier(alphas, pairs, tr_e, te_e, tr_l, te_l, height(tr_e), height(te_e), recompute)


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
