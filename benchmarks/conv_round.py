"""A conv2-fashion lottery round on CPU: funcnn's round program against a per-step Python loop.

    python -m benchmarks.conv_round [--members 2] [--iterations 300] [--impl auto|im2col|mixed ...]

(loop) what a round cost before funcnn trained conv nets inside `scan` on CPU: each member trained
       in a Python loop over a jitted step with XLA's convolution (its fastest form on CPU), the
       validation and test sets evaluated every `eval_every` iterations (the old evaluation);
       default XLA flags, so each dot and convolution has both cores.
(round) `lottery.Study.train_population`: every member inside one compiled program (the
       convolutions of --impl in `lax.scan`; auto is mixed on CPU), validation every `eval_every`,
       test once at the end on the final and the best-validation params; `funcnn.cpu.fast_flags()`
       (one device per core). `make bench` runs it with mixed and im2col (`benchmarks.run`).

Both start from the same θ0, masks of ones and batches, each in its own process (XLA_FLAGS are
read at start). Prints the wall time of each (after compilation) and the largest difference of
the validation curves and final weights, which differ by float rounding only (im2col vs XLA's
convolution sum in different orders).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def child(
    mode: str, members: int, iterations: int, out: str, impl: str = "auto", eval_size: int = 0, eval_every: int = 0
) -> dict:
    """One side, in this process: "round" (the round program, its convolutions `impl`) or "loop";
    writes the validation curves and the first kernel to `out` (.npz); {mode, seconds, compile_s, devices}.
    eval_size: validation and test sets of that many images (0: the preset's 5,000 and 10,000); eval_every:
    steps between evaluations (0: the preset's 100)."""
    import dataclasses
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np

    from benchmarks.conv_step import forced_impl
    from funcnn import losses, lottery, prune, train

    cfg = dataclasses.replace(
        lottery.PRESETS["conv2-fashion"], iterations=iterations, rounds=0, seeds=members, checkpoints_per_round=1
    )
    if eval_every:
        cfg = dataclasses.replace(cfg, eval_every=eval_every)
    study = lottery.Study(cfg, progress=False)
    if eval_size:  # --tiny: evaluating Conv-2 on 15,000 images four times was most of its time
        x, y, xv, yv, xt, yt = study.data  # the same training set, θ0 and batches; fewer images evaluated
        n = eval_size
        study = lottery.Study(
            dataclasses.replace(study.spec, train=(x, y), val=(xv[:n], yv[:n]), test=(xt[:n], yt[:n])),
            progress=False,
        )
    E = cfg.eval_every
    if mode == "round":
        masks = jax.vmap(prune.ones)(study.theta0)
        seeds = jnp.arange(members)
        t0 = time.perf_counter()
        with forced_impl(impl):  # the program is traced (and compiled) here, once
            study.train_round(study.theta0, masks, seeds, 0, "compile")  # the same call: compiles the program
        compile_s = time.perf_counter() - t0  # compilation and one round
        t0 = time.perf_counter()
        res = study.train_round(study.theta0, masks, seeds, 0, "timed")
        seconds = time.perf_counter() - t0
        val = res.curves[..., study.metric_names.index("val_loss")]
        w = np.asarray(jax.tree.leaves(res.carry.state.params)[0])
    else:
        x, y, xv, yv, xt, yt = study.data
        with forced_impl("xla"):
            step = jax.jit(train.make_train_step(study.net, losses.softmax_cross_entropy, study.tx))
            evaluate = jax.jit(train.make_evaluate(study.net, losses.softmax_cross_entropy))
            states = [
                train.init_state(jax.tree.map(lambda a, m=m: a[m], study.theta0), study.tx) for m in range(members)
            ]
            idx = np.asarray(study.idx)
            t0 = time.perf_counter()
            s = step(states[0], (x[idx[0, 0]], y[idx[0, 0]]))[0]
            jax.block_until_ready(
                (s, evaluate(s.params, xv, yv, s.model_state), evaluate(s.params, xt, yt, s.model_state))
            )
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            val, ws = [], []
            for m in range(members):
                s, curve = states[m], []
                for t in range(iterations):
                    s = step(s, (x[idx[m, t]], y[idx[m, t]]))[0]
                    if (t + 1) % E == 0:
                        v = evaluate(s.params, xv, yv, s.model_state)
                        evaluate(s.params, xt, yt, s.model_state)  # the old evaluation: test every time too
                        curve.append(float(v["loss"]))
                val.append(curve)
                ws.append(np.asarray(jax.tree.leaves(s.params)[0]))
            seconds = time.perf_counter() - t0
        val, w = np.asarray(val), np.stack(ws)
    np.savez(out, val=np.asarray(val), w=w)
    return {"mode": mode, "seconds": seconds, "compile_s": compile_s, "devices": jax.device_count()}


# A fresh process per side: XLA_FLAGS are read when JAX starts.
CHILD = r"""
import json, sys
from benchmarks.conv_round import child
mode, members, iterations, out, impl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
print("RESULT " + json.dumps(child(mode, members, iterations, out, impl)))
"""


def run_child(mode: str, members: int, iterations: int, out: str, impl: str = "auto") -> dict:
    from funcnn.cpu import fast_flags

    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    if mode == "round":
        env["XLA_FLAGS"] = fast_flags()
    r = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(members), str(iterations), out, impl],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    return json.loads([line for line in r.stdout.splitlines() if line.startswith("RESULT ")][-1][7:])


def measure(
    members: int = 2,
    iterations: int = 300,
    impls: tuple[str, ...] = ("auto",),
    in_process: bool = False,
    eval_size: int = 0,
    eval_every: int = 0,
) -> dict:
    """The loop once, then the round program with each of `impls`; wall times after compilation,
    each round's speed-up over the loop and its largest differences from the loop's results.
    in_process: both sides run in this process, under its XLA flags, on validation and test sets of
    `eval_size` images, evaluated every `eval_every` steps (only a check that they run and agree,
    `python -m benchmarks --tiny`)."""
    import numpy as np

    if eval_size and not in_process:
        raise ValueError(f"eval_size is for in_process runs (the --tiny check), got eval_size={eval_size}")
    run = functools.partial(child, eval_size=eval_size, eval_every=eval_every) if in_process else run_child
    with tempfile.TemporaryDirectory() as tmp:
        loop = run("loop", members, iterations, f"{tmp}/loop.npz")
        a = np.load(f"{tmp}/loop.npz")
        scale = float(np.max(np.abs(a["w"])))
        rounds = {}
        for impl in impls:
            rnd = run("round", members, iterations, f"{tmp}/round-{impl}.npz", impl)
            b = np.load(f"{tmp}/round-{impl}.npz")
            rounds[impl] = {
                "round_s": rnd["seconds"],
                "speedup": loop["seconds"] / rnd["seconds"],
                "compile_s": rnd["compile_s"],
                "devices": rnd["devices"],
                "val_loss_max_rel_diff": float(np.max(np.abs(a["val"] - b["val"]) / np.abs(a["val"]))),
                "first_kernel_max_abs_diff": float(np.max(np.abs(a["w"] - b["w"]))),
            }
    return {
        "members": members,
        "iterations": iterations,
        "eval_size": eval_size or None,
        "in_process": in_process,
        "loop_s": loop["seconds"],
        "loop_compile_s": loop["compile_s"],
        "first_kernel_max_abs": scale,
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.conv_round",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--members", type=int, default=2)
    p.add_argument("--iterations", type=int, default=300, help="a multiple of 100 (the preset's eval_every)")
    p.add_argument(
        "--impl",
        nargs="+",
        default=["auto"],
        choices=["auto", "im2col", "mixed"],
        help="the round's convolutions; several: one round each, against one loop",
    )
    args = p.parse_args(argv)
    r = measure(args.members, args.iterations, tuple(args.impl))
    print(json.dumps(r, indent=2))
    return r


if __name__ == "__main__":
    main()
