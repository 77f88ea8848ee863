"""Inference of LeNet-300-100 tickets: masked dense vs compacted vs `funcnn.sparse`."""

from __future__ import annotations

import functools

import jax
import numpy as np

from funcnn import compaction, models, prune, sparse, timing


def pruning_speed(x, densities, batch: int, repeats: int) -> list[dict]:
    """Inference throughput of LeNet-300-100 tickets: masked dense vs compacted dense vs sparse
    (`funcnn.sparse.sparsify`, its default kernel choice)."""
    net = models.lenet_300_100()
    params = net.init(jax.random.key(0), (28, 28, 1))
    xb = x[:batch]
    rows = []
    for target in densities:
        masks = prune.ones(params)
        if target < 1:
            # one-shot layer-wise pruning to the target density (output layer at the same rate)
            masks = prune.magnitude(params, masks, 1 - target)
        masked = prune.apply(params, masks)
        dense_f = jax.jit(net.apply)
        small_net, small = compaction.compact(net, params, masks)
        small_f = jax.jit(small_net.apply)
        # Every Dense layer sparse, whatever its density: the table shows where that pays.
        sparse_net, sparse_params = sparse.sparsify(net, params, masks, max_density=1.0)
        sparse_f = jax.jit(sparse_net.apply)
        ref = dense_f(masked, xb)
        np.testing.assert_allclose(small_f(small, xb), ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(sparse_f(sparse_params, xb), ref, rtol=1e-4, atol=1e-4)
        t = {
            "masked dense": timing.seconds_per_call(functools.partial(dense_f, masked, xb), repeats, 0),
            "compacted dense": timing.seconds_per_call(functools.partial(small_f, small, xb), repeats, 0),
            "funcnn.sparse": timing.seconds_per_call(functools.partial(sparse_f, sparse_params, xb), repeats, 0),
        }
        best = min(t, key=t.get)
        rows.append(
            {
                "P_m_percent": float(prune.density(masks)["total"]) * 100,
                "hidden_widths": [int(small["dense_1"]["w"].shape[1]), int(small["dense_3"]["w"].shape[1])],
                **{f"{k} images/s": batch / v for k, v in t.items()},
                "fastest": best,
            }
        )
    return rows
