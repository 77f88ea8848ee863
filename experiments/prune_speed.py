"""Does pruning make the model faster? Test accuracy against inference speed (images/s) on one CPU
core, at batch 1 and batch 1,000, for LeNet-300-100 and Conv-2 on Fashion-MNIST (the default
`--models lenet conv2`), and, opt-in, OpenLTH's ResNet-20 (`--models resnet20`) and a CPU-sized
ResNet-8 of width 16 (`--models resnet8`), both with BatchNorm.

Phase 1, training (cached in --out/arms as .npz + .json, so a rerun skips the arms already trained):

- dense: trained from scratch with Adam, the learning rate decayed to 0 by a cosine schedule.
- dense-longer: the control for the pruned arms' extra training: the dense net trained on for as many
  epochs as the whole structured chain's fine-tuning, from the fine-tuning rate. The accuracy a
  pruned net must stay within --within points of is the better of the two dense nets'.
- unstructured (IMP with fine-tuning, no rewinding): each round removes a fraction (`Budget.imp_rate`)
  of the surviving weights of each layer by magnitude (the output layer, and Conv-2's convolutions, at half that rate,
  as Frankle & Carbin), then fine-tunes with the masks held (Adam, cosine decay from a lower rate).
- structured (Li et al. 2017, L1 norm, layer-wise): each step keeps the next fraction (`Budget.keep`) of the
  hidden units / conv channels of every layer but the output layer, masks the removed units' biases
  too (`compaction.mask_dead_biases`: a removed unit outputs ReLU(0) = 0), compacts the network and
  fine-tunes the compacted one. That is the same training as fine-tuning the masked network (the
  removed units output 0 and the weights that read them get zero gradients), at the small net's cost.

The ResNets (convolutions without bias, each followed by BatchNorm) carry their BatchNorm statistics
through every step: trained by `fit(model_state=...)`, cached beside the params (<arm>.state.npz),
evaluated in inference mode on them. Their structured arms prune only the inner convolution of each
residual block (Li et al. 2017: the first of its two); the convolutions writing the residual stream
(`compaction.stream_convs`: the stem, each block's last, the projection shortcuts) stay whole, since a stream
channel leaves only where every branch summed into it drops it. A removed channel's BatchNorm scale
and offset are masked too (`compaction.mask_batchnorms`), so it outputs exactly 0 and compaction removes it; the
structured arms fine-tune that masked full-size net (the same training; `expand` handles `serial`
nets only). IMP prunes every convolution at the full rate, the output layer at half (as LeNet's).

Budgets and run times on this 2-core machine (phase 1; phase 2 takes a few minutes per model):
LeNet-300-100 ~2 min, Conv-2 ~21 min (the arms' train_seconds in runs/prune_speed); ResNet-8 (5,000
training and 2,000 test images: a demonstration sized to train in ~10 min on 2 shared cores, not a
converged net) 7 min beside a test suite, then 2.3 min of timing; ResNet-20 (60,000 images, 10 dense
epochs, 3 IMP rounds of 1 epoch, 2 structured steps of 2 epochs, dense-longer 4: 21 epochs in all at
~250 images/s on 2 cores) 81 min, then 6 min of timing (2026-11-28, nothing else running), so neither
ResNet is in the default --models.

Test accuracy: on the 10,000 test images (ResNet-8: 2,000; 1,000 with --quick), once per arm, after
fine-tuning.

Phase 2, timing (`--time-only` runs it alone from the cached arms): a fresh process pinned to one
core (`os.sched_setaffinity`, set before JAX starts, so XLA's thread pool has one thread) times,
in one run, for every arm:

- dense: the dense net;
- unstructured: masked dense (the same dense kernels on weights that are partly 0), sparse
  (`funcnn.sparse.sparsify`: every Dense layer as CSR, max_density=1; convolutions stay dense) and
  compacted (`funcnn.compaction.compact`: units with no input or no output weight removed);
- structured: compacted.

A ResNet's variants all run with BatchNorm folded into the convolution before it
(`compaction.fold_batchnorm`), the dense baseline too (the speed-ups are against the folded dense
net); the dense arm is also timed as trained, BatchNorm unfolded (dense-bn). They have no sparse
variant: `sparsify` converts Dense layers only, and a ResNet's one Dense layer (64 x 10) is not where
its time goes.

Every variant's outputs are first checked against the masked dense net's on the first test images
(as many as the largest batch): the same function up to float rounding, so each variant has its
arm's test accuracy. A speed is images/s = batch size / seconds per call of the jitted function on a
fixed input, each call blocked on (`block_until_ready`: the latency a caller sees, dispatch
included): the median over --repeats runs, each of as many calls as take at least --min-seconds.
Runs are interleaved (each round times one run of every variant of a model in turn), and a run
counts only when this process had the core for at least 90% of its wall time (CPU time / wall
time: other processes share the machine); a variant that got too few such runs in 4x --repeats
tries keeps the median of all its runs and is marked noisy (~ in the table). Conv nets are timed
with both convolution implementations (im2col + matmul, and XLA's convolution): a one-run probe
of each picks the faster one per variant and batch size, so every variant (the dense baseline
included) runs its best kernel. The speed-up is against the dense net at the same batch size.

On a GPU (or TPU) both phases run on the device (`benchmarks/accelerator_check.sh`, PRUNE_S): the
timing process still pins its host thread, which only dispatches each call, every run counts (the
host waits rather than computes, so its CPU share says nothing), and the table names the device.

Outputs: prune_speed.png (accuracy vs images/s, one panel per model and batch size), prune_speed.md
(the table, and per model the best speed-up within --within percentage points of the dense test
accuracy), prune_speed.json (everything, results.json the same).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib import ticker

from experiments import common
from funcnn import compaction, data, fit, io, losses, models, nn, prune, sparse
from funcnn import train as train_lib

Params = Any
INPUT_SHAPE = (28, 28, 1)
CLEAN = 0.9  # a timed run counts when this process had the core for at least this share of its wall time


def clean_share() -> float:
    """CLEAN on CPU; 0 on a GPU or TPU, whose host thread waits instead of computing (every run counts)."""
    return CLEAN if jax.default_backend() == "cpu" else 0.0


def device_name() -> str:
    """What the timed functions run on: the CPU model, or the accelerator's kind ("NVIDIA H200")."""
    if jax.default_backend() != "cpu":
        return jax.devices()[0].device_kind
    name = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        name = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), name)
    return name


MAX_ROUNDS = 4  # at most MAX_ROUNDS * repeats runs per variant while waiting for `repeats` clean ones


class Model(NamedTuple):
    """A network to prune: its builder (taking the conv implementation), the output layer's name, its
    convolutions' names (pruned at half the unstructured rate) and its title."""

    build: Callable[[str], nn.Layer]
    output: str
    convs: tuple[str, ...]
    title: str


MODELS = {
    "lenet": Model(lambda impl: models.lenet_300_100(), "dense_5", (), "LeNet-300-100"),
    "conv2": Model(lambda impl: models.conv2(impl=impl), "dense_10", ("conv2d_0", "conv2d_2"), "Conv-2"),
    # OpenLTH's CIFAR ResNets (BatchNorm, no conv biases); every conv at the full IMP rate
    "resnet8": Model(lambda impl: models.resnet(8, 16, impl=impl), "dense_10", (), "ResNet-8 (width 16)"),
    "resnet20": Model(lambda impl: models.resnet20(impl=impl), "dense_22", (), "ResNet-20"),
}


def state_like(net: nn.Layer) -> Params | None:
    """The net's (BatchNorm) state at init, or None for a stateless net."""
    state = net.init_state(INPUT_SHAPE)
    return state if jax.tree.leaves(state) else None


class Budget(NamedTuple):
    """Training budget of one model. epochs: dense training; finetune_epochs: each unstructured arm's
    fine-tuning (below 1: one pass over that fraction of the training images, drawn at random), of the
    masked full-size net; structured_epochs: each structured arm's, of the compacted net (cheaper);
    imp_rate / imp_rounds: unstructured pruning; keep: the structured arms' fractions of units kept;
    structured_whole: layers the structured arms leave whole (besides the output layer); dense_polish:
    epochs the dense net trains on from finetune_lr after its first `epochs` (a warm restart)."""

    train_images: int
    epochs: int
    lr: float
    finetune_epochs: float
    finetune_lr: float
    imp_rate: float
    imp_rounds: int
    keep: tuple[float, ...]
    structured_epochs: float
    batch_size: int = 60
    test_images: int = 10_000
    structured_whole: tuple[str, ...] = ()
    dense_polish: float = 0


# Conv-2 trains at 250-500 images/s on 2 shared cores: 2 epochs dense (4-8 min), half-epoch fine-tunings
# of the masked net, one epoch of each compacted structured net (2.5-6x cheaper per image).
BUDGETS = {
    # structured: only the first hidden layer, which holds 88% of LeNet's multiply-adds (784 x 300), to
    # widths that are multiples of 16 (224, 160, 128, 112, 96, 80): whole SIMD registers (AVX-512: 16 floats)
    "lenet": Budget(
        60_000,
        20,
        1.2e-3,
        4,
        3e-4,
        0.36,
        9,
        tuple(w / 300 for w in (224, 160, 128, 112, 96, 80)),
        4,
        structured_whole=("dense_3",),
    ),
    # Conv-2: 2 epochs, then 4 more from the fine-tuning rate (2 epochs alone left it 0.6 pt short)
    "conv2": Budget(60_000, 2, 2e-3, 0.5, 5e-4, 0.6, 2, (0.625, 0.5, 0.375, 0.25), 1, dense_polish=4),
    # ResNets (opt-in: --models resnet8 / resnet20). Structured: the inner convs only (`stream_convs`
    # whole), to 8 / 4 of 16 (x2, x4 deeper); every arm fine-tunes the masked full-size net.
    "resnet8": Budget(
        5000,
        3,
        2e-3,
        0.5,
        5e-4,
        0.5,
        2,
        (0.5, 0.25),
        0.5,
        test_images=2000,
        structured_whole=compaction.stream_convs(models.resnet(8, 16)),
    ),
    "resnet20": Budget(
        60_000, 10, 2e-3, 1, 5e-4, 0.5, 3, (0.5, 0.25), 2, structured_whole=compaction.stream_convs(models.resnet20())
    ),
}
QUICK = {
    "lenet": Budget(2000, 1, 1.2e-3, 1, 3e-4, 0.5, 1, (0.5,), 1, test_images=1000),
    "conv2": Budget(300, 1, 1e-3, 1, 3e-4, 0.5, 1, (0.5,), 1, batch_size=30, test_images=1000),
    **{
        name: Budget(
            300,
            1,
            2e-3,
            1,
            5e-4,
            0.5,
            1,
            (0.5,),
            1,
            batch_size=30,
            test_images=1000,
            structured_whole=compaction.stream_convs(build()),
        )
        for name, build in (("resnet8", lambda: models.resnet(8, 16)), ("resnet20", models.resnet20))
    },
}
DENSE_FIELDS = ("train_images", "epochs", "lr", "batch_size", "test_images", "dense_polish")
ARM_FIELDS = {
    "dense": DENSE_FIELDS,
    "dense-longer": (*DENSE_FIELDS, "structured_epochs", "finetune_lr", "keep"),
    "unstructured": (*DENSE_FIELDS, "finetune_epochs", "finetune_lr", "imp_rate"),
    "structured": (*DENSE_FIELDS, "structured_epochs", "finetune_lr", "structured_whole"),
}
"""The budget fields an arm depends on: a rerun retrains an arm only when one of them changed."""
IMPLS = {"lenet": ("auto",), "conv2": ("im2col", "xla"), "resnet8": ("im2col", "xla"), "resnet20": ("im2col", "xla")}
EVAL_IMPL = "xla"  # XLA's convolution: the faster one at batch 1,000 (for the test-set evaluations)


# ---------------------------------------------------------------- phase 1: training


def _layer_order(key: str) -> tuple[int, str]:
    """Sort key of a param dict's keys in layer order: "dense_3" by its index; "main" before "shortcut"."""
    tail = key.rsplit("_", 1)[-1]
    return (int(tail), key) if tail.isdigit() else ({"main": 0, "shortcut": 1}.get(key, 2), key)


def _weight_paths(params: Params, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the param dicts holding a "w" (Dense / Conv layers), in layer order, nested ones too."""
    if "w" in params:
        return [path]
    return [
        q
        for k in sorted(params, key=_layer_order)
        if isinstance(params[k], dict)
        for q in _weight_paths(params[k], (*path, k))
    ]


def _at(tree: Params, path: tuple[str, ...]) -> Any:
    for k in path:
        tree = tree[k]
    return tree


def widths(params: Params, masks: Params | None = None) -> list[int]:
    """Units of each Dense / Conv layer in order: all of them (masks None) or those with any kept weight."""
    out = []
    for path in _weight_paths(params):
        w = _at(params, path)["w"]
        alive = (
            np.ones(w.shape[-1], bool)
            if masks is None
            else np.any(np.reshape(_at(masks, path)["w"], (-1, w.shape[-1])), 0)
        )
        out.append(int(alive.sum()))
    return out


def density(params: Params, masks: Params) -> float:
    """Fraction of the weights (leaves with ndim > 1) that are kept and nonzero: a structured arm's
    weights that read a removed unit count as gone, though their mask entries are True."""
    kept = total = 0
    for p, m, s in zip(
        jax.tree.leaves(params), jax.tree.leaves(masks), jax.tree.leaves(prune.prunable(params)), strict=True
    ):
        if s:
            kept += int(np.sum(np.asarray(m) & (np.asarray(p) != 0)))
            total += np.size(p)
    return kept / total


def expand(net: nn.Layer, like: Params, small: Params, masks: Params) -> Params:
    """Full-shaped params holding `small` (a compacted structured ticket) on the units `masks` keeps, 0
    elsewhere: the masked dense net that `compaction.compact(net, expand(...), masks)` compacts back
    to `small`. For `serial` nets of Dense, Conv2D, Flatten, pools and activations."""
    full = jax.tree.map(lambda a: np.zeros(np.shape(a), np.asarray(a).dtype), like)
    keep_prev: np.ndarray | None = None  # surviving channels of the feature axis (None: the input's, all)
    n_prev = 0
    for name, layer in zip(nn.layer_names(net.layers), net.layers, strict=True):
        if layer.kind not in ("dense", "conv2d"):
            continue
        w_full, w_small = full[name]["w"], np.asarray(small[name]["w"])
        n_out = w_full.shape[-1]
        out_keep = np.flatnonzero(np.any(np.reshape(masks[name]["w"], (-1, n_out)), axis=0))
        rows = w_full.shape[-2]
        if keep_prev is None:
            in_idx = np.arange(rows)
        elif rows == n_prev:
            in_idx = keep_prev
        else:  # the first Dense after Flatten: rows run over (position, channel), channels fastest
            in_idx = (np.arange(rows // n_prev)[:, None] * n_prev + keep_prev[None, :]).ravel()
        want = (*w_full.shape[:-2], in_idx.size, out_keep.size)
        if w_small.shape != want:
            raise ValueError(f"expand: {name}/w is {w_small.shape} in the compacted net, expected {want}")
        w_full[..., in_idx[:, None], out_keep] = w_small
        full[name]["b"][out_keep] = np.asarray(small[name]["b"])
        keep_prev, n_prev = out_keep, n_out
    return full


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


def _paths(out: Path, model: str, arm: str) -> tuple[Path, Path, Path]:
    folder = out / "arms" / model
    return folder / f"{arm}.json", folder / f"{arm}.params.npz", folder / f"{arm}.masks.npz"


def _same_budget(stored: dict, config: dict, kind: str, step: int) -> bool:
    """Whether an arm trained under config `stored` is the one `config` asks for: the same seed and
    the same values of the budget fields it depends on (a structured arm: the same first keep steps)."""
    old, new = stored.get("budget", {}), config["budget"]
    same = stored.get("seed") == config["seed"] and all(
        old.get(f) == json.loads(json.dumps(new[f])) for f in ARM_FIELDS[kind]
    )
    if kind == "structured":
        same = same and list(old.get("keep", []))[: step + 1] == list(new["keep"])[: step + 1]
    return same


def _state_path(out: Path, model: str, arm: str) -> Path:
    return out / "arms" / model / f"{arm}.state.npz"


def _load_arm(
    out: Path,
    model: str,
    arm: str,
    like: Params,
    config: dict | None = None,
    kind: str = "dense",
    step: int = 0,
    state: Params | None = None,
) -> tuple[dict, Params, Params, Params | None] | None:
    """The cached arm (record, params, masks, state), or None when missing or trained under another
    config (config None: any). state: the net's init state, for a stateful net (its statistics are
    read from <arm>.state.npz); None for a stateless net, whose arm's state is None."""
    meta, p_path, m_path = _paths(out, model, arm)
    s_path = _state_path(out, model, arm)
    if not (meta.is_file() and p_path.is_file() and m_path.is_file() and (state is None or s_path.is_file())):
        return None
    record = json.loads(meta.read_text())
    if config is not None and not _same_budget(record.get("config", {}), config, kind, step):
        return None
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.float32), like)
    masks_like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.bool_), like)
    try:
        loaded = None
        if state is not None:
            state_shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.float32), state)
            loaded = io.load_tree(s_path, state_shapes)
        return record, io.load_tree(p_path, shapes), io.load_tree(m_path, masks_like), loaded
    except io.CheckpointError:
        return None


def _save_arm(out: Path, model: str, record: dict, params: Params, masks: Params, state: Params | None) -> None:
    meta, p_path, m_path = _paths(out, model, record["arm"])
    meta.parent.mkdir(parents=True, exist_ok=True)
    io.save_tree(p_path, params)
    io.save_tree(m_path, masks)
    if state is not None:
        io.save_tree(_state_path(out, model, record["arm"]), state)
    io.atomic_write_json(meta, record)


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
        cached = _load_arm(out, name, arm_name, like, config, kind, step, state0)
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
            _save_arm(out, name, record, params, masks, state)
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


# ---------------------------------------------------------------- phase 2: timing


def calibrate(f: Callable[..., jax.Array], args: tuple, min_seconds: float) -> tuple[int, float]:
    """(n, seconds per call): f(*args) compiled by a first call, then the first run of n = 1, 2, ... calls
    (each blocked on) that takes at least `min_seconds`."""
    f(*args).block_until_ready()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            f(*args).block_until_ready()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            return n, elapsed / n
        n = max(2 * n, math.ceil(n * 1.2 * min_seconds / max(elapsed, 1e-9)))


def one_run(f: Callable[..., jax.Array], args: tuple, n: int) -> tuple[float, float]:
    """(seconds per call, share of the wall time this process ran) of n calls of f(*args), each blocked on."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        f(*args).block_until_ready()
    wall = time.perf_counter() - t0
    return wall / n, (time.process_time() - c0) / wall


def call_floor(x: jax.Array, repeats: int, min_seconds: float) -> float:
    """Calls/s of a jitted function that only slices its input x: dispatch and synchronization, no
    work; at batch 1 no network can beat it. The median of the clean runs (of all, if too few)."""
    f = jax.jit(lambda x: x[:1, 0, 0, 0])
    n, _ = calibrate(f, (x,), min_seconds)
    runs = [one_run(f, (x,), n) for _ in range(MAX_ROUNDS * repeats)]
    clean = [t for t, share in runs if share >= clean_share()]
    return 1 / float(np.median(clean if len(clean) >= repeats else [t for t, _ in runs]))


# id(net) -> (net, apply): holding the net keeps its id from being reused by another
_WITH_STATE: dict[int, tuple[nn.Layer, Callable[..., jax.Array]]] = {}
_FOLDED: dict[int, tuple[nn.Layer, Callable[..., jax.Array]]] = {}


def with_state(net: nn.Layer) -> Callable[..., jax.Array]:
    """apply({"params": p, "state": s}, x): a stateful net in inference mode (one function per net)."""

    def apply(ps: Params, x: jax.Array) -> jax.Array:
        return net.apply_with_state(ps["params"], ps["state"], x, train=False)[0]

    return _WITH_STATE.setdefault(id(net), (net, apply))[1]


def _variants(
    record: dict, net: nn.Layer, params: Params, masks: Params, state: Params | None
) -> dict[str, tuple[Callable[..., jax.Array], Params]]:
    """The variants of one arm, on `net` (one conv implementation): variant -> (apply, params).

    A stateful (BatchNorm) net's variants all run with BatchNorm folded into the convolution before it
    (`compaction.fold_batchnorm`), the dense baseline included; the dense arm is also timed unfolded
    ("dense-bn"). No sparse variant for them: `sparse.sparsify` converts Dense layers only, and a
    ResNet's one Dense layer (64 x 10) is not where its time goes."""
    masked = prune.apply(params, masks)
    if state is None:
        if record["kind"] in ("dense", "dense-longer"):
            return {"dense": (net.apply, masked)}
        out: dict[str, tuple[Callable[..., jax.Array], Params]] = {}
        if record["kind"] == "unstructured":
            out["masked"] = (net.apply, masked)
            s_net, s_params = sparse.sparsify(net, params, masks, max_density=1.0)
            out["sparse"] = (s_net.apply, s_params)
        c_net, c_params = compaction.compact(net, params, masks, input_shape=INPUT_SHAPE)
        out["compacted"] = (c_net.apply, c_params)
        return out

    def folded(n: nn.Layer, p: Params, s: Params) -> tuple[Callable[..., jax.Array], Params]:
        f_net, f_params, _ = compaction.fold_batchnorm(n, p, s)
        # the folded net depends on n alone: one apply per net, so that the full-size variants of all
        # arms share one compiled function (as the stateless nets' dense and masked variants do)
        return _FOLDED.setdefault(id(n), (n, f_net.apply))[1], f_params

    if record["kind"] in ("dense", "dense-longer"):
        out = {"dense": folded(net, masked, state)}
        if record["kind"] == "dense":
            out["dense-bn"] = (with_state(net), {"params": masked, "state": state})
        return out
    out = {}
    if record["kind"] == "unstructured":
        out["masked"] = folded(net, masked, state)
    out["compacted"] = folded(*compaction.compact(net, params, masks, input_shape=INPUT_SHAPE, state=state))
    return out


def _mean_load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def time_all(
    names: list[str], out: Path, batch_sizes: list[int], repeats: int, min_seconds: float
) -> tuple[list[dict], dict[str, float], float]:
    """Phase 2 (this process already pinned): check every variant of every cached arm against its
    masked dense net, then time them. Per model and batch size: a one-run probe of each conv
    implementation picks each variant's faster one, then `repeats` rounds, each timing one run of
    every variant in turn (so that other load on the core hits them alike); the median per variant."""
    d = data.load("fashion-mnist")
    inputs = {b: jnp.asarray(np.resize(d.x_test, (b, *INPUT_SHAPE))) for b in batch_sizes}
    x_check = inputs[max(batch_sizes)]  # the first test images; checked at a timed shape: no extra compilation
    rows = []
    t_all = time.perf_counter()
    floor = {str(b): call_floor(x, repeats, min_seconds) for b, x in inputs.items()}
    print("calls/s of a jitted function doing nothing: " + ", ".join(f"b={b}: {v:,.0f}" for b, v in floor.items()))
    for name in names:
        entries = []  # (row, {impl: (jitted apply, params on device)}) of the variants to time
        like = MODELS[name].build("auto").init(jax.random.key(0), INPUT_SHAPE)
        nets = {impl: MODELS[name].build(impl) for impl in IMPLS[name]}
        state0 = state_like(nets[IMPLS[name][0]])
        cache: dict[int, Callable[..., jax.Array]] = {}  # one jitted apply per function: dense and masked share it

        def jitted(apply: Callable[..., jax.Array], cache: dict = cache) -> Callable[..., jax.Array]:
            return cache.setdefault(id(apply), jax.jit(apply))

        for record in _arm_index(out, name):
            cached = _load_arm(out, name, record["arm"], like, None, state=state0)
            assert cached is not None  # _arm_index listed it
            _, params, masks, state = cached
            masked = jax.device_put(prune.apply(params, masks))
            by_impl = {impl: _variants(record, nets[impl], params, masks, state) for impl in IMPLS[name]}
            # the reference: the masked net as trained (BatchNorm unfolded, on its running statistics)
            refs = {
                impl: np.asarray(
                    jitted(nets[impl].apply)(masked, x_check)
                    if state is None
                    else jitted(with_state(nets[impl]))({"params": masked, "state": state}, x_check)
                )
                for impl in IMPLS[name]
            }
            for variant in by_impl[IMPLS[name][0]]:
                # device_put: numpy params would be copied to the device at every call
                fns = {impl: (jitted(v[variant][0]), jax.device_put(v[variant][1])) for impl, v in by_impl.items()}
                row: dict[str, Any] = {
                    "model": name,
                    "arm": record["arm"],
                    "kind": record["kind"],
                    "variant": variant,
                    "density": record["density"],
                    "test_accuracy": record["test_accuracy"],
                    "units": widths(by_impl[IMPLS[name][0]][variant][1]) if variant == "compacted" else widths(params),
                    "max_abs_diff": 0.0,
                    "agrees": True,
                    "speed": {},
                }
                for impl, (f, v_params) in fns.items():
                    ref = refs[impl]
                    got = np.asarray(f(v_params, x_check))
                    diff = float(np.max(np.abs(got - ref)))
                    row["max_abs_diff"] = max(row["max_abs_diff"], diff)
                    row["agrees"] &= bool(diff <= 1e-4 * max(1.0, float(np.max(np.abs(ref)))))
                    row["agrees"] &= bool(np.mean(got.argmax(-1) == ref.argmax(-1)) >= 0.99)
                rows.append(row)
                if row["agrees"]:
                    entries.append((row, fns))
                else:
                    print(f"{name} {record['arm']} {variant}: DISAGREES with masked dense (max |diff| {diff:.3g})")
        for b in batch_sizes:
            x = inputs[b]
            plan = []
            for row, fns in entries:
                probe = {impl: calibrate(f, (v_params, x), min_seconds) for impl, (f, v_params) in fns.items()}
                impl = min(probe, key=lambda k: probe[k][1])
                plan.append((row, impl, probe))
            runs: list[list[float]] = [[] for _ in plan]
            cpu: list[list[float]] = [[] for _ in plan]
            load = _mean_load()
            for _ in range(MAX_ROUNDS * repeats):
                lacking = [i for i in range(len(plan)) if sum(c >= clean_share() for c in cpu[i]) < repeats]
                if not lacking:
                    break
                for i in lacking:
                    impl, probe = plan[i][1], plan[i][2]
                    f, v_params = entries[i][1][impl]
                    seconds, share = one_run(f, (v_params, x), max(1, math.ceil(min_seconds / probe[impl][1])))
                    runs[i].append(seconds)
                    cpu[i].append(share)
            for (row, impl, probe), r, c in zip(plan, runs, cpu, strict=True):
                clean = [t for t, share in zip(r, c, strict=True) if share >= clean_share()]
                row["speed"][str(b)] = {
                    "images_per_s": b / float(np.median(clean if len(clean) >= repeats else r)),
                    "impl": impl,
                    "clean_runs": len(clean),
                    "runs": len(r),
                    "noisy": len(clean) < repeats,
                    "seconds_per_call": r,
                    "cpu_share": c,
                    "probe_images_per_s": {k: b / v[1] for k, v in probe.items()},
                    "load_average": [load, _mean_load()],
                }
                print(
                    f"{name} {row['arm']:>16} {row['variant']:>9} b={b}: "
                    f"{row['speed'][str(b)]['images_per_s']:,.0f}/s ({impl}, {len(clean)}/{len(r)} clean runs)"
                )
    return rows, floor, time.perf_counter() - t_all


def _arm_index(out: Path, name: str) -> list[dict]:
    """The arm records of a model's last training run, in training order (dense, imp-.., structured-..)."""
    folder = out / "arms" / name
    index = folder / "index.json"
    arms = json.loads(index.read_text()) if index.is_file() else []
    stateful = state_like(MODELS[name].build("auto")) is not None
    missing = [
        a
        for a in arms
        if not all(p.is_file() for p in (*_paths(out, name, a), *[_state_path(out, name, a)] * stateful))
    ]
    if not arms or missing:
        raise SystemExit(
            f"error: no trained arms of {name} in {folder}{f' (missing {missing})' if missing else ''}; "
            "run without --time-only first"
        )
    return [json.loads(_paths(out, name, a)[0].read_text()) for a in arms]


# ---------------------------------------------------------------- report


def summarize(rows: list[dict], names: list[str], batch_sizes: list[int], within: float) -> dict:
    """Per model and batch size: the dense speed and the fastest variant within `within` points of it."""
    summary: dict[str, Any] = {}
    for name in names:
        mine = [r for r in rows if r["model"] == name and r["speed"]]
        dense = next(r for r in mine if r["variant"] == "dense" and r["arm"] == "dense")
        reference = max(r["test_accuracy"] for r in mine if r["variant"] == "dense")  # dense or dense-longer
        per_b = {}
        for b in map(str, batch_sizes):
            base = dense["speed"][b]["images_per_s"]
            for r in mine:
                r.setdefault("speedup", {})[b] = r["speed"][b]["images_per_s"] / base
            ok = [r for r in mine if r["test_accuracy"] >= reference - within / 100 - 1e-9]
            best = max(ok, key=lambda r: r["speedup"][b])
            per_b[b] = {
                "dense_images_per_s": base,
                "best_arm": best["arm"],
                "best_variant": best["variant"],
                "best_speedup": best["speedup"][b],
                "best_test_accuracy": best["test_accuracy"],
                "target_met": best["speedup"][b] >= 2.0,
            }
        summary[name] = {"dense_test_accuracy": reference, "batch": per_b}
    return summary


def _units_text(r: dict) -> str:
    return "-".join(map(str, r["units"]))


def markdown(results: dict) -> str:
    """The table: per model and variant, weights kept, units, test accuracy, images/s and speed-ups."""
    bs = [str(b) for b in results["timing"]["batch_sizes"]]
    t = results["timing"]
    on_cpu = t.get("backend", "cpu") == "cpu"  # results written before the GPU path have no backend
    where = (
        f"One core (core {t['core']}, pinned; {t['cpu']})"
        if on_cpu
        else f"One {t['device']} ({t['backend'].upper()}; the host thread on core {t['core']})"
    )
    runs = (
        f"(runs with the core for >= {CLEAN:.0%} of their time; ~: too few of those, the median of all runs)"
        if on_cpu
        else "(every run)"
    )
    lines = [
        "# Pruning and inference speed, Fashion-MNIST",
        "",
        f"{where}, JAX {t['jax']}; images/s = batch / median seconds "
        f"per call over {t['repeats']} runs of >= {t['min_seconds'] * 1000:.0f} ms {runs}, each call blocked on; "
        f"x dense: the speed-up against the dense net at the same batch size. Test accuracy on "
        f"{results['rows'][0]['test_images']:,} test images; every variant agrees with its masked dense net "
        "unless marked.",
        "",
        "Call overhead: a jitted function that only slices its input runs at "
        + ", ".join(f"{v:,.0f} calls/s at batch {b}" for b, v in t["empty_calls_per_s"].items())
        + (" on this core" if on_cpu else "")
        + ": no network runs faster than that many calls/s.",
        "",
    ]
    for name in results["models"]:
        s = results["summary"][name]
        lines += [f"## {MODELS[name].title}", ""]
        if name in results["training"]:
            tr = results["training"][name]
            fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in tr["budget"].items()}
            bud = Budget(**fields)
            minutes = sum(r["train_seconds"] for r in results["arms"][name]) / 60
            stateful = state_like(MODELS[name].build("auto")) is not None
            structured_text = (
                (
                    f"structured: keep {', '.join(f'{k:.3g}' for k in bud.keep)} of the channels of the inner "
                    "convolutions (the first of each residual block; those writing the residual stream stay "
                    "whole), BatchNorm scale and offset masked with them, one step after the other, each "
                    f"fine-tuned {bud.structured_epochs:g} epoch(s) masked at full size"
                )
                if stateful
                else (
                    f"structured: keep {', '.join(f'{k:.3g}' for k in bud.keep)} of the units of every hidden layer"
                    + (f" but {', '.join(bud.structured_whole)}" if bud.structured_whole else "")
                    + ", one step after the other"
                )
            )
            trained_on = tr.get("device", f"{os.cpu_count()} cores")
            lines += [
                f"Training ({minutes:.1f} min over all arms, on {trained_on}): dense {bud.epochs} epochs "
                f"on {bud.train_images:,} images, Adam {bud.lr:g} with cosine decay, batch {bud.batch_size}"
                + (f", then {bud.dense_polish:g} more from Adam {bud.finetune_lr:g}" if bud.dense_polish else "")
                + f"; fine-tuning from Adam {bud.finetune_lr:g}: {bud.finetune_epochs:g} epoch(s) per unstructured "
                f"arm (masked net), {bud.structured_epochs:g} per structured arm "
                f"({'masked net' if stateful else 'compacted net'}); "
                f"IMP {bud.imp_rounds} rounds of {bud.imp_rate:.0%}; "
                + structured_text
                + f"; dense-longer: the dense net trained "
                f"{bud.structured_epochs * len(bud.keep):g} more epochs from Adam {bud.finetune_lr:g}.",
                "",
            ]
            if stateful:
                lines += [
                    "BatchNorm is folded into the convolution before it in every variant (the dense baseline "
                    "included) but dense-bn, the dense net as trained; no sparse variant (`sparse.sparsify` "
                    "converts Dense layers only).",
                    "",
                ]
        head = ["arm", "variant", "weights kept", "units per layer", "test acc %"]
        for b in bs:
            head += [f"img/s b={b}", f"x dense b={b}"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in results["rows"]:
            if r["model"] != name:
                continue
            cells = [
                r["arm"],
                r["variant"],
                f"{r['density'] * 100:.1f}%",
                _units_text(r),
                f"{r['test_accuracy'] * 100:.2f}",
            ]
            for b in bs:
                if r["speed"]:
                    noisy = "~" if r["speed"][b]["noisy"] else ""
                    cells += [f"{noisy}{r['speed'][b]['images_per_s']:,.0f}", f"{r['speedup'][b]:.2f}"]
                else:
                    cells += ["disagrees", "-"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for b in bs:
            best = s["batch"][b]
            lines.append(
                f"- batch {b}: best speed-up within {results['within']} pt of dense "
                f"(the better of dense and dense-longer, "
                f"{s['dense_test_accuracy'] * 100:.2f}%): **{best['best_speedup']:.2f}x** "
                f"({best['best_arm']}, {best['best_variant']}, {best['best_test_accuracy'] * 100:.2f}%)"
                f"{'' if best['target_met'] else ' (below 2x)'}"
            )
        lines.append("")
    return "\n".join(lines)


STYLE = {
    ("dense", "dense"): ("k", "*", "dense"),
    ("dense", "dense-bn"): ("0.65", "*", "dense, BatchNorm not folded"),
    ("dense-longer", "dense"): ("0.3", "*", "dense, trained as long as the structured chain"),
    ("unstructured", "masked"): ("0.55", "o", "unstructured, masked dense"),
    ("unstructured", "sparse"): ("tab:blue", "s", "unstructured, sparse (CSR)"),
    ("unstructured", "compacted"): ("tab:green", "^", "unstructured, compacted"),
    ("structured", "compacted"): ("tab:red", "D", "structured, compacted"),
}


def figure(results: dict, path: Path) -> Path:
    """Accuracy against images/s (log), one panel per model and batch size."""
    plt = common.plt
    names, bs = results["models"], [str(b) for b in results["timing"]["batch_sizes"]]
    fig, axes = plt.subplots(len(names), len(bs), figsize=(5.2 * len(bs), 3.8 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        rows = [r for r in results["rows"] if r["model"] == name and r["speed"]]
        dense = next(r for r in rows if r["variant"] == "dense" and r["arm"] == "dense")
        reference = max(r["test_accuracy"] for r in rows if r["variant"] == "dense") * 100
        for j, b in enumerate(bs):
            ax = axes[i][j]
            for (kind, variant), (color, marker, label) in STYLE.items():
                pts = [r for r in rows if r["kind"] == kind and r["variant"] == variant]
                if pts:
                    xs = [r["speed"][b]["images_per_s"] for r in pts]
                    ys = [r["test_accuracy"] * 100 for r in pts]
                    ax.plot(
                        xs,
                        ys,
                        marker=marker,
                        color=color,
                        ls="-" if len(pts) > 1 else "",
                        ms=11 if variant == "dense" else 7,
                        zorder=3 if variant == "dense" else 2,
                        label=label,
                    )
            speed = dense["speed"][b]["images_per_s"]
            ax.axhline(reference - results["within"], color="k", ls=":", lw=1)
            ax.axvline(2 * speed, color="k", ls="--", lw=1)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xlabel(f"images/s at batch {b} (one core)")
            ax.set_ylabel("test accuracy %")
            ax.set_title(f"{MODELS[name].title}, batch {b}")
            accs = [r["test_accuracy"] * 100 for r in rows]
            ax.set_ylim(min(accs) - 0.5, max(accs) + 0.5)
        axes[i][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Fashion-MNIST: pruning vs speed (dotted: dense - {results['within']} pt; dashed: 2x dense speed)")
    fig.tight_layout()
    return common.save_figure(fig, path)


# ---------------------------------------------------------------- entry points


def _timing_child(args: Any, out: Path) -> dict:
    """Pin this process to one core (before JAX starts), time everything, write the outputs."""
    from jax._src import xla_bridge  # private, but the only way to know whether XLA's pool exists

    allowed = sorted(os.sched_getaffinity(0))
    core = allowed[-1] if args.core is None else args.core
    if core not in allowed:
        raise SystemExit(f"error: --core {core} is not one this process may run on ({allowed})")
    late = xla_bridge.backends_are_initialized()
    os.sched_setaffinity(0, {core})  # on a GPU the host thread that dispatches each call, pinned alike
    if late:
        print("warning: JAX started before the pinning; its thread pool may have more than one thread")
    backend = jax.default_backend()
    rows, floor, seconds = time_all(args.models, out, args.batch_sizes, args.repeats, args.min_seconds)
    arms = {name: _arm_index(out, name) for name in args.models}
    test_images = {(r["model"], r["arm"]): r["test_images"] for recs in arms.values() for r in recs}
    for r in rows:
        r["test_images"] = test_images[(r["model"], r["arm"])]
    training = json.loads((out / "training.json").read_text()) if (out / "training.json").is_file() else {}
    results = {
        "models": args.models,
        "within": args.within,
        "rows": rows,
        "summary": summarize(rows, args.models, args.batch_sizes, args.within),
        "timing": {
            "core": core,
            "backend": backend,
            "cpu": device_name() if backend == "cpu" else platform.processor() or platform.machine(),
            "device": device_name(),
            "jax": jax.__version__,
            "batch_sizes": args.batch_sizes,
            "repeats": args.repeats,
            "min_seconds": args.min_seconds,
            "wall_seconds": seconds,
            "empty_calls_per_s": floor,
            "check_images": max(args.batch_sizes),
        },
        "training": training,
        "arms": arms,
    }
    (out / "prune_speed.md").write_text(markdown(results) + "\n")
    results["figures"] = [str(figure(results, out / "prune_speed.png"))]
    io.atomic_write_json(out / "prune_speed.json", results)
    common.save_results(out, results)
    print((out / "prune_speed.md").read_text())
    return results


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("prune_speed", __doc__)
    p.add_argument(
        "--models",
        nargs="+",
        default=["lenet", "conv2"],
        choices=list(MODELS),
        help="default: lenet conv2 (the ResNets are opt-in)",
    )
    p.add_argument("--quick", action="store_true", help="tiny budgets on data subsets, batch 1 and 100 (< 1 min)")
    p.add_argument("--time-only", action="store_true", help="skip training: time the arms cached in --out")
    p.add_argument("--batch-sizes", nargs="+", type=common.positive_int, help="default 1 1000 (--quick: 1 100)")
    p.add_argument("--repeats", type=common.positive_int, help="timed runs per variant (default 7; --quick 3)")
    p.add_argument("--min-seconds", type=common.positive_float, help="length of a run (default 0.02; --quick 0.005)")
    p.add_argument("--core", type=common.non_negative_int, help="the core to time on (default: the last allowed)")
    p.add_argument(
        "--within", type=common.non_negative_float, default=0.5, help="accuracy points below dense (default 0.5)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="hide the training progress bars")
    p.add_argument("--timing-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.batch_sizes = args.batch_sizes or ([1, 100] if args.quick else [1, 1000])
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.min_seconds = args.min_seconds or (0.005 if args.quick else 0.02)
    out = common.out_folder(args.out)
    if args.timing_child:
        return _timing_child(args, out)

    if not args.time_only:
        d = data.load("fashion-mnist")
        budgets = QUICK if args.quick else BUDGETS
        training = json.loads((out / "training.json").read_text()) if (out / "training.json").is_file() else {}
        for name in args.models:
            _, seconds = train_model(name, budgets[name], d, out, args.seed, not args.no_progress)
            training[name] = {"wall_seconds": seconds, "budget": budgets[name]._asdict()}
            if jax.default_backend() != "cpu":
                training[name]["device"] = device_name()
            print(f"{name}: phase 1 (training) took {seconds:.0f}s")
        io.atomic_write_json(out / "training.json", training)
    for name in args.models:
        _arm_index(out, name)  # fail here, with the message, when an arm is missing

    # Phase 2 in a fresh process: pinned to one core before JAX starts, all variants in it.
    command = [sys.executable, "-m", "experiments.prune_speed", "--timing-child", "--out", str(out)]
    command += ["--models", *args.models, "--batch-sizes", *map(str, args.batch_sizes)]
    command += ["--repeats", str(args.repeats), "--min-seconds", str(args.min_seconds), "--within", str(args.within)]
    command += [] if args.core is None else ["--core", str(args.core)]
    t0 = time.perf_counter()
    r = subprocess.run(command, check=False)
    if r.returncode != 0:
        raise SystemExit(f"error: the timing process failed (exit status {r.returncode})")
    results = json.loads((out / "prune_speed.json").read_text())
    print(f"phase 2 (timing) took {time.perf_counter() - t0:.0f}s; results: {out / 'prune_speed.md'}")
    return results


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-prune-speed`): run `main(argv)`, return exit status 0."""
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
