"""The sparse-training study's figures: test accuracy against density, and each method's accuracy curve."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker

from experiments import common


def plot(rows: list[dict], out: Path, final_density: float | None = None) -> list[Path]:
    """accuracy_vs_density.png (final test accuracy, mean ± std over seeds, per method and density; log x) and
    accuracy_curves.png (each method's mean test accuracy per epoch at `final_density`, or at its only density)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in methods:
        pts = sorted((r["density"], r["final_mean"], r["final_std"]) for r in rows if r["method"] == m)
        d, mean, std = zip(*pts, strict=True)
        ax.errorbar(
            [100 * v for v in d], [100 * v for v in mean], yerr=[100 * v for v in std], marker="o", capsize=3, label=m
        )
    ax.set_xscale("log")
    ticks = sorted({round(100 * r["density"], 1) for r in rows})  # the densities run, not powers of ten
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel("final test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    paths = [common.save_figure(fig, out / "accuracy_vs_density.png")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        at_final = final_density is None or abs(r["target_density"] - final_density) < 1e-9
        if r["curve"] and (at_final or r["method"] in ("dense", "tutorial_dense", "dense_he_init")):
            ax.plot(
                range(1, len(r["curve"]) + 1),
                [100 * v for v in r["curve"]],
                label=f"{r['method']} ({100 * r['density']:.2f}%)",
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%, mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    paths.append(common.save_figure(fig, out / "accuracy_curves.png"))
    return paths
