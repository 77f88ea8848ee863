"""Cost functions on real data: error vs loss vs cost; MSE (1/2m) and SSE; the MSE of a one-weight
linear model is a parabola with one global minimum (gradient-descent path drawn on it); an asymmetric
loss that punishes under-prediction pulls the fit upward; accuracy vs cost on a classifier.

Regression data: monthly S&P 500 and NASDAQ closes (1990-2017, Yahoo Finance) from the sample data
shipped inside matplotlib's wheel: predict NASDAQ (in thousands) from the S&P 500 (in thousands).
"""

from __future__ import annotations

import csv
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax

from experiments import common
from funcnn import data, fit, losses, nn


def stock_indices() -> tuple[np.ndarray, np.ndarray]:
    """(S&P 500, NASDAQ) monthly closes in thousands, rows where both are present."""
    path = Path(matplotlib.get_data_path()) / "sample_data" / "Stocks.csv"
    with open(path) as f:
        rows = [r for r in csv.reader(line for line in f if not line.startswith("#"))]
    head, body = rows[0], rows[1:]
    i, j = head.index("^GSPC"), head.index("^IXIC")
    pairs = [(float(r[i]), float(r[j])) for r in body if r[i] and r[j]]
    a = np.array(pairs, np.float32) / 1000.0
    return a[:, 0], a[:, 1]


def fit_one_weight(x, y, loss, lr, steps, w0=0.0):
    """Gradient descent on J(w) = loss(w * x, y); returns the path of w."""
    grad = jax.jit(jax.grad(lambda w: loss((w * x)[:, None], y[:, None])))
    path = [w0]
    w = jnp.float32(w0)
    for _ in range(steps):
        w = w - lr * grad(w)
        path.append(float(w))
    return np.array(path)


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("cost_functions", __doc__)
    p.add_argument("--steps", type=common.positive_int, default=25, help="gradient-descent steps on the parabola")
    p.add_argument(
        "--under-weight", type=common.positive_float, default=4.0, help="asymmetric loss: weight on under-prediction"
    )
    p.add_argument("--epochs", type=common.positive_int, default=30, help="classifier epochs")
    args = p.parse_args(argv)
    out = common.out_folder(args.out)
    x, y = stock_indices()
    m = len(x)
    results = {"n_examples": m}

    # Error, loss, cost: a per-output difference, a per-example penalty, the average over examples.
    w_demo = 2.0
    err = np.asarray(losses.error((w_demo * x)[:, None], y[:, None]))[:, 0]
    per_example = 0.5 * err**2
    mse = float(losses.mse((w_demo * x)[:, None], y[:, None]))
    sse = float(losses.sse((w_demo * x)[:, None], y[:, None]))
    print(f"{m} months; model y_hat = w * x with w = {w_demo}")
    print(
        common.table(
            ["month", "x (S&P)", "y (NASDAQ)", "error y_hat - y", "loss 1/2 e^2"],
            [[k, float(x[k]), float(y[k]), float(err[k]), float(per_example[k])] for k in range(5)],
        )
    )
    print(f"cost: MSE = 1/(2m) sum e^2 = {mse:.4f};  SSE = 1/2 sum e^2 = {sse:.4f} (= m * MSE = {m * mse:.4f})\n")
    results.update(mse_at_w2=mse, sse_at_w2=sse, mean_per_example_loss=float(per_example.mean()))

    # The MSE surface of the one-weight model: a parabola with a single minimum.
    ws = np.linspace(-1, 4, 201, dtype=np.float32)
    surface = np.array([float(losses.mse((w * x)[:, None], y[:, None])) for w in ws])
    w_closed = float(np.sum(x * y) / np.sum(x * x))  # dJ/dw = 0
    lr = 1.0 / float(np.mean(x * x)) * 0.5
    path = fit_one_weight(x, y, losses.mse, lr, args.steps, w0=-0.5)
    path_j = [float(losses.mse((w * x)[:, None], y[:, None])) for w in path]
    second_diff = np.diff(surface, 2)
    results.update(
        w_closed_form=w_closed,
        w_gradient_descent=float(path[-1]),
        parabola_convex=bool(np.all(second_diff > 0)),
        surface_argmin=float(ws[np.argmin(surface)]),
    )

    # Asymmetric loss: under-prediction costs `under_weight` times more, so the fit moves up.
    w_sym = fit_one_weight(x, y, losses.mse, lr, 200)[-1]
    asym = lambda yh, t: losses.asymmetric_mse(yh, t, under_weight=args.under_weight, over_weight=1.0)
    w_asym = fit_one_weight(x, y, asym, lr / args.under_weight, 800)[-1]
    under_sym = float(np.mean(w_sym * x < y))
    under_asym = float(np.mean(w_asym * x < y))
    results.update(
        w_symmetric=float(w_sym),
        w_asymmetric=float(w_asym),
        fraction_under_predicted_symmetric=under_sym,
        fraction_under_predicted_asymmetric=under_asym,
    )
    print(
        common.table(
            ["fit", "w", "months under-predicted"],
            [
                ["MSE", float(w_sym), under_sym],
                [f"asymmetric (x{args.under_weight:g} under)", float(w_asym), under_asym],
            ],
        )
    )

    # Accuracy vs cost on a classifier: accuracy says how well; only the cost has a gradient.
    d = data.load("spirals", n=512)
    net = nn.serial(nn.Dense(32), nn.Tanh(), nn.Dense(32), nn.Tanh(), nn.Dense(2))
    params = net.init(jax.random.key(0), (2,))
    g_acc = jax.grad(lambda p: losses.accuracy(net.apply(p, d.x_train), d.y_train))(params)
    g_ce = jax.grad(lambda p: losses.softmax_cross_entropy(net.apply(p, d.x_train), d.y_train))(params)
    norm = lambda g: float(optax.tree.norm(g))
    _, hist = fit(
        net,
        params,
        (d.x_train, d.y_train),
        (d.x_test, d.y_test),
        learning_rate=1e-2,
        epochs=args.epochs,
        batch_size=32,
        key=jax.random.key(1),
        progress=False,
    )
    results.update(
        grad_norm_accuracy=norm(g_acc),
        grad_norm_cross_entropy=norm(g_ce),
        classifier_history={"val_loss": hist.val_loss, "val_accuracy": hist.val_accuracy},
    )
    print(
        f"\nclassifier on two spirals: |d accuracy / d params| = {norm(g_acc):.3g} (flat almost everywhere), "
        f"|d cost / d params| = {norm(g_ce):.3g}"
    )
    print(f"after {args.epochs} epochs: test accuracy {hist.val_accuracy[-1]:.3f}, test cost {hist.val_loss[-1]:.3f}")

    plt = common.plt
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    ax[0].plot(ws, surface, label="J(w) = 1/(2m) sum (w x - y)^2")
    ax[0].plot(path, path_j, "o-", color="tab:red", ms=3, label="gradient descent")
    ax[0].axvline(w_closed, color="k", ls=":", label=f"minimum w = {w_closed:.3f}")
    ax[0].set_xlabel("w"), ax[0].set_ylabel("MSE cost"), ax[0].legend(fontsize=8)
    order = np.argsort(x)
    ax[1].scatter(x, y, s=6, color="0.5", label="months")
    ax[1].plot(x[order], w_sym * x[order], label=f"MSE fit (w = {w_sym:.2f})")
    ax[1].plot(x[order], w_asym * x[order], label=f"asymmetric fit (w = {w_asym:.2f})")
    ax[1].set_xlabel("S&P 500 (thousands)"), ax[1].set_ylabel("NASDAQ (thousands)"), ax[1].legend(fontsize=8)
    ax[2].plot(hist.epoch, hist.val_loss, "o-", ms=3, label="cost (cross-entropy)")
    ax[2].plot(hist.epoch, hist.val_accuracy, "s-", ms=3, label="accuracy")
    ax[2].set_xlabel("epoch"), ax[2].legend(fontsize=8), ax[2].set_title("classifier: accuracy vs cost")
    fig.tight_layout()
    path_png = common.save_figure(fig, out / "cost_functions.png")
    results["figures"] = [str(path_png)]
    common.save_results(out, results)
    print(f"results: {out / 'results.json'}  figure: {path_png}")
    return results


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-cost-functions`): run `main(argv)`, return exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
