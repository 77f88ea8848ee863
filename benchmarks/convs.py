"""Convolution training steps on one core: Conv-2 and a small CNN (XLA conv vs im2col vs mixed, scan vs
loop: `benchmarks/conv_step.py`'s configurations) and a ResNet step."""

from __future__ import annotations

import jax
import numpy as np
import optax

from benchmarks.common import chunk_times
from funcnn import losses, models, nn, train


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
