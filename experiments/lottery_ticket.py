"""Lottery tickets: iterative magnitude pruning with rewinding, against random-reinit and
random-pruning controls, all seeds and arms of a round trained as one vmapped program.

Writes results.json, metrics.csv and PNGs (accuracy and early-stop iteration against percent of
weights remaining; learning curves) into the run folder; re-running resumes after the last
completed round. On CPU it runs with one XLA device per core (`funcnn.cpu.fast_flags()`), unless
XLA_FLAGS already sets the device count or Eigen's threading.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from experiments import common
from funcnn import cpu, lottery

COLORS = {"ticket": "tab:blue", "reinit": "tab:orange", "random": "tab:green"}  # the classic arms' colors
# The options that override a preset's fields (with --test-curve), in Config's names.
OVERRIDES = (
    "seeds",
    "rounds",
    "iterations",
    "eval_every",
    "rewind_step",
    "learning_rate",
    "batch_size",
    "pruning",
    "scope",
    "structure",
    "seed",
    "population_chunk",
    "unroll",
)


def plot(report: dict, out: Path) -> list[Path]:
    """The study's figures for any arms (`funcnn.lottery.plot`)."""
    return lottery.plot(report, out)


NOTEBOOK = "mnist1d-notebook"
NOTEBOOK_SPARSITIES = (0, 51, 81, 91, 96, 98)  # the README's table: percent of weights and biases pruned


def notebook_table(report: dict) -> str:
    """Test accuracy (mean ± std over trials) of the ticket and the random control at the levels
    nearest to NOTEBOOK_SPARSITIES."""
    rows = report["summary"]
    levels = sorted({r["round"]: 100 - r["percent_remaining"] for r in rows}.items())
    out = []
    for target in NOTEBOOK_SPARSITIES:
        r, sparsity = min(levels, key=lambda lv: abs(lv[1] - target))
        cells = [f"{sparsity:.1f}"]
        for arm in ("ticket", "random"):
            hit = [x for x in rows if x["round"] == r and (x["arm"] == arm or r == 0)]
            cells.append(
                f"{100 * hit[0]['final_test_accuracy_mean']:.2f} ± {100 * hit[0]['final_test_accuracy_std']:.2f}"
                if hit
                else "-"
            )
        out.append(cells)
    return common.table(["sparsity %", "ticket test acc %", "random test acc %"], out)


def notebook_figure(report: dict, out: Path) -> Path:
    """The notebook's figure: test accuracy against sparsity (linear), ticket vs random, mean ± std."""
    plt = common.plt
    rows = report["summary"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for arm, color in (("ticket", "tab:blue"), ("random", "tab:green")):
        sel = sorted(
            (r for r in rows if r["arm"] == arm or (r["round"] == 0 and r["arm"] == "ticket")), key=lambda r: r["round"]
        )
        x = np.array([100 - r["percent_remaining"] for r in sel])
        m = np.array([r["final_test_accuracy_mean"] for r in sel]) * 100
        sd = np.array([r["final_test_accuracy_std"] for r in sel]) * 100
        ax.plot(x, m, color=color, label="lottery ticket (rewound to θ0)" if arm == "ticket" else "random mask")
        ax.fill_between(x, m - sd, m + sd, color=color, alpha=0.2)
    ax.set(
        xlabel="sparsity (% of weights and biases pruned)",
        ylabel="test accuracy %",
        title=f"MNIST-1D lottery notebook protocol ({report['config']['seeds']} trials)",
    )
    ax.grid(True, alpha=0.3)
    ax.legend()
    return common.save_figure(fig, out / "notebook_accuracy_vs_sparsity.png")


def notebook(p, args) -> dict:
    """--preset mnist1d-notebook: `lottery.mnist1d_notebook` with --seeds trials and --rounds + 2 levels."""
    # --seeds and --rounds set the trials and levels; the rest of the protocol is fixed.
    unsupported = [f"--{k.replace('_', '-')}" for k in common.given(args, OVERRIDES[2:])]
    if unsupported or args.test_curve:
        p.error(
            f"{', '.join(unsupported or ['--test-curve'])}: not supported by --preset {NOTEBOOK} "
            "(its protocol is fixed)"
        )
    trials = args.seeds or 2
    levels = 100 if args.rounds is None else args.rounds + 2
    if levels < 2:
        p.error(f"--rounds must be >= 0, got {args.rounds}")
    spec = lottery.mnist1d_notebook(trials, levels, args.score)
    out = Path(args.out or Path("runs/lottery_ticket") / f"{NOTEBOOK}-t{trials}-l{levels}-{args.score}")
    if args.report_only:
        report = lottery.load_report(out)
    else:
        out = common.out_folder(out)
        print(f"lottery-ticket study '{NOTEBOOK}' ({trials} trials, {levels} levels, scores at {args.score}) -> {out}")
        report = lottery.run(spec, out=out, progress=not args.no_progress)
    report["figures"] = [str(x) for x in plot(report, out)] + [str(notebook_figure(report, out))]
    if not args.report_only:
        common.save_results(out, report)
    print(notebook_table(report))
    print(f"training time, all levels so far: {report['train_seconds_total'] / 60:.1f} min")
    return report


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("lottery_ticket", __doc__)
    p.set_defaults(out=None)
    p.add_argument(
        "--preset",
        default="mnist1d",
        choices=sorted(lottery.PRESETS) + [NOTEBOOK],
        help="protocol (default mnist1d); mnist1d-notebook: the MNIST-1D lottery notebook's (lottery.mnist1d_notebook)",
    )
    p.add_argument(
        "--score",
        choices=["step1000", "final"],
        default="step1000",
        help="mnist1d-notebook only: score the next level on the weights at step 1000 (the notebook's) or at the end",
    )
    p.add_argument("--seeds", type=common.positive_int, help="number of seeds (overrides the preset)")
    p.add_argument("--rounds", type=int, help="pruning rounds after the dense round")
    p.add_argument("--iterations", type=common.positive_int, help="training iterations per round")
    p.add_argument("--eval-every", type=common.positive_int, help="evaluate every K iterations")
    p.add_argument("--rewind-step", type=int, help="late rewinding: rewind to the weights after k iterations")
    p.add_argument("--learning-rate", type=common.positive_float)
    p.add_argument("--batch-size", type=common.positive_int)
    p.add_argument("--pruning", choices=["iterative", "oneshot"])
    p.add_argument("--scope", choices=["layer", "global"])
    p.add_argument(
        "--structure",
        choices=["unit", "channel"],
        help="structured pruning: whole hidden units and conv output channels by L1 norm (channel = unit); "
        "the output layer is never pruned",
    )
    p.add_argument("--seed", type=int, help="base PRNG seed")
    p.add_argument(
        "--test-curve",
        action="store_true",
        help="evaluate the test set every --eval-every iterations (the whole curve), not once per segment",
    )
    p.add_argument(
        "--population-chunk",
        type=common.positive_int,
        help="members vmapped together (default: all on a GPU; on CPU 4, or 1 for conv nets)",
    )
    p.add_argument("--unroll", type=common.positive_int, help="lax.scan unroll of the training steps (default 1)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: table and figures from the rounds completed so far (e.g. while a long run goes on)",
    )
    args = p.parse_args(argv)
    if args.preset == NOTEBOOK:
        return notebook(p, args)
    overrides = common.given(args, OVERRIDES)
    if args.test_curve:
        overrides["test_curve"] = True
    try:
        config = dataclasses.replace(lottery.PRESETS[args.preset], **overrides).validate()
    except ValueError as e:
        p.error(str(e))
    out = Path(args.out or lottery.run_dir(config, name=args.preset))
    if args.report_only:
        try:
            report = lottery.load_report(out)
        except ValueError as e:
            raise SystemExit(f"error: --report-only: {e}") from e
        figures = plot(report, out)
        print(lottery.summary_table(report))
        state = (
            "complete"
            if report["complete"]
            else f"in progress: {report['rounds_completed']} of {config.rounds + 1} rounds"
        )
        print(
            f"{out} ({state}); training time so far {report['train_seconds_total'] / 60:.1f} min; "
            f"figures: {', '.join(f.name for f in figures)}"
        )
        return report
    out = common.out_folder(out)
    print(f"lottery-ticket study '{args.preset}' -> {out}")
    t0 = time.perf_counter()
    try:
        done_before = lottery.load_report(out)["rounds_completed"]  # a resumed run's earlier rounds
    except ValueError:
        done_before = 0
    report = lottery.run(config, out=out, progress=not args.no_progress)
    report["wall_seconds_with_plots"] = time.perf_counter() - t0
    common.save_results(out, report)
    print(lottery.summary_table(report))
    print(f"training time, all rounds: {report['train_seconds_total'] / 60:.1f} min")
    if done_before == len(report["rounds"]):
        print("nothing left to train (the run folder was complete)")
    print(common.seconds_line(report))
    print(f"results: {out / 'results.json'}  figures: {', '.join(Path(f).name for f in report['figures'])}")
    return report


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-lottery`): `main(argv)` with one XLA CPU device per core
    (`funcnn.cpu.use_fast_flags`, which `main` alone leaves to its caller); returns exit status 0."""
    # One CPU device per core, so each core trains its share of the population (bit-identical
    # results, ~1.35x on 2 cores). Before JAX starts (importing this module starts nothing);
    # an XLA_FLAGS of the user's own wins.
    cpu.use_fast_flags()
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
