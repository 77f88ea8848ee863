"""The library side of the sparse-training study: every funcnn.sparsity method at every density and seed as one
`train.fit_population` program, and IMP's ticket and SNIP at init from the lottery engine."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import lottery, prune, sparsity, train
from funcnn.lottery import arms

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When masks move (steps count from 1; every is shared by the population): SET and RigL from `begin` to
    their `end`, RigL's cosine to its own end; gradual from dense between gradual_begin and gradual_end."""

    every: int
    set_end: int
    rigl_end: int
    gradual_begin: int
    gradual_end: int
    fraction: float = 0.3
    set_anneal: str = "constant"  # SET's code: a constant ζ


METHODS = ("static_uniform", "static_er", "static_erk", "gradual", "set", "rigl")


def method(name: str, inner: optax.GradientTransformation, density: float, key: Array, s: Schedule) -> Any:
    """One funcnn.sparsity transformation by name, the library's defaults otherwise (SET's and RigL's originals)."""
    if name == "dense":
        return sparsity.static(inner, density=1.0, key=key)
    if name.startswith("static_"):
        dist = {"static_uniform": "uniform", "static_er": "erdos_renyi", "static_erk": "erk"}[name]
        return sparsity.static(inner, density=density, key=key, distribution=dist)
    if name == "gradual":
        return sparsity.gradual(inner, density=density, begin=s.gradual_begin, end=s.gradual_end, every=s.every)
    if name == "set":
        return sparsity.set(
            inner,
            density=density,
            every=s.every,
            fraction=s.fraction,
            key=key,
            end=s.set_end,
            distribution="erdos_renyi",
            anneal=s.set_anneal,
        )
    if name == "rigl":
        return sparsity.rigl(inner, density=density, every=s.every, fraction=s.fraction, key=key, end=s.rigl_end)
    raise ValueError(f"unknown method {name!r}; expected 'dense' or one of {METHODS}")


def population(
    names: list[str],
    densities: list[float],
    seeds: list[int],
    inner: optax.GradientTransformation,
    schedule: Schedule,
) -> tuple[list[dict], list[Any], list[int]]:
    """(members, transformations, member seeds): the dense net once per seed, then every method at every density
    for every seed. A member's weights and data order come from its seed (shared by all methods of that seed),
    its masks from fold_in(key(seed), 7): static ER and SET of a seed start from the same mask."""
    members, txs, keys = [], [], []
    for seed in seeds:
        key = jax.random.fold_in(jax.random.key(seed), 7)
        plan = [("dense", 1.0)] + [(n, d) for d in densities for n in names]
        for name, d in plan:
            members.append({"method": name, "density": d, "seed": seed})
            txs.append(method(name, inner, d, key, schedule))
            keys.append(seed)
    return members, txs, keys


def train_population(
    members: list[dict],
    txs: list[Any],
    keys: list[int],
    net: Any,
    loss: Callable,
    train_data: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    epochs: int,
    batch_size: int,
    chunk: int | None = None,
) -> dict[str, Any]:
    """fit_population of every member at once (one compiled program); per member the test curve (per epoch),
    its final and best test accuracy, and the density its masks end at. Seconds include the compile."""
    t0 = time.perf_counter()
    run = train.fit_population(
        keys, train_data, net=net, optimizer=txs, loss=loss, val=test, epochs=epochs, batch_size=batch_size, chunk=chunk
    )
    acc = np.asarray(run.val["accuracy"])
    seconds = time.perf_counter() - t0
    masks = sparsity.masks(run.state.opt_state)
    spec = prune.prunable(jax.tree.map(lambda a: a[0], run.params))
    alive = sum(
        np.asarray(m).reshape(len(members), -1).sum(1)
        for m, s in zip(jax.tree.leaves(masks), jax.tree.leaves(spec), strict=True)
        if s
    )
    size = sum(
        int(np.prod(np.shape(m)[1:])) for m, s in zip(jax.tree.leaves(masks), jax.tree.leaves(spec), strict=True) if s
    )
    out = []
    for i, m in enumerate(members):
        out.append(
            {
                **m,
                "final_density": float(alive[i] / size),
                "final_test_accuracy": float(acc[i, -1]),
                "best_test_accuracy": float(acc[i].max()),
                "curve": acc[i].tolist(),
            }
        )
    return {"members": out, "seconds": seconds, "n_members": len(members), "steps": int(run.metrics["loss"].shape[1])}


def lottery_study(seeds: int, rounds: int, iterations: int, eval_every: int, out: Path | None, progress: bool) -> dict:
    """IMP's ticket (θ0 rewinding) and SNIP at init with IMP's counts, on the lottery engine's MNIST-1D preset
    (40-300-300-10, Adam 2e-3, batch 100, 500 held out): per round and arm the density and test accuracy."""
    config = dataclasses.replace(
        lottery.PRESETS["mnist1d"], seeds=seeds, rounds=rounds, iterations=iterations, eval_every=eval_every
    )
    spec = dataclasses.replace(
        config.validate().to_spec(),
        arms=(arms.weight_rewinding("imp", rewind_step=0), arms.at_init("snip", parent="imp")),
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        report = lottery.run(spec, out=out or Path(scratch), progress=progress, log=lambda line: None)
    rows = [r for r in report["summary"] if r["round"] >= 1 and r["arm"] in ("imp", "snip")]
    densities = sorted({r["percent_remaining"] / 100 for r in rows if r["arm"] == "imp"}, reverse=True)
    return {
        "rows": rows,
        "seconds": time.perf_counter() - t0,
        "train_seconds": report["train_seconds_total"],
        "densities": densities,
    }


def half_mse_on_sigmoid(logits: Array, labels: Array) -> Array:
    """½ Σ_classes (σ(z) - onehot(y))², mean over the batch: its gradient at z is (σ - y) σ'(z) / B, the clean
    counterpart of the tutorial's output delta (a - y) σ'(a)."""
    target = jax.nn.one_hot(labels, logits.shape[-1])
    return 0.5 * jnp.mean(jnp.sum((jax.nn.sigmoid(logits) - target) ** 2, -1))


def decoupled_sgd(lr: float, momentum: float, decay: float) -> optax.GradientTransformation:
    """v = momentum v - lr g; W <- W + v - decay W (the tutorial's update; its decay not times lr)."""
    return optax.chain(optax.sgd(lr, momentum=momentum), optax.add_decayed_weights(-decay))


def summarize(members: list[dict], key: Callable[[dict], Any]) -> list[dict]:
    """Mean and std over seeds of final and best test accuracy, per group of `key` (method, density)."""
    groups: dict[Any, list[dict]] = {}
    for m in members:
        groups.setdefault(key(m), []).append(m)
    rows = []
    for ms in groups.values():
        final, best = np.array([m["final_test_accuracy"] for m in ms]), np.array([m["best_test_accuracy"] for m in ms])
        rows.append(
            {
                "method": ms[0]["method"],
                "density": float(np.mean([m["final_density"] for m in ms])),
                "target_density": ms[0]["density"],
                "n_seeds": len(ms),
                "final_mean": float(final.mean()),
                "final_std": float(final.std()),
                "best_mean": float(best.mean()),
                "best_std": float(best.std()),
                "curve": np.mean([m["curve"] for m in ms], 0).tolist(),
            }
        )
    return rows
