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

This script parses the options and runs the two phases; the pieces are in experiments/prune_speed_parts/
(config: models and budgets; tickets; arms: the cache; training; speed: checks and timing; report), the
timing itself in `funcnn.timing`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax

from experiments import common

# The pieces, one idea a module (tests and older code import them from here).
from experiments.prune_speed_parts.arms import arm_index
from experiments.prune_speed_parts.config import BUDGETS, IMPLS, INPUT_SHAPE, MODELS, QUICK, Budget, Model
from experiments.prune_speed_parts.report import figure, markdown, summarize
from experiments.prune_speed_parts.speed import call_floor, time_all
from experiments.prune_speed_parts.tickets import density, expand, widths
from experiments.prune_speed_parts.training import accuracy, train_model
from funcnn import data, io
from funcnn.timing import CLEAN, device_name

__all__ = [
    "BUDGETS",
    "CLEAN",
    "IMPLS",
    "INPUT_SHAPE",
    "MODELS",
    "QUICK",
    "Budget",
    "Model",
    "accuracy",
    "call_floor",
    "cli",
    "density",
    "expand",
    "figure",
    "main",
    "markdown",
    "summarize",
    "time_all",
    "train_model",
    "widths",
]


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
    arms = {name: arm_index(out, name) for name in args.models}
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
        arm_index(out, name)  # fail here, with the message, when an arm is missing

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
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
