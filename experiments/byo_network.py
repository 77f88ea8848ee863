"""Bring your own network, optimizer and data: a lottery-ticket study through the open engine.

A residual MLP built from funcnn's combinators, trained with SGD + momentum under a linear warmup
and step decay (all optax), on plain arrays, with late rewinding to θk and a control arm of the
user's own (Frankle & Carbin's "reinit, keeping each weight's sign"), beside the built-in ones.
The heart of it is the dozen lines in `study()`; the rest is the command line and the figure.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import optax

from experiments import common
from funcnn import data, lottery, nn


def study(iterations: int, rounds: int, seeds: int, rewind_step: int, learning_rate: float) -> lottery.Spec:
    """The user's study: their net, their optimizer, their arrays."""
    d = data.load("mnist1d")  # any (x, y) arrays will do
    net = nn.serial(nn.Dense(256), nn.Relu(), nn.Residual(nn.serial(nn.Dense(256), nn.Relu())), nn.Dense(10))
    warmup = iterations // 10
    schedule = optax.join_schedules(
        [
            optax.linear_schedule(0.0, learning_rate, warmup),
            optax.piecewise_constant_schedule(
                learning_rate, {iterations // 2 - warmup: 0.1, 3 * iterations // 4 - warmup: 0.1}
            ),
        ],
        [warmup],
    )
    return lottery.Spec(
        net,
        optax.sgd(schedule, momentum=0.9),
        train=(d.x_train, d.y_train),
        test=(d.x_test, d.y_test),
        iterations=iterations,
        rounds=rounds,
        seeds=seeds,
        rate=0.5,
        rewind_step=rewind_step,
        layer_rates={"dense_3": 0.25, "residual_2/main/dense_0": 0.3},
        arms=("ticket", "reinit", "random", lottery.Arm("same_sign", lottery.reinit_same_sign)),
        label="byo residual MLP, SGD warmup + step decay",
    )


def plot(report: dict, out: Path) -> Path:
    plt = common.plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    rows = report["summary"]
    for arm in dict.fromkeys(r["arm"] for r in rows):
        sel = sorted(
            (r for r in rows if r["arm"] == arm or (r["round"] == 0 and r["arm"] == "ticket")),
            key=lambda r: -r["percent_remaining"],
        )
        ax.errorbar(
            [r["percent_remaining"] for r in sel],
            [r["final_test_accuracy_mean"] * 100 for r in sel],
            yerr=[r["final_test_accuracy_std"] * 100 for r in sel],
            marker="o",
            capsize=3,
            label=arm,
        )
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("percent of weights remaining (log scale)")
    ax.set_ylabel("test accuracy %")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return common.save_figure(fig, out / "accuracy_vs_remaining.png")


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("byo_network", __doc__)
    p.add_argument("--iterations", type=common.positive_int, default=1500, help="training iterations per round")
    p.add_argument("--rounds", type=int, default=4, help="pruning rounds after the dense round")
    p.add_argument("--seeds", type=common.positive_int, default=3)
    p.add_argument("--rewind-step", type=int, default=100, help="late rewinding: rewind to θk (k iterations)")
    p.add_argument("--learning-rate", type=common.positive_float, default=0.05, help="peak SGD rate")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        spec = study(args.iterations, args.rounds, args.seeds, args.rewind_step, args.learning_rate).validate()
    except ValueError as e:
        p.error(str(e))
    out = common.out_folder(args.out)
    t0 = time.perf_counter()
    report = lottery.run(spec, out=out / "run", progress=not args.no_progress)
    report["figures"] = [str(plot(report, out))]
    report["wall_seconds"] = time.perf_counter() - t0
    common.save_results(out, report)
    print(lottery.summary_table(report))
    dense = next(r for r in report["summary"] if r["round"] == 0)["final_test_accuracy_mean"]
    last = {r["arm"]: r["final_test_accuracy_mean"] for r in report["summary"] if r["round"] == args.rounds}
    print(
        f"dense {dense * 100:.2f}%; at round {args.rounds}: "
        + ", ".join(f"{a} {v * 100:.2f}%" for a, v in last.items())
        + f"; {report['wall_seconds']:.0f} s"
    )
    print(f"results: {out / 'results.json'}")
    return report


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-byo-network`): run `main(argv)`, return exit status 0."""
    np.set_printoptions(precision=4)
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
