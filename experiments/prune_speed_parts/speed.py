"""Phase 2: check every variant of every cached arm against its masked dense net, then time them
(`funcnn.timing`: runs of calls each blocked on, interleaved, counted when this process had the core)."""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.prune_speed_parts.arms import arm_index, load_arm
from experiments.prune_speed_parts.config import IMPLS, INPUT_SHAPE, MODELS, state_like
from experiments.prune_speed_parts.tickets import widths
from funcnn import compaction, data, nn, prune, sparse, timing

Params = Any


def call_floor(x: jax.Array, repeats: int, min_seconds: float) -> float:
    """Calls/s of a jitted function that only slices its input x: dispatch and synchronization, no
    work; at batch 1 no network can beat it. The median of the clean runs (of all, if too few)."""
    f = functools.partial(jax.jit(lambda x: x[:1, 0, 0, 0]), x)
    n, _ = timing.calibrate(f, min_seconds)
    runs = [timing.timed_run(f, n) for _ in range(timing.MAX_ROUNDS * repeats)]  # all of them: no early stop
    return 1 / timing.summarize(runs, repeats, timing.clean_share()).seconds


# id(net) -> (net, apply): holding the net keeps its id from being reused by another
_WITH_STATE: dict[int, tuple[nn.Layer, Callable[..., jax.Array]]] = {}
_FOLDED: dict[int, tuple[nn.Layer, Callable[..., jax.Array]]] = {}


def with_state(net: nn.Layer) -> Callable[..., jax.Array]:
    """apply({"params": p, "state": s}, x): a stateful net in inference mode (one function per net)."""

    def apply(ps: Params, x: jax.Array) -> jax.Array:
        return net.apply_with_state(ps["params"], ps["state"], x, train=False)[0]

    return _WITH_STATE.setdefault(id(net), (net, apply))[1]


def _variants(
    record: dict, net: nn.Layer, params: Params, masks: Params, state: Params | None
) -> dict[str, tuple[Callable[..., jax.Array], Params]]:
    """The variants of one arm, on `net` (one conv implementation): variant -> (apply, params).

    A stateful (BatchNorm) net's variants all run with BatchNorm folded into the convolution before it
    (`compaction.fold_batchnorm`), the dense baseline included; the dense arm is also timed unfolded
    ("dense-bn"). No sparse variant for them: `sparse.sparsify` converts Dense layers only, and a
    ResNet's one Dense layer (64 x 10) is not where its time goes."""
    masked = prune.apply(params, masks)
    if state is None:
        if record["kind"] in ("dense", "dense-longer"):
            return {"dense": (net.apply, masked)}
        out: dict[str, tuple[Callable[..., jax.Array], Params]] = {}
        if record["kind"] == "unstructured":
            out["masked"] = (net.apply, masked)
            s_net, s_params = sparse.sparsify(net, params, masks, max_density=1.0)
            out["sparse"] = (s_net.apply, s_params)
        c_net, c_params = compaction.compact(net, params, masks, input_shape=INPUT_SHAPE)
        out["compacted"] = (c_net.apply, c_params)
        return out

    def folded(n: nn.Layer, p: Params, s: Params) -> tuple[Callable[..., jax.Array], Params]:
        f_net, f_params, _ = compaction.fold_batchnorm(n, p, s)
        # the folded net depends on n alone: one apply per net, so that the full-size variants of all
        # arms share one compiled function (as the stateless nets' dense and masked variants do)
        return _FOLDED.setdefault(id(n), (n, f_net.apply))[1], f_params

    if record["kind"] in ("dense", "dense-longer"):
        out = {"dense": folded(net, masked, state)}
        if record["kind"] == "dense":
            out["dense-bn"] = (with_state(net), {"params": masked, "state": state})
        return out
    out = {}
    if record["kind"] == "unstructured":
        out["masked"] = folded(net, masked, state)
    out["compacted"] = folded(*compaction.compact(net, params, masks, input_shape=INPUT_SHAPE, state=state))
    return out


def _mean_load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def time_all(
    names: list[str], out: Path, batch_sizes: list[int], repeats: int, min_seconds: float
) -> tuple[list[dict], dict[str, float], float]:
    """Phase 2 (this process already pinned): check every variant of every cached arm against its
    masked dense net, then time them. Per model and batch size: a one-run probe of each conv
    implementation picks each variant's faster one, then `repeats` rounds, each timing one run of
    every variant in turn (so that other load on the core hits them alike); the median per variant."""
    d = data.load("fashion-mnist")
    inputs = {b: jnp.asarray(np.resize(d.x_test, (b, *INPUT_SHAPE))) for b in batch_sizes}
    x_check = inputs[max(batch_sizes)]  # the first test images; checked at a timed shape: no extra compilation
    rows = []
    t_all = time.perf_counter()
    floor = {str(b): call_floor(x, repeats, min_seconds) for b, x in inputs.items()}
    print("calls/s of a jitted function doing nothing: " + ", ".join(f"b={b}: {v:,.0f}" for b, v in floor.items()))
    for name in names:
        entries = []  # (row, {impl: (jitted apply, params on device)}) of the variants to time
        like = MODELS[name].build("auto").init(jax.random.key(0), INPUT_SHAPE)
        nets = {impl: MODELS[name].build(impl) for impl in IMPLS[name]}
        state0 = state_like(nets[IMPLS[name][0]])
        cache: dict[int, Callable[..., jax.Array]] = {}  # one jitted apply per function: dense and masked share it

        def jitted(apply: Callable[..., jax.Array], cache: dict = cache) -> Callable[..., jax.Array]:
            return cache.setdefault(id(apply), jax.jit(apply))

        for record in arm_index(out, name):
            cached = load_arm(out, name, record["arm"], like, None, state=state0)
            assert cached is not None  # arm_index listed it
            _, params, masks, state = cached
            masked = jax.device_put(prune.apply(params, masks))
            by_impl = {impl: _variants(record, nets[impl], params, masks, state) for impl in IMPLS[name]}
            # the reference: the masked net as trained (BatchNorm unfolded, on its running statistics)
            refs = {
                impl: np.asarray(
                    jitted(nets[impl].apply)(masked, x_check)
                    if state is None
                    else jitted(with_state(nets[impl]))({"params": masked, "state": state}, x_check)
                )
                for impl in IMPLS[name]
            }
            for variant in by_impl[IMPLS[name][0]]:
                # device_put: numpy params would be copied to the device at every call
                fns = {impl: (jitted(v[variant][0]), jax.device_put(v[variant][1])) for impl, v in by_impl.items()}
                row: dict[str, Any] = {
                    "model": name,
                    "arm": record["arm"],
                    "kind": record["kind"],
                    "variant": variant,
                    "density": record["density"],
                    "test_accuracy": record["test_accuracy"],
                    "units": widths(by_impl[IMPLS[name][0]][variant][1]) if variant == "compacted" else widths(params),
                    "max_abs_diff": 0.0,
                    "agrees": True,
                    "speed": {},
                }
                for impl, (f, v_params) in fns.items():
                    ref = refs[impl]
                    got = np.asarray(f(v_params, x_check))
                    diff = float(np.max(np.abs(got - ref)))
                    row["max_abs_diff"] = max(row["max_abs_diff"], diff)
                    row["agrees"] &= bool(diff <= 1e-4 * max(1.0, float(np.max(np.abs(ref)))))
                    row["agrees"] &= bool(np.mean(got.argmax(-1) == ref.argmax(-1)) >= 0.99)
                rows.append(row)
                if row["agrees"]:
                    entries.append((row, fns))
                else:
                    print(f"{name} {record['arm']} {variant}: DISAGREES with masked dense (max |diff| {diff:.3g})")
        for b in batch_sizes:
            x = inputs[b]
            plan = []  # (row, the faster impl, the probe of each impl, the call to time)
            for row, fns in entries:
                calls = {impl: functools.partial(f, v_params, x) for impl, (f, v_params) in fns.items()}
                probe = {impl: timing.calibrate(call, min_seconds) for impl, call in calls.items()}
                impl = min(probe, key=lambda k: probe[k][1])
                plan.append((row, impl, probe, calls[impl]))
            load = _mean_load()
            n_calls = [max(1, math.ceil(min_seconds / probe[impl][1])) for _, impl, probe, _ in plan]
            timings = timing.interleaved([p[3] for p in plan], n_calls, repeats, min_share=timing.clean_share())
            for (row, impl, probe, _), t in zip(plan, timings, strict=True):
                row["speed"][str(b)] = {
                    "images_per_s": b / t.seconds,
                    "impl": impl,
                    "clean_runs": t.clean,
                    "runs": len(t.runs),
                    "noisy": t.noisy,
                    "seconds_per_call": [r.seconds for r in t.runs],
                    "cpu_share": [r.cpu_share for r in t.runs],
                    "probe_images_per_s": {k: b / v[1] for k, v in probe.items()},
                    "load_average": [load, _mean_load()],
                }
                print(
                    f"{name} {row['arm']:>16} {row['variant']:>9} b={b}: "
                    f"{row['speed'][str(b)]['images_per_s']:,.0f}/s ({impl}, {t.clean}/{len(t.runs)} clean runs)"
                )
    return rows, floor, time.perf_counter() - t_all
