"""A study's figures, for any arms: test accuracy and early-stop iteration against the weights
remaining (each arm at its own density), and learning curves of the first arm. PNG files only
(matplotlib's Agg backend); `run` writes them into the run folder, `plot` redraws them from a report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from funcnn.lottery.report import load_curves

__all__ = ["plot"]

_BASE = {"ticket": "tab:blue", "reinit": "tab:orange", "random": "tab:green"}


def _colors(arms: list[str]) -> dict[str, str]:
    """The classic arms keep their colors; any other arm takes the next of matplotlib's tab20."""
    import matplotlib.pyplot as plt

    cycle = list(plt.get_cmap("tab20").colors)  # type: ignore[attr-defined]
    out, i = {}, 0
    for a in arms:
        if a in _BASE:
            out[a] = _BASE[a]
        else:
            out[a] = cycle[(i + 6) % len(cycle)]  # past the three classic colors' neighbours
            i += 1
    return out


def _log_ticks(lo: float, hi: float) -> list[float]:
    """The 1-2-5 values (100, 50, 20, 10, 5, 2, 1, 0.5, ...) from hi down to lo: the labelled ticks of a
    log axis of percentages (matplotlib labels only the powers of ten)."""
    out = []
    for e in range(int(np.floor(np.log10(max(lo, 1e-6)))), int(np.ceil(np.log10(max(hi, 1e-6)))) + 1):
        out += [m * 10.0**e for m in (1, 2, 5) if lo <= m * 10.0**e <= hi]
    return sorted({round(t, 6) for t in out}, reverse=True)


def plot(report: dict, out: str | Path) -> list[Path]:
    """accuracy_vs_remaining.png, early_stop_vs_remaining.png and learning_curves.png in `out`;
    their paths. report: what `run` or `load_report` returns (any arm names, any densities).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from funcnn.lottery.figures import plot
        >>> rows = [{"round": 0, "arm": "ticket", "percent_remaining": 100.0, "final_test_accuracy_mean": 0.9,
        ...          "final_test_accuracy_std": 0.01, "early_stop_iteration_mean": 300, "early_stop_iteration_std": 10},
        ...         {"round": 1, "arm": "my-snip", "percent_remaining": 10.0, "final_test_accuracy_mean": 0.8,
        ...          "final_test_accuracy_std": 0.02, "early_stop_iteration_mean": 200, "early_stop_iteration_std": 5}]
        >>> with tempfile.TemporaryDirectory() as d:
        ...     paths = plot({"summary": rows, "rounds": [], "config": {"seeds": 2}, "folder": d}, d)
        ...     [p.name for p in paths]
        ['accuracy_vs_remaining.png', 'early_stop_vs_remaining.png']
    """
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    rows = report["summary"]
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    colors = _colors(arms)
    dense = [r for r in rows if r["round"] == 0]
    paths = []
    for metric, ylabel, name in [
        ("final_test_accuracy", "test accuracy (end of training)", "accuracy_vs_remaining.png"),
        ("early_stop_iteration", "early-stop iteration (min val loss)", "early_stop_vs_remaining.png"),
    ]:
        if not rows or metric + "_mean" not in rows[0]:
            continue
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for arm in arms:
            sel = [r for r in rows if r["arm"] == arm]
            if dense and all(r["round"] > 0 for r in sel):
                sel = dense[:1] + sel  # the dense run is every arm's starting point
            sel.sort(key=lambda r: -r["percent_remaining"])
            x = [r["percent_remaining"] for r in sel]
            m = np.array([r[metric + "_mean"] for r in sel], float)
            s = np.array([r[metric + "_std"] for r in sel], float)
            scale = 100 if "accuracy" in metric else 1
            ax.plot(x, m * scale, "o-", color=colors[arm], label=arm)
            ax.fill_between(x, (m - s) * scale, (m + s) * scale, color=colors[arm], alpha=0.2)
        ax.set_xscale("log")
        lo, hi = sorted(ax.get_xlim())
        ticks = _log_ticks(lo, hi)  # 100, 50, 20, 10, 5, 2, 1 ...: every decade labelled, not just 10 and 100
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.invert_xaxis()
        ax.set_xlabel("percent of weights remaining (log scale)")
        ax.set_ylabel(ylabel + (" %" if "accuracy" in metric else ""))
        ax.grid(True, which="both", alpha=0.3)
        title = f"mean ± std over {report['config'].get('seeds', '?')} seeds"
        if len(arms) > 5:  # many arms: the legend beside the axes, not over the curves
            ax.legend(title=title, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            ax.legend(title=title, fontsize=7)
        paths.append(out / name)
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
    rounds = report.get("rounds") or []
    if rounds:
        paths.append(_learning_curves(report, rounds, arms[0], out, plt))
    return paths


def _learning_curves(report: dict, rounds: list[dict], arm: str, out: Path, plt: object) -> Path:
    """The first arm's test accuracy along training, at a few densities."""
    fig, ax = plt.subplots(figsize=(6.5, 4))  # type: ignore[attr-defined]
    picks = sorted({0, len(rounds) // 2, len(rounds) - 1, min(3, len(rounds) - 1)})
    metric = rounds[0].get("metric_name", "accuracy")
    for i in picks:
        rec = rounds[i]
        curves = load_curves(Path(report["folder"]) / f"round_{rec['round']:02d}")
        sel = np.array(rec["arms"]) == arm
        if not sel.any():
            sel = np.array(rec["arms"]) == rec["arms"][0]
        p = np.mean(np.array(rec["density"])[sel]) * 100
        # The whole test curve with test_curve; else the test evaluations at the segments' ends.
        if f"test_{metric}" in curves:
            its, acc = rec["iterations"], curves[f"test_{metric}"]
        else:
            its, acc = rec["test_iterations"], curves[f"end_test_{metric}"]
        acc = np.asarray(acc)[sel]
        n = min(len(its), acc.shape[1])  # the grid's tail: members that started later, a snapshot's cut
        ax.plot(its[-n:], np.nanmean(acc[:, -n:], axis=0) * 100, "o-", ms=3, label=f"{arm}, {p:.1f}% remaining")
    ax.set_xlabel("training iteration")
    ax.set_ylabel(f"test {metric} %")
    ax.grid(True, alpha=0.3)
    ax.legend()
    path = out / "learning_curves.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)  # type: ignore[attr-defined]
    return path
