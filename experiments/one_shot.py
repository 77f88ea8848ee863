"""Pruning a trained net without retraining: magnitude, Wanda (Sun et al. 2023) and SparseGPT (Frantar & Alistarh
2023), one shot, at 50-90% sparsity and 2:4; then the same masks fine-tuned for a short budget; against the IMP
ticket (retrained from θ0 over many rounds) at the same density.

A population of dense nets (one per seed, Adam) is trained once; each is pruned from --calibration training
examples (their activations, for Wanda and SparseGPT; magnitude needs none): magnitude layer by layer (the
lottery's criterion; 2:4 within each output unit), Wanda's |W| · ‖X_j‖ within each output unit, SparseGPT's
column-wise Optimal Brain Surgeon with its weight updates (`funcnn.prune`); every weight layer, the output
layer included, at the same density. Every pruned net is tested as it is, then trained --finetune-epochs more
under its mask (Adam at a quarter of the dense rate), all of them in one program. The IMP tickets and the dense nets are
kept in --baselines and shared with `funcnn-supermask` when their configuration matches.

Presets: lenet-fashion (LeNet-300-100 on Fashion-MNIST), mnist1d (the 40-300-300-10 MLP), conv2-fashion
(Conv-2: SparseGPT's largest layer has 12,544 inputs, a 630 MB Hessian; no IMP; no 2:4, since its first conv's
fan-in, 3 · 3 · 1 = 9, is not a multiple of 4), ci (seconds, for the tests). A preset whose n:m does not divide
every weight layer's fan-in is refused before anything trains.
Writes results.json and accuracy_vs_density.png.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from experiments.subnetwork_parts import baselines
from experiments.subnetwork_parts.baselines import summarize
from funcnn import cpu, models, nn, prune


@dataclasses.dataclass(frozen=True)
class Preset:
    dataset: str
    model: str  # "mlp" (hidden, flatten) or a `models.build` name
    hidden: tuple[int, ...]
    flatten: bool
    dense_epochs: int
    dense_batch: int
    dense_lr: float
    seeds: int = 3
    densities: tuple[float, ...] = (0.5, 0.4, 0.3, 0.2, 0.1)
    n_of_m: tuple[int, int] | None = (2, 4)
    calibration: int = 2048
    finetune_epochs: int = 1
    finetune_lr: float | None = None  # None: dense_lr / 4
    imp: bool = True
    imp_rate: float = 0.2
    imp_targets: tuple[float, ...] = baselines.IMP_TARGETS
    train_size: int | None = None
    test_size: int | None = None


PRESETS = {
    "lenet-fashion": Preset("fashion-mnist", "mlp", (300, 100), True, dense_epochs=20, dense_batch=60, dense_lr=1.2e-3),
    "mnist1d": Preset("mnist1d", "mlp", (300, 300), False, dense_epochs=40, dense_batch=100, dense_lr=2e-3),
    "conv2-fashion": Preset(
        "fashion-mnist", "conv2", (), False, dense_epochs=4, dense_batch=60, dense_lr=2e-4, seeds=1,
        densities=(0.5, 0.3, 0.1), calibration=512, imp=False, n_of_m=None,
    ),
    "ci": Preset(
        "mnist1d", "mlp", (24, 24), False, dense_epochs=2, dense_batch=64, dense_lr=2e-3, seeds=2,
        densities=(0.7, 0.3), calibration=256, imp_rate=0.5, imp_targets=(0.3, 0.7), train_size=512, test_size=256,
    ),
}  # fmt: skip
METHODS = ("magnitude", "wanda", "sparsegpt")


def build(p: Preset) -> nn.Layer:
    return baselines.mlp(p.hidden, p.flatten) if p.model == "mlp" else models.build(p.model)


def prune_one(method: str, target: float | tuple[int, int], net: nn.Layer, params: Any, x: Any) -> tuple[Any, Any]:
    """(pruned params, masks) of one trained net: density `target`, or n of every m for a pair."""
    nm = target if isinstance(target, tuple) else None
    density = None if nm else float(target)
    if method == "sparsegpt":
        return prune.sparsegpt(net, params, x, density=density, n_of_m=nm, return_masks=True)
    if method == "wanda":
        masks = prune.by_output(prune.wanda_scores(net, params, x), density=density, n_of_m=nm)
    elif nm is not None:  # magnitude n:m, within each output unit as the others
        masks = prune.by_output(jax.tree.map(jnp.abs, params), n_of_m=nm)
    else:  # magnitude, layer by layer: the lottery's criterion
        masks = prune.magnitude(params, prune.ones(params), 1 - density)
    return prune.apply(params, masks), masks


def check_n_of_m(net: nn.Layer, p: Preset, input_shape: tuple) -> None:
    """Refuse, before anything trains, an n:m that `prune.by_output` would refuse on this net's weights (an m
    that does not divide a layer's fan-in): its own check, run on the params' shapes only (`jax.eval_shape`)."""
    if p.n_of_m is not None:
        jax.eval_shape(lambda k: prune.by_output(net.init(k, input_shape), n_of_m=p.n_of_m), jax.random.key(0))


def label(target: float | tuple[int, int]) -> str:
    return f"{target[0]}:{target[1]}" if isinstance(target, tuple) else f"{100 * (1 - target):.0f}% sparse"


def run_methods(net: nn.Layer, p: Preset, d: baselines.Data, dense_params: Any, log: Any) -> list[dict[str, Any]]:
    """Every method at every target for every seed: pruned, tested, fine-tuned and tested again."""
    targets: list[Any] = list(p.densities) + ([tuple(p.n_of_m)] if p.n_of_m else [])
    x = jnp.asarray(d.x[: p.calibration])
    members, configs, seconds = [], [], {}
    for method in METHODS:
        t0 = time.perf_counter()
        for target in targets:
            for i in range(p.seeds):
                params = jax.tree.map(lambda a, i=i: a[i], dense_params)
                members.append(prune_one(method, target, net, params, x))
            configs.append((method, target))
        seconds[method] = time.perf_counter() - t0
        log(f"{method}: {len(targets)} targets x {p.seeds} seeds pruned in {seconds[method]:.1f} s")
    params = jax.tree.map(lambda *a: jnp.stack(a), *[m[0] for m in members])
    masks = jax.tree.map(lambda *a: jnp.stack(a), *[m[1] for m in members])
    chunk = cpu.chunk_or_default(None, net, tuple(d.x.shape[1:]))
    t0 = time.perf_counter()
    one_shot = baselines.evaluate_members(net, params, d.x_test, d.y_test, chunk)
    tuned = baselines.finetune_members(
        net, params, masks, jnp.stack([jax.random.key(1000 + i) for i in range(len(members))]), d,
        epochs=p.finetune_epochs, batch_size=p.dense_batch, learning_rate=p.finetune_lr or p.dense_lr / 4, chunk=chunk,
    )  # fmt: skip
    finetuned = baselines.evaluate_members(net, tuned, d.x_test, d.y_test, chunk)
    log(f"tested, fine-tuned {p.finetune_epochs} epoch(s) and tested again in {time.perf_counter() - t0:.0f} s")
    density = np.asarray(jax.vmap(lambda m: prune.density(m)["total"])(masks))
    rows = []
    for c, (method, target) in enumerate(configs):
        part = slice(c * p.seeds, (c + 1) * p.seeds)
        rows.append(
            {
                "method": method,
                "target": label(target),
                "density": float(density[part].mean()),
                "one_shot": summarize(one_shot[part]),
                "finetuned": summarize(finetuned[part]),
                "prune_seconds": seconds[method] / len(targets) / p.seeds,
            }
        )
    return rows


def plot(res: dict[str, Any], out: Path) -> list[Path]:
    plt = common.plt
    fig, ax = plt.subplots(figsize=(6.4, 4))
    colors = dict(zip(METHODS, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    for method in METHODS:
        rows = [r for r in res["rows"] if r["method"] == method and "sparse" in r["target"]]
        xs = [100 * r["density"] for r in rows]
        for kind, style in (("one_shot", "-"), ("finetuned", "--")):
            ax.plot(xs, [100 * r[kind]["mean"] for r in rows], style, marker="o", color=colors[method],
                    label=f"{method}, {'one shot' if kind == 'one_shot' else 'fine-tuned'}")  # fmt: skip
        for r in res["rows"]:
            if r["method"] == method and ":" in r["target"]:
                ax.plot([100 * r["density"]], [100 * r["one_shot"]["mean"]], "^", color=colors[method], ms=9)
                ax.plot([100 * r["density"]], [100 * r["finetuned"]["mean"]], "v", color=colors[method], ms=9)
    imp = sorted((float(k), v) for k, v in res["imp"].items())
    if imp:
        ax.plot([100 * k for k, _ in imp], [100 * v["mean"] for _, v in imp], "k-s", label="IMP ticket (retrained)")
    ax.axhline(100 * res["dense"]["mean"], color="gray", ls=":", label="dense")
    ax.set(xlabel="weights kept (%)  (triangles: 2:4, one shot ▲ / fine-tuned ▼)", ylabel="test accuracy (%)",
           title=f"{res['preset']}: pruning without retraining")  # fmt: skip
    ax.legend(fontsize=7)
    return [common.save_figure(fig, out / "accuracy_vs_density.png")]


def table(res: dict[str, Any]) -> str:
    body = []
    for target in dict.fromkeys(r["target"] for r in res["rows"]):
        line: list[Any] = [target]
        for method in METHODS:
            r = next(r for r in res["rows"] if (r["method"], r["target"]) == (method, target))
            line += [f"{100 * r['one_shot']['mean']:.2f}", f"{100 * r['finetuned']['mean']:.2f}"]
        density = next(r["density"] for r in res["rows"] if r["target"] == target)
        imp = min(res["imp"].items(), key=lambda kv: abs(float(kv[0]) - density), default=None)
        line.append(f"{100 * imp[1]['mean']:.2f} ({100 * float(imp[0]):.0f}%)" if imp else "-")
        body.append(line)
    header = ["target"] + [f"{m} {k}" for m in METHODS for k in ("1-shot", "tuned")] + ["IMP (density)"]
    return common.table(header, body) + f"\ndense: {100 * res['dense']['mean']:.2f} ± {100 * res['dense']['std']:.2f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser("one_shot", __doc__ or "")
    p.add_argument("--preset", choices=sorted(PRESETS), default="lenet-fashion", help="default lenet-fashion")
    p.add_argument("--seeds", type=common.positive_int, help="dense nets trained (and pruned)")
    p.add_argument("--dense-epochs", type=common.positive_int, help="epochs of the dense net and of each IMP round")
    p.add_argument("--calibration", type=common.positive_int, help="training examples Wanda and SparseGPT see")
    p.add_argument("--finetune-epochs", type=common.positive_int, help="epochs of fine-tuning under each mask")
    p.add_argument("--no-imp", action="store_true", help="skip the IMP tickets")
    p.add_argument(
        "--baselines", type=Path, default=Path("runs") / "subnetwork-baselines",
        help="where the dense nets and IMP tickets are kept and found again (default runs/subnetwork-baselines)",
    )  # fmt: skip
    args = p.parse_args(argv)
    preset = dataclasses.replace(
        PRESETS[args.preset], **common.given(args, ("seeds", "dense_epochs", "calibration", "finetune_epochs"))
    )
    if args.no_imp:
        preset = dataclasses.replace(preset, imp=False)
    out = common.out_folder(args.out)
    d = baselines.load(preset.dataset, preset.train_size, preset.test_size)
    if preset.calibration > len(d.x):
        p.error(f"--calibration {preset.calibration} is larger than the training set ({len(d.x)})")
    net = build(preset)
    check_n_of_m(net, preset, tuple(d.x.shape[1:]))
    print(f"one-shot pruning '{args.preset}': {len(d.x)} training examples, {preset.seeds} seeds -> {out}")
    t0 = time.perf_counter()
    base = baselines.cached_dense_and_imp(
        args.baselines, baselines.describe(preset), net, list(range(preset.seeds)), d, targets=preset.imp_targets,
        rate=preset.imp_rate, epochs=preset.dense_epochs, batch_size=preset.dense_batch, learning_rate=preset.dense_lr,
        imp=preset.imp,
    )  # fmt: skip
    rows = run_methods(net, preset, d, base["dense_params"], print)
    extra = {"baselines_seconds": base["seconds"]}
    return baselines.finish(out, args.preset, preset, rows, base, t0, extra, table, plot)


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-one-shot`): run `main(argv)`, return exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
