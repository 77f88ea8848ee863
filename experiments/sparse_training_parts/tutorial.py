"""What the SET authors' IJCAI-2019 tutorial code computes (dcmocanu/sparse-evolutionary-artificial-neural-networks,
`Tutorial-IJCAI-2019-Scalable-Deep-Learning`: set_mlp.py, fixprob_mlp.py, fc_mlp.py), in JAX, SET, FixProb and the
dense net of every seed in one compiled program.

Where that code is not what autodiff gives, this computes what it computes (SPARSITY_NOTES.md, "What the tutorial's
code computes"): Erdős–Rényi init by ε(n_in + n_out) draws with replacement, values N(0, 1)/10 (dense: N(0, 1)/10
everywhere); non-inverted dropout h (U >= 0.2) on the hidden layers, not applied to δ; at test time no dropout and
the pre-activation (bias included) times 0.8 on layers 2, 3 and the output; the output delta (a - y) σ'(a) with
a = σ(z) already; weight gradients aᵀδ / B at active entries (the dense net sums: aᵀδ), bias gradients mean(δ);
v = 0.9 v - lr dW, W <- W + v - 2e-4 W (decay not times lr); evolution after each epoch's evaluation but the last,
on all 4 layers: remove the active w with values[int(0.7 p)] <= w <= values[int(min(n - 1, last + 0.3 (n - last)))]
(values the sorted active weights, p the first index of the value closest to 0, last one past its last), regrow as
many uniformly among the other entries (the just removed included) at N(0, 1)/10 with zero momentum.
It runs float32 and draws its random numbers from JAX keys, not numpy's stream.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcnn.prune.drop_grow import floor_count, kth_lowest, take_lowest

Array = jax.Array


class Protocol(NamedTuple):
    """The tutorial's numbers (set_mlp.py's __main__)."""

    sizes: tuple[int, ...] = (784, 1000, 1000, 1000, 10)
    epsilon: int = 13
    zeta: float = 0.3
    lr_sparse: float = 0.05
    lr_dense: float = 0.001
    momentum: float = 0.9
    decay: float = 2e-4
    dropout: float = 0.2
    batch: int = 40
    epochs: int = 400


class Net(NamedTuple):
    w: list[Array]
    b: list[Array]
    m: list[Array]  # active entries (all True for the dense net)
    vw: list[Array]  # momentum
    vb: list[Array]


def init(key: Array, p: Protocol, dense: bool) -> Net:
    """createSparseWeights per layer: ε(n_in + n_out) random (i, j) with replacement, w = N(0, 1)/10; or dense."""
    w, m = [], []
    for layer, (n_in, n_out) in enumerate(zip(p.sizes[:-1], p.sizes[1:], strict=True)):
        k = jax.random.fold_in(key, layer)
        if dense:
            w.append(jax.random.normal(k, (n_in, n_out)) / 10)
            m.append(jnp.ones((n_in, n_out), bool))
            continue
        draws = p.epsilon * (n_in + n_out)
        kr, kc, kv = jax.random.split(k, 3)
        rows, cols = jax.random.randint(kr, (draws,), 0, n_in), jax.random.randint(kc, (draws,), 0, n_out)
        w.append(jnp.zeros((n_in, n_out)).at[rows, cols].set(jax.random.normal(kv, (draws,)) / 10))
        m.append(jnp.zeros((n_in, n_out), bool).at[rows, cols].set(True))
    b = [jnp.zeros(n) for n in p.sizes[1:]]
    return Net(w, b, m, [jnp.zeros_like(a) for a in w], [jnp.zeros_like(a) for a in b])


def train_step(net: Net, x: Array, y: Array, key: Array, p: Protocol, dense: bool) -> Net:
    """One batch of _feed_forward(drop=True), _back_prop and _update_w_b."""
    n = len(net.w)
    a, z = [x], []
    for layer in range(n):
        zl = a[-1] @ net.w[layer] + net.b[layer][None]
        z.append(zl)
        if layer == n - 1:
            a.append(jax.nn.sigmoid(zl))
        else:
            keep = jax.random.uniform(jax.random.fold_in(key, layer), zl.shape) >= p.dropout
            a.append(jax.nn.relu(zl) * keep)  # non-inverted dropout
    out = a[-1]
    delta = (out - y) * jax.nn.sigmoid(out) * (1 - jax.nn.sigmoid(out))  # Sigmoid.prime applied to a = σ(z)
    grads_w, grads_b = [None] * n, [None] * n
    for layer in reversed(range(n)):
        dw = a[layer].T @ delta
        grads_w[layer] = jnp.where(net.m[layer], dw if dense else dw / x.shape[0], 0.0)
        grads_b[layer] = jnp.mean(delta, 0)
        if layer:
            delta = (delta @ net.w[layer].T) * (z[layer - 1] > 0)  # Relu.prime; no dropout mask on δ
    lr = p.lr_dense if dense else p.lr_sparse
    vw = [p.momentum * v - lr * g for v, g in zip(net.vw, grads_w, strict=True)]
    vb = [p.momentum * v - lr * g for v, g in zip(net.vb, grads_b, strict=True)]
    w = [a_ + v - p.decay * a_ for a_, v in zip(net.w, vw, strict=True)]
    b = [a_ + v - p.decay * a_ for a_, v in zip(net.b, vb, strict=True)]
    return Net(w, b, net.m, vw, vb)


def evaluate(net: Net, x: Array, y: Array, p: Protocol) -> tuple[Array, Array]:
    """predict(): (accuracy, mean((a - y)^2)) with _feed_forward(drop=False): z times (1 - dropout) from layer 2."""
    h = x
    for layer in range(len(net.w)):
        zl = h @ net.w[layer] + net.b[layer][None]
        if layer:
            zl = zl * (1 - p.dropout)
        h = jax.nn.sigmoid(zl) if layer == len(net.w) - 1 else jax.nn.relu(zl)
    return jnp.mean(jnp.argmax(h, 1) == jnp.argmax(y, 1)), jnp.mean((h - y) ** 2)


def evolve_layer(w: Array, m: Array, v: Array, key: Array, zeta: float) -> tuple[Array, Array, Array]:
    """weightsEvolution_II on one layer (as dense arrays): remove, regrow as many, momentum of new ones 0."""
    flat, mask = w.reshape(-1), m.reshape(-1)
    size = flat.size
    n = jnp.sum(mask, dtype=jnp.int32)
    # values = sort(active w) is read at two order statistics: found by bisection, no sort of 784,000 entries
    dist = jnp.where(mask, jnp.abs(flat), jnp.inf)
    closest = dist == jnp.min(dist)  # the value(s) closest to 0: find_first_pos / find_last_pos
    first = jnp.sum(mask & (flat < jnp.min(jnp.where(closest, flat, jnp.inf))), dtype=jnp.int32)
    last = jnp.sum(mask & (flat <= jnp.max(jnp.where(closest, flat, -jnp.inf))), dtype=jnp.int32)
    largest_negative = kth_lowest(flat, mask, floor_count((1 - zeta) * first) + 1)  # values[int(0.7 p)]
    smallest_positive = kth_lowest(flat, mask, jnp.minimum(n - 1, floor_count(last + zeta * (n - last))) + 1)
    keep = mask & ((flat > smallest_positive) | (flat < largest_negative))
    k_pos, k_val = jax.random.split(key)
    grown = take_lowest(-jax.random.uniform(k_pos, (size,)), ~keep, n - jnp.sum(keep))
    new_w = jnp.where(keep, flat, jnp.where(grown, jax.random.normal(k_val, (size,)) / 10, 0.0))
    new_v = jnp.where(keep, v.reshape(-1), 0.0)
    return new_w.reshape(w.shape), (keep | grown).reshape(w.shape), new_v.reshape(w.shape)


def evolve(net: Net, key: Array, zeta: float) -> Net:
    w, m, v = zip(
        *(
            evolve_layer(a, b, c, jax.random.fold_in(key, i), zeta)
            for i, (a, b, c) in enumerate(zip(net.w, net.m, net.vw, strict=True))
        ),
        strict=True,
    )
    return Net(list(w), net.b, list(m), list(v), net.vb)


def run_member(key: Array, data: tuple[Array, ...], p: Protocol, dense: bool, evolves: bool) -> dict[str, Any]:
    """One net's 400 epochs: per epoch 50 shuffled batches, the test set's accuracy and loss (before the
    evolution), then SET's evolution unless it is the last epoch. Curves (epochs,), final layer densities."""
    x, y, xt, yt = data
    n_batches = x.shape[0] // p.batch
    k_init, k_run = jax.random.split(key)

    def epoch(net: Net, e: Array) -> tuple[Net, tuple[Array, Array]]:
        k_epoch = jax.random.fold_in(k_run, e)
        order = jax.random.permutation(jax.random.fold_in(k_epoch, 0), x.shape[0])[: n_batches * p.batch]

        def batch(net: Net, i: Array) -> tuple[Net, None]:
            rows = jax.lax.dynamic_slice(order, (i * p.batch,), (p.batch,))
            return train_step(
                net, x[rows], y[rows], jax.random.fold_in(jax.random.fold_in(k_epoch, 1), i), p, dense
            ), None

        net, _ = jax.lax.scan(batch, net, jnp.arange(n_batches))
        scores = evaluate(net, xt, yt, p)
        if evolves:  # the predicate is the epoch, shared by every member: a real cond under vmap
            net = jax.lax.cond(
                e < p.epochs - 1, lambda n: evolve(n, jax.random.fold_in(k_epoch, 2), p.zeta), lambda n: n, net
            )
        return net, scores

    net, (acc, loss) = jax.lax.scan(epoch, init(k_init, p, dense), jnp.arange(p.epochs))
    densities = jnp.stack([jnp.mean(m) for m in net.m])
    return {
        "test_accuracy": acc,
        "test_loss": loss,
        "layer_density": densities,
        "active": jnp.stack([jnp.sum(m) for m in net.m]),
    }


def run(seeds: list[int], data: tuple[Array, ...], p: Protocol) -> dict[str, dict[str, Array]]:
    """SET, FixProb and the dense net for every seed, one program: {kind: {metric: (seeds, ...)}}. SET and
    FixProb of a seed share their initial net (the tutorial's np.random.seed(i) before each)."""
    keys = jnp.stack([jax.random.key(s) for s in seeds])

    def program(keys: Array, data: tuple[Array, ...]) -> dict[str, Any]:
        group = lambda dense, evolves: jax.vmap(lambda k: run_member(k, data, p, dense, evolves))(keys)
        return {"set": group(False, True), "fixprob": group(False, False), "dense": group(True, False)}

    return jax.jit(program)(keys, data)
