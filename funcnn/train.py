"""Training: a pure, jitted train step; an epoch as one `lax.scan`; `fit` at the Python level.

    state = init_state(params, optimizer)            # TrainState(params, opt_state, step, masks, ...)
    step = make_train_step(net, loss, optimizer)     # net: a Layer, or a plain apply function
    state, metrics = step(state, (x, y))            # pure: works under jit, vmap and scan

A population is the same state with a leading axis on every leaf: `jax.vmap(step)` trains N nets.
Model state (BatchNorm's running statistics) rides in `TrainState.model_state`, beside the params
and never seen by gradients, optimizers or masks; the key for Dropout at step t is
`fold_in(TrainState.key, t)`, so a run gives the same dropout masks every time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import losses as losses_lib
from funcnn import schedules

__all__ = [
    "History",
    "TrainState",
    "apply_masks",
    "as_forward",
    "batch_indices",
    "fit",
    "init_state",
    "lr_sweep",
    "make_epoch",
    "make_evaluate",
    "make_train_step",
]

Array = jax.Array
Params = Any
LossFn = Callable[[Array, Array], Array]
# a funcnn Layer, or a plain apply(params, x, *, key=None, train=False) function
Net = Any
# a data set's features or labels: host (numpy) or device (jax) arrays
Data = np.ndarray | jax.Array
Batch = tuple[Array, Array]
# (params, model_state, x, *, key, train) -> (y, model_state)
Forward = Callable[..., tuple[Array, Params | None]]


class TrainState(NamedTuple):
    """params; opt_state; step (int32 scalar, updates taken); masks (bool pytree like params, or None);
    model_state (running statistics named like params, or None for a stateless net); key (the base
    PRNG key for Dropout, or None: the key of step t is fold_in(key, t)).

    With masks, gradients are masked before the optimizer and the params after it, so pruned weights
    stay exactly zero under any optax optimizer (momentum and Adam included).

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import train
        >>> state = train.init_state({"w": jnp.ones((2, 1)), "b": jnp.zeros(1)}, optax.sgd(0.1))
        >>> state._fields
        ('params', 'opt_state', 'step', 'masks', 'model_state', 'key')
        >>> int(state.step), state.masks, state.model_state, state.key  # a fresh, unmasked, stateless run
        (0, None, None, None)
    """

    params: Params
    opt_state: Any
    step: Array
    masks: Params | None = None
    model_state: Params | None = None
    key: Array | None = None


# step(state, (x, y)) -> (state, {"loss": J})
Step = Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]


def init_state(
    params: Params,
    optimizer: optax.GradientTransformation,
    masks: Params | None = None,
    *,
    model_state: Params | None = None,
    key: Array | None = None,
) -> TrainState:
    """A fresh TrainState; with masks, the params are masked first.

    model_state: the net's `init_state(input_shape)` (or saved statistics) for a stateful net.
    key: the base key of the per-step Dropout keys (needed only by nets with Dropout).

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import train
        >>> params = {"w": jnp.array([1.0, 2.0, 3.0])}
        >>> masks = {"w": jnp.array([True, False, True])}
        >>> state = train.init_state(params, optax.adam(1e-3), masks)
        >>> state.params["w"].tolist(), int(state.step)  # the pruned weight starts at exactly 0
        ([1.0, 0.0, 3.0], 0)
    """
    if masks is not None:
        params = apply_masks(params, masks)
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), masks, model_state, key)


def apply_masks(tree: Params, masks: Params) -> Params:
    """tree * masks, leaf by leaf (a False entry becomes exactly 0), keeping each leaf's dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import train
        >>> tree = {"w": jnp.array([1.5, -2.0, 3.0])}
        >>> train.apply_masks(tree, {"w": jnp.array([True, False, True])})["w"].tolist()
        [1.5, 0.0, 3.0]
    """
    return jax.tree.map(lambda x, m: jnp.where(m, x, jnp.zeros_like(x)), tree, masks)


def as_forward(net: Net) -> Forward:
    """`forward(params, model_state, x, *, key=None, train=False) -> (y, model_state)` for a net.

    net: a funcnn `Layer` (its `apply_with_state`; with model_state None, its plain `apply`, which is
    an error for a stateful net), or a plain `apply(params, x, *, key=None, train=False)` function
    (stateless; `key` is passed only when there is one, so apply functions without it still work).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import nn, train
        >>> net = nn.serial(nn.Dense(3))
        >>> params = net.init(jax.random.key(0), (2,))
        >>> y, model_state = train.as_forward(net)(params, None, jnp.ones((5, 2)))
        >>> y.shape, model_state  # (batch, features); a stateless net has no model state
        ((5, 3), None)
    """
    apply_with_state = getattr(net, "apply_with_state", None)
    apply = getattr(net, "apply", net)
    if not callable(apply):
        raise TypeError(f"net must be a funcnn Layer or an apply(params, x, ...) function, got {net!r}")

    def forward(
        params: Params, model_state: Params | None, x: Array, *, key: Array | None = None, train: bool = False
    ) -> tuple[Array, Params | None]:
        if apply_with_state is not None and model_state is not None:
            return apply_with_state(params, model_state, x, key=key, train=train)
        y = apply(params, x, train=train) if key is None else apply(params, x, key=key, train=train)
        return y, model_state

    return forward


def step_key(state: TrainState) -> Array | None:
    """The key of the step about to be taken: fold_in(state.key, state.step), or None."""
    return None if state.key is None else jax.random.fold_in(state.key, state.step)


def make_train_step(
    net: Net,
    loss: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    augment: Callable[[Array, Array], Array] | None = None,
) -> Step:
    """Build `step(state, (x, y)) -> (state, {"loss": J})`: one gradient-descent update, pure.

    J = loss(net(params, x; train=True), y); W <- W + optimizer.update(dJ/dW). `net` is a Layer (its
    model state is threaded through `state.model_state`) or an apply function. Not jitted: wrap it
    in `jax.jit`, `jax.vmap` or `lax.scan` as needed.

    augment(key, x) -> x' (e.g. `funcnn.cifar10.augment`, random crops and flips) transforms each
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


def make_evaluate(
    net: Net, loss: LossFn, metric: LossFn = losses_lib.accuracy, chunk: int = 1000
) -> Callable[..., dict[str, Array]]:
    """Build `evaluate(params, x, y, model_state=None) -> {"loss", "accuracy"}` over a held-out set.

    Eval mode (train=False): Dropout is the identity, BatchNorm uses the running statistics in
    `model_state` (required for a stateful net). The set is processed in chunks of `chunk` examples
    (`lax.map`) to bound memory; the loss and the metric are means over examples (the chunks are
    weighted by their sizes).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import losses, nn, train
        >>> net = nn.serial(nn.Dense(2))
        >>> params = jax.tree.map(jnp.zeros_like, net.init(jax.random.key(0), (3,)))  # every logit 0
        >>> evaluate = jax.jit(train.make_evaluate(net, losses.softmax_cross_entropy, chunk=3))  # chunks 3, 3, 2
        >>> scores = evaluate(params, jnp.ones((8, 3)), jnp.array([0, 1] * 4))
        >>> round(float(scores["loss"]), 4), float(scores["accuracy"])  # log 2; argmax ties pick class 0
        (0.6931, 0.5)
    """
    forward = as_forward(net)

    def evaluate(params: Params, x: Array, y: Array, model_state: Params | None = None) -> dict[str, Array]:
        n = x.shape[0]
        size = min(chunk, n)
        full = (n // size) * size

        def one(xy: tuple[Array, Array]) -> tuple[Array, Array]:
            logits = forward(params, model_state, xy[0], train=False)[0]
            return loss(logits, xy[1]), metric(logits, xy[1])

        xs = x[:full].reshape((-1, size) + x.shape[1:])
        ys = y[:full].reshape((-1, size) + y.shape[1:])
        chunk_loss, chunk_metric = jax.lax.map(one, (xs, ys))
        l_sum, m_sum = jnp.sum(chunk_loss) * size, jnp.sum(chunk_metric) * size
        if full < n:
            l_rest, m_rest = one((x[full:], y[full:]))
            l_sum, m_sum = l_sum + l_rest * (n - full), m_sum + m_rest * (n - full)
        return {"loss": l_sum / n, "accuracy": m_sum / n}

    return evaluate


def validate_data(x: Data, y: Data, *, n_classes: int | None = None, name: str = "train") -> None:
    """Raise ValueError for non-float features, mismatched lengths or labels outside [0, n_classes)."""
    x, y = np.asarray(x), np.asarray(y)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"{name} features must be floating point, got dtype {x.dtype}; convert with x.astype(np.float32)"
        )
    if len(x) != len(y):
        raise ValueError(f"{name} features and labels differ in length: {len(x)} vs {len(y)}")
    if n_classes is not None and np.issubdtype(y.dtype, np.integer) and len(y):
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= n_classes:
            raise ValueError(f"{name} labels must lie in [0, {n_classes}), got values in [{lo}, {hi}]")


class History(NamedTuple):
    """Per-epoch records (what `fit` returns beside the state): lists of floats, one entry per epoch;
    `epoch` counts from 1.

    Example:
        >>> from funcnn import train
        >>> h = train.History([1, 2, 3], [0.9, 0.5, 0.3], [1.0, 0.7, 0.8], [0.5, 0.75, 0.7], [0.1, 0.1, 0.1])
        >>> h.epoch[h.val_loss.index(min(h.val_loss))]  # the epoch with the best validation loss
        2
        >>> h.as_dict()["val_accuracy"]
        [0.5, 0.75, 0.7]
    """

    epoch: list[int]
    train_loss: list[float]
    val_loss: list[float]
    val_accuracy: list[float]
    learning_rate: list[float]

    def as_dict(self) -> dict[str, list]:
        """The records as a JSON-ready dict: field name -> list (floats; `epoch` as ints)."""
        return {k: list(map(float, v)) if k != "epoch" else list(v) for k, v in self._asdict().items()}


LearningRate = float | Callable[[Array], Array] | schedules.Plateau
Optimizer: TypeAlias = optax.GradientTransformation | Callable[..., optax.GradientTransformation]

# fit's per-step Dropout keys come from its `key` folded with this (its epochs fold 0, 1, 2, ...).
_STEP_KEY_FOLD = 1 << 30


def fit(
    net: Net,
    params: Params,
    train: tuple[Data, Data],
    val: tuple[Data, Data],
    *,
    loss: LossFn = losses_lib.softmax_cross_entropy,
    metric: LossFn = losses_lib.accuracy,
    optimizer: Optimizer = optax.adam,
    learning_rate: LearningRate | None = None,
    epochs: int = 1,
    batch_size: int = 32,
    key: Array,
    masks: Params | None = None,
    model_state: Params | None = None,
    n_classes: int | None = None,
    progress: bool = True,
    scan: bool | None = None,
    data_parallel: bool = False,
    augment: Callable[[Array, Array], Array] | None = None,
) -> tuple[TrainState, History]:
    """Train `net` for `epochs` epochs; evaluate on `val` after each; return (final state, history).

    optimizer: an optax optimizer *factory* taking `learning_rate` (optax.adam, optax.sgd, ...), or a
    ready `optax.GradientTransformation` (any chain, with its own schedules and weight decay; then
    leave `learning_rate` unset).
    learning_rate: with a factory, a float (default 1e-3), an optax schedule of the update count
    (e.g. `schedules.step_decay`), or a `schedules.Plateau` policy driven by the validation loss. The
    rate in force during each epoch is logged in `history.learning_rate` (NaN where a ready
    transformation does not expose it through `optax.inject_hyperparams`).
    model_state: a stateful net's starting statistics (default `net.init_state(input_shape)`); the
    trained statistics are in the returned `state.model_state`, and validation runs in eval mode
    with them. The data order comes from `key` (one fold per epoch), and so do Dropout's masks.
    scan: run each epoch as one compiled `lax.scan` (True) or as a Python loop over a jitted step
    (False). None (default) picks scan, on every backend and for every net. XLA:CPU runs the
    gradient convolutions of `lax.conv` inside loop bodies as naive loop nests (jax-ml/jax#12868),
    but funcnn's conv layers default to impl="mixed" on CPU (`funcnn.conv`: XLA's forward and input
    gradient in the canonical layout, im2col's kernel gradient), which has no such penalty (Conv-2
    in lax.scan 4.90 steps/s vs im2col's 4.34, 2026-11-28). Steps/s on one core, batch 60, Adam
    (`python -m benchmarks.conv_step`, 2026-11-27), for
    im2col in lax.scan / im2col in a Python loop / lax.conv in a Python loop / lax.conv in lax.scan:
    Conv-2 4.24 / 3.39 / 3.89 / 0.055; small CNN (`models.cnn`) 80 / 88 / 105 / 5.5; LeNet-5 88 /
    89 / 111 / 27. Scan is 1.25x the loop for Conv-2 and within ~10% of it for the small nets,
    whose fastest CPU setting is `impl="xla"` in their Conv layers with scan=False (~1.3x).
    data_parallel: split every batch over all devices (params and optimizer state replicated,
    gradients all-reduced by XLA); batch_size must be a multiple of the device count.
    augment(key, x) -> x': a keyed transform of every training batch (`make_train_step`), e.g.
    `funcnn.cifar10.augment`; its keys come from `key` too. Validation data are never augmented.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> import optax
        >>> from funcnn import nn, train
        >>> net = nn.serial(nn.Dense(4), nn.Tanh(), nn.Dense(2))  # a 2-4-2 classifier
        >>> x = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
        >>> y = (x[:, 0] > x[:, 1]).astype(np.int32)
        >>> state, history = train.fit(
        ...     net, net.init(jax.random.key(0), (2,)), (x, y), (x, y), optimizer=optax.sgd,
        ...     learning_rate=0.5, epochs=3, batch_size=4, key=jax.random.key(2), progress=False)
        >>> int(state.step), history.epoch  # 2 batches of 4 per epoch
        (6, [1, 2, 3])
        >>> [round(v, 2) for v in history.train_loss], history.learning_rate
        ([0.76, 0.49, 0.34], [0.5, 0.5, 0.5])
    """
    (x, y), (xv, yv) = train, val
    validate_data(x, y, n_classes=n_classes, name="train")
    validate_data(xv, yv, n_classes=n_classes, name="val")
    check_batch_size(batch_size, len(x))
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got epochs={epochs!r}")
    plateau = learning_rate if isinstance(learning_rate, schedules.Plateau) else None
    lr0: float | Callable[[Array], Array] | None
    if isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None:
            raise ValueError(
                "learning_rate must be left unset when optimizer is a ready optax.GradientTransformation "
                f"(its rate is part of it), got learning_rate={learning_rate!r}; or pass a factory such as optax.sgd"
            )
        tx, lr0 = optimizer, None
    else:
        if not callable(optimizer):
            raise ValueError(
                f"optimizer must be an optax factory (optax.adam) or a GradientTransformation, got {optimizer!r}"
            )
        if isinstance(learning_rate, schedules.Plateau):  # plateau is learning_rate
            lr0 = learning_rate.init_lr
        else:
            lr0 = 1e-3 if learning_rate is None else learning_rate
            if not callable(lr0) and not float(lr0) > 0:
                raise ValueError(f"learning_rate must be > 0, got learning_rate={learning_rate!r}")
        tx = optax.inject_hyperparams(optimizer)(learning_rate=lr0)
    if model_state is None and hasattr(net, "init_state"):
        model_state = net.init_state(tuple(np.shape(x)[1:]))
    state = init_state(params, tx, masks, model_state=model_state, key=jax.random.fold_in(key, _STEP_KEY_FOLD))
    step_fn = make_train_step(net, loss, tx, augment=augment)
    batch_sharding = None
    if data_parallel:
        from jax.sharding import NamedSharding, PartitionSpec

        from funcnn import distributed

        mesh = distributed.data_parallel_mesh()
        if batch_size % mesh.devices.size:
            raise ValueError(
                f"batch_size must be a multiple of the {mesh.devices.size} devices for data_parallel, "
                f"got batch_size={batch_size}"
            )
        batch_sharding = NamedSharding(mesh, PartitionSpec(distributed.DATA))
        state = jax.device_put(state, NamedSharding(mesh, PartitionSpec()))
    if scan is None:
        scan = True
    epoch_fn: Callable[[TrainState, Array, Array, Array], tuple[TrainState, Array]]
    if scan:
        epoch_fn = jax.jit(make_epoch(step_fn, batch_sharding))
    else:
        jitted_step = jax.jit(step_fn)

        def loop_epoch(state: TrainState, x: Array, y: Array, idx: Array) -> tuple[TrainState, Array]:
            batch_losses = []
            for i in np.asarray(idx):
                xb, yb = x[i], y[i]
                if batch_sharding is not None:
                    xb, yb = jax.device_put(xb, batch_sharding), jax.device_put(yb, batch_sharding)
                state, metrics = jitted_step(state, (xb, yb))
                batch_losses.append(metrics["loss"])
            return state, jnp.stack(batch_losses)

        epoch_fn = loop_epoch

    evaluate = jax.jit(make_evaluate(net, loss, metric))
    x, y, xv, yv = map(jnp.asarray, (x, y, xv, yv))
    plateau_state = plateau.init() if plateau is not None else None
    history = History([], [], [], [], [])

    bar = _progress(range(epochs), progress, desc="epochs")
    for e in bar:
        lr_in_force = _current_lr(state.opt_state, lr0, state.step)
        state, batch_losses = epoch_fn(state, x, y, batch_indices(jax.random.fold_in(key, e), len(x), batch_size))
        scores = evaluate(state.params, xv, yv, state.model_state)
        train_loss, val_loss = float(jnp.mean(batch_losses)), float(scores["loss"])
        history.epoch.append(e + 1)
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        history.val_accuracy.append(float(scores["accuracy"]))
        history.learning_rate.append(float(lr_in_force))
        if plateau is not None and plateau_state is not None:  # both set together
            plateau_state = plateau.update(plateau_state, val_loss)
            hyper = dict(state.opt_state.hyperparams, learning_rate=jnp.asarray(plateau_state.lr, jnp.float32))
            state = state._replace(opt_state=state.opt_state._replace(hyperparams=hyper))
        if progress:
            bar.set_postfix(
                train_loss=f"{train_loss:.4f}", val_loss=f"{val_loss:.4f}", val_acc=f"{history.val_accuracy[-1]:.4f}"
            )
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"training loss became {train_loss} in epoch {e + 1}; lower the learning rate?")
    return state, history


def _current_lr(opt_state: Any, lr0: float | Callable[[Array], Array] | None, step: Array) -> float:
    """The learning rate in force at update `step` (NaN when a ready transformation hides it)."""
    if callable(lr0):
        return float(lr0(step))
    if lr0 is None:  # a ready transformation: its rate if inject_hyperparams exposes one
        try:
            return float(optax.tree_utils.tree_get(opt_state, "learning_rate"))
        except (KeyError, TypeError, ValueError):
            return float("nan")
    return float(opt_state.hyperparams["learning_rate"])


def _progress(iterable: Iterable[int], enabled: bool, desc: str) -> Any:
    """`iterable` itself, or wrapped in a tqdm progress bar when enabled."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False)


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
    program. Returns {"rates": (R,), "loss": (R, epochs) mean training loss per epoch,
    "initial_loss": float}. Non-finite losses (divergence) are kept as they are (inf or nan).

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
    curves = []
    for e in range(epochs):
        states, batch_losses = epoch(states, x, y, batch_indices(jax.random.fold_in(key, e), len(x), batch_size))
        curves.append(np.asarray(jnp.mean(batch_losses, axis=1)))
    return {"rates": lrs, "loss": np.stack(curves, axis=1), "initial_loss": initial}
