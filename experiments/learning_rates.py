"""Learning rates: (a) too high diverges or stalls, too low crawls, a good one learns (one PNG of
loss curves from the same init and data order); (b) constant vs step decay vs exponential decay vs
plateau-driven decay on the same net and data (validation loss and learning rate per epoch).
"""

from __future__ import annotations

import jax
import numpy as np
import optax

from experiments import common
from funcnn import data, fit, models, schedules, train


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("learning_rates", __doc__)
    p.add_argument("--epochs", type=common.positive_int, default=40, help="epochs for part (b) (default 40)")
    p.add_argument("--sweep-epochs", type=common.positive_int, default=15, help="epochs for part (a)")
    p.add_argument("--batch-size", type=common.positive_int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = common.out_folder(args.out)
    d = data.load("mnist1d")
    (x, y), (xv, yv) = data.train_val_split(d.x_train, d.y_train, 500, jax.random.key(args.seed))
    net = models.mlp((100, 100))
    params = net.init(jax.random.key(args.seed + 1), x.shape[1:])
    plt = common.plt

    # (a) the same init, the same batches, plain SGD at rates from far too low to far too high.
    rates = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
    sweep = train.lr_sweep(
        net,
        params,
        (x, y),
        rates=rates,
        epochs=args.sweep_epochs,
        batch_size=args.batch_size,
        key=jax.random.key(args.seed + 2),
        optimizer=optax.sgd,
    )
    # Each step's batch loss on a log axis of steps, so that a rate that diverges within its first epoch
    # still shows its climb (its epoch means are NaN): its line runs to its last finite loss (clipped at
    # the top of the axes), and an x at the top marks the step whose loss was no longer finite.
    fig, ax = plt.subplots(figsize=(6.5, 4))
    top = max(1000.0, sweep["initial_loss"] * 2)
    diverged = {}
    for r, curve in zip(rates, sweep["step_loss"], strict=True):
        bad = np.flatnonzero(~np.isfinite(curve))
        n = int(bad[0]) if bad.size else len(curve)  # the losses at steps 1..n are finite
        label = f"lr={r:g}"
        if bad.size:
            diverged[r] = n + 1
            label += f" (diverged at step {n + 1})"
        steps = np.arange(1, n + 1)
        (drawn,) = ax.plot(steps, np.minimum(curve[:n], top), lw=1, label=label)
        if bad.size:
            last = min(curve[n - 1], top) if n else sweep["initial_loss"]
            ax.plot([max(n, 1), n + 1], [last, top], ":", color=drawn.get_color())
            ax.plot(n + 1, top, "x", ms=10, mew=2.5, color=drawn.get_color(), clip_on=False)
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_ylim(top=top)
    ax.set_xlabel(f"SGD step ({sweep['step_loss'].shape[1] // args.sweep_epochs} per epoch)")
    ax.set_ylabel("training loss (cross-entropy of the step's batch)")
    ax.set_title("SGD on MNIST-1D from one init: too low crawls, too high diverges", pad=12)
    ax.legend(fontsize=8)
    fig_a = common.save_figure(fig, out / "lr_sweep.png")
    final = sweep["loss"][:, -1]
    best = int(np.nanargmin(np.where(np.isfinite(final), final, np.nan)))

    # (b) schedules on Adam from the same init and data order.
    S = len(x) // args.batch_size
    lr0 = 1e-2
    policies = {
        "constant": lr0,
        "step decay (halve every 5 epochs)": schedules.step_decay(lr0, 0.5, 5, S),
        "exponential decay (x0.9 per epoch)": schedules.exponential_decay(lr0, 0.9, S),
        "plateau (x0.1, patience 3)": schedules.Plateau(lr0, factor=0.1, patience=3, cooldown=0, min_lr=1e-5),
    }
    histories = {}
    for name, lr in policies.items():
        _, h = fit(
            net,
            params,
            (x, y),
            (xv, yv),
            optimizer=optax.adam,
            learning_rate=lr,
            epochs=args.epochs,
            batch_size=args.batch_size,
            key=jax.random.key(args.seed + 3),
            progress=False,
        )
        histories[name] = h.as_dict()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for name, h in histories.items():
        ax[0].plot(h["epoch"], h["val_loss"], label=name)
        ax[1].plot(h["epoch"], h["learning_rate"], label=name)
    ax[0].set_xlabel("epoch"), ax[0].set_ylabel("validation loss"), ax[0].legend(fontsize=8)
    ax[1].set_xlabel("epoch"), ax[1].set_ylabel("learning rate in force"), ax[1].set_yscale("log")
    fig_b = common.save_figure(fig, out / "schedules.png")

    print(
        common.table(
            ["lr (SGD)", "loss after epoch 1", f"loss after epoch {args.sweep_epochs}", "diverged at step"],
            [[r, float(c[0]), float(c[-1]), diverged.get(r, "-")] for r, c in zip(rates, sweep["loss"], strict=True)],
        )
    )
    print()
    print(
        common.table(
            ["schedule", "best val loss", "final val loss", "final val acc", "final lr"],
            [
                [n, min(h["val_loss"]), h["val_loss"][-1], h["val_accuracy"][-1], h["learning_rate"][-1]]
                for n, h in histories.items()
            ],
        )
    )
    results = {
        "sweep": {
            "rates": rates,
            "loss": [[float(v) for v in c] for c in sweep["loss"]],
            "initial_loss": sweep["initial_loss"],
            "best_rate": rates[best],
            "diverged_at_step": {f"{r:g}": k for r, k in diverged.items()},
        },
        "schedules": histories,
        "figures": [str(fig_a), str(fig_b)],
    }
    common.save_results(out, results)
    print(f"\nresults: {out / 'results.json'}")
    return results


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-learning-rates`): run `main(argv)`, return exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
