"""Lottery programs timed piece by piece: the evaluation's share of a round, populations trained
sequentially vs vmapped, a lenet-fashion round sample and a whole MNIST-1D study."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.common import chunk_times, step_indices
from funcnn import data, losses, lottery, models, nn, prune, timing, train


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

        t_seq = timing.seconds_per_call(sequential, repeats, 0)
        t_pop = timing.seconds_per_call(functools.partial(pop, states, x, y, idx), repeats, 0)
        t_chunk = timing.seconds_per_call(functools.partial(chunked, states, idx), repeats, 0)
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
