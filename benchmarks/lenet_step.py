"""One LeNet-300-100 training step: funcnn's against hand-written JAX + optax (and PyTorch, if installed)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.common import step_indices
from funcnn import losses, models, timing, train


# ---------- the hand-written reference: pure JAX + optax, no funcnn ----------
def reference_lenet(key, tx):
    ks = jax.random.split(key, 3)
    glorot = jax.nn.initializers.glorot_normal()
    shapes = [(784, 300), (300, 100), (100, 10)]
    params = [(glorot(k, s), jnp.zeros(s[1])) for k, s in zip(ks, shapes, strict=True)]

    def forward(params, x):
        h = x.reshape(x.shape[0], -1)
        for i, (w, b) in enumerate(params):
            h = h @ w + b[None]
            if i < 2:
                h = jax.nn.relu(h)
        return h

    def loss(params, x, y):
        return optax.losses.softmax_cross_entropy_with_integer_labels(forward(params, x), y).mean()

    def step(carry, xy):
        params, opt = carry
        g = jax.grad(loss)(params, *xy)
        u, opt = tx.update(g, opt, params)
        return (optax.apply_updates(params, u), opt), None

    return params, tx.init(params), step


def one_model(x, y, batch: int, steps: int, repeats: int, peak: float, torch: bool = True) -> list[dict]:
    tx = optax.adam(1.2e-3)
    n_params = 266_610
    flops_per_step = 6 * n_params * batch
    idx = step_indices(jax.random.key(0), len(x), batch, steps)
    assert idx.shape == (steps, batch)
    rows = []

    # funcnn: the library's own step, scanned as `fit` runs an epoch.
    net = models.lenet_300_100()
    state = train.init_state(net.init(jax.random.key(0), (28, 28, 1)), tx)
    t0 = time.perf_counter()
    epoch = jax.jit(train.make_epoch(train.make_train_step(net.apply, losses.softmax_cross_entropy, tx)))
    jax.block_until_ready(epoch(state, x, y, idx))
    compile_funcnn = time.perf_counter() - t0
    rows.append(
        (
            "funcnn train step (scan)",
            timing.seconds_per_call(lambda: epoch(state, x, y, idx), repeats, 0),
            compile_funcnn,
        )
    )

    # Hand-written reference, scanned.
    params, opt, step = reference_lenet(jax.random.key(0), tx)
    scan_ref = jax.jit(lambda p, o, idx: jax.lax.scan(lambda c, i: step(c, (x[i], y[i])), (p, o), idx)[0])
    t0 = time.perf_counter()
    jax.block_until_ready(scan_ref(params, opt, idx))
    compile_ref = time.perf_counter() - t0
    rows.append(
        (
            "hand-written JAX (lax.scan)",
            timing.seconds_per_call(lambda: scan_ref(params, opt, idx), repeats, 0),
            compile_ref,
        )
    )

    # Hand-written reference, one jitted call per step.
    jstep = jax.jit(lambda c, xb, yb: step(c, (xb, yb))[0])
    xb, yb = x[idx], y[idx]

    def loop():
        c = (params, opt)
        for i in range(steps):
            c = jstep(c, xb[i], yb[i])
        return c

    rows.append(("hand-written JAX (jit per step)", timing.seconds_per_call(loop, repeats, 0), None))

    torch_row = torch_lenet(np.asarray(xb), np.asarray(yb), steps, repeats) if torch else None
    out = []
    for name, seconds, compile_s in rows + ([torch_row] if torch_row else []):
        sps = steps / seconds
        out.append(
            {
                "batch": batch,
                "impl": name,
                "steps_per_s": sps,
                "gflops": sps * flops_per_step / 1e9,
                "fraction_of_peak": sps * flops_per_step / 1e9 / peak,
                "compile_s": compile_s,
            }
        )
    if torch_row is None and torch:
        out.append({"batch": batch, "impl": "PyTorch eager", "skipped": "torch is not importable (not a dependency)"})
    ref = next(r for r in out if r["impl"] == "hand-written JAX (lax.scan)")["steps_per_s"]
    for r in out:
        if "steps_per_s" in r:
            r["ratio_vs_reference"] = r["steps_per_s"] / ref
    return out


def torch_lenet(xb, yb, steps, repeats):
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(784, 300),
        torch.nn.ReLU(),
        torch.nn.Linear(300, 100),
        torch.nn.ReLU(),
        torch.nn.Linear(100, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    xt, yt = torch.from_numpy(xb), torch.from_numpy(yb.astype(np.int64))
    lossf = torch.nn.CrossEntropyLoss()

    def run():
        for i in range(steps):
            opt.zero_grad()
            lossf(model(xt[i]), yt[i]).backward()
            opt.step()

    seconds = timing.seconds_per_call(run, repeats, 0)  # after a warm-up run
    return (f"PyTorch eager ({torch.get_num_threads()} threads)", seconds, None)
