"""The report, a function of the results' JSON: per-model summary, the markdown table and the figure."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matplotlib import ticker

from experiments import common
from experiments.prune_speed_parts.config import MODELS, Budget, state_like
from funcnn.timing import CLEAN


def summarize(rows: list[dict], names: list[str], batch_sizes: list[int], within: float) -> dict:
    """Per model and batch size: the dense speed and the fastest variant within `within` points of it."""
    summary: dict[str, Any] = {}
    for name in names:
        mine = [r for r in rows if r["model"] == name and r["speed"]]
        dense = next(r for r in mine if r["variant"] == "dense" and r["arm"] == "dense")
        reference = max(r["test_accuracy"] for r in mine if r["variant"] == "dense")  # dense or dense-longer
        per_b = {}
        for b in map(str, batch_sizes):
            base = dense["speed"][b]["images_per_s"]
            for r in mine:
                r.setdefault("speedup", {})[b] = r["speed"][b]["images_per_s"] / base
            ok = [r for r in mine if r["test_accuracy"] >= reference - within / 100 - 1e-9]
            best = max(ok, key=lambda r: r["speedup"][b])
            per_b[b] = {
                "dense_images_per_s": base,
                "best_arm": best["arm"],
                "best_variant": best["variant"],
                "best_speedup": best["speedup"][b],
                "best_test_accuracy": best["test_accuracy"],
                "target_met": best["speedup"][b] >= 2.0,
            }
        summary[name] = {"dense_test_accuracy": reference, "batch": per_b}
    return summary


def _units_text(r: dict) -> str:
    return "-".join(map(str, r["units"]))


def markdown(results: dict) -> str:
    """The table: per model and variant, weights kept, units, test accuracy, images/s and speed-ups."""
    bs = [str(b) for b in results["timing"]["batch_sizes"]]
    t = results["timing"]
    on_cpu = t.get("backend", "cpu") == "cpu"  # results written before the GPU path have no backend
    where = (
        f"One core (core {t['core']}, pinned; {t['cpu']})"
        if on_cpu
        else f"One {t['device']} ({t['backend'].upper()}; the host thread on core {t['core']})"
    )
    runs = (
        f"(runs with the core for >= {CLEAN:.0%} of their time; ~: too few of those, the median of all runs)"
        if on_cpu
        else "(every run)"
    )
    lines = [
        "# Pruning and inference speed, Fashion-MNIST",
        "",
        f"{where}, JAX {t['jax']}; images/s = batch / median seconds "
        f"per call over {t['repeats']} runs of >= {t['min_seconds'] * 1000:.0f} ms {runs}, each call blocked on; "
        f"x dense: the speed-up against the dense net at the same batch size. Test accuracy on "
        f"{results['rows'][0]['test_images']:,} test images; every variant agrees with its masked dense net "
        "unless marked.",
        "",
        "Call overhead: a jitted function that only slices its input runs at "
        + ", ".join(f"{v:,.0f} calls/s at batch {b}" for b, v in t["empty_calls_per_s"].items())
        + (" on this core" if on_cpu else "")
        + ": no network runs faster than that many calls/s.",
        "",
    ]
    for name in results["models"]:
        s = results["summary"][name]
        lines += [f"## {MODELS[name].title}", ""]
        if name in results["training"]:
            tr = results["training"][name]
            fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in tr["budget"].items()}
            bud = Budget(**fields)
            minutes = sum(r["train_seconds"] for r in results["arms"][name]) / 60
            stateful = state_like(MODELS[name].build("auto")) is not None
            structured_text = (
                (
                    f"structured: keep {', '.join(f'{k:.3g}' for k in bud.keep)} of the channels of the inner "
                    "convolutions (the first of each residual block; those writing the residual stream stay "
                    "whole), BatchNorm scale and offset masked with them, one step after the other, each "
                    f"fine-tuned {bud.structured_epochs:g} epoch(s) masked at full size"
                )
                if stateful
                else (
                    f"structured: keep {', '.join(f'{k:.3g}' for k in bud.keep)} of the units of every hidden layer"
                    + (f" but {', '.join(bud.structured_whole)}" if bud.structured_whole else "")
                    + ", one step after the other"
                )
            )
            trained_on = tr.get("device", f"{os.cpu_count()} cores")
            lines += [
                f"Training ({minutes:.1f} min over all arms, on {trained_on}): dense {bud.epochs} epochs "
                f"on {bud.train_images:,} images, Adam {bud.lr:g} with cosine decay, batch {bud.batch_size}"
                + (f", then {bud.dense_polish:g} more from Adam {bud.finetune_lr:g}" if bud.dense_polish else "")
                + f"; fine-tuning from Adam {bud.finetune_lr:g}: {bud.finetune_epochs:g} epoch(s) per unstructured "
                f"arm (masked net), {bud.structured_epochs:g} per structured arm "
                f"({'masked net' if stateful else 'compacted net'}); "
                f"IMP {bud.imp_rounds} rounds of {bud.imp_rate:.0%}; "
                + structured_text
                + f"; dense-longer: the dense net trained "
                f"{bud.structured_epochs * len(bud.keep):g} more epochs from Adam {bud.finetune_lr:g}.",
                "",
            ]
            if stateful:
                lines += [
                    "BatchNorm is folded into the convolution before it in every variant (the dense baseline "
                    "included) but dense-bn, the dense net as trained; no sparse variant (`sparse.sparsify` "
                    "converts Dense layers only).",
                    "",
                ]
        head = ["arm", "variant", "weights kept", "units per layer", "test acc %"]
        for b in bs:
            head += [f"img/s b={b}", f"x dense b={b}"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in results["rows"]:
            if r["model"] != name:
                continue
            cells = [
                r["arm"],
                r["variant"],
                f"{r['density'] * 100:.1f}%",
                _units_text(r),
                f"{r['test_accuracy'] * 100:.2f}",
            ]
            for b in bs:
                if r["speed"]:
                    noisy = "~" if r["speed"][b]["noisy"] else ""
                    cells += [f"{noisy}{r['speed'][b]['images_per_s']:,.0f}", f"{r['speedup'][b]:.2f}"]
                else:
                    cells += ["disagrees", "-"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for b in bs:
            best = s["batch"][b]
            lines.append(
                f"- batch {b}: best speed-up within {results['within']} pt of dense "
                f"(the better of dense and dense-longer, "
                f"{s['dense_test_accuracy'] * 100:.2f}%): **{best['best_speedup']:.2f}x** "
                f"({best['best_arm']}, {best['best_variant']}, {best['best_test_accuracy'] * 100:.2f}%)"
                f"{'' if best['target_met'] else ' (below 2x)'}"
            )
        lines.append("")
    return "\n".join(lines)


STYLE = {
    ("dense", "dense"): ("k", "*", "dense"),
    ("dense", "dense-bn"): ("0.65", "*", "dense, BatchNorm not folded"),
    ("dense-longer", "dense"): ("0.3", "*", "dense, trained as long as the structured chain"),
    ("unstructured", "masked"): ("0.55", "o", "unstructured, masked dense"),
    ("unstructured", "sparse"): ("tab:blue", "s", "unstructured, sparse (CSR)"),
    ("unstructured", "compacted"): ("tab:green", "^", "unstructured, compacted"),
    ("structured", "compacted"): ("tab:red", "D", "structured, compacted"),
}


def figure(results: dict, path: Path) -> Path:
    """Accuracy against images/s (log), one panel per model and batch size."""
    plt = common.plt
    names, bs = results["models"], [str(b) for b in results["timing"]["batch_sizes"]]
    fig, axes = plt.subplots(len(names), len(bs), figsize=(5.2 * len(bs), 3.8 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        rows = [r for r in results["rows"] if r["model"] == name and r["speed"]]
        dense = next(r for r in rows if r["variant"] == "dense" and r["arm"] == "dense")
        reference = max(r["test_accuracy"] for r in rows if r["variant"] == "dense") * 100
        for j, b in enumerate(bs):
            ax = axes[i][j]
            for (kind, variant), (color, marker, label) in STYLE.items():
                pts = [r for r in rows if r["kind"] == kind and r["variant"] == variant]
                if pts:
                    xs = [r["speed"][b]["images_per_s"] for r in pts]
                    ys = [r["test_accuracy"] * 100 for r in pts]
                    ax.plot(
                        xs,
                        ys,
                        marker=marker,
                        color=color,
                        ls="-" if len(pts) > 1 else "",
                        ms=11 if variant == "dense" else 7,
                        zorder=3 if variant == "dense" else 2,
                        label=label,
                    )
            speed = dense["speed"][b]["images_per_s"]
            ax.axhline(reference - results["within"], color="k", ls=":", lw=1)
            ax.axvline(2 * speed, color="k", ls="--", lw=1)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xlabel(f"images/s at batch {b} (one core)")
            ax.set_ylabel("test accuracy %")
            ax.set_title(f"{MODELS[name].title}, batch {b}")
            accs = [r["test_accuracy"] * 100 for r in rows]
            ax.set_ylim(min(accs) - 0.5, max(accs) + 0.5)
        axes[i][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Fashion-MNIST: pruning vs speed (dotted: dense - {results['within']} pt; dashed: 2x dense speed)")
    fig.tight_layout()
    return common.save_figure(fig, path)
