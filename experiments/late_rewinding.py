"""Late rewinding: IMP rewound to θ0 against IMP rewound to θk, each with its random-reinit and
random-pruning controls (Frankle et al. 2019, "Stabilizing the Lottery Ticket Hypothesis").

Runs (or resumes, or reuses) two lottery-ticket studies of one preset that differ only in the rewind
step: 0 and k. k comes from --rewind-step, or from a stability sweep's results.json
(`experiments/stability.py`: its smallest stable k) with --stability. The studies live where
`experiments/lottery_ticket.py --preset NAME --rewind-step k` keeps them (--runs-root), so a run
started there is picked up here. Writes results.json (both studies' rows side by side) and
accuracy_vs_remaining.png (test accuracy against weights remaining: both tickets, all four
controls) into --out.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from experiments import common
from funcnn import cpu, lottery

ARMS = ("ticket", "reinit", "random")


def configs(preset: str, k: int, overrides: dict) -> dict[int, lottery.Config]:
    """The two studies, keyed by rewind step (0 and k): the preset with `overrides`, validated."""
    if k <= 0:
        raise ValueError(f"rewind step k: expected a positive multiple of eval_every, got {k}")
    base = dataclasses.replace(lottery.PRESETS[preset], **overrides)
    return {step: dataclasses.replace(base, rewind_step=step).validate() for step in (0, k)}


def rows(reports: dict[int, dict]) -> list[dict]:
    """One row per round: percent remaining and each study's arms' final test accuracy (mean, std).

    Rounds both studies have completed; the dense round (0) is the same training in both."""
    by = {k: {(r["round"], r["arm"]): r for r in rep["summary"]} for k, rep in reports.items()}
    n = min(rep["rounds_completed"] for rep in reports.values())
    out = []
    for r in range(n):
        row: dict = {"round": r}
        for k, cells in by.items():
            row["percent_remaining"] = cells[(r, "ticket")]["percent_remaining"]
            for arm in ARMS if r else ("ticket",):
                if (r, arm) in cells:
                    c = cells[(r, arm)]
                    row[f"{arm}_k{k}"] = [c["final_test_accuracy_mean"], c["final_test_accuracy_std"]]
        out.append(row)
    return out


def table(table_rows: list[dict], k: int) -> str:
    """Test accuracy % (mean ± std) per round: ticket, reinit and random at θ0, then at θk."""
    cols = [f"{arm}_k{step}" for step in (0, k) for arm in ARMS]

    def cell(row: dict, col: str) -> str:
        m, s = row.get(col, (None, None))  # the dense round has no controls
        return "-" if m is None else f"{100 * m:.2f} ± {100 * s:.2f}"

    header = ["round", "P_m %"] + [f"{arm} θ{0 if step == 0 else 'k'}" for step in (0, k) for arm in ARMS]
    return common.table(
        header, [[r["round"], f"{r['percent_remaining']:.2f}"] + [cell(r, c) for c in cols] for r in table_rows]
    )


def figure(table_rows: list[dict], k: int, seeds: int, out: Path) -> Path:
    """Test accuracy against percent of weights remaining (log scale): tickets solid, controls dashed."""
    plt = common.plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    styles = {"ticket": "o-", "reinit": "s--", "random": "^:"}
    colors = {0: "tab:red", k: "tab:blue"}
    for step in (0, k):
        for arm in ARMS:
            # Every curve starts at the dense net (round 0, the ticket column).
            sel = [r.get(f"{arm}_k{step}", r[f"ticket_k{step}"]) for r in table_rows]
            x = [r["percent_remaining"] for r in table_rows]
            m, s = (np.array([c[i] for c in sel]) * 100 for i in (0, 1))
            label = f"{'ticket' if arm == 'ticket' else arm + ' control'}, rewound to θ{0 if step == 0 else k}"
            ax.plot(x, m, styles[arm], color=colors[step], alpha=1.0 if arm == "ticket" else 0.6, label=label)
            if arm == "ticket":
                ax.fill_between(x, m - s, m + s, color=colors[step], alpha=0.15)
    ax.set_xscale("log")
    ax.invert_xaxis()
    x = [r["percent_remaining"] for r in table_rows]
    ax.set_xticks(x, [f"{p:.3g}" for p in x])  # the rounds' densities, not powers of ten
    ax.minorticks_off()
    ax.set(xlabel="percent of weights remaining (log scale)", ylabel="test accuracy %")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, title=f"mean over {seeds} seeds (± std for tickets)", title_fontsize=8)
    return common.save_figure(fig, out / "accuracy_vs_remaining.png")


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("late_rewinding", __doc__)
    p.set_defaults(out=None)
    p.add_argument("--preset", default="resnet8-fashion", choices=sorted(lottery.PRESETS))
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--rewind-step", type=common.positive_int, help="k: rewind the late tickets to θk")
    which.add_argument("--stability", type=Path, help="a stability sweep's results.json: k = its smallest stable k")
    p.add_argument("--runs-root", type=Path, default=Path("runs/lottery_ticket"), help="where the two studies live")
    p.add_argument("--seeds", type=common.positive_int)
    p.add_argument("--rounds", type=common.non_negative_int, help="pruning rounds after the dense round")
    p.add_argument("--iterations", type=common.positive_int)
    p.add_argument("--n-val", type=common.positive_int, help="validation images held out of the training set")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--report-only", action="store_true", help="train nothing: compare the rounds completed so far")
    args = p.parse_args(argv)
    if args.stability is not None:
        try:
            k = json.loads(args.stability.read_text())["smallest_stable_k"]
        except (OSError, ValueError, KeyError) as e:
            p.error(f"--stability {args.stability}: expected a stability results.json with smallest_stable_k ({e})")
        if not k:
            p.error(f"--stability {args.stability}: smallest stable k is {k!r}; no late rewinding to compare")
    else:
        k = args.rewind_step
    overrides = common.given(args, ("seeds", "rounds", "iterations", "n_val"))
    try:
        studies = configs(args.preset, k, overrides)
    except ValueError as e:
        p.error(str(e))
    out = common.out_folder(Path(args.out or Path("runs/late_rewinding") / f"{args.preset}-k{k}"))
    reports = {}
    for step, config in studies.items():
        folder = lottery.run_dir(config, root=args.runs_root, name=args.preset)
        if args.report_only:
            try:
                reports[step] = lottery.load_report(folder)
            except ValueError as e:
                raise SystemExit(f"error: --report-only: {e}") from e
        else:
            print(f"rewound to θ{step}: {common.out_folder(folder)}")
            reports[step] = lottery.run(config, out=folder, progress=not args.no_progress)
    table_rows = rows(reports)
    dense = {step: reports[step]["rounds"][0]["final_test_accuracy"] for step in reports}
    result = {
        "preset": args.preset,
        "rewind_step": k,
        "config": studies[k].to_json(),
        "folders": {f"k{step}": reports[step]["folder"] for step in reports},
        "dense_rounds_identical": bool(np.array_equal(dense[0], dense[k])),
        "rows": table_rows,
        "train_seconds_total": sum(rep["train_seconds_total"] for rep in reports.values()),
    }
    result["figures"] = [str(figure(table_rows, k, studies[k].seeds, out))]
    common.save_results(out, result)
    print(table(table_rows, k))
    print(f"training time, both studies: {result['train_seconds_total'] / 60:.1f} min; results: {out / 'results.json'}")
    return result


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-late-rewinding`): `main(argv)` with one XLA CPU device per core."""
    cpu.use_fast_flags()  # before JAX starts, as in experiments/lottery_ticket.py
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
