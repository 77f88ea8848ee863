"""Phase 1: train the dense, dense-longer, unstructured (IMP) and structured arms of one model (cached)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax

from experiments.prune_speed_parts.arms import load_arm, save_arm
from experiments.prune_speed_parts.config import EVAL_IMPL, INPUT_SHAPE, MODELS, Budget, state_like
from experiments.prune_speed_parts.tickets import density, expand, widths
from funcnn import compaction, data, fit, io, losses, nn, prune
from funcnn import train as train_lib

Params = Any

# id(net) -> (net, jitted evaluate): holding the net keeps its id from being reused by another net
_EVALUATE: dict[int, tuple[nn.Layer, Callable[..., dict]]] = {}


def accuracy(net: nn.Layer, params: Params, x: np.ndarray, y: np.ndarray, state: Params | None = None) -> float:
    """Test accuracy of net(params) on (x, y), in chunks of 1,000 (inference mode: BatchNorm on `state`)."""
    evaluate = _EVALUATE.setdefault(
        id(net), (net, jax.jit(train_lib.make_evaluate(net, losses.softmax_cross_entropy)))
    )[1]
    if state is None:
        return float(evaluate(params, x, y)["accuracy"])
    return float(evaluate(params, x, y, state)["accuracy"])


def _train(
    net: nn.Layer,
    params: Params,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    epochs: float,
    lr: float,
    budget: Budget,
    key: jax.Array,
    masks: Params | None,
    progress: bool,
    state: Params | None = None,
) -> tuple[Params, Params | None]:
    """Adam with the rate decayed from `lr` to 0 by a cosine over the run; epochs below 1: one pass over
    that fraction of the training images, drawn with `key`. state: a stateful net's (BatchNorm)
    statistics to start from (None for a stateless net); returns (params, trained statistics or None)."""
    x, y = train
    if epochs < 1:
        idx = np.sort(np.asarray(jax.random.permutation(jax.random.fold_in(key, 1), len(x)))[: round(epochs * len(x))])
        x, y, epochs = x[idx], y[idx], 1
    steps = int(epochs) * (len(x) // budget.batch_size)
    trained, _ = fit(
        net,
        params,
        (x, y),
        val,
        learning_rate=optax.cosine_decay_schedule(lr, max(steps, 1)),
        epochs=int(epochs),
        batch_size=budget.batch_size,
        key=key,
        masks=masks,
        model_state=state,
        n_classes=10,
        progress=progress,
    )
    new_state = None if state is None else jax.tree.map(np.asarray, trained.model_state)
    return jax.tree.map(np.asarray, trained.params), new_state


def train_model(
    name: str, budget: Budget, d: data.Dataset, out: Path, seed: int, progress: bool
) -> tuple[list[dict], float]:
    """Phase 1 for one model: the dense, unstructured and structured arms (cached); (records, seconds)."""
    spec = MODELS[name]
    net, eval_net = spec.build("auto"), spec.build(EVAL_IMPL)
    x, y = d.x_train[: budget.train_images], d.y_train[: budget.train_images]
    x_test, y_test = d.x_test[: budget.test_images], d.y_test[: budget.test_images]
    val = (x_test[:500], y_test[:500])  # fit's per-epoch progress only; the accuracy below is on all of x_test
    like = net.init(jax.random.key(seed), INPUT_SHAPE)
    state0 = state_like(net)  # None: a stateless net
    config = {"budget": budget._asdict(), "seed": seed}
    t_model = time.perf_counter()
    records = []
    Arm = tuple[Params, Params, Params | None]  # params, masks, state

    def arm(arm_name: str, kind: str, parent: str | None, make: Callable[[], Arm], step: int = 0) -> Arm:
        cached = load_arm(out, name, arm_name, like, config, kind, step, state0)
        if cached is not None:
            record, params, masks, state = cached
            print(f"{name} {arm_name}: cached, test accuracy {record['test_accuracy'] * 100:.2f}%")
        else:
            t0 = time.perf_counter()
            params, masks, state = make()
            seconds = time.perf_counter() - t0
            record = {
                "model": name,
                "arm": arm_name,
                "kind": kind,
                "parent": parent,
                "density": density(params, masks),
                "units": widths(params, masks),
                "test_accuracy": accuracy(eval_net, params, x_test, y_test, state),
                "test_images": len(x_test),
                "train_seconds": seconds,
                "config": config,
            }
            save_arm(out, name, record, params, masks, state)
            print(
                f"{name} {arm_name}: test accuracy {record['test_accuracy'] * 100:.2f}%, weights kept "
                f"{record['density'] * 100:.1f}%, units {record['units']} ({seconds:.0f}s)"
            )
        records.append(record)
        return params, masks, state

    key = jax.random.key(seed + 1)

    def train_dense() -> Arm:
        params, state = _train(net, like, (x, y), val, budget.epochs, budget.lr, budget, key, None, progress, state0)
        if budget.dense_polish:
            k = jax.random.fold_in(key, 300)
            params, state = _train(
                net, params, (x, y), val, budget.dense_polish, budget.finetune_lr, budget, k, None, progress, state
            )
        return params, prune.ones(like), state

    dense, ones, dense_state = arm("dense", "dense", None, train_dense)

    # The control for the extra training the pruned arms get: the dense net trained on for as many
    # epochs as the whole structured chain's fine-tuning, from the same rate. The accuracy to stay
    # within is the better of the two dense nets.
    longer_epochs = budget.structured_epochs * len(budget.keep)

    def train_longer() -> Arm:
        k = jax.random.fold_in(key, 400)
        params, state = _train(
            net, dense, (x, y), val, longer_epochs, budget.finetune_lr, budget, k, None, progress, dense_state
        )
        return params, ones, state

    arm("dense-longer", "dense-longer", "dense", train_longer, 1)

    params, masks, state = dense, ones, dense_state
    rates = {spec.output: budget.imp_rate / 2, **{c: budget.imp_rate / 2 for c in spec.convs}}
    for r in range(1, budget.imp_rounds + 1):

        def imp_round(params: Params = params, masks: Params = masks, state: Params = state, r: int = r) -> Arm:
            new = prune.magnitude(params, masks, budget.imp_rate, layer_rates=rates)
            p = prune.apply(params, new)
            k = jax.random.fold_in(key, 100 + r)
            p, s = _train(
                net, p, (x, y), val, budget.finetune_epochs, budget.finetune_lr, budget, k, new, progress, state
            )
            return p, new, s

        params, masks, state = arm(
            f"imp-{r:02d}", "unstructured", "dense" if r == 1 else f"imp-{r - 1:02d}", imp_round, r
        )

    params, masks, state, kept, parent = dense, ones, dense_state, 1.0, "dense"
    for i, keep in enumerate(budget.keep):

        def structured_step(
            params: Params = params,
            masks: Params = masks,
            state: Params = state,
            kept: float = kept,
            keep: float = keep,
            i: int = i,
        ) -> Arm:
            new = prune.structured(
                params,
                masks,
                1 - keep / kept,
                norm="l1",
                layer_rates={spec.output: 0, **{n: 0 for n in budget.structured_whole}},
            )
            new = compaction.mask_dead_biases(new)
            k = jax.random.fold_in(key, 200 + i)
            if state0 is not None:
                # BatchNorm: the removed channels' scale and offset masked too, so they output 0. Fine-tuned
                # masked at full size (the same training as the compacted net's, at the dense net's cost).
                new = compaction.mask_batchnorms(net, new)
                p, s = _train(
                    net,
                    prune.apply(params, new),
                    (x, y),
                    val,
                    budget.structured_epochs,
                    budget.finetune_lr,
                    budget,
                    k,
                    new,
                    progress,
                    state,
                )
                return p, new, s
            small_net, small = compaction.compact(net, params, new, input_shape=INPUT_SHAPE)
            small, _ = _train(
                small_net, small, (x, y), val, budget.structured_epochs, budget.finetune_lr, budget, k, None, progress
            )
            full = expand(net, like, small, new)
            y_small, y_full = small_net.apply(small, x_test[:100]), net.apply(full, x_test[:100])
            if not np.allclose(y_small, y_full, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(y_full)))):
                raise RuntimeError(f"{name} keep {keep}: the expanded params do not compute the fine-tuned net")
            return full, new, None

        arm_name = f"structured-{keep:.3f}".rstrip("0")
        params, masks, state = arm(arm_name, "structured", parent, structured_step, i)
        kept, parent = keep, arm_name
    io.atomic_write_json(out / "arms" / name / "index.json", [r["arm"] for r in records])
    return records, time.perf_counter() - t_model
