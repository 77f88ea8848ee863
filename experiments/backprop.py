"""Backpropagation by hand vs `jax.grad`, on the course's 2-2-2-2 sigmoid network (its textbook weights,
`forward_pass.py`: [1, -1] -> [0.62, 0.83]) taught the target [1, 0] for the input [1, -1] by gradient
descent on the SSE cost, once with the delta rule written out by hand and once with `jax.grad` and
`optax.sgd`, from the same weights. The delta rule, for SSE = 1/2 sum (y - y_hat)^2 and sigmoid units:
the output layer's delta_j = (y_j - y_hat_j) y_hat_j (1 - y_hat_j); a hidden layer's delta_i =
(sum_j w_ij delta_j) h_i (1 - h_i); every weight w_ij <- w_ij + lr * h_i delta_j (a bias: lr * delta_j).
The first step's deltas are printed layer by layer; the two weight trajectories coincide and the error
falls below the "small enough" threshold. A second demo runs the same rule on a 2-3-1 net learning XOR
(`--xor-steps 0` skips it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from experiments.forward_pass import toy_network
from funcnn import losses, nn, train

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
XOR_Y = np.array([[0], [1], [1], [0]], np.float32)


def hand_step(p, x, y, lr):
    """One full-batch gradient-descent step on SSE by the delta rule, for a serial net of Dense + Sigmoid
    pairs (`dense_0`, `sigmoid_1`, `dense_2`, ...): (new params, each Dense layer's deltas, input first)."""
    dense = sorted((n for n in p if n.startswith("dense_")), key=lambda n: int(n.split("_")[1]))
    hs = [x]  # each layer's input, then the output
    for n in dense:
        hs.append(1 / (1 + jnp.exp(-(hs[-1] @ p[n]["w"] + p[n]["b"][None]))))
    delta = (y - hs[-1]) * hs[-1] * (1 - hs[-1])  # (y_j - y_hat_j) y_hat_j (1 - y_hat_j)
    new, deltas = dict(p), []
    for i in reversed(range(len(dense))):
        w, b = p[dense[i]]["w"], p[dense[i]]["b"]
        new[dense[i]] = {"w": w + lr * hs[i].T @ delta, "b": b + lr * delta.sum(0)}
        deltas.insert(0, delta)
        delta = (delta @ w.T) * hs[i] * (1 - hs[i])  # the same rule, one layer back
    return new, deltas


def train_both(net, params, x, y, lr, steps):
    """Both trajectories from `params`, `steps` steps each: (auto params, max |w_hand - w_grad| per step,
    SSE by hand per step, SSE of jax.grad per step)."""
    tx = optax.sgd(lr)
    auto_step = train.make_train_step(net.apply, losses.sse, tx)

    def both(carry, _):
        hand, state = carry
        hand, _ = hand_step(hand, x, y, lr)
        state, m = auto_step(state, (x, y))
        pairs = zip(jax.tree.leaves(hand), jax.tree.leaves(state.params), strict=True)
        diff = jnp.max(jnp.stack([jnp.max(jnp.abs(a - b)) for a, b in pairs]))
        return (hand, state), (diff, m["loss"], losses.sse(net.apply(hand, x), y))

    run = jax.jit(lambda p: jax.lax.scan(both, (p, train.init_state(p, tx)), None, length=steps))
    (_, state), curves = run(params)
    return (state.params, *map(np.asarray, curves))


def summarize(net, params, x, y, lr, steps, threshold):
    auto, diffs, auto_loss, hand_loss = train_both(net, params, x, y, lr, steps)
    below = np.flatnonzero(hand_loss < threshold)
    return {
        "max_weight_difference": float(diffs.max()),
        "sse_before": float(losses.sse(net.apply(params, x), y)),
        "sse_after_first_step": float(hand_loss[0]),
        "final_sse": float(losses.sse(net.apply(auto, x), y)),
        "steps_to_threshold": int(below[0]) + 1 if below.size else None,
        "predictions": np.asarray(net.apply(auto, x)).tolist(),
        "curves": (diffs, auto_loss, hand_loss),
    }


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("backprop", __doc__)
    p.add_argument("--steps", type=common.positive_int, default=200, help="steps on the course's net")
    p.add_argument("--learning-rate", type=common.positive_float, default=2.0)
    p.add_argument("--target", type=float, nargs=2, default=[1.0, 0.0], metavar=("Y1", "Y2"))
    p.add_argument("--threshold", type=common.positive_float, default=0.01, help='"error small enough": SSE below this')
    p.add_argument("--xor-steps", type=common.non_negative_int, default=4000, help="the XOR demo's steps (0: none)")
    p.add_argument("--seed", type=int, default=0, help="the XOR net's init")
    args = p.parse_args(argv)
    out = common.out_folder(args.out)

    # The course's net: one example, [1, -1] -> the target, from the textbook weights.
    net, params = toy_network()
    x, y = np.array([[1.0, -1.0]], np.float32), np.array([args.target], np.float32)
    _, deltas = hand_step(params, x, y, args.learning_rate)
    grads = jax.grad(lambda q: losses.sse(net.apply(q, x), y))(params)
    for i, d in enumerate(deltas):  # the delta rule's bias step is -dSSE/db: check it against jax.grad
        np.testing.assert_allclose(np.asarray(d).sum(0), -np.asarray(grads[f"dense_{2 * i}"]["b"]), atol=1e-6)
    vec = lambda a: "[" + ", ".join(f"{v:+.4f}" for v in np.asarray(a).ravel()) + "]"
    rows = [[f"dense_{2 * i} (layer {i + 1})", vec(d)] for i, d in enumerate(deltas)]
    print(
        f"the course's 2-2-2-2 net: input [1, -1], output {vec(net.apply(params, x))}, target {vec(y)}; "
        "the first step's deltas (each equal to -dSSE/db, checked against jax.grad):"
    )
    print(common.table(["layer", "delta"], rows))
    course = summarize(net, params, x, y, args.learning_rate, args.steps, args.threshold)
    course["first_step_deltas"] = [np.asarray(d)[0].tolist() for d in deltas]
    results = {"course": course, "threshold": args.threshold}
    runs = [("course 2-2-2-2, [1, -1] -> target", course)]
    if args.xor_steps:
        xor_net = nn.serial(nn.Dense(3), nn.Sigmoid(), nn.Dense(1), nn.Sigmoid())
        xor_params = xor_net.init(jax.random.key(args.seed), (2,))
        xor = summarize(xor_net, xor_params, XOR_X, XOR_Y, args.learning_rate, args.xor_steps, args.threshold)
        results["xor"] = xor
        runs.append(("XOR 2-3-1", xor))

    plt = common.plt
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for (label, r), color in zip(runs, ("tab:blue", "tab:orange"), strict=False):
        diffs, auto_loss, hand_loss = r.pop("curves")
        steps = np.arange(1, len(hand_loss) + 1)  # SSE after each step (jax.grad's loss is before it)
        ax[0].plot(steps, hand_loss, color=color, lw=3, alpha=0.5, label=f"{label}: by hand (delta rule)")
        ax[0].plot(steps[:-1], auto_loss[1:], "--", color="k", lw=0.8, label=f"{label}: jax.grad + optax.sgd")
        ax[1].plot(steps, np.maximum(diffs, 1e-12), color=color, label=label)
    ax[0].axhline(args.threshold, color="k", lw=0.8, ls=":", label="small enough")
    ax[0].set_xscale("log"), ax[0].set_yscale("log"), ax[0].set_xlabel("step"), ax[0].set_ylabel("SSE")
    ax[0].legend(fontsize=7)
    ax[1].set_xscale("log"), ax[1].set_yscale("log"), ax[1].set_xlabel("step")
    ax[1].set_ylabel("max |w_hand - w_grad|"), ax[1].legend(fontsize=7)
    fig.tight_layout()
    results["figures"] = [str(common.save_figure(fig, out / "backprop.png"))]
    for label, r in runs:
        print(
            f"{label}: SSE {r['sse_before']:.4g} -> {r['final_sse']:.4g}, below {args.threshold} after "
            f"{r['steps_to_threshold']} steps; max weight difference hand vs jax.grad {r['max_weight_difference']:.3g}"
        )
    if "xor" in results:
        preds = [row[0] for row in results["xor"]["predictions"]]
        rows = [[*map(int, a), int(t), v] for a, t, v in zip(XOR_X, XOR_Y[:, 0], preds, strict=True)]
        print(common.table(["x1", "x2", "y", "y_hat"], rows))
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
