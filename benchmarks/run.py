"""Benchmarks, all figures taken in one run and reported against the machine's own matmul peak.

    python -m benchmarks            # full run (~15 minutes on 2 cores)
    python -m benchmarks --tiny     # ~4 min on 2 cores, mostly compiling: every part runs, in one process

Four parts, each in a process of its own (XLA reads its flags and the thread pinning is set when
JAX starts): "pinned" (one core: ratios that hold still on a noisy machine: funcnn vs hand-written
JAX, the evaluation's share of a round, convolution steps, a ResNet-20 step), "two_core" (both
cores, default XLA flags: the same step, populations, pruning), "fast_cpu" (both cores with
`funcnn.cpu.fast_flags()`, as the lottery experiments run: whole studies, their training FLOP/s)
and "regime" (2-core stability, default vs fast flags: `benchmarks/regime.py`); then a conv2-fashion
round against a per-step loop (`benchmarks/conv_round.py`, the round with mixed and with im2col
convolutions; one timed round each). Every other timing is the median of at least 7 chunks (3 for
the populations' sequential loops); the worst chunk is kept. --tiny runs every part with tiny sizes in
one process (started with the fast flags; the pinned part pins it, then gives every thread all cores
back), which checks that each part runs and measures nothing.

Writes benchmarks/results/latest.json and latest.md (or --out) and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from benchmarks import conv_round, regime, sparse_training, strategies
from benchmarks.common import load_data, machine, matmul_peak, set_affinity
from benchmarks.convs import conv_steps, resnet_step
from benchmarks.inference import pruning_speed
from benchmarks.lenet_step import one_model
from benchmarks.lottery_programs import eval_share, lenet_round, populations, whole_study
from benchmarks.report import markdown
from funcnn import data, io, models

__all__ = ["main", "markdown", "part_fast_cpu", "part_pinned", "part_tiny", "part_two_core", "run_part"]


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


def part_tiny(out: Path) -> dict:
    """--tiny: every part in this one process, whose XLA flags are the fast ones (part_fast_cpu needs
    them), after it the regime's configurations and the conv round's two sides in it too."""
    allowed = os.sched_getaffinity(0)
    res = {"machine": machine(), "pinned": part_pinned(True)}
    set_affinity(allowed)  # every thread, XLA's pinned ones included, back on all the cores
    res["two_core"] = part_two_core(True)
    res["fast_cpu"] = part_fast_cpu(True, res["two_core"]["peak_gflops"], out)
    res["regime"] = regime.measure(runs=1, chunks=2, steps=5, in_process=True)
    # one member, mixed only, 4 steps evaluated every 2 on 60 images: that the round program and the
    # per-step loop run and agree (the preset's 100 steps and 15,000 images took 100 s, nearly all of --tiny's;
    # 20 steps on 500 images 36 s, 10 steps on 250 images 22 s, most of it running code compiled without
    # optimizations; 4 steps on 60 images 16 s)
    res["conv_round"] = conv_round.measure(1, 4, ("mixed",), in_process=True, eval_size=60, eval_every=2)
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


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--tiny", action="store_true", help="a short run, all in one process, that only checks every part works"
    )
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--part", choices=["pinned", "two_core", "fast_cpu", "tiny"], help=argparse.SUPPRESS)  # internal
    p.add_argument("--peak", type=float, default=0.0, help=argparse.SUPPRESS)  # internal
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    tiny = args.tiny
    if args.part:
        res = {
            "pinned": lambda: part_pinned(tiny),
            "two_core": lambda: part_two_core(tiny),
            "fast_cpu": lambda: part_fast_cpu(tiny, args.peak, args.out),
            "tiny": lambda: part_tiny(args.out),
        }[args.part]()
        io.atomic_write_json(args.out / f"part-{args.part}.json", res)
        return res
    from funcnn.cpu import fast_flags, use_fast_flags

    t0 = time.perf_counter()
    plain = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    date = datetime.date.today().isoformat()
    if tiny:  # JAX starts once, in that process (not in this one)
        print("every part, tiny, in one process ...", flush=True)
        # the caller's XLA flags stay (the tests compile --tiny without XLA's optimizations: it checks
        # that every part runs, never its speed), the fast ones are added
        env = dict(os.environ)
        use_fast_flags(env)
        part = run_part("tiny", tiny, args.out, env)
        res = {"date": date, "machine": part.pop("machine"), "tiny": tiny, **part}
    else:
        res = {"date": date, "machine": machine(), "tiny": tiny}
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
        res["regime"] = regime.measure(runs=3, chunks=7, steps=150)
        print("conv round ...", flush=True)
        res["conv_round"] = conv_round.measure(2, 200, ("mixed", "im2col"))
        print("strategies (one study vs separate; mask share) ...", flush=True)
        res["strategies"] = strategies.measure()
        print("sparse training (RigL population vs hand-written; mask-update share) ...", flush=True)
        res["sparse_training"] = sparse_training.measure()
    res["wall_s"] = time.perf_counter() - t0
    md = markdown(res)
    io.atomic_write_json(args.out / ("tiny.json" if tiny else "latest.json"), res)
    io.atomic_write_bytes(args.out / ("tiny.md" if tiny else "latest.md"), md.encode())
    print(md)
    return res


if __name__ == "__main__":
    main()
