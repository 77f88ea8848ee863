"""Two-core regime stability: the same population program, chunk by chunk, under XLA:CPU settings.

    python -m benchmarks.regime [--runs 3] [--chunks 9] [--steps 250]

An 8-member LeNet-300-100 population (Adam steps at batch 60, `lax.map` over chunks of 4 vmapped
members, as a lottery round runs it) is compiled once per process and timed chunk by chunk. Each run
is a fresh process, since XLA_FLAGS are read when JAX starts; configurations alternate run by run so
that other load on the machine hits them alike. Reports the median and the worst chunk of every run, in model-steps/s.

Configurations: "default" (XLA's defaults: one CPU device, Eigen's threads), "fast"
(`funcnn.cpu.fast_flags()`, as the lottery experiments run: one device per core, single-threaded
Eigen, each device training its share of the members), and "pinned" (one core) for scale.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path


@functools.cache
def _population(members: int, steps: int):
    """The population program, compiled by a first call: a function running it (one per process)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from funcnn import distributed, losses, models, train

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(size=(6000, 28, 28, 1)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, 6000).astype(np.int32))
    net = models.lenet_300_100()
    tx = optax.adam(1.2e-3)
    epoch = train.make_epoch(train.make_train_step(net, losses.softmax_cross_entropy, tx))
    keys = jax.random.split(jax.random.key(0), members)
    states = jax.vmap(lambda k: train.init_state(net.init(k, (28, 28, 1)), tx))(keys)
    idx = jax.random.randint(jax.random.key(1), (members, steps, 60), 0, 6000)

    # as a lottery round runs its population: lax.map over chunks of 4 vmapped members; with several
    # CPU devices (the fast flags), each device runs that program on its share (distributed.split_population)
    def program(s, i, d):
        return jax.lax.map(lambda a: epoch(a[0], d[0], d[1], a[1]), (s, i), batch_size=4)

    devices = jax.local_devices()
    if len(devices) > 1:
        run = distributed.split_population(program, devices)
        data = [jax.device_put((x, y), dev) for dev in devices]
    else:
        run, data = jax.jit(program), (x, y)

    def pop():
        return jax.block_until_ready(run(states, idx, data))

    pop()
    return pop


def population_rates(members: int, steps: int, chunks: int) -> list[float]:
    """Model-steps/s of each of `chunks` timed chunks of the population program (compiled before) of
    `members` LeNet-300-100s, `steps` steps each, under this process's XLA flags."""
    pop = _population(members, steps)
    rates = []
    for _ in range(chunks):
        t = time.perf_counter()
        pop()
        rates.append(members * steps / (time.perf_counter() - t))
    return rates


# A fresh process per run: pinned (argv[4] == "1") before JAX starts, XLA_FLAGS read when it does.
CHILD = r"""
import json, os, sys
if sys.argv[4] == "1":
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from benchmarks.regime import population_rates
print("RESULT " + json.dumps(population_rates(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
"""


def run_child(flags: str | None, members: int, steps: int, chunks: int, pinned: bool) -> list[float]:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    if flags:
        env["XLA_FLAGS"] = flags
    env["JAX_PLATFORMS"] = "cpu"
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(members), str(steps), str(chunks), "1" if pinned else "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads([line for line in r.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])


def measure(runs: int = 3, chunks: int = 9, steps: int = 250, members: int = 8, in_process: bool = False) -> list[dict]:
    """Rows {config, run, median, worst, chunks} in model-steps/s, configurations alternating.
    in_process: every configuration run in this process instead, under this process's XLA flags and
    without pinning: only a check that the program runs (`python -m benchmarks --tiny`); the rows say so."""
    from funcnn.cpu import fast_flags

    configs = [("default", None, False), ("fast", fast_flags(), False), ("pinned (1 core)", fast_flags(1), True)]
    rows = []
    for run in range(runs):
        for name, flags, pinned in configs:
            if in_process:
                rates = population_rates(members, steps, chunks)
            else:
                rates = run_child(flags, members, steps, chunks, pinned)
            rows.append(
                {
                    "config": name,
                    "flags": os.environ.get("XLA_FLAGS", "") if in_process else flags or "",
                    "in_process": in_process,
                    "run": run,
                    "median": float(sorted(rates)[len(rates) // 2]),
                    "worst": float(min(rates)),
                    "chunks": rates,
                }
            )
            print(
                f"  {name:22s} run {run}: median {rows[-1]['median']:.0f}, worst {rows[-1]['worst']:.0f} model-steps/s",
                flush=True,
            )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| configuration | run | median model-steps/s | worst chunk |", "|---|---:|---:|---:|"]
    lines += [f"| {r['config']} | {r['run']} | {r['median']:.0f} | {r['worst']:.0f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.regime", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--chunks", type=int, default=9)
    p.add_argument("--steps", type=int, default=250)
    args = p.parse_args(argv)
    rows = measure(args.runs, args.chunks, args.steps)
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()
