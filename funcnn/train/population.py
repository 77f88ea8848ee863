"""`fit_population`: N members (one per key) of a net, or of your own step function, trained in one
compiled program; the params and the metrics come back with a leading member axis.

    run = fit_population(keys, (x, y), net=net, optimizer=optax.adam(1e-3), epochs=3, batch_size=32)
    run = fit_population(keys, (x, y), step=my_step, init=my_init, epochs=3, batch_size=32)
    run.params          # every leaf (N, ...)
    run.metrics         # the step's metrics at every step: name -> (N, steps)

Member i's key k_i gives (k_init, k_run) = split(k_i). With net=, it is exactly
`fit(net, net.init(k_init, input_shape), ..., key=k_run)`: epoch e's batch order
`batch_indices(fold_in(k_run, e), n, batch_size)`, Dropout's keys from `fold_in(k_run, _STEP_KEY_FOLD)`.
With step=, the state is `init(k_init)` and the batch order the same. `data_key` gives every member
the order drawn from it instead. The members are vmapped, or mapped one after another, in chunks as
`funcnn.cpu.map_members` does.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import cpu
from funcnn import losses as losses_lib
from funcnn.train.contract import Net, as_net
from funcnn.train.evaluate import Data, make_evaluate, validate_data
from funcnn.train.fitting import sparse_start
from funcnn.train.step import (
    _STEP_KEY_FOLD,
    LossFn,
    batch_indices,
    check_batch_size,
    make_train_step,
    population_size,
)
from funcnn.train.train_state import Array, Batch, Params, TrainState, init_state

__all__ = ["PopulationFit", "fit_population"]

# your own step(state, (x, y)) -> (state, metrics) and init(key) -> state
UserStep = Callable[[Any, Batch], tuple[Any, Any]]
Evaluate = Callable[[Any, Array, Array], dict[str, Array]]


class PopulationFit(NamedTuple):
    """What `fit_population` returns; every array has the member axis first (N members).

    state: the final states, every leaf (N, ...): a `TrainState` with net=, your step's state with step=.
    params: `state.params` (N, ...), or None for a step's state without a params field.
    metrics: the step's metrics at every step, each leaf (N, steps, ...), steps = epochs * (n // batch_size);
      with net= {"loss": (N, steps)}, the loss of each batch before its update.
    val: validation after each epoch, name -> (N, epochs) ({"loss", "accuracy"} with net=; {} without val).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import train
        >>> params = {"w": jnp.zeros((3, 2))}  # 3 members of a 2-weight net
        >>> run = train.PopulationFit(params, params, {"loss": jnp.ones((3, 8))}, {})
        >>> run.metrics["loss"].shape  # 3 members, 8 steps each
        (3, 8)
    """

    state: Any
    params: Params | None
    metrics: Any
    val: dict[str, Array]


def fit_population(
    keys: Array | Sequence[int],
    train: tuple[Data, Data],
    *,
    net: Net | None = None,
    optimizer: optax.GradientTransformation | Sequence[optax.GradientTransformation] | None = None,
    loss: LossFn = losses_lib.softmax_cross_entropy,
    metric: LossFn = losses_lib.accuracy,
    masks: Params | None = None,
    step: UserStep | None = None,
    init: Callable[[Array], Any] | None = None,
    val: tuple[Data, Data] | None = None,
    evaluate: Evaluate | None = None,
    epochs: int = 1,
    batch_size: int = 32,
    data_key: Array | None = None,
    chunk: int | None = None,
) -> PopulationFit:
    """Train one member per key, all in one compiled program (`jax.jit` of all epochs); see the module.

    keys: (N,) typed PRNG keys (`jax.random.split(jax.random.key(0), N)`) or N int seeds.
    train: (x, y), shared by every member; val: (xv, yv), evaluated after every epoch.
    Either net= (any form `as_net` takes) with optimizer= (a ready optax transformation), loss, metric
    and masks (optional, a leading member axis on every leaf: member i trains under masks[i]); or
    step= (your own pure `step(state, (x, y)) -> (state, metrics)`) with init= (`init(key) -> state`)
    and, for val, evaluate= (`evaluate(state, xv, yv) -> {name: scalar}`; with net= it defaults to
    `make_evaluate(net, loss, metric)`). Member i starts from θ0 = net.init(k_init, input_shape), masked:
    so the same keys and new masks (`prune.magnitude` of the trained params, under `jax.vmap`) rewind each
    member's survivors to its θ0, a lottery ticket, and train it on the same batch order.
    data_key: None (each member shuffles from its own key) or a
    key whose order every member shares. chunk: members vmapped together (`funcnn.cpu.map_members`:
    1 maps them one after another, None vmaps all; default `funcnn.cpu.default_chunk`). Chunking
    changes results by float rounding only; with chunk=1 member i is bit-identical to its key alone.
    Sparse training: optimizer= a `funcnn.sparsity` transformation for every member, or a sequence of them,
    one per member (all around one inner transformation object; they may differ in method, density and
    key; the changing ones share `every`). Each member's masks live in its optimizer state, its params are
    masked at the start, and its mask updates run inside the one compiled program (`sparsity.stack`).

    Example:
        >>> import jax
        >>> import numpy as np
        >>> import optax
        >>> from funcnn import nn, train
        >>> net = nn.serial(nn.Dense(4), nn.Tanh(), nn.Dense(2))
        >>> x = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
        >>> y = (x[:, 0] > x[:, 1]).astype(np.int32)
        >>> run = train.fit_population([0, 1, 2], (x, y), net=net, optimizer=optax.adam(0.05), val=(x, y),
        ...                            epochs=2, batch_size=8)
        >>> run.params["dense_0"]["w"].shape, run.metrics["loss"].shape, run.val["accuracy"].shape
        ((3, 2, 4), (3, 4), (3, 2))
    """
    member_keys = _member_keys(keys)
    n_members = int(member_keys.shape[0])
    (x, y) = train
    validate_data(x, y, name="train")
    if val is not None:
        validate_data(*val, name="val")
    check_batch_size(batch_size, len(x))
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got epochs={epochs!r}")
    if data_key is not None and not _is_key(data_key, ndim=0):
        raise ValueError(f"data_key must be None or one typed PRNG key (jax.random.key(seed)), got {data_key!r}")
    if evaluate is not None and not callable(evaluate):
        raise ValueError(f"evaluate must be None or a function evaluate(state, x, y) -> metrics, got {evaluate!r}")
    input_shape = tuple(np.shape(x)[1:])

    if (net is None) == (step is None):
        raise ValueError(
            "fit_population trains either net= (with optimizer=) or your own step= (with init=): pass exactly one, "
            f"got net={'set' if net is not None else None}, step={'set' if step is not None else None}"
        )
    sparse = None
    if net is not None:
        optimizer, sparse = _sparse_members(optimizer, masks, net, input_shape, n_members)
        start, step_fn, evaluate_fn, chunk = _net_program(
            net, optimizer, loss, metric, masks, init, evaluate, input_shape, n_members, chunk
        )
    else:
        start, step_fn, evaluate_fn, chunk = _step_program(
            step, init, optimizer, masks, val, evaluate, input_shape, chunk
        )

    n, has_val = len(x), val is not None

    def program(member_keys: Array, masks: Params | None, sparse: Any, x: Array, y: Array, xv: Array, yv: Array) -> Any:
        def member(inputs: tuple[Array, Params | None, Any]) -> Any:
            k, m, s = inputs
            k_init, k_run = jax.random.split(k)
            order_key = k_run if data_key is None else data_key

            def epoch(state: Any, e: Array) -> tuple[Any, Any]:
                idx = batch_indices(jax.random.fold_in(order_key, e), n, batch_size)
                state, ms = jax.lax.scan(lambda s, i: step_fn(s, (x[i], y[i])), state, idx)
                return state, (ms, evaluate_fn(state, xv, yv) if has_val else {})

            state, (ms, vs) = jax.lax.scan(epoch, start(k_init, k_run, m, s), jnp.arange(epochs))
            return state, jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), ms), vs

        return cpu.map_members(member, (member_keys, masks, sparse), chunk)

    xv, yv = val if val is not None else (x[:1], y[:1])
    state, metrics, vals = jax.jit(program)(member_keys, masks, sparse, *map(jnp.asarray, (x, y, xv, yv)))
    return PopulationFit(state, getattr(state, "params", None), metrics, dict(vals))


def _net_program(
    net: Net,
    optimizer: Any,
    loss: LossFn,
    metric: LossFn,
    masks: Params | None,
    init: Any,
    evaluate: Evaluate | None,
    input_shape: tuple,
    n_members: int,
    chunk: int | None,
) -> tuple[Callable[..., Any], Callable[..., Any], Evaluate, int | None]:
    """(start(k_init, k_run, masks) -> TrainState, step, evaluate, chunk) for net=, as `fit` trains it."""
    layer = as_net(net)
    if init is not None:
        raise ValueError("init= is for step=; with net= each member's params are net.init(k_init, input_shape)")
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(
            "net= needs optimizer= a ready optax.GradientTransformation (e.g. optax.adam(1e-3), any chain), "
            f"got optimizer={optimizer!r}"
        )
    if masks is not None:
        _check_member_masks(masks, layer, input_shape, n_members)
    # as `fit`: a net that declares init_state gets its statistics; the others none
    model_state = net.init_state(input_shape) if hasattr(net, "init_state") else None
    step_fn = make_train_step(layer, loss, optimizer)

    def start(k_init: Array, k_run: Array, m: Params | None, sparse: Any) -> Any:
        params = layer.init(k_init, input_shape)
        key = jax.random.fold_in(k_run, _STEP_KEY_FOLD)
        if sparse is None:
            return init_state(params, optimizer, m, model_state=model_state, key=key)
        numbers, sparse_key = sparse  # this member's method, as arrays: one program for all methods
        opt_state = optimizer.init_with(params, numbers, sparse_key)
        return sparse_start(TrainState(params, opt_state, jnp.zeros((), jnp.int32), None, model_state, key))

    if evaluate is None:
        scores = make_evaluate(layer, loss, metric)

        def evaluate(state: Any, xv: Array, yv: Array) -> dict[str, Array]:
            return scores(state.params, xv, yv, state.model_state)

    return start, step_fn, evaluate, cpu.chunk_or_default(chunk, layer, input_shape)


def _step_program(
    step: Any,
    init: Any,
    optimizer: Any,
    masks: Params | None,
    val: Any,
    evaluate: Evaluate | None,
    input_shape: tuple,
    chunk: int | None,
) -> tuple[Callable[..., Any], Callable[..., Any], Evaluate, int | None]:
    """(start, step, evaluate, chunk) for your own step= and init=."""
    if not callable(step):
        raise ValueError(f"step must be a function step(state, (x, y)) -> (state, metrics), got step={step!r}")
    if not callable(init):
        raise ValueError(f"step= needs init= a function init(key) -> state (each member's start), got init={init!r}")
    if optimizer is not None or masks is not None:
        raise ValueError(
            "optimizer= and masks= are for net=; your step= applies its own optimizer (and masks) to its own state"
        )
    if val is not None and evaluate is None:
        raise ValueError("val with step= needs evaluate= a function evaluate(state, x, y) -> {name: scalar}")

    def start(k_init: Array, k_run: Array, m: Params | None, sparse: Any) -> Any:
        del k_run, m, sparse
        return init(k_init)

    def no_evaluate(state: Any, xv: Array, yv: Array) -> dict[str, Array]:
        del state, xv, yv
        return {}

    # default_chunk looks at the shapes of init's leaves (a conv kernel: one member at a time on CPU)
    shapes = types.SimpleNamespace(init=lambda key, shape: init(key))
    return start, step, evaluate or no_evaluate, cpu.chunk_or_default(chunk, shapes, input_shape)


def _sparse_members(optimizer: Any, masks: Any, net: Net, input_shape: tuple, n_members: int) -> tuple[Any, Any]:
    """(optimizer, None) unless it is a sparse-training transformation or a sequence of them; then (the
    population's one transformation, (numbers, keys) stacked over the members): `sparsity.stack`."""
    from funcnn.sparsity.rule import SparseTransformation  # here: funcnn.sparsity imports funcnn.train
    from funcnn.sparsity.stack import stack

    if isinstance(optimizer, optax.GradientTransformation):
        if not isinstance(optimizer, SparseTransformation):
            return optimizer, None
        members = [optimizer] * n_members
    elif isinstance(optimizer, (list, tuple)) and optimizer:
        members = list(optimizer)
        if len(members) != n_members or not all(isinstance(t, SparseTransformation) for t in members):
            raise ValueError(
                f"optimizer as a sequence must hold one funcnn.sparsity transformation per member ({n_members}), "
                f"got {len(members)} items: {[type(t).__name__ for t in members]}"
            )
    else:
        return optimizer, None  # _net_program names a bad optimizer
    if masks is not None:
        raise ValueError(
            "masks= cannot be combined with sparse-training optimizers: their masks live in the optimizer state"
        )
    shapes = jax.eval_shape(lambda k: as_net(net).init(k, input_shape), jax.random.key(0))
    stacked = stack(members, shapes)
    return stacked.transformation, (stacked.numbers, stacked.keys)


def _is_key(a: Any, ndim: int) -> bool:
    return isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) and a.ndim == ndim


def _member_keys(keys: Any) -> Array:
    """(N,) typed keys from typed keys or int seeds; ValueError naming keys otherwise."""
    if isinstance(keys, jax.Array) and jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        if keys.ndim == 1 and keys.shape[0] > 0:
            return keys
    else:
        seeds = np.asarray(keys)
        if seeds.ndim == 1 and len(seeds) and np.issubdtype(seeds.dtype, np.integer):
            return jnp.stack([jax.random.key(int(s)) for s in seeds])
    raise ValueError(
        "keys must be a (members,) array of typed PRNG keys (jax.random.split(jax.random.key(0), 4)) or a "
        f"non-empty sequence of int seeds, got {keys!r}"
    )


def _check_member_masks(masks: Params, layer: Any, input_shape: tuple, n_members: int) -> None:
    """masks: the params' tree with a leading member axis of n_members on every leaf."""
    n = population_size(masks, "masks")
    if n != n_members:
        raise ValueError(f"masks has {n} members on its leading axis, keys has {n_members}")
    shapes = jax.eval_shape(lambda k: layer.init(k, input_shape), jax.random.key(0))
    want = jax.tree.map(lambda s: (n_members, *s.shape), shapes)
    got = jax.tree.map(jnp.shape, masks)
    if want != got:  # nested dicts of shape tuples: the tree and every shape must agree
        raise ValueError(f"masks must be the params' tree with a leading member axis, shapes {want}; got {got}")
