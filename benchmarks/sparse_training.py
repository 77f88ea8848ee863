"""Sparse training's cost (`python -m benchmarks.sparse_training [--tiny]`):

1. a RigL population's step (funcnn: `sparsity.rigl` stacked over the members, `train.make_train_step`, vmapped)
   against the same method hand-written in JAX (masks as bool arrays beside the params, masked Adam, the same
   drop-and-grow by argsort under a `lax.cond`, Adam's moments of regrown weights zeroed by hand): steps/s ratio;
   the same two with no mask update at all (every = 10^9): the wrapper's own cost per step;
2. the share of a step that mask updates take at every = 100: the same population with masks updated every 100
   steps against every 10^9 (the `cond` there, never taken), and the cost of one update (every = 1).

MNIST-1D MLP 40-300-300-10, Adam 2e-3, batch 100, 8 members at density 0.1 (ERK), one compiled `lax.scan` of
`steps` steps per timed call; the median of `repeats` calls after a warm-up call (compile excluded).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import data, losses, models, prune, sparsity, train


def _timed(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _setup(members: int, steps: int, batch: int = 100):
    d = data.load("mnist1d")
    x, y = jnp.asarray(d.x_train), jnp.asarray(d.y_train)
    net = models.build("mlp-300-300")
    keys = jax.random.split(jax.random.key(0), members)
    params = jax.vmap(lambda k: net.init(k, (40,)))(keys)
    idx = jax.vmap(lambda k: jax.random.randint(k, (steps, batch), 0, len(x)))(
        jax.random.split(jax.random.key(1), members)
    )
    return net, x, y, keys, params, idx


def funcnn_rigl(members: int, steps: int, every: int, repeats: int, density: float = 0.1) -> float:
    """Seconds per call of `steps` steps of the funcnn RigL population."""
    net, x, y, keys, params, idx = _setup(members, steps)
    adam = optax.adam(2e-3)
    txs = [sparsity.rigl(adam, density=density, every=every, fraction=0.3, key=k, end=10**9) for k in keys]
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), params)
    tx, numbers, skeys = sparsity.stack(txs, shapes)
    step = train.make_train_step(net, losses.softmax_cross_entropy, tx)

    def member(p, n, k, i):
        opt = tx.init_with(p, n, k)
        state = train.TrainState(sparsity.sparsify(p, opt), opt, jnp.zeros((), jnp.int32))
        state, _ = jax.lax.scan(lambda s, b: step(s, (x[b], y[b])), state, i)
        return state.params

    run = jax.jit(jax.vmap(member))
    return _timed(lambda: run(params, numbers, skeys, idx), repeats)


def hand_rigl(members: int, steps: int, every: int, repeats: int, density: float = 0.1) -> float:
    """The same RigL written by hand: ERK masks, masked Adam, drop-and-grow under a cond, moments zeroed."""
    net, x, y, keys, params, idx = _setup(members, steps)
    adam = optax.adam(2e-3)
    one = jax.tree.map(lambda a: a[0], params)
    erk = prune.layer_densities(one, density, "erk")
    names = [prune.path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(one)]

    def init_masks(k, p):
        leaves, treedef = jax.tree.flatten(p)
        out = []
        for i, (name, w) in enumerate(zip(names, leaves, strict=True)):
            if name not in erk:
                out.append(jnp.ones(w.shape, bool))
                continue
            count = max(1, round(erk[name] * w.size))
            order = jnp.argsort(jax.random.uniform(jax.random.fold_in(k, i), (w.size,)))
            out.append(jnp.zeros(w.size, bool).at[order[:count]].set(True).reshape(w.shape))
        return jax.tree.unflatten(treedef, out)

    def update_leaf(m, w, g, f):
        flat = m.reshape(-1)
        k = jnp.floor(jnp.sum(flat) * f).astype(jnp.int32)
        rank = lambda s: jnp.argsort(jnp.argsort(s))  # each entry's place in ascending order
        kept = flat & (rank(jnp.where(flat, jnp.abs(w.reshape(-1)), jnp.inf)) >= k)
        grown = ~kept & (rank(jnp.where(kept, jnp.inf, -jnp.abs(g.reshape(-1)))) < k)
        return (kept | grown).reshape(m.shape)

    def member(p, k, batches):
        masks = init_masks(k, p)
        p = jax.tree.map(lambda a, m: a * m, p, masks)
        opt = adam.init(p)

        def body(carry, b):
            p, opt, masks, t = carry
            g = jax.grad(lambda q: losses.softmax_cross_entropy(net.apply(q, x[b]), y[b]))(p)
            t = t + 1

            def change(args):
                p, opt, masks = args
                f = 0.15 * (1 + jnp.cos(jnp.pi * t / 10**9))
                new = {k_: {n_: (update_leaf(m, p[k_][n_], g[k_][n_], f) if m.ndim > 1 else m)
                            for n_, m in layer.items()} for k_, layer in masks.items()}  # fmt: skip
                grown = jax.tree.map(lambda a, b_: a & ~b_, new, masks)
                adam_state = opt[0]._replace(
                    mu=jax.tree.map(lambda a, r: jnp.where(r, 0.0, a), opt[0].mu, grown),
                    nu=jax.tree.map(lambda a, r: jnp.where(r, 0.0, a), opt[0].nu, grown),
                )
                return jax.tree.map(lambda a, m: a * m, p, new), (adam_state, *opt[1:]), new

            def plain(args):
                p, opt, masks = args
                u, opt = adam.update(jax.tree.map(lambda a, m: a * m, g, masks), opt, p)
                return jax.tree.map(lambda a, m: a * m, optax.apply_updates(p, u), masks), opt, masks

            p, opt, masks = jax.lax.cond(t % every == 0, change, plain, (p, opt, masks))
            return (p, opt, masks, t), None

        return jax.lax.scan(body, (p, opt, masks, jnp.zeros((), jnp.int32)), batches)[0][0]

    run = jax.jit(jax.vmap(member))
    return _timed(lambda: run(params, keys, idx), repeats)


def measure(tiny: bool = False) -> dict:
    """Both figures, as `make bench` records them."""
    members, steps, repeats = (2, 20, 1) if tiny else (8, 400, 5)
    every = 10 if tiny else 100
    funcnn_s = funcnn_rigl(members, steps, every, repeats)
    hand_s = hand_rigl(members, steps, every, repeats)
    never = funcnn_rigl(members, steps, 10**9, repeats)
    hand_never = hand_rigl(members, steps, 10**9, repeats)
    always = funcnn_rigl(members, steps, 1, repeats)
    update_s = max(0.0, (always - never) / steps)  # one mask update's seconds, beyond a plain step
    return {
        "members": members,
        "steps": steps,
        "every": every,
        "funcnn_s": funcnn_s,
        "hand_s": hand_s,
        "ratio_vs_hand": hand_s / funcnn_s,
        "never_s": never,
        "hand_never_s": hand_never,
        "ratio_vs_hand_no_updates": hand_never / never,
        "every_1_s": always,
        "mask_share": max(0.0, (funcnn_s - never) / funcnn_s),
        "update_share_per_100": update_s / 100 / (never / steps),
    }


def markdown(out: dict) -> str:
    """The sparse-training lines of the benchmark report."""
    return (
        f"Sparse training (MNIST-1D MLP, {out['members']} RigL members at density 0.1, {out['steps']} steps a call): "
        f"funcnn's population {out['members'] * out['steps'] / out['funcnn_s']:,.0f} member-steps/s, hand-written "
        f"JAX {out['members'] * out['steps'] / out['hand_s']:,.0f}: **{out['ratio_vs_hand']:.2f}x** (its masks sorted "
        f"by argsort; with no mask update in either, the wrapper against the hand-written masked step: "
        f"{out['ratio_vs_hand_no_updates']:.2f}x). Mask updates at "
        f"every = {out['every']}: {100 * out['mask_share']:.1f}% of the steps' time (against the same program never "
        f"updating); one update costs {100 * out['update_share_per_100'] * 100:.0f}% of a step, "
        f"{100 * out['update_share_per_100']:.1f}% at every = 100."
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="2 members, 20 steps: checks that it runs, measures nothing")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    out = measure(args.tiny)
    print(markdown(out))
    if args.out is not None:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
