"""Supermasks: subnetworks of random, untrained nets (Zhou et al. 2019; Ramanujan et al. 2020, edge-popup).

For each method (edge-popup: the top-k% of learned scores per layer; Bernoulli: Zhou et al.'s sampled masks with
learned logits), frozen weights (the signed Kaiming constant, Kaiming normal) and fraction k of weights kept,
a population of seeds, each its own random net, learns a mask and only a mask (`funcnn.sparsity.supermask`),
all seeds in one program. Against them: the same net trained dense (Adam) and its IMP ticket (rewound to θ0,
pruned by magnitude at the same per-layer density), and edge-popup on wider random nets (hidden widths times
--widths: edge-popup's claim is that the wider the random net, the better its best subnetwork).

For Bernoulli masks k is the starting keep probability, not a constraint: the density they end at is reported.
Edge-popup's optimizer is its small-scale configs' (SGD 0.1, momentum 0.9, weight decay 1e-4 on the scores,
cosine; 50 epochs on MNIST-1D, 20 on Fashion-MNIST, where edge-popup trains 100); Bernoulli's is Adam 0.1 with
the same cosine (Zhou et al. used SGD at lr 100 for 2,000 epochs; on MNIST-1D at 30 epochs it stayed 15 points
below Adam's). The dense nets and IMP rounds train as the lottery presets do (Adam 2e-3, batch 100, 40 epochs on
MNIST-1D; Adam 1.2e-3, batch 60, 20 epochs on Fashion-MNIST), and are kept in --baselines, shared with
`funcnn-one-shot`. Presets: mnist1d (the 40-300-300-10 MLP on MNIST-1D; widths x1, x2, x4), lenet-fashion
(LeNet-300-100 on Fashion-MNIST; widths x1, x2 at k = 50%), ci (seconds, for the tests). Writes results.json,
accuracy_vs_k.png and accuracy_vs_width.png.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from experiments.subnetwork_parts import baselines
from experiments.subnetwork_parts.baselines import summarize
from funcnn import cpu, nn, sparsity, train


@dataclasses.dataclass(frozen=True)
class Preset:
    dataset: str
    hidden: tuple[int, ...]
    flatten: bool
    epochs: int  # of the supermasks
    dense_epochs: int  # of the dense net and of each IMP round
    dense_batch: int
    dense_lr: float
    seeds: int = 3
    densities: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
    widths: tuple[int, ...] = (1, 2, 4)
    width_densities: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
    batch: int = 128
    imp_rate: float = 0.2
    imp_targets: tuple[float, ...] = baselines.IMP_TARGETS
    train_size: int | None = None
    test_size: int | None = None


PRESETS = {
    "mnist1d": Preset("mnist1d", (300, 300), False, epochs=50, dense_epochs=40, dense_batch=100, dense_lr=2e-3),
    "lenet-fashion": Preset(
        "fashion-mnist", (300, 100), True, epochs=20, dense_epochs=20, dense_batch=60, dense_lr=1.2e-3,
        widths=(1, 2), width_densities=(0.5,),
    ),
    "ci": Preset(
        "mnist1d", (24, 24), False, epochs=2, dense_epochs=2, dense_batch=64, dense_lr=2e-3, seeds=2,
        densities=(0.3, 0.7), widths=(1, 2), width_densities=(0.5,), imp_rate=0.5, imp_targets=(0.3, 0.7),
        train_size=512, test_size=256,
    ),
}  # fmt: skip
METHODS = ("edge_popup", "bernoulli")
WEIGHTS = ("signed_constant", "kaiming_normal")


def optimizer(method: str, steps: int) -> optax.GradientTransformation:
    """Edge-popup's SGD (0.1, momentum 0.9, weight decay 1e-4, cosine); Adam 0.1 with the cosine for Bernoulli."""
    if method == "edge_popup":
        schedule = optax.cosine_decay_schedule(0.1, steps)
        return optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(schedule, momentum=0.9))
    return optax.adam(optax.cosine_decay_schedule(0.1, steps))


def train_supermasks(
    net: nn.Layer, method: str, configs: list[tuple[str, float]], p: Preset, d: baselines.Data, seeds: list[int]
) -> list[dict[str, Any]]:
    """One compiled program for every (weights, k) of `configs` and every seed: member (weights, k, seed) draws
    its random net and scores from key(seed) (so a seed is the same net at every k), learns its mask."""
    in_shape = tuple(d.x.shape[1:])
    tx = optimizer(method, p.epochs * (len(d.x) // p.batch))
    shape_net = sparsity.supermask(net, density=0.5, key=jax.random.key(0), method=method)  # weights and k: state
    scores = train.make_evaluate(shape_net, baselines.LOSS)

    def member(key: jax.Array, density: jax.Array, weights: str) -> train.TrainState:
        k_scores, k_weights, k_run = jax.random.split(key, 3)
        sm = sparsity.supermask(net, density=density, key=k_weights, method=method, weights=weights)
        return train.init_state(sm.init(k_scores, in_shape), tx, model_state=sm.init_state(in_shape), key=k_run)

    def build(keys: jax.Array) -> train.TrainState:  # every member's start, in the training program
        states = [
            jax.vmap(lambda key, w=weights, dens=k: member(key, jnp.float32(dens), w))(keys) for weights, k in configs
        ]
        return jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *states)

    run = baselines.population_trainer(
        build,
        train.make_train_step(shape_net, baselines.LOSS, tx),
        lambda s, x, y: scores(s.params, x, y, s.model_state)["accuracy"],
        epochs=p.epochs, batch_size=p.batch, chunk=cpu.chunk_or_default(None, net, in_shape),
    )  # fmt: skip
    seed_keys = jnp.stack([jax.random.key(s) for s in seeds])
    data_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(jnp.concatenate([seed_keys] * len(configs)))
    final, accuracy = run((seed_keys,), data_keys, d)
    accuracy = np.asarray(accuracy)[:, -1].reshape(len(configs), len(seeds))
    rows = []
    for c, (weights, k) in enumerate(configs):
        row = {"method": method, "weights": weights, "k": k, "accuracy": summarize(accuracy[c])}
        if method == "bernoulli":  # the density the masks ended at: the mean keep probability σ(logits)
            logits = jax.tree.leaves(final.params)
            n = sum(leaf[0].size for leaf in logits)
            kept = sum(jnp.sum(jax.nn.sigmoid(leaf), axis=tuple(range(1, leaf.ndim))) for leaf in logits) / n
            row["final_density"] = summarize(np.asarray(kept).reshape(len(configs), len(seeds))[c])
        rows.append(row)
    return rows


def run_grid(p: Preset, d: baselines.Data, seeds: list[int], log: Any) -> list[dict[str, Any]]:
    """Both methods x both weights x every k at width 1, then edge-popup (signed constant) on the wider nets."""
    rows = []
    for method in METHODS:
        t0 = time.perf_counter()
        new = train_supermasks(
            baselines.mlp(p.hidden, p.flatten), method, [(w, k) for w in WEIGHTS for k in p.densities], p, d, seeds
        )
        for row in new:
            row["width"] = 1
            log(f"{method:10s} {row['weights']:15s} k={row['k']:.1f}: {100 * row['accuracy']['mean']:.2f}%")
        log(f"  ({time.perf_counter() - t0:.0f} s)")
        rows += new
    for width in p.widths:
        if width == 1:
            continue
        t0 = time.perf_counter()
        wide = baselines.mlp(p.hidden, p.flatten, width)
        new = train_supermasks(wide, "edge_popup", [("signed_constant", k) for k in p.width_densities], p, d, seeds)
        for row in new:
            row["width"] = width
            log(f"edge_popup x{width} k={row['k']:.1f}: {100 * row['accuracy']['mean']:.2f}%")
        log(f"  ({time.perf_counter() - t0:.0f} s)")
        rows += new
    return rows


def plot(res: dict[str, Any], out: Path) -> list[Path]:
    plt = common.plt
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for method in METHODS:
        for weights, style in zip(WEIGHTS, ("-", "--"), strict=True):
            rows = [r for r in res["rows"] if (r["method"], r["weights"], r["width"]) == (method, weights, 1)]
            ax.errorbar(
                [100 * r["k"] for r in rows], [100 * r["accuracy"]["mean"] for r in rows],
                yerr=[100 * r["accuracy"]["std"] for r in rows], ls=style, marker="o", capsize=3,
                label=f"{method}, {weights}",
            )  # fmt: skip
    imp = sorted(res["imp"].items(), key=lambda kv: float(kv[0]))
    if imp:
        ax.plot(
            [100 * float(k) for k, _ in imp], [100 * v["mean"] for _, v in imp], "k-s", label="IMP ticket (trained)"
        )
    ax.axhline(100 * res["dense"]["mean"], color="gray", ls=":", label="dense, trained")
    ax.set(
        xlabel="weights kept k (%)", ylabel="test accuracy (%)", title=f"{res['preset']}: subnetworks of random nets"
    )
    ax.legend(fontsize=7)
    paths = [common.save_figure(fig, out / "accuracy_vs_k.png")]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for k in sorted({r["k"] for r in res["rows"] if r["width"] > 1}):
        rows = sorted(
            (
                r
                for r in res["rows"]
                if r["k"] == k and (r["method"], r["weights"]) == ("edge_popup", "signed_constant")
            ),
            key=lambda r: r["width"],
        )
        ax.errorbar(
            [r["width"] for r in rows], [100 * r["accuracy"]["mean"] for r in rows],
            yerr=[100 * r["accuracy"]["std"] for r in rows], marker="o", capsize=3, label=f"k={100 * k:.0f}%",
        )  # fmt: skip
    ax.axhline(100 * res["dense"]["mean"], color="gray", ls=":", label="dense (width 1), trained")
    ax.set(xscale="log", xlabel="width multiplier", ylabel="test accuracy (%)", title="edge-popup, signed constant")
    ax.legend(fontsize=7)
    paths.append(common.save_figure(fig, out / "accuracy_vs_width.png"))
    return paths


def table(res: dict[str, Any]) -> str:
    rows = []
    for k in sorted({r["k"] for r in res["rows"]}):
        line: list[Any] = [f"{100 * k:.0f}%"]
        for method in METHODS:
            for weights in WEIGHTS:
                hit = [
                    r for r in res["rows"] if (r["method"], r["weights"], r["k"], r["width"]) == (method, weights, k, 1)
                ]
                line.append(
                    f"{100 * hit[0]['accuracy']['mean']:.2f} ± {100 * hit[0]['accuracy']['std']:.2f}" if hit else "-"
                )
        imp = res["imp"].get(str(round(k, 6)))
        line.append(f"{100 * imp['mean']:.2f} ± {100 * imp['std']:.2f}" if imp else "-")
        rows.append(line)
    header = ["k"] + [f"{m} {w[:6]}" for m in METHODS for w in WEIGHTS] + ["IMP ticket"]
    return (
        common.table(header, rows)
        + f"\ndense, trained: {100 * res['dense']['mean']:.2f} ± {100 * res['dense']['std']:.2f}"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser("supermask", __doc__ or "")
    p.add_argument(
        "--preset", choices=sorted(PRESETS), default="mnist1d", help="net, data and budget (default mnist1d)"
    )
    p.add_argument("--seeds", type=common.positive_int, help="seeds (members of each population)")
    p.add_argument("--epochs", type=common.positive_int, help="epochs of every supermask")
    p.add_argument("--dense-epochs", type=common.positive_int, help="epochs of the dense net and of each IMP round")
    p.add_argument("--widths", type=common.positive_int, nargs="+", help="width multipliers of the random nets")
    p.add_argument("--no-imp", action="store_true", help="skip the IMP tickets")
    p.add_argument(
        "--baselines", type=Path, default=Path("runs") / "subnetwork-baselines",
        help="where the dense nets and IMP tickets are kept, and found when trained before by this command or "
        "funcnn-one-shot with the same configuration (default runs/subnetwork-baselines)",
    )  # fmt: skip
    args = p.parse_args(argv)
    preset = PRESETS[args.preset]
    overrides = {k: v for k, v in common.given(args, ("seeds", "epochs", "dense_epochs")).items()}
    if args.widths:
        overrides["widths"] = tuple(sorted(set(args.widths)))
    preset = dataclasses.replace(preset, **overrides)
    out = common.out_folder(args.out)
    d = baselines.load(preset.dataset, preset.train_size, preset.test_size)
    seeds = list(range(preset.seeds))
    print(f"supermask '{args.preset}': {len(d.x)} training examples, {preset.seeds} seeds -> {out}")
    t0 = time.perf_counter()
    net = baselines.mlp(preset.hidden, preset.flatten)
    base = baselines.cached_dense_and_imp(
        args.baselines, baselines.describe(preset), net, seeds, d, targets=preset.imp_targets, rate=preset.imp_rate,
        epochs=preset.dense_epochs, batch_size=preset.dense_batch, learning_rate=preset.dense_lr, imp=not args.no_imp,
    )  # fmt: skip
    rows = run_grid(preset, d, seeds, print)
    return baselines.finish(out, args.preset, preset, rows, base, t0, {}, table, plot)


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-supermask`): run `main(argv)`, return exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
