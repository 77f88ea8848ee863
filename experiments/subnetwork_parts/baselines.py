"""The baselines a subnetwork is measured against: the dense trained net and the IMP ticket at the same density,
for a population of seeds trained in one program per round; and the members' evaluation and fine-tuning.

IMP here (Frankle & Carbin's lottery ticket): train from θ0, prune `rate` of each weight layer's surviving
weights by magnitude (every layer at the same rate, the output layer included, so that every layer has the
density a supermask's does), rewind the survivors to θ0, train again; the ladder of densities steps by
`rate` and stops exactly on each target density (1 → 0.9 → 0.72 → 0.7 → 0.56 → 0.5 → ... with rate 0.2).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from funcnn import cpu, data, io, losses, models, nn, prune, train

LOSS = losses.softmax_cross_entropy


class Data(NamedTuple):
    """Train and test arrays (the test set is the validation set: every number reported is its final epoch's)."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load(dataset: str, train_size: int | None = None, test_size: int | None = None) -> Data:
    """The data set's first `train_size` training and `test_size` test examples (all by default)."""
    d = data.load(dataset)
    return Data(d.x_train[:train_size], d.y_train[:train_size], d.x_test[:test_size], d.y_test[:test_size])


def mlp(hidden: Sequence[int], flatten: bool, width: int = 1) -> nn.Layer:
    """`models.mlp` with every hidden width times `width` (Glorot-normal weights, as the lottery presets)."""
    return models.mlp(tuple(h * width for h in hidden), flatten=flatten)


def ladder(targets: Sequence[float], rate: float) -> list[float]:
    """IMP's densities from 1: each round keeps 1 − rate of the last, never stepping past the next target.

    >>> [round(d, 3) for d in ladder([0.9, 0.5], 0.2)]
    [1.0, 0.9, 0.72, 0.576, 0.5]
    """
    out, d = [1.0], 1.0
    for t in sorted(targets, reverse=True):
        while d * (1 - rate) > t + 1e-9:
            d *= 1 - rate
            out.append(d)
        if t < d - 1e-9:
            d = t
            out.append(d)
    return out


def population_trainer(
    init: Callable[..., Any],
    step: train.Step,
    evaluate: Callable[[Any, jax.Array, jax.Array], jax.Array],
    *,
    epochs: int,
    batch_size: int,
    chunk: int | None,
) -> Callable[..., tuple[Any, jax.Array]]:
    """One compiled program, `run(init_args, keys, d) -> (final states, test accuracy (N, epochs))`: the states
    `init(*init_args)` (a leading member axis), then member i trains from its state for `epochs` epochs, its
    batches in the order of `train.batch_indices(fold_in(keys[i], e), ...)` (as `fit_population`), evaluated
    after each epoch. Built once, it serves every call with the same shapes (IMP's rounds: one compile)."""

    def program(args: tuple, keys: jax.Array, x: jax.Array, y: jax.Array, xv: jax.Array, yv: jax.Array) -> Any:
        n = x.shape[0]
        states = init(*args)

        def member(inputs: tuple[Any, jax.Array]) -> Any:
            state, k = inputs

            def epoch(s: Any, e: jax.Array) -> tuple[Any, jax.Array]:
                idx = train.batch_indices(jax.random.fold_in(k, e), n, batch_size)
                s = jax.lax.scan(lambda t, i: (step(t, (x[i], y[i]))[0], None), s, idx)[0]
                return s, evaluate(s, xv, yv)

            return jax.lax.scan(epoch, state, jnp.arange(epochs))

        return cpu.map_members(member, (states, keys), chunk)

    compiled = jax.jit(program)

    def run(init_args: tuple, keys: jax.Array, d: Data) -> tuple[Any, jax.Array]:
        return compiled(init_args, keys, *map(jnp.asarray, d))

    return run


def dense_and_imp(
    net: nn.Layer,
    seeds: Sequence[int],
    d: Data,
    *,
    targets: Sequence[float],
    rate: float,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    imp: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The dense nets (one per seed, Adam) and, with imp, their IMP tickets at each target density: every round
    one run of the same compiled program (all seeds), the dense round with all-True masks.

    Returns {"dense": accuracies (seeds,), "dense_params": the trained params (leading seed axis), "imp": {density:
    accuracies}, "imp_densities": {density: measured total density}, "seconds": ...}."""
    tx = optax.adam(learning_rate)
    t0 = time.perf_counter()
    in_shape = tuple(d.x.shape[1:])
    keys = jnp.stack([jax.random.key(s) for s in seeds])
    k_init, k_run = (jnp.stack(ks) for ks in zip(*(jax.random.split(k) for k in keys), strict=True))
    theta0 = jax.vmap(lambda k: net.init(k, in_shape))(k_init)
    scores = train.make_evaluate(net, LOSS)
    run = population_trainer(
        jax.vmap(lambda p, m: train.init_state(p, tx, m)),  # rewound to θ0, masked
        train.make_train_step(net, LOSS, tx),
        lambda s, x, y: scores(s.params, x, y)["accuracy"],
        epochs=epochs, batch_size=batch_size, chunk=cpu.chunk_or_default(None, net, in_shape),
    )  # fmt: skip

    def fit(masks: Any) -> tuple[Any, np.ndarray]:
        final, accuracy = run((theta0, masks), k_run, d)
        return final.params, np.asarray(accuracy)[:, -1]

    masks = jax.tree.map(lambda p: jnp.ones(p.shape, bool), theta0)
    params, accuracy = fit(masks)
    out: dict[str, Any] = {"dense": accuracy, "dense_params": params, "imp": {}, "imp_densities": {}}
    log(f"dense: test accuracy {100 * accuracy.mean():.2f}% ({time.perf_counter() - t0:.0f} s)")
    if imp:
        steps = ladder(targets, rate)
        for before, after in itertools.pairwise(steps):
            masks = jax.vmap(lambda p, m, r=1 - after / before: prune.magnitude(p, m, r))(params, masks)
            params, accuracy = fit(masks)
            if any(abs(after - t) < 1e-9 for t in targets):
                key = round(after, 6)
                out["imp"][key] = accuracy
                out["imp_densities"][key] = float(jnp.mean(jax.vmap(lambda m: prune.density(m)["total"])(masks)))
                log(f"IMP at density {after:.3f}: {100 * accuracy.mean():.2f}% ({time.perf_counter() - t0:.0f} s)")
    out["seconds"] = time.perf_counter() - t0
    return out


def describe(preset: Any) -> dict[str, Any]:
    """What identifies a preset's data and dense net (for the baselines' cache)."""
    out = {f: getattr(preset, f) for f in ("dataset", "hidden", "flatten", "train_size", "test_size")}
    if getattr(preset, "model", "mlp") != "mlp":  # one_shot's named models; both experiments' MLPs are the same
        out["model"] = preset.model
    return out


IMP_TARGETS = tuple(round(0.1 * i, 1) for i in range(1, 10))
"""The densities where both experiments stop their IMP ladder (every 10%): one IMP run serves both."""


def cache_folder(
    folder: Path, describe: dict[str, Any], seeds: Sequence[int], kwargs: dict[str, Any]
) -> tuple[Path, dict[str, Any]]:
    """(folder/<hash>, the configuration hashed): the dense nets' data and net, seeds and training."""
    config = {**describe, "seeds": list(seeds), **{k: v for k, v in kwargs.items() if k != "log"}}
    return folder / hashlib.sha256(json.dumps(config, sort_keys=True, default=list).encode()).hexdigest()[:12], config


def cached_dense_and_imp(
    folder: Path | None, describe: dict[str, Any], net: nn.Layer, seeds: Sequence[int], d: Data, **kwargs: Any
) -> dict[str, Any]:
    """`dense_and_imp`, kept in folder/<hash of describe, seeds and kwargs>/ (the trained dense params as .npz,
    the accuracies as JSON) and loaded from there when the same baselines were trained before, by either
    experiment; folder None: always trained."""
    if folder is None:
        return dense_and_imp(net, seeds, d, **kwargs)
    where, config = cache_folder(folder, describe, seeds, kwargs)
    in_shape = tuple(d.x.shape[1:])
    like = jax.eval_shape(
        lambda: jax.vmap(lambda k: net.init(k, in_shape))(jnp.stack([jax.random.key(0)] * len(seeds)))
    )
    log = kwargs.get("log", print)
    if (where / "baselines.json").is_file():
        meta = json.loads((where / "baselines.json").read_text())
        log(f"dense nets and IMP tickets from {where} (trained before with this configuration)")
        return {
            "dense": np.asarray(meta["dense"]),
            "dense_params": io.load_tree(where / "dense_params.npz", like),
            "imp": {float(k): np.asarray(v) for k, v in meta["imp"].items()},
            "imp_densities": {float(k): v for k, v in meta["imp_densities"].items()},
            "seconds": meta["seconds"],
            "cached": str(where),
        }
    out = dense_and_imp(net, seeds, d, **kwargs)
    where.mkdir(parents=True, exist_ok=True)
    io.save_tree(where / "dense_params.npz", out["dense_params"])
    meta = {
        "config": config,
        "dense": out["dense"].tolist(),
        "imp": {str(k): v.tolist() for k, v in out["imp"].items()},
        "imp_densities": {str(k): v for k, v in out["imp_densities"].items()},
        "seconds": out["seconds"],
    }
    io.atomic_write_json(where / "baselines.json", meta)  # last: its presence says the folder is complete
    return out


def evaluate_members(
    net: nn.Layer, params: Any, x: np.ndarray, y: np.ndarray, chunk: int | None = None, model_state: Any = None
) -> np.ndarray:
    """Test accuracy of each member (leading axis of params, and of model_state when given), one program."""
    scores = train.make_evaluate(net, LOSS)

    def one(p: Any) -> jax.Array:
        return scores(p[0], x, y, p[1])["accuracy"]

    run = jax.jit(lambda ps: cpu.map_members(one, ps, chunk))
    return np.asarray(run((params, model_state)))


def finetune_members(
    net: nn.Layer,
    params: Any,
    masks: Any,
    keys: jax.Array,
    d: Data,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    chunk: int | None = None,
) -> Any:
    """Each member (params and masks with a leading axis) trained `epochs` more epochs under its mask (Adam, pruned
    weights held at 0), from its own params: one compiled program for all. Returns the new params."""
    tx = optax.adam(learning_rate)
    step = train.make_train_step(net, LOSS, tx)
    x, y = jnp.asarray(d.x), jnp.asarray(d.y)
    n = len(d.x)

    def member(inputs: tuple[Any, Any, jax.Array]) -> Any:
        p, m, k = inputs
        state = train.init_state(p, tx, m, key=jax.random.fold_in(k, 1))

        def epoch(s: train.TrainState, e: jax.Array) -> tuple[train.TrainState, None]:
            idx = train.batch_indices(jax.random.fold_in(k, e), n, batch_size)
            return jax.lax.scan(lambda s, i: (step(s, (x[i], y[i]))[0], None), s, idx)[0], None

        return jax.lax.scan(epoch, state, jnp.arange(epochs))[0].params

    return jax.jit(lambda xs: cpu.map_members(member, xs, chunk))((params, masks, keys))


def summarize(accuracies: Any) -> dict[str, Any]:
    """{"mean", "std", "all"} of accuracies over seeds (fractions)."""
    a = np.asarray(accuracies, np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "all": a.tolist()}


def finish(
    out: Path,
    name: str,
    preset: Any,
    rows: list,
    base: dict[str, Any],
    t0: float,
    extra: dict[str, Any],
    table: Callable[[dict[str, Any]], str],
    plot: Callable[[dict[str, Any], Path], list[Path]],
) -> dict[str, Any]:
    """The results of a study against the dense nets and IMP tickets of `base`: printed as `table`, plotted by
    `plot` into `out`, saved as `out/results.json`, returned."""
    res: dict[str, Any] = {
        "preset": name,
        "config": dataclasses.asdict(preset),
        "rows": rows,
        "dense": summarize(base["dense"]),
        "imp": {str(k): {**summarize(v), "density": base["imp_densities"][k]} for k, v in base["imp"].items()},
        **extra,
        "seconds": time.perf_counter() - t0,
        "device": str(jax.devices()[0].device_kind),
    }
    print(table(res))
    res["figures"] = [str(f) for f in plot(res, out)]
    common.save_results(out, res)
    print(f"{res['seconds'] / 60:.1f} min; results: {out / 'results.json'}")
    return res
