"""Symmetry breaking: one MLP on MNIST-1D initialized with zeros, with ones (a constant), and from
independent PRNG keys. With zeros the hidden layers get no gradient signal at all; with a constant
every hidden unit stays identical to its neighbours through all of training; only random init
learns well. Then 16 random keys trained at once (`jax.vmap`) show how much the initial draw
matters (the course's "mouse in a maze").

The table's "unit spread" columns measure the symmetry itself: for a hidden layer's weight matrix W
(one column per unit: the weights into that unit), the largest difference between any two units'
incoming weights, max over units i, j and inputs k of |W[k, i] - W[k, j]|, after training. Units that
start equal (a constant init) get equal gradients, so they stay equal: spread 0, the layer computes one
feature copied `width` times. Random init starts them apart, and training keeps them apart (a spread
of the order of the weights themselves). W1 is the first hidden layer (dense_0), W2 the second (dense_2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from funcnn import data, losses, nn, train

HIDDEN = ("dense_0", "dense_2")


def make_net(init: str, width: int) -> nn.Layer:
    w_init = {
        "zeros": jax.nn.initializers.zeros,
        "ones": jax.nn.initializers.ones,
        "random": jax.nn.initializers.glorot_normal(),
    }[init]
    b_init = jax.nn.initializers.ones if init == "ones" else jax.nn.initializers.zeros
    d = lambda n: nn.Dense(n, w_init=w_init, b_init=b_init)
    return nn.serial(d(width), nn.Tanh(), d(width), nn.Tanh(), d(10))


def unit_spread(w: np.ndarray) -> float:
    """max |w[k, i] - w[k, j]| over units i, j and inputs k: the largest difference between any two hidden
    units' incoming weight vectors (the columns of w). 0 means every unit of the layer is the same unit."""
    return float(np.max(np.abs(w[:, :, None] - w[:, None, :])))


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("symmetry_breaking", __doc__)
    p.add_argument("--epochs", type=common.positive_int, default=30)
    p.add_argument("--width", type=common.positive_int, default=64)
    p.add_argument("--population", type=common.positive_int, default=16, help="random keys trained at once")
    p.add_argument("--learning-rate", type=common.positive_float, default=3e-3)
    args = p.parse_args(argv)
    out = common.out_folder(args.out)
    d = data.load("mnist1d")
    x, y, xt, yt = map(jnp.asarray, (d.x_train, d.y_train, d.x_test, d.y_test))
    tx = optax.adam(args.learning_rate)
    batch = 100
    key = jax.random.key(0)
    idx = jnp.stack([train.batch_indices(jax.random.fold_in(key, e), len(x), batch) for e in range(args.epochs)])
    rows, results, curves = [], {"inits": {}}, {}
    for init in ("zeros", "ones", "random"):
        net = make_net(init, args.width)
        params = net.init(jax.random.key(1), (40,))
        epoch = jax.jit(train.make_epoch(train.make_train_step(net.apply, losses.softmax_cross_entropy, tx)))
        evaluate = jax.jit(train.make_evaluate(net.apply, losses.softmax_cross_entropy))
        grads = jax.grad(lambda p_, net=net: losses.softmax_cross_entropy(net.apply(p_, x), y))(params)
        state, accs = train.init_state(params, tx), []
        for e in range(args.epochs):
            state, _ = epoch(state, x, y, idx[e])
            accs.append(float(evaluate(state.params, xt, yt)["accuracy"]))
        curves[init] = accs
        rec = {
            "test_accuracy": accs[-1],
            "hidden_grad_norm_at_init": {n: float(jnp.linalg.norm(grads[n]["w"])) for n in HIDDEN},
            "hidden_weight_change": {n: float(jnp.max(jnp.abs(state.params[n]["w"] - params[n]["w"]))) for n in HIDDEN},
            "unit_spread_after_training": {n: unit_spread(np.asarray(state.params[n]["w"])) for n in HIDDEN},
        }
        results["inits"][init] = rec
        rows.append(
            [
                init,
                accs[-1],
                rec["hidden_grad_norm_at_init"]["dense_0"],
                rec["hidden_weight_change"]["dense_0"],
                rec["unit_spread_after_training"]["dense_0"],
                rec["unit_spread_after_training"]["dense_2"],
            ]
        )
    print(
        common.table(
            ["init", "test acc", "|grad W1| at init", "max |W1 - W1_0|", "unit spread W1", "unit spread W2"], rows
        )
    )
    print(
        "unit spread W1, W2: after training, the largest difference between two hidden units' incoming weights\n"
        "(max over units i, j and inputs k of |W[k, i] - W[k, j]|, W1 = dense_0, W2 = dense_2). 0: the units are\n"
        "still identical copies of one another (the symmetry never broke); random init keeps them apart."
    )

    # Many random draws at once: the population axis is just a leading axis on params and state.
    net = make_net("random", args.width)
    keys = jax.random.split(jax.random.key(2), args.population)
    pop = jax.vmap(net.init, in_axes=(0, None))(keys, (40,))
    states = jax.vmap(lambda p_: train.init_state(p_, tx))(pop)
    pop_epoch = jax.jit(
        jax.vmap(
            train.make_epoch(train.make_train_step(net.apply, losses.softmax_cross_entropy, tx)),
            in_axes=(0, None, None, None),
        )
    )
    pop_eval = jax.jit(jax.vmap(train.make_evaluate(net.apply, losses.softmax_cross_entropy), in_axes=(0, None, None)))
    for e in range(args.epochs):
        states, _ = pop_epoch(states, x, y, idx[e])
    pop_acc = np.asarray(pop_eval(states.params, xt, yt)["accuracy"])
    results["population"] = {
        "test_accuracy": pop_acc.tolist(),
        "mean": float(pop_acc.mean()),
        "std": float(pop_acc.std()),
        "min": float(pop_acc.min()),
        "max": float(pop_acc.max()),
    }
    print(
        f"\n{args.population} random keys, same data order: test accuracy {pop_acc.mean():.3f} ± {pop_acc.std():.3f} "
        f"(min {pop_acc.min():.3f}, max {pop_acc.max():.3f})"
    )

    plt = common.plt
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for init, accs in curves.items():
        ax[0].plot(range(1, args.epochs + 1), np.array(accs) * 100, label=f"{init} init")
    ax[0].set_xlabel("epoch"), ax[0].set_ylabel("test accuracy %"), ax[0].legend()
    ax[1].hist(pop_acc * 100, bins=8, color="tab:blue")
    ax[1].set_xlabel("test accuracy %"), ax[1].set_ylabel("random inits")
    ax[1].set_title(f"{args.population} random draws, same data and training")
    fig.tight_layout()
    path = common.save_figure(fig, out / "symmetry_breaking.png")
    results["figures"] = [str(path)]
    common.save_results(out, results)
    print(f"results: {out / 'results.json'}  figure: {path}")
    return results


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-symmetry-breaking`): run `main(argv)`, return exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
