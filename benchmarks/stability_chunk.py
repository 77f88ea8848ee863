"""Copies of a conv net in `funcnn.stability.train_copies` on one CPU core: one at a time (chunk 1,
the CPU default for conv nets since 2026-11-28) against all vmapped together (the old default).

    python -m benchmarks.stability_chunk [--steps 40] [--copies 2]

ResNet-8 of width 4 (the stability experiment's CPU-sized ResNet), SGD with momentum, batch 128 of
Fashion-MNIST. Pinned to one core; each chunk size is compiled, then timed twice, alternating; the
best of the two timed calls is kept. Measured 2026-11-28 (2-core Xeon VM, JAX 0.10.2, 40 steps,
2 copies): 10.9 copy-steps/s one at a time, 7.5 vmapped (1.44x), because mixed convolutions with
vmapped kernels become grouped convolutions.
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stability_chunk", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--copies", type=int, default=2)
    p.add_argument("--train-size", type=int, default=10_000)
    args = p.parse_args(argv)
    from benchmarks.conv_step import pin_one_core

    core = pin_one_core()  # before JAX starts its threads
    import jax
    import optax

    from funcnn import data, losses, models, stability

    net = models.resnet(8, 4)
    d = data.load("fashion-mnist")
    x, y = d.x_train[: args.train_size], d.y_train[: args.train_size]
    theta = net.init(jax.random.key(0), x.shape[1:])
    tx = optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(0.1, momentum=0.9))
    seeds = list(range(1, args.copies + 1))

    def run(chunk: int) -> float:
        t = time.perf_counter()
        copies = stability.train_copies(
            net, theta, tx, losses.softmax_cross_entropy, (x, y), steps=args.steps, batch_size=128,
            order_seeds=seeds, key=jax.random.key(3), chunk=chunk,
        )  # fmt: skip
        jax.block_until_ready(copies.params)
        return time.perf_counter() - t

    chunks = (1, args.copies)
    for c in chunks:
        run(c)  # compiles
    times: dict[int, list[float]] = {c: [] for c in chunks}
    for _ in range(2):
        for c in chunks:
            times[c].append(run(c))
    best = {c: min(t) for c, t in times.items()}
    res = {
        "core": core,
        "steps": args.steps,
        "copies": args.copies,
        "one_at_a_time_copy_steps_per_s": args.copies * args.steps / best[1],
        "vmapped_copy_steps_per_s": args.copies * args.steps / best[args.copies],
        "speedup_of_one_at_a_time": best[args.copies] / best[1],
    }
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
