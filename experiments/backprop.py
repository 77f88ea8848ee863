"""Backpropagation by hand vs `jax.grad`: a 2-3-1 sigmoid network learns XOR by gradient descent on
the SSE cost, once with the delta rule written out by hand (w <- w + lr * sum_j (y_j - y_hat_j)
y_hat_j (1 - y_hat_j) x_j, propagated back through the hidden layer) and once with `jax.grad` and
`optax.sgd`, from the same init. The two weight trajectories coincide; the error falls below the
"small enough" threshold.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from funcnn import losses, nn, train

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
Y = np.array([[0], [1], [1], [0]], np.float32)


def hand_step(p, lr):
    """One full-batch gradient-descent step on SSE = 1/2 sum (y - y_hat)^2, derived by hand."""
    w1, b1, w2, b2 = p["dense_0"]["w"], p["dense_0"]["b"], p["dense_2"]["w"], p["dense_2"]["b"]
    h = 1 / (1 + jnp.exp(-(X @ w1 + b1[None])))
    y_hat = 1 / (1 + jnp.exp(-(h @ w2 + b2[None])))
    delta_out = (Y - y_hat) * y_hat * (1 - y_hat)  # (y_j - y_hat_j) y_hat_j (1 - y_hat_j)
    delta_hidden = (delta_out @ w2.T) * h * (1 - h)  # the same rule, one layer back
    return {
        "dense_0": {"w": w1 + lr * X.T @ delta_hidden, "b": b1 + lr * delta_hidden.sum(0)},
        "sigmoid_1": {},
        "dense_2": {"w": w2 + lr * h.T @ delta_out, "b": b2 + lr * delta_out.sum(0)},
        "sigmoid_3": {},
    }


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("backprop", __doc__)
    p.add_argument("--steps", type=common.positive_int, default=4000)
    p.add_argument("--learning-rate", type=common.positive_float, default=2.0)
    p.add_argument("--threshold", type=common.positive_float, default=0.01, help='"error small enough": SSE below this')
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = common.out_folder(args.out)
    net = nn.serial(nn.Dense(3), nn.Sigmoid(), nn.Dense(1), nn.Sigmoid())
    params = net.init(jax.random.key(args.seed), (2,))
    tx = optax.sgd(args.learning_rate)
    auto_step = train.make_train_step(net.apply, losses.sse, tx)

    def both(carry, _):
        hand, state = carry
        hand = hand_step(hand, args.learning_rate)
        state, m = auto_step(state, (X, Y))
        diff = jnp.max(
            jnp.stack(
                [
                    jnp.max(jnp.abs(a - b))
                    for a, b in zip(jax.tree.leaves(hand), jax.tree.leaves(state.params), strict=True)
                ]
            )
        )
        return (hand, state), (diff, m["loss"], losses.sse(net.apply(hand, X), Y))

    run = jax.jit(lambda p: jax.lax.scan(both, (p, train.init_state(p, tx)), None, length=args.steps))
    (_, state), (diffs, auto_loss, hand_loss) = run(params)
    diffs, auto_loss, hand_loss = map(np.asarray, (diffs, auto_loss, hand_loss))
    final_sse = float(losses.sse(net.apply(state.params, X), Y))
    reached = int(np.argmax(hand_loss < args.threshold)) + 1 if np.any(hand_loss < args.threshold) else None
    plt = common.plt
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].plot(hand_loss, label="by hand (delta rule)", lw=3)
    ax[0].plot(auto_loss, "--", label="jax.grad + optax.sgd")
    ax[0].axhline(args.threshold, color="k", lw=0.8, ls=":", label="small enough")
    ax[0].set_yscale("log"), ax[0].set_xlabel("step"), ax[0].set_ylabel("SSE"), ax[0].legend()
    ax[1].plot(np.maximum(diffs, 1e-12))
    ax[1].set_yscale("log"), ax[1].set_xlabel("step"), ax[1].set_ylabel("max |w_hand - w_grad|")
    fig.tight_layout()
    fig_path = common.save_figure(fig, out / "backprop.png")
    preds = np.asarray(net.apply(state.params, X))[:, 0]
    print(
        common.table(
            ["x1", "x2", "y", "y_hat"],
            [[int(a), int(b), int(t), float(v)] for (a, b), t, v in zip(X, Y[:, 0], preds, strict=True)],
        )
    )
    print(
        f"\nmax weight difference over {args.steps} steps: {diffs.max():.3g}; final SSE {final_sse:.4g}; "
        f"below {args.threshold} after {reached} steps"
    )
    results = {
        "max_weight_difference": float(diffs.max()),
        "final_sse": final_sse,
        "sse_after_first_step": float(hand_loss[0]),
        "threshold": args.threshold,
        "steps_to_threshold": reached,
        "predictions": preds.tolist(),
        "figures": [str(fig_path)],
    }
    common.save_results(out, results)
    print(f"results: {out / 'results.json'}")
    return results


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-backprop`): run `main(argv)`, return exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
