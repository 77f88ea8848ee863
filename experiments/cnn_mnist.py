"""Train a CNN on Fashion-MNIST (or MNIST where its files are present): test accuracy, learning
curves and the first layer's learned filters as PNGs.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from experiments import common
from funcnn import data, fit, models, nn


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("cnn_mnist", __doc__)
    p.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    p.add_argument(
        "--model", default="cnn", choices=["cnn", "lenet5", "conv2"], help="network (default cnn: 16-32 convs)"
    )
    p.add_argument("--epochs", type=common.positive_int, default=5)
    p.add_argument("--batch-size", type=common.positive_int, default=64)
    p.add_argument("--learning-rate", type=common.positive_float, default=1e-3)
    p.add_argument("--train-subset", type=common.positive_int, help="train on the first N images only (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = common.out_folder(args.out)
    d = data.load(args.dataset)
    x, y = d.x_train, d.y_train
    if args.train_subset:
        x, y = x[: args.train_subset], y[: args.train_subset]
    net = models.build(args.model)
    print(nn.summary(net, x.shape[1:]))
    params = net.init(jax.random.key(args.seed), x.shape[1:])
    t0 = time.perf_counter()
    state, hist = fit(
        net,
        params,
        (x, y),
        (d.x_test, d.y_test),
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        batch_size=args.batch_size,
        key=jax.random.key(args.seed + 1),
        n_classes=10,
    )
    seconds = time.perf_counter() - t0
    print(
        common.table(
            ["epoch", "train loss", "test loss", "test acc"],
            [
                [e, a, b, c]
                for e, a, b, c in zip(hist.epoch, hist.train_loss, hist.val_loss, hist.val_accuracy, strict=True)
            ],
        )
    )
    plt = common.plt
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(hist.epoch, hist.train_loss, "o-", label="train")
    ax[0].plot(hist.epoch, hist.val_loss, "o-", label="test")
    ax[0].set_xlabel("epoch"), ax[0].set_ylabel("cross-entropy"), ax[0].legend()
    ax[1].plot(hist.epoch, np.array(hist.val_accuracy) * 100, "o-")
    ax[1].set_xlabel("epoch"), ax[1].set_ylabel("test accuracy %")
    curves = common.save_figure(fig, out / "learning_curves.png")
    first = sorted(k for k in state.params if k.startswith("conv2d_"))[0]
    w = np.asarray(state.params[first]["w"])  # (kh, kw, c_in, f)
    n = w.shape[-1]
    cols = min(n, 8)
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(cols * 1.1, -(-n // cols) * 1.1), squeeze=False)
    for i, axi in enumerate(axes.flat):
        axi.set_axis_off()
        if i < n:
            axi.imshow(w[:, :, 0, i], cmap="RdBu_r")
    fig.suptitle(f"{first}: learned 3x3 filters" if w.shape[0] == 3 else f"{first}: learned filters")
    filters = common.save_figure(fig, out / "filters.png")
    results = {
        "dataset": args.dataset,
        "model": args.model,
        "history": hist.as_dict(),
        "test_accuracy": hist.val_accuracy[-1],
        "train_seconds": seconds,
        "figures": [str(curves), str(filters)],
    }
    common.save_results(out, results)
    print(f"test accuracy {hist.val_accuracy[-1] * 100:.2f}% in {seconds:.0f}s; results: {out / 'results.json'}")
    return results


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-cnn-mnist`): run `main(argv)`, return exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
