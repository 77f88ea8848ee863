"""Population throughput over 1, 2 and 4 devices (forced CPU devices here; real GPUs elsewhere).

    python -m benchmarks.devices [--seeds 16] [--counts 1 2 4]

Each device count runs in its own process (the count is fixed when JAX starts). On CPU the forced
devices share the same cores, so this shows the sharded program works and what it costs, not a
speedup; on a multi-GPU machine pass --real to use the visible devices.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = """
import dataclasses, json, sys, time
import jax, jax.numpy as jnp
from funcnn import lottery, prune
n, its = int(sys.argv[1]), int(sys.argv[2])
cfg = dataclasses.replace(lottery.PRESETS["mnist1d"], iterations=its, eval_every=its // 2, rounds=0, seeds=n,
                          checkpoints_per_round=1)
study = lottery.Study(cfg, progress=False)
masks = jax.vmap(prune.ones)(study.theta0)
study.train_population(study.theta0, masks, jnp.arange(n), 0, "warm-up")  # compile
t = time.perf_counter()
study.train_population(study.theta0, masks, jnp.arange(n), 0, "timed")
dt = time.perf_counter() - t
print("RESULT " + json.dumps({"devices": jax.device_count(), "device_kind": jax.devices()[0].device_kind,
                              "members": n, "model_steps_per_s": n * its / dt}))
"""


def measure(count: int | None, seeds: int, iterations: int) -> dict:
    env = dict(os.environ)
    if count is not None:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={count}"
        env["JAX_PLATFORMS"] = "cpu"
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(seeds), str(iterations)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads([line for line in r.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.devices", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--iterations", type=int, default=400)
    p.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--real", action="store_true", help="use the visible devices (GPUs) instead of forced CPU devices")
    args = p.parse_args(argv)
    rows = (
        [measure(None, args.seeds, args.iterations)]
        if args.real
        else [measure(c, args.seeds, args.iterations) for c in args.counts]
    )
    base = rows[0]["model_steps_per_s"]
    print("| devices | kind | members | model-steps/s | vs first row |\n|---:|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['devices']} | {r['device_kind']} | {r['members']} | {r['model_steps_per_s']:.0f} "
            f"| {r['model_steps_per_s'] / base:.2f}x |"
        )
    return rows


if __name__ == "__main__":
    main()
