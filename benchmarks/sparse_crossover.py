"""Sparse vs masked dense inference on one core: the density below which `funcnn.sparse` wins.

    python -m benchmarks.sparse_crossover [--quick] [--out DIR] [--core N]

Pinned to one core (--core, default the last one this process may use), for each Dense layer shape
(fan_in, out) and batch size it times y = x @ (w ⊙ mask) + b as masked dense and with each kernel of
`funcnn.sparse.FORMATS` ("auto" is "coo" below `SMALL_BATCH` rows, else "bcsr", so it is not timed
separately) at each density: the median of 7 repeats of a jitted, blocked-on call, each repeat at
least 20 ms of calls, all in this one run (`funcnn.sparse.time_layer`). A kernel much slower than
dense (20x) or too large for memory is skipped. The crossover is the largest density at which the
sparse kernel was faster. Then whole LeNet-300-100 (layer-wise magnitude pruning of its init):
images/s of masked dense vs `sparsify(..., max_density=1.0)` (every layer sparse).

Writes DIR/sparse-crossover.json and .md (sparse-crossover-quick.* for --quick; DIR defaults to
benchmarks/results) and prints the table. --quick (one small shape, three densities, short repeats)
runs in well under 30 s: the test suite uses it to check that the script works, never its speed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import time
from pathlib import Path

SHAPES = ((784, 300), (300, 100), (100, 10), (12544, 256), (256, 256))
BATCHES = (1, 1000)
DENSITIES = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005)
LENET_DENSITIES = (1.0, 0.2, 0.05, 0.01)
KERNELS = ("bcsr", "coo", "bcoo")


def pin(core: int) -> None:
    """Pin every thread of this process to `core` (threads started later inherit it)."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            os.sched_setaffinity(int(tid), {core})


def layer_rows(shapes, batches, densities, repeats: int, min_seconds: float) -> list[dict]:
    from funcnn import sparse

    rows = []
    for fan_in, out in shapes:
        for batch in batches:
            times = {
                d: sparse.time_layer(fan_in, out, batch, d, KERNELS, repeats=repeats, min_seconds=min_seconds)
                for d in densities
            }
            auto = "coo" if batch < sparse.SMALL_BATCH else "bcsr"
            for t in times.values():
                t["auto"] = t[auto]
            kernels = (*KERNELS, "auto")
            rows.append(
                {
                    "fan_in": fan_in,
                    "out": out,
                    "batch": batch,
                    "auto_is": auto,
                    "seconds": {str(d): t for d, t in times.items()},
                    "speedup": {
                        str(d): {k: (t["dense"] / t[k] if t[k] else None) for k in kernels} for d, t in times.items()
                    },
                    "crossover": {k: sparse.crossover(times, k) for k in kernels},
                }
            )
            print(f"{fan_in}x{out} batch {batch}: crossover {rows[-1]['crossover']}", flush=True)
    return rows


def lenet_rows(densities, batches, repeats: int, min_seconds: float) -> list[dict]:
    import jax

    from funcnn import models, prune, sparse, timing

    net = models.lenet_300_100()
    params = net.init(jax.random.key(0), (28, 28, 1))
    dense_f = jax.jit(net.apply)
    rows = []
    for d in densities:
        masks = prune.ones(params) if d == 1 else prune.magnitude(params, prune.ones(params), 1 - d)
        masked = prune.apply(params, masks)
        snet, sparams = sparse.sparsify(net, params, masks, max_density=1.0)
        sparse_f = jax.jit(snet.apply)
        for batch in batches:
            x = jax.random.normal(jax.random.key(1), (batch, 28, 28, 1))
            dense_s = timing.seconds_per_call(lambda: dense_f(masked, x), repeats, min_seconds)  # noqa: B023
            sparse_s = timing.seconds_per_call(lambda: sparse_f(sparams, x), repeats, min_seconds)  # noqa: B023
            rows.append(
                {
                    "density": float(prune.density(masks)["total"]),
                    "batch": batch,
                    "dense_images_per_s": batch / dense_s,
                    "sparse_images_per_s": batch / sparse_s,
                    "speedup": dense_s / sparse_s,
                }
            )
    return rows


def _us(s: float | None) -> str:
    return "skipped" if s is None else f"{s * 1e6:,.0f}"


def _pct(d: float | None) -> str:
    return "never" if d is None else f"{d * 100:g}%"


def markdown(res: dict) -> str:
    m = res["machine"]
    low = 0.01 if "0.01" in res["layers"][0]["seconds"] else min(map(float, res["layers"][0]["seconds"]))
    lines = [
        f"Sparse vs masked dense inference, {res['date']}: one core ({m['core']}) of {m['cpu']}, JAX {m['jax']}; "
        f"medians of {res['repeats']} repeats of >= {res['min_seconds'] * 1e3:g} ms; took {res['wall_s']:.0f} s.",
        "",
        "Crossover: the largest density at which the sparse kernel beat masked dense (auto = coo at batch "
        f"< {res['small_batch']}, else bcsr).",
        "",
        f"| layer | batch | dense µs | bcsr | coo | bcoo | auto | auto speed-up at {_pct(low)} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["layers"]:
        c, at_low = r["crossover"], r["speedup"][str(low)]["auto"]
        lines.append(
            f"| {r['fan_in']}x{r['out']} | {r['batch']} | {_us(next(iter(r['seconds'].values()))['dense'])} | "
            + " | ".join(_pct(c[k]) for k in (*KERNELS, "auto"))
            + f" | {'' if at_low is None else f'{at_low:.2f}x'} |"
        )
    lines += ["", "Times in µs per call (speed-up of the fastest sparse kernel over dense):", ""]
    lines += [
        "| layer | batch | density | dense | bcsr | coo | bcoo | best speed-up |",
        "|---|---:|---:|" + "---:|" * 5,
    ]
    for r in res["layers"]:
        for d, t in r["seconds"].items():
            best = max((v for v in r["speedup"][d].values() if v is not None), default=None)
            lines.append(
                f"| {r['fan_in']}x{r['out']} | {r['batch']} | {float(d) * 100:g}% | "
                + " | ".join(_us(t[k]) for k in ("dense", *KERNELS))
                + f" | {'' if best is None else f'{best:.2f}x'} |"
            )
    lines += [
        "",
        "Whole LeNet-300-100 (layer-wise magnitude pruning; sparse: `sparsify(..., max_density=1.0)`):",
        "",
        "| density | batch | dense images/s | sparse images/s | speed-up |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in res["lenet"]:
        lines.append(
            f"| {r['density'] * 100:.1f}% | {r['batch']} | {r['dense_images_per_s']:,.0f} | "
            f"{r['sparse_images_per_s']:,.0f} | {r['speedup']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.sparse_crossover",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="one small shape, three densities, short repeats")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="output folder")
    p.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)), help="the core to run on")
    args = p.parse_args(argv)
    if args.core not in os.sched_getaffinity(0):
        p.error(f"--core must be one of this process's cores {sorted(os.sched_getaffinity(0))}, got {args.core}")
    pin(args.core)  # before JAX's first computation starts its threads
    import jax

    from funcnn import sparse

    t0 = time.perf_counter()
    if args.quick:
        shapes, densities, lenet_densities, repeats, min_seconds = ((300, 100),), (0.5, 0.05, 0.005), (0.05,), 3, 0.002
    else:
        shapes, densities, lenet_densities, repeats, min_seconds = SHAPES, DENSITIES, LENET_DENSITIES, 7, 0.02
    res = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cpu": platform.processor() or platform.machine(), "core": args.core, "jax": jax.__version__},
        "repeats": repeats,
        "min_seconds": min_seconds,
        "small_batch": sparse.SMALL_BATCH,
        "layers": layer_rows(shapes, BATCHES, densities, repeats, min_seconds),
        "lenet": lenet_rows(lenet_densities, BATCHES, repeats, min_seconds),
    }
    res["wall_s"] = time.perf_counter() - t0
    with contextlib.suppress(OSError):
        cpu = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        res["machine"]["cpu"] = cpu[0].split(":", 1)[1].strip()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "sparse-crossover-quick" if args.quick else "sparse-crossover"
    (out / f"{stem}.json").write_text(json.dumps(res, indent=1))
    table = markdown(res)
    (out / f"{stem}.md").write_text(table)
    print(table)
    return res


if __name__ == "__main__":
    main()
