"""Does pruning make the model faster? Test accuracy against inference speed (images/s) on one CPU
core, at batch 1 and batch 1,000, for LeNet-300-100 and Conv-2 on Fashion-MNIST.

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

Test accuracy: on the 10,000 test images (1,000 with --quick), once per arm, after fine-tuning.

Phase 2, timing (`--time-only` runs it alone from the cached arms): a fresh process pinned to one
core (`os.sched_setaffinity`, set before JAX starts, so XLA's thread pool has one thread) times,
in one run, for every arm:

- dense: the dense net;
- unstructured: masked dense (the same dense kernels on weights that are partly 0), sparse
  (`funcnn.sparse.sparsify`: every Dense layer as CSR, max_density=1; convolutions stay dense) and
  compacted (`funcnn.compaction.compact`: units with no input or no output weight removed);
- structured: compacted.

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
}


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
}
QUICK = {
    "lenet": Budget(2000, 1, 1.2e-3, 1, 3e-4, 0.5, 1, (0.5,), 1, test_images=1000),
    "conv2": Budget(300, 1, 1e-3, 1, 3e-4, 0.5, 1, (0.5,), 1, batch_size=30, test_images=1000),
}
DENSE_FIELDS = ("train_images", "epochs", "lr", "batch_size", "test_images", "dense_polish")
ARM_FIELDS = {
    "dense": DENSE_FIELDS,
    "dense-longer": (*DENSE_FIELDS, "structured_epochs", "finetune_lr", "keep"),
    "unstructured": (*DENSE_FIELDS, "finetune_epochs", "finetune_lr", "imp_rate"),
    "structured": (*DENSE_FIELDS, "structured_epochs", "finetune_lr", "structured_whole"),
}
"""The budget fields an arm depends on: a rerun retrains an arm only when one of them changed."""
IMPLS = {"lenet": ("auto",), "conv2": ("im2col", "xla")}
EVAL_IMPL = "xla"  # XLA's convolution: the faster one at batch 1,000 (for the test-set evaluations)


# ---------------------------------------------------------------- phase 1: training


def widths(params: Params, masks: Params | None = None) -> list[int]:
    """Units of each Dense / Conv layer in order: all of them (masks None) or those with any kept weight."""
    out = []
    for name in sorted((k for k in params if "w" in params[k]), key=lambda k: int(k.rsplit("_", 1)[1])):
        w = params[name]["w"]
        alive = (
            np.ones(w.shape[-1], bool) if masks is None else np.any(np.reshape(masks[name]["w"], (-1, w.shape[-1])), 0)
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


_EVALUATE: dict[int, Callable[..., dict]] = {}


def accuracy(net: nn.Layer, params: Params, x: np.ndarray, y: np.ndarray) -> float:
    """Test accuracy of net(params) on (x, y), in chunks of 1,000."""
    evaluate = _EVALUATE.setdefault(id(net), jax.jit(train_lib.make_evaluate(net, losses.softmax_cross_entropy)))
    return float(evaluate(params, x, y)["accuracy"])


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
) -> Params:
    """Adam with the rate decayed from `lr` to 0 by a cosine over the run; epochs below 1: one pass over
    that fraction of the training images, drawn with `key`."""
    x, y = train
    if epochs < 1:
        idx = np.sort(np.asarray(jax.random.permutation(jax.random.fold_in(key, 1), len(x)))[: round(epochs * len(x))])
        x, y, epochs = x[idx], y[idx], 1
    steps = int(epochs) * (len(x) // budget.batch_size)
    state, _ = fit(
        net,
        params,
        (x, y),
        val,
        learning_rate=optax.cosine_decay_schedule(lr, max(steps, 1)),
        epochs=int(epochs),
        batch_size=budget.batch_size,
        key=key,
        masks=masks,
        n_classes=10,
        progress=progress,
    )
    return jax.tree.map(np.asarray, state.params)


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


def _load_arm(
    out: Path, model: str, arm: str, like: Params, config: dict | None = None, kind: str = "dense", step: int = 0
) -> tuple[dict, Params, Params] | None:
    """The cached arm (record, params, masks), or None when missing or trained under another config
    (config None: any)."""
    meta, p_path, m_path = _paths(out, model, arm)
    if not (meta.is_file() and p_path.is_file() and m_path.is_file()):
        return None
    record = json.loads(meta.read_text())
    if config is not None and not _same_budget(record.get("config", {}), config, kind, step):
        return None
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.float32), like)
    masks_like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.bool_), like)
    try:
        return record, io.load_tree(p_path, shapes), io.load_tree(m_path, masks_like)
    except io.CheckpointError:
        return None


def _save_arm(out: Path, model: str, record: dict, params: Params, masks: Params) -> None:
    meta, p_path, m_path = _paths(out, model, record["arm"])
    meta.parent.mkdir(parents=True, exist_ok=True)
    io.save_tree(p_path, params)
    io.save_tree(m_path, masks)
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
    config = {"budget": budget._asdict(), "seed": seed}
    t_model = time.perf_counter()
    records = []

    def arm(
        arm_name: str, kind: str, parent: str | None, make: Callable[[], tuple[Params, Params]], step: int = 0
    ) -> tuple[Params, Params]:
        cached = _load_arm(out, name, arm_name, like, config, kind, step)
        if cached is not None:
            record, params, masks = cached
            print(f"{name} {arm_name}: cached, test accuracy {record['test_accuracy'] * 100:.2f}%")
        else:
            t0 = time.perf_counter()
            params, masks = make()
            seconds = time.perf_counter() - t0
            record = {
                "model": name,
                "arm": arm_name,
                "kind": kind,
                "parent": parent,
                "density": density(params, masks),
                "units": widths(params, masks),
                "test_accuracy": accuracy(eval_net, params, x_test, y_test),
                "test_images": len(x_test),
                "train_seconds": seconds,
                "config": config,
            }
            _save_arm(out, name, record, params, masks)
            print(
                f"{name} {arm_name}: test accuracy {record['test_accuracy'] * 100:.2f}%, weights kept "
                f"{record['density'] * 100:.1f}%, units {record['units']} ({seconds:.0f}s)"
            )
        records.append(record)
        return params, masks

    key = jax.random.key(seed + 1)

    def train_dense() -> tuple[Params, Params]:
        params = _train(net, like, (x, y), val, budget.epochs, budget.lr, budget, key, None, progress)
        if budget.dense_polish:
            k = jax.random.fold_in(key, 300)
            params = _train(
                net, params, (x, y), val, budget.dense_polish, budget.finetune_lr, budget, k, None, progress
            )
        return params, prune.ones(like)

    dense, ones = arm("dense", "dense", None, train_dense)

    # The control for the extra training the pruned arms get: the dense net trained on for as many
    # epochs as the whole structured chain's fine-tuning, from the same rate. The accuracy to stay
    # within is the better of the two dense nets.
    longer_epochs = budget.structured_epochs * len(budget.keep)
    arm(
        "dense-longer",
        "dense-longer",
        "dense",
        lambda: (
            _train(
                net,
                dense,
                (x, y),
                val,
                longer_epochs,
                budget.finetune_lr,
                budget,
                jax.random.fold_in(key, 400),
                None,
                progress,
            ),
            ones,
        ),
        1,
    )

    params, masks = dense, ones
    rates = {spec.output: budget.imp_rate / 2, **{c: budget.imp_rate / 2 for c in spec.convs}}
    for r in range(1, budget.imp_rounds + 1):

        def imp_round(params: Params = params, masks: Params = masks, r: int = r) -> tuple[Params, Params]:
            new = prune.magnitude(params, masks, budget.imp_rate, layer_rates=rates)
            p = prune.apply(params, new)
            k = jax.random.fold_in(key, 100 + r)
            return _train(
                net, p, (x, y), val, budget.finetune_epochs, budget.finetune_lr, budget, k, new, progress
            ), new

        params, masks = arm(f"imp-{r:02d}", "unstructured", "dense" if r == 1 else f"imp-{r - 1:02d}", imp_round, r)

    params, masks, kept, parent = dense, ones, 1.0, "dense"
    for i, keep in enumerate(budget.keep):

        def structured_step(
            params: Params = params, masks: Params = masks, kept: float = kept, keep: float = keep, i: int = i
        ) -> tuple[Params, Params]:
            new = prune.structured(
                params,
                masks,
                1 - keep / kept,
                norm="l1",
                layer_rates={spec.output: 0, **{n: 0 for n in budget.structured_whole}},
            )
            new = compaction.mask_dead_biases(new)
            small_net, small = compaction.compact(net, params, new, input_shape=INPUT_SHAPE)
            k = jax.random.fold_in(key, 200 + i)
            small = _train(
                small_net, small, (x, y), val, budget.structured_epochs, budget.finetune_lr, budget, k, None, progress
            )
            full = expand(net, like, small, new)
            y_small, y_full = small_net.apply(small, x_test[:100]), net.apply(full, x_test[:100])
            if not np.allclose(y_small, y_full, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(y_full)))):
                raise RuntimeError(f"{name} keep {keep}: the expanded params do not compute the fine-tuned net")
            return full, new

        arm_name = f"structured-{keep:.3f}".rstrip("0")
        params, masks = arm(arm_name, "structured", parent, structured_step, i)
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
    clean = [t for t, share in runs if share >= CLEAN]
    return 1 / float(np.median(clean if len(clean) >= repeats else [t for t, _ in runs]))


def _variants(record: dict, net: nn.Layer, params: Params, masks: Params) -> dict[str, tuple]:
    """The variants of one arm, on `net` (one conv implementation): variant -> (net, params)."""
    masked = prune.apply(params, masks)
    if record["kind"] in ("dense", "dense-longer"):
        return {"dense": (net, masked)}
    out = {}
    if record["kind"] == "unstructured":
        out["masked"] = (net, masked)
        out["sparse"] = sparse.sparsify(net, params, masks, max_density=1.0)
    out["compacted"] = compaction.compact(net, params, masks, input_shape=INPUT_SHAPE)
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
        cache: dict[int, Callable[..., jax.Array]] = {}  # one jitted apply per net: dense and masked share it

        def jitted(net: nn.Layer, cache: dict = cache) -> Callable[..., jax.Array]:
            return cache.setdefault(id(net), jax.jit(net.apply))

        for record in _arm_index(out, name):
            cached = _load_arm(out, name, record["arm"], like, None)
            assert cached is not None  # _arm_index listed it
            _, params, masks = cached
            masked = jax.device_put(prune.apply(params, masks))
            by_impl = {impl: _variants(record, nets[impl], params, masks) for impl in IMPLS[name]}
            refs = {impl: np.asarray(jitted(nets[impl])(masked, x_check)) for impl in IMPLS[name]}
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
                    "units": widths(fns[IMPLS[name][0]][1]) if variant == "compacted" else widths(params),
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
                lacking = [i for i in range(len(plan)) if sum(c >= CLEAN for c in cpu[i]) < repeats]
                if not lacking:
                    break
                for i in lacking:
                    impl, probe = plan[i][1], plan[i][2]
                    f, v_params = entries[i][1][impl]
                    seconds, share = one_run(f, (v_params, x), max(1, math.ceil(min_seconds / probe[impl][1])))
                    runs[i].append(seconds)
                    cpu[i].append(share)
            for (row, impl, probe), r, c in zip(plan, runs, cpu, strict=True):
                clean = [t for t, share in zip(r, c, strict=True) if share >= CLEAN]
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
    missing = [a for a in arms if not all(p.is_file() for p in _paths(out, name, a))]
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
    lines = [
        "# Pruning and inference speed, Fashion-MNIST",
        "",
        f"One core (core {t['core']}, pinned; {t['cpu']}), JAX {t['jax']}; images/s = batch / median seconds "
        f"per call over {t['repeats']} runs of >= {t['min_seconds'] * 1000:.0f} ms (runs with the core for "
        f">= {CLEAN:.0%} of their time; ~: too few of those, the median of all runs), each call blocked on; "
        f"x dense: the speed-up against the dense net at the same batch size. Test accuracy on "
        f"{results['rows'][0]['test_images']:,} test images; every variant agrees with its masked dense net "
        "unless marked.",
        "",
        "Call overhead: a jitted function that only slices its input runs at "
        + ", ".join(f"{v:,.0f} calls/s at batch {b}" for b, v in t["empty_calls_per_s"].items())
        + " on this core: no network runs faster than that many calls/s.",
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
            lines += [
                f"Training ({minutes:.1f} min over all arms, on {os.cpu_count()} cores): dense {bud.epochs} epochs "
                f"on {bud.train_images:,} images, Adam {bud.lr:g} with cosine decay, batch {bud.batch_size}"
                + (f", then {bud.dense_polish:g} more from Adam {bud.finetune_lr:g}" if bud.dense_polish else "")
                + f"; fine-tuning from Adam {bud.finetune_lr:g}: {bud.finetune_epochs:g} epoch(s) per unstructured "
                f"arm (masked net), {bud.structured_epochs:g} per structured arm (compacted net); "
                f"IMP {bud.imp_rounds} rounds of {bud.imp_rate:.0%}; structured: keep "
                f"{', '.join(f'{k:.3g}' for k in bud.keep)} of the units of every hidden layer"
                + (f" but {', '.join(bud.structured_whole)}" if bud.structured_whole else "")
                + f", one step after the other; dense-longer: the dense net trained "
                f"{bud.structured_epochs * len(bud.keep):g} more epochs from Adam {bud.finetune_lr:g}.",
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
    os.sched_setaffinity(0, {core})
    if late:
        print("warning: JAX started before the pinning; its thread pool may have more than one thread")
    rows, floor, seconds = time_all(args.models, out, args.batch_sizes, args.repeats, args.min_seconds)
    arms = {name: _arm_index(out, name) for name in args.models}
    test_images = {(r["model"], r["arm"]): r["test_images"] for recs in arms.values() for r in recs}
    for r in rows:
        r["test_images"] = test_images[(r["model"], r["arm"])]
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), cpu)
    training = json.loads((out / "training.json").read_text()) if (out / "training.json").is_file() else {}
    results = {
        "models": args.models,
        "within": args.within,
        "rows": rows,
        "summary": summarize(rows, args.models, args.batch_sizes, args.within),
        "timing": {
            "core": core,
            "cpu": cpu,
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
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), help="default: both")
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
