"""A study's report: per-member summaries of the curves, mean and std over seeds, the table, the CSV.

Everything here reads plain numbers (dicts, lists, numpy arrays) and trains nothing.
"""

from __future__ import annotations

import csv
from io import StringIO
from pathlib import Path
from typing import Any

import jax
import numpy as np

from funcnn import io
from funcnn.prune.masks import path_name

__all__ = ["aggregate", "densities", "load_curves", "summaries", "summary_table"]

SUMMARY_FIELDS = ("final_test", "best_test", "early_stop_iteration", "early_stop_test")


def summaries(
    curves: dict, eval_every: int, start: int, metric_name: str = "accuracy", ends: dict | None = None
) -> dict:
    """Per-member scalars from named curves ({name: (P, C)}) and the segments' end evaluations
    ({name: (P, S)}, `program.end_names`).

    early_stop_iteration: the iteration of minimum validation loss (the first minimum wins, like
    argmin); early_stop_test_<metric>: the test metric of the params there (Frankle & Carbin's
    measure); final_test_<metric>: after the last iteration. best_test_<metric>: the best test
    metric seen: over every evaluation with a full test curve, else over the segments' ends and the
    early-stop params (the test set is not evaluated in between).

    Example:
        >>> import numpy as np
        >>> from funcnn.lottery.report import summaries
        >>> curves = {"val_loss": np.array([[0.9, 0.5, 0.7]]), "test_accuracy": np.array([[0.6, 0.8, 0.7]])}
        >>> s = summaries(curves, eval_every=100, start=0)  # one member, evaluated at 100, 200, 300
        >>> s["early_stop_iteration"], s["early_stop_test_accuracy"], s["final_test_accuracy"]
        ([200], [0.8], [0.7])
    """
    m = metric_name
    val_loss = np.asarray(curves["val_loss"])
    its = start + eval_every * (1 + np.arange(val_loss.shape[1]))
    val = np.where(np.isfinite(val_loss), val_loss, np.inf)
    stop = np.argmin(val, axis=1)
    if f"test_{m}" in curves:
        test = np.asarray(curves[f"test_{m}"])
        final, at_stop, seen = test[:, -1], test[np.arange(len(stop)), stop], test
    else:
        if ends is None:
            raise ValueError(f"summaries: without a test_{m} curve, ends (the segments' test evaluations) are needed")
        test = np.asarray(ends[f"test_{m}"])
        final, at_stop = test[:, -1], np.asarray(ends[f"best_test_{m}"])[:, -1]
        seen = np.concatenate([test, at_stop[:, None]], axis=1)
    return {
        f"final_test_{m}": final.tolist(),
        f"best_test_{m}": [float(np.max(c[np.isfinite(c)])) if np.isfinite(c).any() else float("nan") for c in seen],
        "early_stop_iteration": its[stop].tolist(),
        f"early_stop_test_{m}": at_stop.tolist(),
        "final_val_loss": val_loss[:, -1].tolist(),
    }


def densities(masks: Any, spec: Any) -> dict[str, np.ndarray]:
    """Each member's remaining fraction of every prunable leaf (by path name) and 'total' (P_m), on the
    host in float64: masks with a leading member axis, spec the prunable leaves (Python bools).

    Example:
        >>> import numpy as np
        >>> from funcnn.lottery.report import densities
        >>> masks = {"w": np.array([[[True, False], [False, False]]] * 2), "b": np.ones((2, 2), bool)}
        >>> {k: v.tolist() for k, v in densities(masks, {"w": True, "b": False}).items()}
        {'w': [0.25, 0.25], 'total': [0.25, 0.25]}
    """
    out: dict[str, np.ndarray] = {}
    alive, size = 0, 0
    for (path, m), s in zip(jax.tree_util.tree_leaves_with_path(masks), jax.tree.leaves(spec), strict=True):
        if s:
            m = np.asarray(m).reshape(np.shape(m)[0], -1)
            n = m.sum(axis=1)
            name = path_name(path)
            if name in out:
                raise ValueError(f"densities: two prunable leaves are named '{name}'; rename one of them")
            out[name] = n / m.shape[1]
            alive, size = alive + n, size + m.shape[1]
    out["total"] = np.asarray(alive / size, np.float64)
    return out


def _summary_keys(rec: dict) -> list[str]:
    metric = rec.get("metric_name", "accuracy")
    return [f"final_test_{metric}", f"best_test_{metric}", "early_stop_iteration", f"early_stop_test_{metric}"]


def _groups(rec: dict) -> list[tuple[str, str, np.ndarray]]:
    """(arm, setting, member selection) for each arm (and sweep setting) of a round, in order."""
    arms = np.array(rec["arms"])
    settings = np.array(rec.get("settings", [""] * len(arms)))
    out = []
    for arm in dict.fromkeys(rec["arms"]):
        for setting in dict.fromkeys(settings[arms == arm].tolist()):
            out.append((arm, setting, (arms == arm) & (settings == setting)))
    return out


def _column(arm: str, setting: str) -> str:
    return arm if not setting else f"{arm} [{setting}]"


def aggregate(rounds: list[dict]) -> list[dict]:
    """Mean and std over seeds of each round and arm's metrics (and each sweep setting's, if any).

    rounds: the round records of a report (`report["rounds"]`); one row per round and arm, with
    `<summary>_mean` and `<summary>_std` of each summary (members with non-finite values left out).

    Example:
        >>> from funcnn.lottery.report import aggregate
        >>> rec = {"round": 1, "arms": ["ticket", "ticket", "random", "random"], "density": [0.5] * 4,
        ...        "final_test_accuracy": [0.9, 0.8, 0.7, 0.5], "best_test_accuracy": [0.9, 0.9, 0.7, 0.6],
        ...        "early_stop_iteration": [100, 200, 100, 100], "early_stop_test_accuracy": [0.9, 0.8, 0.7, 0.6]}
        >>> rows = aggregate([rec])
        >>> [(r["arm"], r["n_seeds"], r["percent_remaining"]) for r in rows]
        [('ticket', 2, 50.0), ('random', 2, 50.0)]
        >>> [(round(r["final_test_accuracy_mean"], 3), round(r["final_test_accuracy_std"], 3)) for r in rows]
        [(0.85, 0.05), (0.6, 0.1)]
    """
    rows = []
    for rec in rounds:
        for arm, setting, sel in _groups(rec):
            row = {
                "round": rec["round"],
                "arm": arm,
                **({"setting": setting} if "settings" in rec else {}),
                "n_seeds": int(sel.sum()),
                # float64 densities from the host (100.0 for the dense net, never 99.99999403953552), rounded
                # to 10 decimals so that a mean of equal densities reads as the density (7.0, not 7.000000000000001)
                "percent_remaining": round(float(np.mean(np.array(rec["density"], np.float64)[sel]) * 100), 10),
            }
            for k in _summary_keys(rec):
                v = np.array(rec[k], float)[sel]
                v = v[np.isfinite(v)]  # members that diverged (skip_nonfinite) are left out
                row[k + "_mean"] = float(v.mean()) if v.size else float("nan")
                row[k + "_std"] = float(v.std()) if v.size else float("nan")
            rows.append(row)
    return rows


def make_report(
    describe: dict, total_rounds: int, rounds: list[dict], out: Path, seconds: float | None, first_round: int = 0
) -> dict:
    """The whole report: the study's fields (`config`), the summary rows and every round's record.
    first_round: 1 for a study without a dense run (criteria at initialization alone)."""
    return {
        "config": describe,
        "summary": aggregate(rounds),
        "rounds": rounds,
        "complete": len(rounds) == total_rounds + 1 - first_round,
        "rounds_completed": len(rounds),
        # Summed over rounds, so it counts a resumed run's earlier invocations too.
        "train_seconds_total": float(sum(r["train_seconds"] for r in rounds)),
        "wall_seconds_this_invocation": seconds,
        "folder": str(out),
    }


def write_report(out: Path, report: dict) -> None:
    """results.json and metrics.csv (one row per round and arm), each written atomically."""
    io.atomic_write_json(out / "results.json", report)
    rows = report["summary"]
    buf = StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    io.atomic_write_bytes(out / "metrics.csv", buf.getvalue().encode())


def round_line(rec: dict) -> str:
    """One progress line per round: density and each arm's mean final test metric."""
    metric = rec.get("metric_name", "accuracy")
    parts = []
    arms = np.array(rec["arms"])
    for arm, setting, sel in _groups(rec):
        acc = np.array(rec[f"final_test_{metric}"])[sel]
        parts.append(f"{_column(arm, setting)} {acc.mean() * 100:.1f}%")
    dens = np.array(rec["density"])[arms == rec["arms"][0]].mean() * 100
    masks = f", masks {rec['mask_seconds']:.1f}s" if "mask_seconds" in rec else ""
    return f"round {rec['round']:2d}  P_m {dens:6.2f}%  " + "  ".join(parts) + f"  ({rec['train_seconds']:.1f}s{masks})"


WIDTH = 120
"""The widest table `summary_table` prints: past it, arms go in rows."""


def summary_table(report: dict, *, width: int = WIDTH) -> str:
    """The printed table: one row per round, the test metric mean ± std per arm, the early-stop iteration.

    report: what `run` and `load_report` return (its `summary` rows and `rounds` records).

    Two layouts. Arms as columns (the default studies'), with the first arm's ('ticket''s) early-stop
    iteration; where that would be wider than `width` characters (`WIDTH`, 120), arms as rows: round,
    P_m, arm, metric and each arm's own early-stop iteration, one line per round and arm.

    Example:
        >>> from funcnn.lottery.report import aggregate, summary_table
        >>> keys = ("final_test_accuracy", "best_test_accuracy", "early_stop_test_accuracy")
        >>> dense = {"round": 0, "arms": ["ticket"] * 2, "density": [1.0] * 2, "early_stop_iteration": [300, 500]}
        >>> pruned = {"round": 1, "arms": ["ticket", "ticket", "reinit", "reinit"], "density": [0.8] * 4,
        ...           "early_stop_iteration": [200, 200, 400, 500]}
        >>> dense |= {k: [0.90, 0.92] for k in keys}
        >>> pruned |= {k: [0.93, 0.93, 0.88, 0.86] for k in keys}
        >>> print(summary_table({"summary": aggregate([dense, pruned]), "rounds": [dense, pruned]}))
        round   P_m %     ticket acc %     reinit acc % ticket stop it
        --------------------------------------------------------------
            0  100.00     91.00 ± 1.00                -            400
            1   80.00     93.00 ± 0.00     87.00 ± 1.00            200
        >>> many = dict(pruned, arms=[f"an_arm_named_{i:02d}" for i in range(4)])  # wider than 60 as columns
        >>> print(summary_table({"summary": aggregate([many]), "rounds": [many]}, width=60))
        round   P_m %  arm                      acc %  stop it
        ------------------------------------------------------
            1   80.00  an_arm_named_00    93.00 ± 0.00      200
            1   80.00  an_arm_named_01    93.00 ± 0.00      200
            1   80.00  an_arm_named_02    88.00 ± 0.00      400
            1   80.00  an_arm_named_03    86.00 ± 0.00      500
    """
    rows = report["summary"]
    metric = report["rounds"][0].get("metric_name", "accuracy") if report.get("rounds") else "accuracy"
    label = "acc" if metric == "accuracy" else metric
    arms = list(dict.fromkeys(_column(r["arm"], r.get("setting", "")) for r in rows))
    first = rows[0]["arm"] if rows else "ticket"
    lead = "ticket" if any(r["arm"] == "ticket" for r in rows) else first
    key = f"final_test_{metric}"
    # (round, P_m, {arm column: summary row}) in order: arms of a round whose densities differ get rows
    # of their own (each arm at its own density).
    lines_of: list[tuple[int, float, dict[str, dict]]] = []
    for rnd in sorted({r["round"] for r in rows}):
        in_round = [r for r in rows if r["round"] == rnd]
        for level in dict.fromkeys(round(r["percent_remaining"], 6) for r in in_round):
            sel = {
                _column(r["arm"], r.get("setting", "")): r
                for r in in_round
                if round(r["percent_remaining"], 6) == level
            }
            lines_of.append((rnd, level, sel))
    cell = lambda r: f"{r[key + '_mean'] * 100:8.2f} ± {r[key + '_std'] * 100:4.2f}"
    widths = [max(16, len(f"{a} {label} %")) for a in arms]
    stop_head = f"{lead} stop it"
    stop_w = max(14, len(stop_head))
    head = (
        f"{'round':>5} {'P_m %':>7} "
        + " ".join(f"{a + ' ' + label + ' %':>{w}}" for a, w in zip(arms, widths, strict=True))
        + f" {stop_head:>{stop_w}}"
    )
    if len(head) <= width:  # arms as columns, the lead arm's early stop last
        lines = [head, "-" * len(head)]
        for rnd, level, sel in lines_of:
            cells = [cell(sel[a]).rjust(w) if a in sel else f"{'-':>{w}}" for a, w in zip(arms, widths, strict=True)]
            t = next((r for r in sel.values() if r["arm"] == lead), None)
            stop = f"{t['early_stop_iteration_mean']:{stop_w}.0f}" if t is not None else f"{'-':>{stop_w}}"
            lines.append(f"{rnd:>5} {level:7.2f} " + " ".join(cells) + f" {stop}")
    else:  # arms as rows, each with its own early stop; names cut to fit the width
        name_w = max(3, min(max(map(len, arms)), width - 39))
        short = lambda a: a if len(a) <= name_w else a[: name_w - 1] + "…"
        head = f"{'round':>5} {'P_m %':>7}  {'arm':<{name_w}} {label + ' %':>14} {'stop it':>8}"
        lines = [head, "-" * len(head)]
        for rnd, level, sel in lines_of:
            for a, r in sel.items():
                stop = f"{r['early_stop_iteration_mean']:8.0f}"
                lines.append(f"{rnd:>5} {level:7.2f}  {short(a):<{name_w}} {cell(r).strip():>14} {stop}")
    k = report["rounds"][0].get("statistics_batches") if report.get("rounds") else None
    if k:
        lines.append(f"(running statistics recomputed from {k} training batches before every evaluation)")
    return "\n".join(lines)


def load_curves(folder: str | Path) -> dict:
    """A committed round's curves by name, from its curves.npz: {name: (P, C)} after every
    `eval_every` steps (at the record's `iterations`), and `end_<name>`: (P, S) at the segments'
    ends (at its `test_iterations`), where the test set is evaluated without `test_curve`.

    folder: a round's folder in a run folder, e.g. `out / "round_01"`.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from funcnn.lottery.report import load_curves
        >>> with tempfile.TemporaryDirectory() as d:  # a round folder's curves.npz, as run writes it
        ...     np.savez(Path(d) / "curves.npz", val_loss=np.ones((6, 15)), end_test_accuracy=np.ones((6, 3)))
        ...     curves = load_curves(d)
        >>> {name: c.shape for name, c in curves.items()}  # 6 members, 15 evaluations, 3 segments
        {'val_loss': (6, 15), 'end_test_accuracy': (6, 3)}
    """
    with np.load(Path(folder) / "curves.npz", allow_pickle=False) as z:
        if "curves" in z.files:  # written before curves were named: the five default metrics in order
            from funcnn.lottery.program import metric_names

            return dict(zip(metric_names(), np.moveaxis(z["curves"], -1, 0), strict=True))
        return {k: z[k] for k in z.files}
