"""Benchmarks, all figures taken in one run and reported against the machine's own matmul peak.

    python -m benchmarks            # full run (a few minutes on 2 cores)
    python -m benchmarks --tiny     # seconds: checks that every part still runs

Writes benchmarks/results/latest.json and latest.md (or --out) and prints the table.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import data, io, losses, lottery, models, nn, prune, train


def timeit(fn: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of fn() over `repeats` runs, after one warm-up call (excluded)."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def step_indices(key, n: int, batch: int, steps: int) -> jax.Array:
    """(steps, batch) indices: as many epochs of seeded shuffles as `steps` needs."""
    per_epoch = n // batch
    epochs = -(-steps // per_epoch)
    parts = [train.batch_indices(jax.random.fold_in(key, e), n, batch) for e in range(epochs)]
    return jnp.concatenate(parts)[:steps]


def matmul_peak(n: int, repeats: int) -> float:
    """float32 GFLOP/s of a large jnp.dot, best of `repeats`."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    b = jax.random.normal(jax.random.key(1), (n, n))
    f = jax.jit(jnp.dot)
    jax.block_until_ready(f(a, b))
    best = min(_wall(lambda: f(a, b)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _wall(fn):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t


# ---------- the hand-written reference: pure JAX + optax, no funcnn ----------
def reference_lenet(key, tx):
    ks = jax.random.split(key, 3)
    glorot = jax.nn.initializers.glorot_normal()
    shapes = [(784, 300), (300, 100), (100, 10)]
    params = [(glorot(k, s), jnp.zeros(s[1])) for k, s in zip(ks, shapes)]

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


def one_model(x, y, batch: int, steps: int, repeats: int, peak: float) -> list[dict]:
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
    rows.append(("funcnn train step (scan)", timeit(lambda: epoch(state, x, y, idx), repeats), compile_funcnn))

    # Hand-written reference, scanned.
    params, opt, step = reference_lenet(jax.random.key(0), tx)
    scan_ref = jax.jit(lambda p, o, idx: jax.lax.scan(lambda c, i: step(c, (x[i], y[i])), (p, o), idx)[0])
    t0 = time.perf_counter()
    jax.block_until_ready(scan_ref(params, opt, idx))
    compile_ref = time.perf_counter() - t0
    rows.append(("hand-written JAX (lax.scan)", timeit(lambda: scan_ref(params, opt, idx), repeats), compile_ref))

    # Hand-written reference, one jitted call per step.
    jstep = jax.jit(lambda c, xb, yb: step(c, (xb, yb))[0])
    xb, yb = x[idx], y[idx]

    def loop():
        c = (params, opt)
        for i in range(steps):
            c = jstep(c, xb[i], yb[i])
        return c

    rows.append(("hand-written JAX (jit per step)", timeit(loop, repeats), None))

    torch_row = torch_lenet(np.asarray(xb), np.asarray(yb), steps, repeats)
    out = []
    for name, seconds, compile_s in rows + ([torch_row] if torch_row else []):
        sps = steps / seconds
        out.append({"batch": batch, "impl": name, "steps_per_s": sps, "gflops": sps * flops_per_step / 1e9,
                    "fraction_of_peak": sps * flops_per_step / 1e9 / peak, "compile_s": compile_s})
    if torch_row is None:
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
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 300), torch.nn.ReLU(), torch.nn.Linear(300, 100),
                                torch.nn.ReLU(), torch.nn.Linear(100, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    xt, yt = torch.from_numpy(xb), torch.from_numpy(yb.astype(np.int64))
    lossf = torch.nn.CrossEntropyLoss()

    def run():
        for i in range(steps):
            opt.zero_grad()
            lossf(model(xt[i]), yt[i]).backward()
            opt.step()

    run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return (f"PyTorch eager ({torch.get_num_threads()} threads)", float(np.median(times)), None)


def populations(name: str, net, input_shape, x, y, sizes, steps: int, batch: int, repeats: int) -> list[dict]:
    """N members trained `steps` steps: N sequential runs of one compiled program vs one vmapped program."""
    tx = optax.adam(1e-3)
    epoch = train.make_epoch(train.make_train_step(net.apply, losses.softmax_cross_entropy, tx))
    one = jax.jit(epoch)
    pop = jax.jit(jax.vmap(epoch, in_axes=(0, None, None, 0)))
    # funcnn's population layout (as in funcnn.lottery): vmap 4 members at a time, chunks in sequence.
    chunked = jax.jit(lambda s, idx: jax.lax.map(lambda a: epoch(a[0], x, y, a[1]), (s, idx), batch_size=4))
    rows = []
    for n in sizes:
        keys = jax.random.split(jax.random.key(n), n)
        params = jax.vmap(net.init, in_axes=(0, None))(keys, input_shape)
        states = jax.vmap(lambda p: train.init_state(p, tx))(params)
        idx = jnp.stack([step_indices(k, len(x), batch, steps) for k in keys])
        members = [jax.tree.map(lambda a: a[i], states) for i in range(n)]

        def sequential():
            return [one(members[i], x, y, idx[i])[0] for i in range(n)]

        t_seq = timeit(sequential, repeats)
        t_pop = timeit(lambda: pop(states, x, y, idx), repeats)
        t_chunk = timeit(lambda: chunked(states, idx), repeats)
        rows.append({"model": name, "N": n, "sequential_model_steps_per_s": n * steps / t_seq,
                     "vmapped_model_steps_per_s": n * steps / t_pop, "ratio": t_seq / t_pop,
                     "chunked_model_steps_per_s": n * steps / t_chunk, "chunked_ratio": t_seq / t_chunk})
    return rows


def pruning_speed(x, densities, batch: int, repeats: int) -> list[dict]:
    """Inference throughput of LeNet-300-100 tickets: masked dense vs compacted dense vs BCOO."""
    from jax.experimental import sparse

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
        small_net, small = prune.compact(net, params, masks)
        small_f = jax.jit(small_net.apply)
        sp = {k: sparse.BCOO.fromdense(masked[k]["w"]) for k in ("dense_1", "dense_3", "dense_5")}

        @jax.jit
        def bcoo_f(sp, masked, xb):
            h = xb.reshape(xb.shape[0], -1)
            for i, k in enumerate(("dense_1", "dense_3", "dense_5")):
                h = (sp[k].T @ h.T).T + masked[k]["b"][None]
                if i < 2:
                    h = jax.nn.relu(h)
            return h

        ref = dense_f(masked, xb)
        np.testing.assert_allclose(small_f(small, xb), ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(bcoo_f(sp, masked, xb), ref, rtol=1e-4, atol=1e-4)
        t = {"masked dense": timeit(lambda: dense_f(masked, xb), repeats),
             "compacted dense": timeit(lambda: small_f(small, xb), repeats),
             "BCOO sparse": timeit(lambda: bcoo_f(sp, masked, xb), repeats)}
        best = min(t, key=t.get)
        rows.append({"P_m_percent": float(prune.density(masks)["total"]) * 100,
                     "hidden_widths": [int(small["dense_1"]["w"].shape[1]), int(small["dense_3"]["w"].shape[1])],
                     **{f"{k} images/s": batch / v for k, v in t.items()}, "fastest": best})
    return rows


def whole_study(iterations: int, rounds: int, seeds: int, peak: float, out: Path) -> dict:
    cfg = lottery.Config(iterations=iterations, rounds=rounds, seeds=seeds, eval_every=min(100, iterations))
    folder = out / f"study-{cfg.digest()}"
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    t0 = time.perf_counter()
    report = lottery.run(cfg, out=folder, progress=False, log=lambda s: None)
    wall = time.perf_counter() - t0
    train_s = sum(r["train_seconds"] for r in report["rounds"])
    model_steps = sum(len(r["arms"]) * (cfg.iterations - (cfg.rewind_step if r["round"] else 0)) for r in report["rounds"])
    n_params = nn.count_params(models.build(cfg.model).init(jax.random.key(0), (40,)))
    flops = 6 * n_params * cfg.batch_size * model_steps
    return {"config": cfg.to_json(), "wall_s": wall, "train_s": train_s, "outside_training_fraction": 1 - train_s / wall,
            "model_steps_per_s": model_steps / wall, "training_gflops": flops / train_s / 1e9,
            "training_fraction_of_peak": flops / train_s / 1e9 / peak,
            "note": "train_s includes evaluation every eval_every steps and compilation (first rounds)"}


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"Benchmarks, {res['date']} on {m['platform']} ({m['cpu_count']} cores, JAX {m['jax']}, {m['device']}).", "",
             f"float32 matmul peak: **{res['peak_gflops']:.1f} GFLOP/s**", "",
             "| batch | implementation | steps/s | GFLOP/s | of peak | vs hand-written scan | compile s |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in res["one_model"]:
        if "skipped" in r:
            lines.append(f"| {r['batch']} | {r['impl']} | skipped: {r['skipped']} | | | | |")
        else:
            c = f"{r['compile_s']:.2f}" if r["compile_s"] is not None else ""
            lines.append(f"| {r['batch']} | {r['impl']} | {r['steps_per_s']:.0f} | {r['gflops']:.1f} | {r['fraction_of_peak']:.0%} | {r['ratio_vs_reference']:.2f}x | {c} |")
    lines += ["", "| model | N | sequential model-steps/s | all-vmapped | / sequential | funcnn (vmap 4 at a time, lax.map) | / sequential |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["populations"]:
        lines.append(f"| {r['model']} | {r['N']} | {r['sequential_model_steps_per_s']:.0f} | {r['vmapped_model_steps_per_s']:.0f} | {r['ratio']:.2f}x "
                     f"| {r['chunked_model_steps_per_s']:.0f} | {r['chunked_ratio']:.2f}x |")
    lines += ["", "| P_m % | hidden widths after compact | masked dense img/s | compacted img/s | BCOO img/s | fastest |", "|---:|---|---:|---:|---:|---|"]
    for r in res["pruning"]:
        lines.append(f"| {r['P_m_percent']:.1f} | {r['hidden_widths']} | {r['masked dense images/s']:.0f} | {r['compacted dense images/s']:.0f} | {r['BCOO sparse images/s']:.0f} | {r['fastest']} |")
    s = res["study"]
    lines += ["", f"Whole MNIST-1D study ({s['config']['rounds']} rounds, {s['config']['seeds']} seeds x 3 arms, {s['config']['iterations']} it/round): "
              f"{s['wall_s']:.1f} s wall, {s['model_steps_per_s']:.0f} model-steps/s, {s['outside_training_fraction']:.1%} of wall time outside "
              f"compiled training, training at {s['training_gflops']:.1f} GFLOP/s = {s['training_fraction_of_peak']:.0%} of peak."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="seconds-long run that only checks every part works")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    tiny = args.tiny
    repeats = 1 if tiny else 5
    rng = np.random.default_rng(0)
    if tiny:
        x = jnp.asarray(rng.uniform(size=(600, 28, 28, 1)).astype(np.float32))
        y = jnp.asarray(rng.integers(0, 10, 600).astype(np.int32))
    else:
        d = data.load("fashion-mnist") if data.FASHION_MNIST_DIR.is_dir() else None
        x = jnp.asarray(d.x_train[:12000] if d else rng.uniform(size=(12000, 28, 28, 1)).astype(np.float32))
        y = jnp.asarray(d.y_train[:12000] if d else rng.integers(0, 10, 12000).astype(np.int32))
    m1 = data.load("mnist1d")
    x1, y1 = jnp.asarray(m1.x_train), jnp.asarray(m1.y_train)
    res = {"date": datetime.date.today().isoformat(),
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
                       "device": str(jax.devices()[0].device_kind)},
           "tiny": tiny}
    print("peak ...", flush=True)
    res["peak_gflops"] = matmul_peak(256 if tiny else 2048, 2 if tiny else 5)
    print("one model ...", flush=True)
    steps = 5 if tiny else 200
    res["one_model"] = one_model(x, y, 60, steps, repeats, res["peak_gflops"]) + one_model(x, y, 512 if not tiny else 100, steps, repeats, res["peak_gflops"])
    print("populations ...", flush=True)
    sizes = [1, 2] if tiny else [1, 4, 16, 64]
    pop_repeats = 1 if tiny else 3
    res["populations"] = populations("LeNet-300-100", models.lenet_300_100(), (28, 28, 1), x, y, sizes, 5 if tiny else 200, 60, pop_repeats) + \
        populations("MNIST-1D MLP 40-300-300-10", models.build("mlp-300-300"), (40,), x1, y1, sizes, 5 if tiny else 200, 100, pop_repeats)
    print("pruning ...", flush=True)
    res["pruning"] = pruning_speed(x, [1.0, 0.211, 0.036, 0.01], 100 if tiny else 1000, repeats)
    print("study ...", flush=True)
    res["study"] = whole_study(100 if tiny else 1500, 1 if tiny else 8, 1 if tiny else 4, res["peak_gflops"], args.out / "scratch")
    md = markdown(res)
    io.atomic_write_json(args.out / ("tiny.json" if tiny else "latest.json"), res)
    io.atomic_write_bytes(args.out / ("tiny.md" if tiny else "latest.md"), md.encode())
    print(md)
    return res


if __name__ == "__main__":
    main()
