"""Benchmarks, all figures taken in one run and reported against the machine's own matmul peak.

    python -m benchmarks            # full run (~15 minutes on 2 cores)
    python -m benchmarks --tiny     # seconds: checks that every part still runs

Four parts, each in a process of its own (XLA reads its flags and the thread pinning is set when
JAX starts): "pinned" (one core: ratios that hold still on a noisy machine: funcnn vs hand-written
JAX, the evaluation's share of a round, convolution steps, a ResNet-20 step), "two_core" (both
cores, default XLA flags: the same step, populations, pruning), "fast_cpu" (both cores with
`funcnn.cpu.fast_flags()`, as the lottery experiments run: whole studies, their training FLOP/s)
and "regime" (2-core stability, default vs fast flags: `benchmarks/regime.py`); then a conv2-fashion
round against a per-step loop (`benchmarks/conv_round.py`, the round with mixed and with im2col
convolutions; one timed round each). Every other timing is the median of at least 7 chunks (3 for
the populations' sequential loops); the worst chunk is kept.

Writes benchmarks/results/latest.json and latest.md (or --out) and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import data, io, losses, lottery, models, nn, prune, sparse, train


def chunk_times(fn: Callable[[], object], chunks: int) -> list[float]:
    """Wall seconds of fn() in each of `chunks` runs, after one warm-up call (excluded)."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(chunks):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return times


def timeit(fn: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of fn() over `repeats` runs, after one warm-up call (excluded)."""
    return float(np.median(chunk_times(fn, repeats)))


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
        members = [jax.tree.map(lambda a, i=i: a[i], states) for i in range(n)]

        def sequential(members: list = members, idx: jax.Array = idx, n: int = n) -> list:
            return [one(members[i], x, y, idx[i])[0] for i in range(n)]

        t_seq = timeit(sequential, repeats)
        t_pop = timeit(functools.partial(pop, states, x, y, idx), repeats)
        t_chunk = timeit(functools.partial(chunked, states, idx), repeats)
        rows.append(
            {
                "model": name,
                "N": n,
                "sequential_model_steps_per_s": n * steps / t_seq,
                "vmapped_model_steps_per_s": n * steps / t_pop,
                "ratio": t_seq / t_pop,
                "chunked_model_steps_per_s": n * steps / t_chunk,
                "chunked_ratio": t_seq / t_chunk,
            }
        )
    return rows


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
        small_net, small = prune.compact(net, params, masks)
        small_f = jax.jit(small_net.apply)
        # Every Dense layer sparse, whatever its density: the table shows where that pays.
        sparse_net, sparse_params = sparse.sparsify(net, params, masks, max_density=1.0)
        sparse_f = jax.jit(sparse_net.apply)
        ref = dense_f(masked, xb)
        np.testing.assert_allclose(small_f(small, xb), ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(sparse_f(sparse_params, xb), ref, rtol=1e-4, atol=1e-4)
        t = {
            "masked dense": timeit(functools.partial(dense_f, masked, xb), repeats),
            "compacted dense": timeit(functools.partial(small_f, small, xb), repeats),
            "funcnn.sparse": timeit(functools.partial(sparse_f, sparse_params, xb), repeats),
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
    model_steps = sum(
        len(r["arms"]) * (cfg.iterations - (cfg.rewind_step if r["round"] else 0)) for r in report["rounds"]
    )
    n_params = nn.count_params(models.build(cfg.model).init(jax.random.key(0), (40,)))
    flops = 6 * n_params * cfg.batch_size * model_steps
    return {
        "config": cfg.to_json(),
        "wall_s": wall,
        "train_s": train_s,
        "outside_training_fraction": 1 - train_s / wall,
        "model_steps_per_s": model_steps / wall,
        "training_gflops": flops / train_s / 1e9,
        "training_fraction_of_peak": flops / train_s / 1e9 / peak,
        "note": "train_s includes evaluation every eval_every steps and compilation (first rounds)",
    }


def eval_share(x, y, steps: int, chunks: int) -> dict:
    """LeNet-300-100, `steps` Adam steps at batch 60 alone, then with the validation set (5,000)
    evaluated after them, then with validation and test (5,000 + 10,000): a round's interval."""
    net, tx = models.lenet_300_100(), optax.adam(1.2e-3)
    epoch = train.make_epoch(train.make_train_step(net, losses.softmax_cross_entropy, tx))
    evaluate = train.make_evaluate(net, losses.softmax_cross_entropy)
    state = train.init_state(net.init(jax.random.key(0), (28, 28, 1)), tx)
    idx = step_indices(jax.random.key(1), len(x), 60, steps)
    xv, yv = x[:5000], y[:5000]
    xt, yt = jnp.concatenate([x, x])[:10000], jnp.concatenate([y, y])[:10000]
    programs = {
        "train": jax.jit(lambda s: epoch(s, x, y, idx)[0].params),
        "train + val": jax.jit(lambda s: evaluate(epoch(s, x, y, idx)[0].params, xv, yv)),
        "train + val + test": jax.jit(
            lambda s: (lambda p: (evaluate(p, xv, yv), evaluate(p, xt, yt)))(epoch(s, x, y, idx)[0].params)
        ),
    }
    t = {k: chunk_times(lambda f=f: f(state), chunks) for k, f in programs.items()}
    med = {k: float(np.median(v)) for k, v in t.items()}
    return {
        "steps": steps,
        "ms": med,
        "worst_ms": {k: float(max(v)) for k, v in t.items()},
        "val_share": 1 - med["train"] / med["train + val"],
        "old_eval_share": 1 - med["train"] / med["train + val + test"],
        "round_speedup_from_eval": med["train + val + test"] / med["train + val"],
    }


def conv_steps(chunks: int, tiny: bool) -> list[dict]:
    """funcnn.models' Conv-2 and small CNN, batch 60: XLA conv vs im2col vs mixed (the CPU default),
    lax.scan vs a Python loop."""
    from benchmarks.conv_step import LABELS, NAMES, Config

    plan = [
        ("cnn", "xla", "scan"),
        ("cnn", "xla", "loop"),
        ("cnn", "im2col", "scan"),
        ("conv2", "xla", "loop"),
        ("conv2", "im2col", "scan"),
        ("conv2", "im2col", "loop"),
        ("cnn", "mixed", "scan"),
        ("conv2", "mixed", "scan"),
    ]
    configs = [
        Config(LABELS[impl, mode], model, impl, mode, (1 if tiny else 2) if model == "conv2" else (2 if tiny else 10))
        for model, impl, mode in plan
    ]
    for c in configs:
        c.build()
        jax.block_until_ready(c.run())
    for _ in range(chunks):  # interleaved, so that load from other processes hits all alike
        for c in configs:
            c.time_chunk()
    rows = []
    for c in configs:
        base = next(b for b in configs if b.model == c.model and b.label.startswith("(b)"))
        rows.append(
            {
                "model": NAMES[c.model],
                "variant": c.label,
                "steps_per_s": c.steps_per_s,
                "worst_steps_per_s": c.steps / max(c.times),
                "vs_xla_loop": c.steps_per_s / base.steps_per_s,
            }
        )
    return rows


def resnet_step(chunks: int, tiny: bool) -> list[dict]:
    """One ResNet-20 SGD step (momentum 0.9) at batch 128 on 28x28x1: funcnn's scanned step (mixed
    convolutions, the CPU default, and im2col) vs XLA's convolutions in a Python loop over a jitted step."""
    from benchmarks.conv_step import forced_impl

    batch, depth, width = (16, 8, 4) if tiny else (128, 20, 16)
    net = models.resnet(depth, width)
    tx = optax.sgd(0.1, momentum=0.9)
    params = net.init(jax.random.key(0), (28, 28, 1))
    state = train.init_state(params, tx, model_state=net.init_state((28, 28, 1)))
    xs = jax.random.normal(jax.random.key(1), (1, batch, 28, 28, 1))
    ys = jax.random.randint(jax.random.key(2), (1, batch), 0, 10)
    step = train.make_train_step(net, losses.softmax_cross_entropy, tx)
    programs = {}
    for name, impl, f in (
        ("funcnn step in lax.scan (mixed)", "mixed", lambda s: jax.lax.scan(step, s, (xs, ys))[0].params),
        ("funcnn step in lax.scan (im2col)", "im2col", lambda s: jax.lax.scan(step, s, (xs, ys))[0].params),
        ("xla conv, jitted step in a Python loop", "xla", lambda s: step(s, (xs[0], ys[0]))[0].params),
    ):
        with forced_impl(impl):  # traced and compiled here, with this implementation (chunk_times warms up)
            programs[name] = jax.jit(f).lower(state).compile()
    rows = []
    for name, f in programs.items():
        t = chunk_times(lambda f=f: f(state), chunks)
        rows.append(
            {
                "model": f"ResNet-{depth} (width {width}), batch {batch}",
                "impl": name,
                "s_per_step": float(np.median(t)),
                "worst_s_per_step": float(max(t)),
                "params": nn.count_params(params),
            }
        )
    return rows


def lenet_round(seeds: int, iterations: int, chunks: int, peak: float) -> dict:
    """A lenet-fashion round sample as the experiment runs it (`Study.train_round`): `seeds` members,
    validation every 100 iterations vs once at the end; model-steps/s and FLOP/s (training plus
    validation forward passes) against the machine's peak."""
    import dataclasses

    rows = {}
    for every in (100, iterations):
        cfg = dataclasses.replace(
            lottery.PRESETS["lenet-fashion"],
            iterations=iterations,
            eval_every=every,
            rounds=0,
            seeds=seeds,
            checkpoints_per_round=1,
        )
        if not data.FASHION_MNIST_DIR.is_dir():
            cfg = dataclasses.replace(cfg, dataset="mnist1d", model="lenet_300_100", n_val=1000)
        study = lottery.Study(cfg, progress=False)
        masks = jax.vmap(prune.ones)(study.theta0)
        members = jnp.arange(seeds)
        t = chunk_times(
            lambda study=study, masks=masks, members=members: (
                study.train_round(study.theta0, masks, members, 0, "x").carry.state.params
            ),
            chunks,
        )
        rows[every] = float(np.median(t))
        if every == 100:
            n_params = nn.count_params(jax.tree.map(lambda a: a[0], study.theta0))
            n_val = int(study.data[2].shape[0])
            worst = float(max(t))
    steps = seeds * iterations
    flops = seeds * (6 * n_params * 60 * iterations + 2 * n_params * n_val * (iterations // 100))
    return {
        "dataset": cfg.dataset,
        "members": seeds,
        "iterations": iterations,
        "devices": jax.device_count(),
        "seconds": rows[100],
        "worst_seconds": worst,
        "seconds_val_once": rows[iterations],
        "model_steps_per_s": steps / rows[100],
        "gflops": flops / rows[100] / 1e9,
        "fraction_of_peak": flops / rows[100] / 1e9 / peak,
        "val_share": 1 - rows[iterations] / rows[100],
        "protocol_minutes_at_this_rate": 11_500_000 / (steps / rows[100]) / 60,
    }


def machine() -> dict:
    from benchmarks.conv_step import cpu_model

    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "device": str(jax.devices()[0].device_kind),
        "python": platform.python_version(),
    }


def load_data(tiny: bool):
    rng = np.random.default_rng(0)
    if tiny:
        x = jnp.asarray(rng.uniform(size=(600, 28, 28, 1)).astype(np.float32))
        y = jnp.asarray(rng.integers(0, 10, 600).astype(np.int32))
    else:
        d = data.load("fashion-mnist") if data.FASHION_MNIST_DIR.is_dir() else None
        x = jnp.asarray(d.x_train[:12000] if d else rng.uniform(size=(12000, 28, 28, 1)).astype(np.float32))
        y = jnp.asarray(d.y_train[:12000] if d else rng.integers(0, 10, 12000).astype(np.int32))
    return x, y


def part_pinned(tiny: bool) -> dict:
    from benchmarks.conv_step import pin_one_core, threads_pinned

    core = pin_one_core()  # before the first computation starts XLA's threads (they inherit it)
    chunks = 1 if tiny else 7
    x, y = load_data(tiny)
    res = {"core": core, "peak_gflops": matmul_peak(256 if tiny else 2048, 2 if tiny else 5)}
    res["one_model"] = one_model(x, y, 60, 5 if tiny else 200, chunks, res["peak_gflops"], torch=False)
    res["eval_share"] = eval_share(x, y, 5 if tiny else 100, 1 if tiny else 15)
    res["conv"] = conv_steps(chunks, tiny)
    res["resnet"] = resnet_step(chunks, tiny)
    res["threads_pinned"] = threads_pinned(core)
    return res


def part_two_core(tiny: bool) -> dict:
    chunks = 1 if tiny else 7
    x, y = load_data(tiny)
    m1 = data.load("mnist1d")
    x1, y1 = jnp.asarray(m1.x_train), jnp.asarray(m1.y_train)
    res = {"peak_gflops": matmul_peak(256 if tiny else 2048, 2 if tiny else 5)}
    steps = 5 if tiny else 200
    res["one_model"] = one_model(x, y, 60, steps, chunks, res["peak_gflops"]) + one_model(
        x, y, 100 if tiny else 512, steps, chunks, res["peak_gflops"]
    )
    sizes = [1, 2] if tiny else [1, 4, 16]
    pop_chunks = 1 if tiny else 3
    res["populations"] = populations(
        "LeNet-300-100", models.lenet_300_100(), (28, 28, 1), x, y, sizes, steps, 60, pop_chunks
    ) + populations(
        "MNIST-1D MLP 40-300-300-10", models.build("mlp-300-300"), (40,), x1, y1, sizes, steps, 100, pop_chunks
    )
    res["pruning"] = pruning_speed(x, [1.0, 0.211, 0.036, 0.01], 100 if tiny else 1000, chunks)
    return res


def part_fast_cpu(tiny: bool, peak: float, out: Path) -> dict:
    res = {"devices": jax.device_count(), "xla_flags": os.environ.get("XLA_FLAGS", "")}
    res["lenet_round"] = lenet_round(2 if tiny else 4, 200 if tiny else 1000, 1 if tiny else 3, peak)
    res["study"] = whole_study(100 if tiny else 1500, 1 if tiny else 8, 1 if tiny else 4, peak, out / "scratch")
    return res


def run_part(name: str, tiny: bool, out: Path, env: dict, extra: list[str] = ()) -> dict:
    """Run one part in a fresh process (its own XLA flags and thread pinning); its JSON result."""
    path = out / f"part-{name}.json"
    cmd = (
        [sys.executable, "-m", "benchmarks.run", "--part", name, "--out", str(out)]
        + (["--tiny"] if tiny else [])
        + list(extra)
    )
    r = subprocess.run(cmd, env=env, cwd=Path(__file__).resolve().parent.parent, text=True, capture_output=True)
    if r.returncode:
        raise RuntimeError(f"benchmark part {name!r} failed:\n{r.stderr[-3000:]}")
    res = json.loads(path.read_text())
    path.unlink()
    return res


def markdown(res: dict) -> str:
    m, pin, two, fast = res["machine"], res["pinned"], res["two_core"], res["fast_cpu"]
    lines = [
        f"Benchmarks of {res['date']}: {m['cpu_count']} cores ({m['cpu']}), {m['platform']}, Python {m['python']}, "
        f"JAX {m['jax']}; `make bench` took {res['wall_s'] / 60:.1f} min. Medians of 7 chunks (worst chunk in "
        'brackets where it matters); "pinned" rows ran on one core, the others on both.',
        "",
        f"float32 matmul peak: **{pin['peak_gflops']:.1f} GFLOP/s** on one core, **{two['peak_gflops']:.1f}** on two.",
        "",
        "| cores | batch | implementation | steps/s | GFLOP/s | of peak | vs hand-written scan | compile s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for cores, rows in (("1 (pinned)", pin["one_model"]), ("2", two["one_model"])):
        for r in rows:
            if "skipped" in r:
                lines.append(f"| {cores} | {r['batch']} | {r['impl']} | skipped: {r['skipped']} | | | | |")
            else:
                c = f"{r['compile_s']:.2f}" if r["compile_s"] is not None else ""
                lines.append(
                    f"| {cores} | {r['batch']} | {r['impl']} | {r['steps_per_s']:.0f} | {r['gflops']:.1f} | "
                    f"{r['fraction_of_peak']:.0%} | {r['ratio_vs_reference']:.2f}x | {c} |"
                )
    e = pin["eval_share"]
    lines += [
        "",
        f"Evaluation's share of a lottery round (pinned; LeNet-300-100, {e['steps']} steps at batch 60 then "
        "the evaluation, as one interval of `eval_every`):",
        "",
        "| interval | ms (worst) | share of the interval |",
        "|---|---:|---:|",
        f"| {e['steps']} steps | {e['ms']['train'] * 1e3:.0f} ({e['worst_ms']['train'] * 1e3:.0f}) | |",
        f"| + validation (5,000): funcnn's rounds | {e['ms']['train + val'] * 1e3:.0f} "
        f"({e['worst_ms']['train + val'] * 1e3:.0f}) | {e['val_share']:.0%} |",
        f"| + validation and test (15,000): the old rounds | {e['ms']['train + val + test'] * 1e3:.0f} "
        f"({e['worst_ms']['train + val + test'] * 1e3:.0f}) | {e['old_eval_share']:.0%} |",
        "",
        f"Evaluating test once at the end instead of every interval: {e['round_speedup_from_eval']:.2f}x per interval.",
        "",
        "Convolution training steps (pinned, batch 60, Adam; im2col = `funcnn.conv`'s CPU path, used "
        "inside compiled loops):",
        "",
        "| model | variant | steps/s (worst) | vs xla conv in a Python loop |",
        "|---|---|---:|---:|",
    ]
    for r in pin["conv"]:
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['steps_per_s']:.3g} ({r['worst_steps_per_s']:.3g}) "
            f"| {r['vs_xla_loop']:.2f}x |"
        )
    lines += ["", "| ResNet step (pinned, SGD momentum) | implementation | s/step (worst) |", "|---|---|---:|"]
    for r in pin["resnet"]:
        lines.append(
            f"| {r['model']}, {r['params']:,} params | {r['impl']} | {r['s_per_step']:.2f} "
            f"({r['worst_s_per_step']:.2f}) |"
        )
    lines += [
        "",
        "| model | N | sequential model-steps/s | all-vmapped | / sequential "
        "| vmap 4 at a time (lax.map) | / sequential |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in two["populations"]:
        lines.append(
            f"| {r['model']} | {r['N']} | {r['sequential_model_steps_per_s']:.0f} "
            f"| {r['vmapped_model_steps_per_s']:.0f} | {r['ratio']:.2f}x "
            f"| {r['chunked_model_steps_per_s']:.0f} | {r['chunked_ratio']:.2f}x |"
        )
    lines += [
        "",
        "Two-core regime stability (`benchmarks/regime.py`: 8 LeNet-300-100s, `lax.map` over chunks of 4, "
        "a fresh process per run, configurations alternating):",
        "",
        "| configuration | run | median model-steps/s | worst chunk |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['config']} | {r['run']} | {r['median']:.0f} | {r['worst']:.0f} |" for r in res["regime"]]
    lr, s = fast["lenet_round"], fast["study"]
    lines += [
        "",
        f"Lottery programs as the experiments run them (`funcnn.cpu.fast_flags()`: {fast['devices']} CPU devices, "
        "each training its share of the members):",
        "",
        f"- {lr['dataset']} LeNet-300-100 round sample ({lr['members']} members x {lr['iterations']} iterations, "
        f"validation every 100): {lr['model_steps_per_s']:.0f} model-steps/s (worst chunk "
        f"{lr['members'] * lr['iterations'] / lr['worst_seconds']:.0f}), {lr['gflops']:.1f} GFLOP/s = "
        f"{lr['fraction_of_peak']:.0%} of the 2-core peak; validation is {lr['val_share']:.0%} of the time. "
        f"The full protocol (11.5M model-steps) at this rate: {lr['protocol_minutes_at_this_rate']:.0f} min.",
        f"- Whole MNIST-1D study ({s['config']['rounds']} rounds, {s['config']['seeds']} seeds x 3 arms, "
        f"{s['config']['iterations']} it/round): {s['wall_s']:.1f} s wall, {s['model_steps_per_s']:.0f} model-steps/s, "
        f"{s['outside_training_fraction']:.1%} of wall time outside compiled training, training at "
        f"{s['training_gflops']:.1f} GFLOP/s = {s['training_fraction_of_peak']:.0%} of the 2-core peak.",
    ]
    if "conv_round" in res:  # results from before 2026-11-28 lack it
        c = res["conv_round"]
        lines += [
            "",
            f"A conv2-fashion lottery round on CPU (`benchmarks/conv_round.py`: {c['members']} members x "
            f"{c['iterations']} iterations, validation every 100): funcnn's round program against a per-step "
            f"Python loop over XLA's convolutions with the old evaluation ({c['loop_s']:.1f} s after "
            f"{c['loop_compile_s']:.0f} s of compilation):",
            "",
            "| round program's convolutions | s | vs the loop | compile s (first call - timed call) "
            "| max rel. diff of val loss |",
            "|---|---:|---:|---:|---:|",
        ]
        for impl, r in c["rounds"].items():
            lines.append(
                f"| {impl} | {r['round_s']:.1f} | {r['speedup']:.2f}x | {r['compile_s'] - r['round_s']:.0f} "
                f"| {r['val_loss_max_rel_diff']:.1e} |"
            )
    lines += [
        "",
        "| P_m % | hidden widths after compact | masked dense img/s | compacted img/s | funcnn.sparse img/s "
        "| fastest |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for r in two["pruning"]:
        lines.append(
            f"| {r['P_m_percent']:.1f} | {r['hidden_widths']} | {r['masked dense images/s']:.0f} | "
            f"{r['compacted dense images/s']:.0f} | {r['funcnn.sparse images/s']:.0f} | {r['fastest']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tiny", action="store_true", help="seconds-long run that only checks every part works")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--part", choices=["pinned", "two_core", "fast_cpu"], help=argparse.SUPPRESS)  # internal
    p.add_argument("--peak", type=float, default=0.0, help=argparse.SUPPRESS)  # internal
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    tiny = args.tiny
    if args.part:
        res = {
            "pinned": lambda: part_pinned(tiny),
            "two_core": lambda: part_two_core(tiny),
            "fast_cpu": lambda: part_fast_cpu(tiny, args.peak, args.out),
        }[args.part]()
        io.atomic_write_json(args.out / f"part-{args.part}.json", res)
        return res
    from benchmarks import conv_round, regime
    from funcnn.cpu import fast_flags

    t0 = time.perf_counter()
    plain = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    res = {"date": datetime.date.today().isoformat(), "machine": machine(), "tiny": tiny}
    print("pinned (one core) ...", flush=True)
    res["pinned"] = run_part("pinned", tiny, args.out, plain)
    print("two cores ...", flush=True)
    res["two_core"] = run_part("two_core", tiny, args.out, plain)
    print("fast CPU flags ...", flush=True)
    res["fast_cpu"] = run_part(
        "fast_cpu",
        tiny,
        args.out,
        {**plain, "XLA_FLAGS": fast_flags()},
        ["--peak", str(res["two_core"]["peak_gflops"])],
    )
    print("regime ...", flush=True)
    res["regime"] = regime.measure(runs=1 if tiny else 3, chunks=2 if tiny else 7, steps=5 if tiny else 150)
    print("conv round ...", flush=True)
    # Tiny: one member, mixed only (each round program takes about a minute to compile).
    res["conv_round"] = conv_round.measure(
        1 if tiny else 2, 100 if tiny else 200, ("mixed",) if tiny else ("mixed", "im2col")
    )
    res["wall_s"] = time.perf_counter() - t0
    md = markdown(res)
    io.atomic_write_json(args.out / ("tiny.json" if tiny else "latest.json"), res)
    io.atomic_write_bytes(args.out / ("tiny.md" if tiny else "latest.md"), md.encode())
    print(md)
    return res


if __name__ == "__main__":
    main()
