"""Stability of SGD (Frankle et al. 2020, "Linear Mode Connectivity and the Lottery Ticket Hypothesis"):
the error barrier between copies of θk trained on different data orders, against the rewind step k.

One parent run from θ0 keeps θk (with its optimizer and model state) at each k of --rewind-steps;
from each θk, --copies copies train to step --steps under their own data orders, all in one program,
and the train and test error is measured at --alphas points of each pair's segment
θ_a + α(θ_b − θ_a) (`funcnn.stability`). Barrier = max error on the path − mean of the two ends;
the net is *stable* at k when the test barrier is under 2 points (the paper's threshold). With
BatchNorm, each interpolated net's running statistics are recomputed on training batches first.

--model lenet: LeNet-300-100, Adam 1.2e-3, batch 60 (Frankle & Carbin's). --model resnet: OpenLTH's
CIFAR ResNet (--depth, --width; ResNet-20 is 20/16), SGD lr 0.1, momentum 0.9, weight decay 1e-4,
batch 128, x0.1 at 50% and 75% of --steps. Fashion-MNIST (`apt-get install dataset-fashion-mnist`);
--train-size uses the first N training images (CPU-sized runs). Writes results.json,
barrier_vs_k.png and error_along_path.png.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np
import optax

from experiments import common
from funcnn import data, losses, models, stability

STABLE = 0.02  # the paper's threshold on the test error barrier


def setup(args):
    """(net, optimizer, batch size) for --model."""
    if args.model == "lenet":
        return models.lenet_300_100(), optax.adam(args.learning_rate or 1.2e-3), args.batch_size or 60
    lr = optax.piecewise_constant_schedule(
        args.learning_rate or 0.1, {max(int(f * args.steps), 1): 0.1 for f in (0.5, 0.75)}
    )
    tx = optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(lr, momentum=0.9))
    return models.resnet(args.depth, args.width), tx, args.batch_size or 128


def plot(res: dict, out: Path) -> list[Path]:
    plt = common.plt
    ks = res["rewind_steps"]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for split, color in (("test", "tab:blue"), ("train", "tab:orange")):
        m = np.array([r[f"{split}_barrier_mean"] for r in res["rows"]]) * 100
        s = np.array([r[f"{split}_barrier_std"] for r in res["rows"]]) * 100
        ax.errorbar(ks, m, yerr=s, marker="o", capsize=3, color=color, label=f"{split} error barrier")
    ax.axhline(STABLE * 100, color="gray", ls="--", lw=1, label="2% (stable below)")
    ax.set_xscale("symlog", linthresh=max(1, min([k for k in ks if k > 0], default=1)))
    ax.set(xlabel="rewind step k", ylabel="barrier (percentage points)", title=res["net"])
    ax.legend(fontsize=8)
    paths = [common.save_figure(fig, out / "barrier_vs_k.png")]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for row in res["rows"]:
        ax.plot(res["alphas"], np.mean(row["test_error"], axis=0) * 100, marker=".", label=f"k={row['k']}")
    ax.set(xlabel="interpolation α", ylabel="test error (%)", title="error along θ_a + α(θ_b − θ_a)")
    ax.legend(fontsize=8)
    paths.append(common.save_figure(fig, out / "error_along_path.png"))
    return paths


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("stability", __doc__)
    p.add_argument("--model", choices=["lenet", "resnet"], default="lenet")
    p.add_argument("--depth", type=common.positive_int, default=20, help="resnet depth, 6n + 2 (default 20)")
    p.add_argument("--width", type=common.positive_int, default=16, help="resnet width (default 16)")
    p.add_argument("--steps", type=common.positive_int, default=5000, help="training steps of every run (default 5000)")
    p.add_argument("--rewind-steps", type=common.non_negative_int, nargs="+", default=[0, 100, 500, 2000])
    p.add_argument("--copies", type=common.positive_int, default=2, help="copies per θk (pairs: all of them)")
    p.add_argument("--alphas", type=common.positive_int, default=11, help="points on each segment, ends included")
    p.add_argument("--train-size", type=common.positive_int, help="use the first N training images")
    p.add_argument(
        "--train-eval",
        type=common.positive_int,
        default=10000,
        help="train error measured on the first N training images (default 10000)",
    )
    p.add_argument(
        "--stat-batches",
        type=common.non_negative_int,
        default=20,
        help="training batches that recompute BatchNorm statistics at each point",
    )
    p.add_argument("--learning-rate", type=common.positive_float)
    p.add_argument("--batch-size", type=common.positive_int)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.copies < 2:
        p.error(f"--copies must be at least 2 (a barrier needs two copies), got {args.copies}")
    if args.alphas < 2:
        p.error(f"--alphas must be at least 2 (the two ends), got {args.alphas}")
    ks = sorted(set(args.rewind_steps))
    if ks[-1] >= args.steps:
        p.error(f"--rewind-steps must be below --steps={args.steps}, got {ks[-1]}")
    out = common.out_folder(args.out)
    d = data.load("fashion-mnist")
    n = args.train_size or len(d.x_train)
    x, y = d.x_train[:n], d.y_train[:n]
    net, tx, batch = setup(args)
    if batch > n:
        p.error(f"--batch-size {batch} is larger than the training set ({n})")
    if args.model == "resnet":
        for name, v in (("depth", args.depth), ("width", args.width)):
            if name == "depth" and (v < 8 or (v - 2) % 6):
                p.error(f"--depth must be 6n + 2 (8, 14, 20, ...), got {v}")
    params = net.init(jax.random.key(args.seed), x.shape[1:])
    state = net.init_state(x.shape[1:])
    name = "LeNet-300-100" if args.model == "lenet" else f"ResNet-{args.depth} (width {args.width})"
    print(
        f"stability of {name} on Fashion-MNIST ({n} training images): k in {ks}, {args.steps} steps, "
        f"{args.copies} copies -> {out}"
    )
    t0 = time.perf_counter()
    sweep = stability.sweep_rewind_steps(
        net,
        params,
        tx,
        losses.softmax_cross_entropy,
        (x, y),
        (d.x_test, d.y_test),
        steps=args.steps,
        rewind_steps=ks,
        batch_size=batch,
        key=jax.random.key(args.seed + 1),
        model_state=state or None,
        copies=args.copies,
        alphas=np.linspace(0, 1, args.alphas, dtype=np.float32),
        stat_batches=args.stat_batches,
        train_eval=min(args.train_eval, n),
    )
    seconds = time.perf_counter() - t0
    rows = []
    for k, b in zip(ks, sweep.barriers, strict=True):
        tr, te = np.asarray(b.train_barrier), np.asarray(b.test_barrier)
        rows.append(
            {
                "k": k,
                "train_barrier_mean": float(tr.mean()),
                "train_barrier_std": float(tr.std()),
                "test_barrier_mean": float(te.mean()),
                "test_barrier_std": float(te.std()),
                "test_error_ends": np.asarray(b.test_error)[:, [0, -1]].tolist(),
                "test_error": np.asarray(b.test_error).tolist(),
                "train_error": np.asarray(b.train_error).tolist(),
                "stable": bool(te.mean() < STABLE),
                "recomputed_statistics": bool(b.recomputed_statistics),
            }
        )
    stable = [r["k"] for r in rows if r["stable"]]
    res = {
        "net": name,
        "model": args.model,
        "steps": args.steps,
        "rewind_steps": ks,
        "copies": args.copies,
        "alphas": np.linspace(0, 1, args.alphas).tolist(),
        "train_size": n,
        "batch_size": batch,
        "rows": rows,
        "smallest_stable_k": stable[0] if stable else None,
        "seconds": seconds,
        "device": str(jax.devices()[0].device_kind),
    }
    print(
        common.table(
            ["k", "test barrier %", "train barrier %", "test error at ends %", "stable"],
            [
                [
                    r["k"],
                    f"{100 * r['test_barrier_mean']:.2f} ± {100 * r['test_barrier_std']:.2f}",
                    f"{100 * r['train_barrier_mean']:.2f} ± {100 * r['train_barrier_std']:.2f}",
                    f"{100 * np.mean(r['test_error_ends']):.2f}",
                    "yes" if r["stable"] else "no",
                ]
                for r in rows
            ],
        )
    )
    print(
        f"smallest stable k: {res['smallest_stable_k']}; {seconds:.0f} s"
        + (
            "; BatchNorm statistics recomputed on training batches at every point"
            if rows[0]["recomputed_statistics"]
            else ""
        )
    )
    res["figures"] = [str(f) for f in plot(res, out)]
    common.save_results(out, res)
    return res


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-stability`): run `main(argv)`, return exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
