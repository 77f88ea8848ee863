"""Population sweep: N MNIST-1D MLPs (40-300-300-10, Adam, batch 100) trained at once, all vmapped.

    python -m benchmarks.population --sizes 1,16,256,1024,4096 --steps 200 [--out FILE.json]

Reports model-steps/s for each N (each member its own data order, as in a lottery round) and the
fraction of the device's measured float32 matmul peak (a square matmul at the default precision:
TF32 on recent NVIDIA GPUs). FLOPs count 6 x params x batch per model-step. Compilation is
excluded (one warm-up call of the same shapes); the median of `--repeats` timed calls is reported.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import data, losses, models, nn, train


def matmul_peak(n: int = 4096, repeats: int = 5) -> float:
    """Measured float32 matmul FLOP/s (default precision) on the default device."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(times))


def population_rate(n: int, steps: int, repeats: int, batch: int = 100) -> dict:
    d = data.load("mnist1d")
    x, y = jnp.asarray(d.x_train), jnp.asarray(d.y_train)
    net = models.mlp((300, 300))
    tx = optax.adam(2e-3)
    keys = jax.random.split(jax.random.key(0), n)
    params = jax.vmap(lambda k: net.init(k, (40,)))(keys)
    states = jax.vmap(lambda p: train.init_state(p, tx))(params)
    idx = jax.vmap(lambda k: jax.random.randint(k, (steps, batch), 0, len(x)))(jax.random.split(jax.random.key(1), n))
    epoch = train.make_epoch(train.make_train_step(net, losses.softmax_cross_entropy, tx))
    run = jax.jit(jax.vmap(epoch, in_axes=(0, None, None, 0)))
    jax.block_until_ready(run(states, x, y, idx))  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(states, x, y, idx))
        times.append(time.perf_counter() - t0)
    seconds = float(np.median(times))
    n_params = nn.count_params(jax.tree.map(lambda a: a[0], params))
    rate = n * steps / seconds
    return {
        "members": n,
        "model_steps_per_s": rate,
        "flops_per_s": rate * 6 * n_params * batch,
        "seconds": seconds,
        "params_per_member": n_params,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.population",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sizes", default="1,16,256,1024,4096", help="comma-separated population sizes")
    p.add_argument("--steps", type=int, default=200, help="training steps per timed call")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        p.error(f"--sizes must be comma-separated ints, got {args.sizes!r}")
    if not sizes or min(sizes) < 1 or args.steps < 1 or args.repeats < 1:
        p.error("--sizes, --steps and --repeats must be positive")
    dev = jax.devices()[0]
    peak = matmul_peak()
    rows = []
    print(
        f"device: {dev.platform} ({dev.device_kind}); jax {jax.__version__}; "
        f"float32 matmul peak {peak / 1e12:.2f} TFLOP/s"
    )
    print(f"{'N':>6} {'model-steps/s':>14} {'TFLOP/s':>8} {'of peak':>8} {'s/call':>8}")
    for n in sizes:
        r = population_rate(n, args.steps, args.repeats)
        r["fraction_of_peak"] = r["flops_per_s"] / peak
        rows.append(r)
        print(
            f"{n:>6} {r['model_steps_per_s']:>14,.0f} {r['flops_per_s'] / 1e12:>8.2f} {r['fraction_of_peak']:>8.1%} "
            f"{r['seconds']:>8.3f}",
            flush=True,
        )
    result = {
        "device": f"{dev.platform} ({dev.device_kind})",
        "jax": jax.__version__,
        "matmul_peak_flops": peak,
        "steps": args.steps,
        "rows": rows,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
