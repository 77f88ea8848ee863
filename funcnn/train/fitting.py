"""`fit`: train a net for some epochs at the Python level (one compiled epoch each), evaluating
after each, with learning-rate schedules or a plateau policy; `History` holds the records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import checks, schedules
from funcnn import losses as losses_lib
from funcnn.train.contract import Net, as_net
from funcnn.train.evaluate import Data, make_evaluate, validate_data
from funcnn.train.step import _STEP_KEY_FOLD, LossFn, batch_indices, check_batch_size, make_epoch, make_train_step
from funcnn.train.train_state import Array, Params, TrainState, init_state

__all__ = ["History", "fit"]


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

    net: any form `as_net` takes (a Layer, an object with init/apply, a pair (init, apply)) or a
    bare apply function; params: its params (`fit` never calls init).

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
    `funcnn.data.cifar10.augment`; its keys come from `key` too. Validation data are never augmented.
    Sparse training: pass a `funcnn.sparsity` transformation as the optimizer (`sparsity.rigl(optax.adam(1e-3),
    ...)`, any method); its masks live in the optimizer state and change inside the compiled epochs, the
    params are masked at the start (`sparsity.sparsify`) so that no forward pass is dense, and `masks=` stays
    None (the gradient the method sees is the dense one).

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
    as_net(net, needs_init=False)  # a bad net is named before any work
    checks.prng_key(key, who="fit")
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
    state = sparse_start(state)
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


def sparse_start(state: TrainState) -> TrainState:
    """With a sparse-training state in the optimizer's, the params masked by its masks (no forward pass is
    dense); ValueError if the TrainState has masks too (they would mask the gradient the method needs)."""
    from funcnn.sparsity.sparse_state import apply, find  # here: funcnn.sparsity's supermasks import funcnn.train

    found = find(state.opt_state)
    if found is None:
        return state
    if state.masks is not None:
        raise ValueError(
            "masks= cannot be combined with a sparse-training optimizer: its masks live in the optimizer state, "
            "and masks= would mask the dense gradient it reads; leave masks=None"
        )
    return state._replace(params=apply(state.params, found.masks))


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
