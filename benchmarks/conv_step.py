"""Conv training steps on CPU: XLA convolutions vs im2col, inside `lax.scan` vs a Python loop.

    python -m benchmarks.conv_step                 # ~4 minutes on one core
    python -m benchmarks.conv_step --skip-slow     # without the XLA-conv-in-scan rows of Conv-2

XLA:CPU sends convolutions to its fast Eigen path only in the entry computation
(jax-ml/jax#12868), so the gradient convolutions of a step inside `lax.scan` run as a naive loop
nest; `funcnn.conv`'s im2col path (pad, shifted slices, one matmul) does not have that problem.
For funcnn.models' Conv-2, small CNN and LeNet-5 (batch 60 of 28x28x1, Adam) this times:

    (a) xla conv in lax.scan        (b) xla conv, Python loop over a jitted step
    (c) im2col in lax.scan          (d) im2col, Python loop over a jitted step

and a population of 4 vmapped Conv-2 members in lax.scan, xla vs im2col. The process is pinned to
one core; each figure is the median over chunks of steps, the configurations interleaved chunk by
chunk so that load from other processes hits them alike. The XLA-in-scan rows of Conv-2 take
~17 s (one net) and ~80 s (4 members) per step, so they time a few one-step chunks only.

The models are built by `funcnn.models`, whose Conv2D layers use impl="auto"; the implementation
is forced by wrapping `funcnn.conv.conv2d` while each program is traced (the compiled programs
keep it). Writes the table to benchmarks/results/conv-step-cpu-2026-11-27.md (or --out), keeping
a "## Notes" section already in that file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import time
from pathlib import Path
from unittest import mock

import jax
import numpy as np
import optax

from funcnn import conv, losses, models, train

BATCH = 60
SHAPE = (28, 28, 1)
MEMBERS = 4
DEFAULT_OUT = Path(__file__).parent / "results" / "conv-step-cpu-2026-11-27.md"
NOTES = "## Notes"  # a section of the results file from this heading on is kept when the table is rewritten


def pin_one_core() -> int:
    """Pin this process's threads to core 1 (or the first allowed core); call before JAX starts its
    threads (they inherit the pinning)."""
    allowed = os.sched_getaffinity(0)
    core = 1 if 1 in allowed else min(allowed)
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(tid), {core})
    return core


def threads_pinned(core: int) -> tuple[int, int]:
    """(threads pinned to `core`, all threads) of this process, from /proc/self/task."""
    pinned = total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            pinned += os.sched_getaffinity(int(tid)) == {core}
            total += 1
        except OSError:  # the thread ended meanwhile
            pass
    return pinned, total


@contextlib.contextmanager
def forced_impl(impl: str):
    """Every `funcnn.conv.conv2d` call traced inside uses `impl` (the layers pass impl="auto")."""
    original = conv.conv2d

    def conv2d(*args, **kwargs):
        return original(*args, **{**kwargs, "impl": impl})

    with mock.patch.object(conv, "conv2d", conv2d):
        yield


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class Config:
    """One timed configuration: `run()` takes `steps` training steps from a fixed initial state."""

    def __init__(self, label: str, model: str, impl: str, mode: str, steps: int, members: int = 0):
        self.label, self.model, self.impl, self.mode, self.steps, self.members = (
            label,
            model,
            impl,
            mode,
            steps,
            members,
        )
        self.times: list[float] = []

    def build(self, seed: int = 0) -> None:
        net = getattr(models, self.model)()
        tx = optax.adam(1e-3)
        step = train.make_train_step(net, losses.softmax_cross_entropy, tx)
        kx, ky, kp = jax.random.split(jax.random.key(seed), 3)
        xs = jax.random.normal(kx, (self.steps, BATCH) + SHAPE)
        ys = jax.random.randint(ky, (self.steps, BATCH), 0, 10)
        if self.members:
            keys = jax.random.split(kp, self.members)
            state = jax.vmap(lambda k: train.init_state(net.init(k, SHAPE), tx))(keys)
            step = jax.vmap(step, in_axes=(0, None))  # every member sees the same batches
        else:
            state = train.init_state(net.init(kp, SHAPE), tx)
        t = time.perf_counter()
        with forced_impl(self.impl):
            if self.mode == "scan":
                epoch = jax.jit(lambda s, xs, ys: jax.lax.scan(step, s, (xs, ys))[0])
                compiled = epoch.lower(state, xs, ys).compile()
                self.run = lambda: compiled(state, xs, ys)
            else:
                compiled = jax.jit(step).lower(state, (xs[0], ys[0])).compile()
                batches = [(xs[i], ys[i]) for i in range(self.steps)]

                def loop():
                    s = state
                    for b in batches:
                        s, _ = compiled(s, b)
                    return s

                self.run = loop
        self.compile_s = time.perf_counter() - t

    def time_chunk(self) -> None:
        t = time.perf_counter()
        jax.block_until_ready(self.run())
        self.times.append(time.perf_counter() - t)

    @property
    def steps_per_s(self) -> float:
        return self.steps / float(np.median(self.times))

    @property
    def best_steps_per_s(self) -> float:
        return self.steps / float(np.min(self.times))


def measure(configs: list[Config], chunks: int, warmup: bool, log) -> None:
    """Build every config, then time `chunks` chunks of each, interleaved."""
    for c in configs:
        c.build()
        if warmup:
            jax.block_until_ready(c.run())
        log(f"  built {c.model} {c.label} (compile {c.compile_s:.1f} s)")
    for _ in range(chunks):
        for c in configs:
            c.time_chunk()
    for c in configs:
        log(
            f"  {c.model} {c.label}: {c.steps_per_s:.3f} steps/s (chunks: "
            + ", ".join(f"{t:.3f}" for t in c.times)
            + " s)"
        )


NAMES = {"conv2": "Conv-2 (64-64 3x3, 28x28)", "cnn": "small CNN (16-32 3x3)", "lenet5": "LeNet-5"}
LABELS = {
    ("xla", "scan"): "(a) xla conv, lax.scan",
    ("xla", "loop"): "(b) xla conv, Python loop",
    ("im2col", "scan"): "(c) im2col, lax.scan",
    ("im2col", "loop"): "(d) im2col, Python loop",
    ("mixed", "scan"): "(e) mixed, lax.scan",
}


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed chunks per fast configuration (median)")
    parser.add_argument("--slow-chunks", type=int, default=3, help="one-step chunks for Conv-2 xla in lax.scan")
    parser.add_argument(
        "--pop-slow-chunks",
        type=int,
        default=1,
        help="one-step chunks for the 4-member population, xla in lax.scan (~80 s each)",
    )
    parser.add_argument("--skip-slow", action="store_true", help="leave out the Conv-2 xla-in-scan rows")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    core = pin_one_core()
    start = time.perf_counter()
    load0 = os.getloadavg()
    log = lambda msg: print(msg, flush=True)
    log(f"pinned to core {core}; jax {jax.__version__} on {jax.default_backend()}")

    steps = {"conv2": 3, "cnn": 10, "lenet5": 10}
    table: dict[str, list[Config]] = {}
    fast: list[Config] = []
    slow: list[Config] = []
    for model in ("conv2", "cnn", "lenet5"):
        rows = []
        for impl, mode in LABELS:
            slow_row = model == "conv2" and (impl, mode) == ("xla", "scan")
            if slow_row and args.skip_slow:
                continue
            c = Config(LABELS[impl, mode], model, impl, mode, 1 if slow_row else steps[model])
            (slow if slow_row else fast).append(c)
            rows.append(c)
        table[model] = rows
    pop_im2col = Config("im2col, lax.scan", "conv2", "im2col", "scan", 2, members=MEMBERS)
    fast.append(pop_im2col)
    pop_xla = None
    if not args.skip_slow:
        pop_xla = Config("xla conv, lax.scan", "conv2", "xla", "scan", 1, members=MEMBERS)

    log("fast configurations:")
    measure(fast, args.repeats, True, log)
    if slow:
        log("Conv-2, xla conv in lax.scan (slow):")
        measure(slow, args.slow_chunks, False, log)
    if pop_xla is not None:
        log(f"{MEMBERS} Conv-2 members, xla conv in lax.scan (slow):")
        measure([pop_xla], args.pop_slow_chunks, False, log)

    pinned, threads = threads_pinned(core)
    lines = [
        f"# Conv training steps on CPU: XLA conv vs im2col, lax.scan vs Python loop ({datetime.date.today()})",
        "",
        f"`python -m benchmarks.conv_step`. Machine: {os.cpu_count()} cores (`nproc`), {cpu_model()}; "
        f"{platform.platform()}; Python {platform.python_version()}; JAX {jax.__version__}, "
        f"backend {jax.default_backend()}. Pinned to core {core} ({pinned}/{threads} threads). Load average "
        f"at start {load0[0]:.2f} (other processes share the machine; configurations interleaved chunk by chunk).",
        "",
        f"Batch {BATCH} of 28x28x1, softmax cross-entropy, Adam; models from `funcnn.models`. steps/s is "
        "steps per chunk / median chunk time (best chunk: the fastest one, least hit by other processes); "
        "ratios of the medians against (b), the XLA conv in a Python loop over a jitted step (the fastest "
        "way to run XLA's conv on CPU).",
        "",
        "| model | variant | timed | steps/s | vs (b) | best chunk steps/s |",
        "|---|---|---|---:|---:|---:|",
    ]
    for model, rows in table.items():
        base = next(c for c in rows if c.label.startswith("(b)")).steps_per_s
        for c in rows:
            lines.append(
                f"| {NAMES[model]} | {c.label} | {len(c.times)} x {c.steps} steps | "
                f"{c.steps_per_s:.3g} | {c.steps_per_s / base:.2f}x | {c.best_steps_per_s:.3g} |"
            )
    base = next(c for c in table["conv2"] if c.label.startswith("(b)")).steps_per_s
    lines += [
        "",
        f"Population: {MEMBERS} Conv-2 members vmapped (each its own weights and Adam state, the same batches), "
        "one step = one step of every member. member-steps/s = "
        f"{MEMBERS} x population steps/s; vs (b): against Conv-2's (b), i.e. training the members one "
        "after another with XLA's conv in a Python loop.",
        "",
        "| population | variant | timed | population steps/s | member-steps/s | vs (b) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for c in [pop_xla, pop_im2col]:
        if c is None:
            continue
        lines.append(
            f"| {MEMBERS} x Conv-2 | {c.label} | {len(c.times)} x {c.steps} steps | {c.steps_per_s:.3g} | "
            f"{MEMBERS * c.steps_per_s:.3g} | {MEMBERS * c.steps_per_s / base:.2f}x |"
        )
    if pop_xla is not None:
        lines += [
            "",
            f"im2col / xla for the population in lax.scan: {pop_im2col.steps_per_s / pop_xla.steps_per_s:.0f}x.",
        ]
    lines += [
        "",
        f"Total run time {time.perf_counter() - start:.0f} s; load average at the end {os.getloadavg()[0]:.2f}.",
    ]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    notes = ""
    if args.out.exists():  # keep the hand-written "## Notes" section of an earlier run's file
        old = args.out.read_text()
        notes = old[old.index(NOTES) :] if NOTES in old else ""
    args.out.write_text(text + ("\n" + notes if notes else ""))
    log(f"wrote {args.out}")
    return text


if __name__ == "__main__":
    main()
