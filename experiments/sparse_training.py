"""Sparse training from the start against the lottery: static masks (uniform, Erdős–Rényi, ERK), gradual
magnitude pruning (Zhu & Gupta), SET and RigL, all methods x densities x seeds in one compiled program.

Presets:
  set-fashion  the SET authors' IJCAI-2019 tutorial protocol (Fashion-MNIST, 2,000 / 1,000 images, 784-1000-
               1000-1000-10, ReLU, sigmoid output, MSE, dropout 0.2, SGD momentum 0.9, decay 2e-4, batch 40,
               400 epochs; SET at lr 0.05, ε = 13, ζ = 0.3; FixProb; dense at lr 0.001): first what the tutorial's
               code computes (its quirks included, experiments/sparse_training_parts/tutorial.py), SET, FixProb
               and dense x 5 seeds in one program; then the library's clean variants (autodiff, inverted
               dropout) of SET and FixProb (static ER), RigL, gradual and static ERK at SET's overall density,
               and dense, the same seeds, in a second program (the tutorial's N(0, 1)/10 init); the dense net
               again with He-normal init in a third (at N(0, 1)/10 its sigmoid saturates and it stops learning).
  mnist1d      the lottery engine's MNIST-1D MLP (40-300-300-10, Adam 2e-3, batch 100): IMP's ticket and SNIP at
               init (lottery engine) set the densities (one per pruning round); dense, static uniform / ER / ERK,
               gradual, SET and RigL at every one of them, every seed, in one program.

Writes results.json, table.md and the figures (accuracy against density; each method's accuracy curve) into
runs/sparse_training/<preset>/ (or --out). "best" accuracies are the maximum over epochs on the test set, as the
tutorial's "maximum accuracy" is; "final" is the last epoch's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from experiments.sparse_training_parts import figures, library, tutorial
from funcnn import data, losses, models, nn, prune

PRESETS: dict[str, dict[str, Any]] = {
    # chunk: members vmapped together, a divisor of the library population (30; 4 x 31 = 124): a remainder would
    # compile the member program a second time (lax.map's last, smaller batch)
    "set-fashion": {"seeds": 5, "epochs": 400, "hidden": 1000, "n_train": 2000, "n_test": 1000, "chunk": 6},
    "mnist1d": {"seeds": 4, "epochs": 40, "rounds": 5, "chunk": 4},
}
OPTIONS = ("seeds", "epochs", "hidden", "n_train", "n_test", "rounds", "chunk")


def fashion_subset(n_train: int, n_test: int) -> tuple[np.ndarray, ...]:
    """The tutorial's images: legacy np.random.seed(0), shuffle(arange(60000)), then shuffle(arange(10000)); the
    first n_train / n_test of each in the IDX order; pixels / 255, flattened; labels as ints."""
    d = data.load("fashion-mnist")
    rs = np.random.RandomState(0)  # the legacy generator np.random.seed(0) seeds
    train_idx, test_idx = np.arange(len(d.x_train)), np.arange(len(d.x_test))
    rs.shuffle(train_idx)
    rs.shuffle(test_idx)
    x, xt = d.x_train[train_idx[:n_train]], d.x_test[test_idx[:n_test]]
    return x.reshape(n_train, -1), d.y_train[train_idx[:n_train]], xt.reshape(n_test, -1), d.y_test[test_idx[:n_test]]


def schedule(
    epochs: int, steps_per_epoch: int, every: int | None = None, set_end: int | None = None
) -> library.Schedule:
    """Masks move every `every` steps (default: each epoch); SET until `set_end` (default: every epoch but the
    last), RigL's cosine to 75% of training, gradual from 5% to 50% of it (its end an update step)."""
    total = epochs * steps_per_epoch
    every = every or steps_per_epoch
    set_end = total - steps_per_epoch if set_end is None else set_end
    return library.Schedule(
        every=every,
        set_end=set_end,
        rigl_end=max(1, int(0.75 * total)),
        gradual_begin=every * max(1, round(0.05 * total / every)),
        gradual_end=every * max(1, (total // 2) // every),
    )


def set_fashion(args: argparse.Namespace, log: Any) -> dict:
    x, y, xt, yt = fashion_subset(args.n_train, args.n_test)
    h, p = args.hidden, tutorial.Protocol(sizes=(784, args.hidden, args.hidden, args.hidden, 10), epochs=args.epochs)
    seeds = list(range(args.seeds))
    onehot = lambda labels: np.eye(10, dtype=np.float32)[labels]
    t0 = time.perf_counter()
    log(f"tutorial program: SET, FixProb and dense x {len(seeds)} seeds, {args.epochs} epochs ...")
    res = jax.device_get(tutorial.run(seeds, tuple(map(jnp.asarray, (x, onehot(y), xt, onehot(yt)))), p))
    tutorial_s = time.perf_counter() - t0
    sizes = [a * b for a, b in zip(p.sizes[:-1], p.sizes[1:], strict=True)]
    members = []
    for kind, r in res.items():
        for i, seed in enumerate(seeds):
            acc = r["test_accuracy"][i]
            members.append(
                {
                    "method": f"tutorial_{kind}",
                    "density": 1.0 if kind == "dense" else -1.0,  # sparse: SET's density, set below
                    "seed": seed,
                    "final_density": float(r["active"][i].sum() / sum(sizes)),
                    "final_test_accuracy": float(acc[-1]),
                    "best_test_accuracy": float(acc.max()),
                    "curve": acc.tolist(),
                    "layer_density": r["layer_density"][i].tolist(),
                }
            )
    shapes = {
        f"l{i}": np.zeros((a, b), np.float32) for i, (a, b) in enumerate(zip(p.sizes[:-1], p.sizes[1:], strict=True))
    }
    er = prune.layer_densities(shapes, distribution="erdos_renyi", epsilon=p.epsilon)
    density = sum(er[k] * n for k, n in zip(shapes, sizes, strict=True)) / sum(sizes)  # SET's overall density
    log(f"tutorial program: {tutorial_s:.0f} s; SET's density (ε = 13, capped): {density:.4f}")
    for m in members:
        m["density"] = density if m["density"] < 0 else m["density"]

    normal = jax.nn.initializers.normal(0.1)  # the tutorial's N(0, 1)/10
    layers: list[nn.Layer] = []
    for _ in range(3):
        layers += [nn.Dense(h, w_init=normal), nn.Relu(), nn.Dropout(p.dropout)]
    net = nn.serial(*layers, nn.Dense(10, w_init=normal))
    inner = library.decoupled_sgd(p.lr_sparse, p.momentum, p.decay)
    steps = args.n_train // p.batch
    names = ["static_er", "set", "rigl", "gradual", "static_erk"]
    plan, txs, keys = library.population(names, [density], seeds, inner, schedule(args.epochs, steps))
    log(f"library program: {len(plan)} members (dense, {', '.join(names)} x {len(seeds)} seeds) ...")
    lib = library.train_population(
        plan, txs, keys, net, library.half_mse_on_sigmoid, (x, y), (xt, yt), args.epochs, p.batch, args.chunk
    )
    log(f"library program: {lib['seconds']:.0f} s")
    # The clean dense net at N(0, 1)/10 saturates its sigmoid outputs and stops learning (its gradient carries
    # σ'(z) ≈ 0; the tutorial's code escapes through its output delta σ'(a), a = σ(z), never below 0.19). The
    # same dense net with He-normal hidden layers (Glorot output), its own program (another net's init):
    he = [
        layer
        for _ in range(3)
        for layer in (nn.Dense(h, w_init=jax.nn.initializers.he_normal()), nn.Relu(), nn.Dropout(p.dropout))
    ]
    net_he = nn.serial(*he, nn.Dense(10, w_init=jax.nn.initializers.glorot_normal()))
    plan_he = [{"method": "dense_he_init", "density": 1.0, "seed": seed} for seed in seeds]
    txs_he = [
        library.method("dense", inner, 1.0, jax.random.key(seed), library.Schedule(1, 1, 1, 1, 1)) for seed in seeds
    ]
    log(f"dense (He init) program: {len(seeds)} members ...")
    dense_he = library.train_population(
        plan_he, txs_he, seeds, net_he, library.half_mse_on_sigmoid, (x, y), (xt, yt), args.epochs, p.batch, len(seeds)
    )
    everyone = members + lib["members"] + dense_he["members"]
    rows = library.summarize(everyone, lambda m: m["method"])  # one density (and dense)
    return {
        "set_density": density,
        "rows": rows,
        "members": everyone,
        "seconds": {"tutorial": tutorial_s, "library": lib["seconds"], "dense_he_init": dense_he["seconds"]},
        "protocol": p._asdict(),
    }


def mnist1d(args: argparse.Namespace, log: Any) -> dict:
    d = data.load("mnist1d")
    (x, y), _ = data.train_val_split(d.x_train, d.y_train, 500, jax.random.key(0))  # as the lottery: 500 held out
    steps = len(x) // 100
    log(f"lottery program(s): IMP ticket and SNIP at init, {args.rounds} rounds x {args.seeds} seeds ...")
    lot = library.lottery_study(args.seeds, args.rounds, args.epochs * steps, steps, None, not args.no_progress)
    densities = lot["densities"]
    log(f"lottery: {lot['seconds']:.0f} s; densities {[round(v, 4) for v in densities]}")
    total = args.epochs * steps
    s = schedule(args.epochs, steps, every=min(100, max(1, total // 14)), set_end=int(0.75 * total))
    plan, txs, keys = library.population(list(library.METHODS), densities, list(range(args.seeds)), optax.adam(2e-3), s)
    log(
        f"library program: {len(plan)} members ({len(library.METHODS)} methods x {len(densities)} densities x "
        f"{args.seeds} seeds, and dense) ..."
    )
    lib = library.train_population(
        plan,
        txs,
        keys,
        models.build("mlp-300-300"),
        losses.softmax_cross_entropy,
        (x, y),
        (d.x_test, d.y_test),
        args.epochs,
        100,
        args.chunk,
    )
    log(f"library program: {lib['seconds']:.0f} s")
    rows = library.summarize(lib["members"], lambda m: (m["method"], m["density"]))
    for r in lot["rows"]:
        rows.append(
            {
                "method": {"imp": "imp_ticket", "snip": "snip_at_init"}[r["arm"]],
                "density": r["percent_remaining"] / 100,
                "target_density": r["percent_remaining"] / 100,
                "n_seeds": r["n_seeds"],
                "final_mean": r["final_test_accuracy_mean"],
                "final_std": r["final_test_accuracy_std"],
                "best_mean": r["best_test_accuracy_mean"],
                "best_std": r["best_test_accuracy_std"],
                "curve": [],
            }
        )
    return {
        "rows": rows,
        "members": lib["members"],
        "lottery": lot["rows"],
        "densities": densities,
        "seconds": {"lottery": lot["seconds"], "library": lib["seconds"]},
    }


def table(rows: list[dict], final_density: float | None = None) -> str:
    """Markdown: method, density, final and best test accuracy (mean ± std over seeds), at every density (or only
    the final one and the dense net)."""
    keep = [
        r
        for r in rows
        if final_density is None
        or r["method"] == "dense"
        or r["method"] in ("tutorial_dense", "dense_he_init")
        or abs(r["target_density"] - final_density) < 1e-9
    ]
    lines = ["| method | density | final test acc % | best test acc % | seeds |", "|---|---|---|---|---|"]
    for r in sorted(keep, key=lambda r: (-r["target_density"], -r["final_mean"])):
        lines.append(
            f"| {r['method']} | {r['density']:.4f} | {100 * r['final_mean']:.2f} ± {100 * r['final_std']:.2f} "
            f"| {100 * r['best_mean']:.2f} ± {100 * r['best_std']:.2f} | {r['n_seeds']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("sparse_training", __doc__ or "")
    p.set_defaults(out=None)
    p.add_argument("--preset", default="mnist1d", choices=sorted(PRESETS), help="protocol (default mnist1d)")
    p.add_argument("--seeds", type=common.positive_int, help="seeds per method (set-fashion 5, mnist1d 4)")
    p.add_argument("--epochs", type=common.positive_int, help="epochs (set-fashion 400, mnist1d 40: 1,400 steps)")
    p.add_argument("--hidden", type=common.positive_int, help="set-fashion's hidden width (1000)")
    p.add_argument("--n-train", type=common.positive_int, help="set-fashion's training images (2000)")
    p.add_argument("--n-test", type=common.positive_int, help="set-fashion's test images (1000)")
    p.add_argument("--rounds", type=common.positive_int, help="mnist1d: IMP's pruning rounds, the densities (5)")
    p.add_argument("--chunk", type=common.positive_int, help="library members vmapped together (6, 4)")
    p.add_argument("--no-progress", action="store_true", help="quiet: no progress bars or lines")
    args = p.parse_args(argv)
    for name in OPTIONS:
        if getattr(args, name, None) is None:
            setattr(args, name, PRESETS[args.preset].get(name))
    out = common.out_folder(Path(args.out or Path("runs") / "sparse_training" / args.preset))
    log = (lambda line: None) if args.no_progress else (lambda line: print(line, flush=True))
    t0 = time.perf_counter()
    result = set_fashion(args, log) if args.preset == "set-fashion" else mnist1d(args, log)
    result.update(
        preset=args.preset,
        options={k: getattr(args, k) for k in OPTIONS},
        wall_seconds=time.perf_counter() - t0,
        jax=jax.__version__,
        device=str(jax.devices()[0]),
    )
    dens = [
        r["target_density"] for r in result["rows"] if r["method"] not in ("dense", "tutorial_dense", "dense_he_init")
    ]
    final = min(dens) if args.preset == "mnist1d" else None
    md = f"# Sparse training, preset {args.preset}\n\n" + table(result["rows"], final) + "\n"
    if args.preset == "mnist1d":
        md += "\n## Every density\n\n" + table(result["rows"]) + "\n"
    md += "\nProgram seconds (compile included): " + ", ".join(f"{k} {v:.0f}" for k, v in result["seconds"].items())
    (out / "table.md").write_text(md + "\n")
    result["figures"] = [str(f) for f in figures.plot(result["rows"], out, final)]
    common.save_results(out, result)
    print(md)
    return result


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-sparse-training`); returns exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
