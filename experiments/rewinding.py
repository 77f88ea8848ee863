"""Rewinding against fine-tuning (Renda, Frankle & Carbin 2020), each its own lineage, in one study:
weight rewinding to θ0 and to θk (the survivors reset, the schedule resumed at k), learning-rate
rewinding (the trained survivors kept, the schedule replayed from k, and from 0: "full" LRR) and
fine-tuning (the trained survivors kept, at the schedule's final rate). Every lineage prunes its own
trained weights each round; all share one dense run, and every lineage and seed of a round trains
in one compiled program. A warmup + cosine decay schedule by default, so where a schedule starts
matters. Writes runs/rewinding/<preset>-<hash>/; a re-run resumes.
"""

from __future__ import annotations

import argparse
import dataclasses

import optax

from experiments import common
from experiments.strategy_parts import study as strategy_study
from funcnn import lottery
from funcnn.lottery import arms

DEFAULTS = {
    "mnist1d": {"seeds": 4},
    "lenet-fashion": {"seeds": 2, "iterations": 5_000, "rounds": 10},
}
REWIND = {"mnist1d": 100, "lenet-fashion": 300}
LINEAGES = ("rewind_theta0", "rewind_thetak", "lr_rewinding", "lr_rewinding_full", "fine_tuning")


def schedule(peak: float, iterations: int, warmup: int) -> optax.Schedule:
    """Linear warmup to `peak` over `warmup` iterations, then cosine decay to peak / 100 at the end."""
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, iterations, end_value=peak / 100)


def study_arms(k: int) -> tuple:
    return (
        arms.weight_rewinding("rewind_theta0", rewind_step=0),
        arms.weight_rewinding("rewind_thetak", rewind_step=k),
        arms.lr_rewinding("lr_rewinding", rewind_step=k),
        arms.lr_rewinding("lr_rewinding_full", rewind_step=k, full=True),
        arms.fine_tuning("fine_tuning", rewind_step=k),
    )


def make_spec(args: argparse.Namespace) -> lottery.Spec:
    spec = strategy_study.base_spec(args.preset, args, DEFAULTS)
    config = lottery.PRESETS[args.preset]
    k = REWIND[args.preset] if args.rewind_step is None else args.rewind_step
    warmup = max(k, spec.eval_every)
    tx = optax.adam(schedule(config.learning_rate, spec.iterations, warmup))
    return dataclasses.replace(spec, optimizer=tx, arms=study_arms(k), label=f"warmup {warmup} + cosine")


def table(report: dict) -> str:
    return strategy_study.by_density(report, list(LINEAGES))


def main(argv: list[str] | None = None) -> dict:
    return strategy_study.main("rewinding", __doc__ or "", argv, make_spec, table)


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-rewinding`); returns exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
