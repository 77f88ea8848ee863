"""Pruning at initialization against IMP: SNIP, GraSP, SynFlow and random masks, each with Frankle et
al. 2021's sanity checks (the mask shuffled within each layer, the weights reinitialized, the scores
inverted), against iterative magnitude pruning rewound to θ0 and to θk, across the sparsity ladder,
in one study: every criterion, control and seed of a round trained together in one compiled program.

Each criterion scores θ0 and keeps exactly as many weights as IMP's θ0 ticket keeps that round (one
global threshold, the papers' choice); the controls of a criterion start from its mask. Writes
results.json, metrics.csv and the figures into runs/pruning_at_init/<preset>-<hash>/; a re-run resumes.
"""

from __future__ import annotations

import argparse
import dataclasses

from experiments import common
from experiments.strategy_parts import study as strategy_study
from funcnn import lottery
from funcnn.lottery import arms

CRITERIA = ("snip", "grasp", "synflow")
# Per preset: the protocol's fields, and k of the θk ticket (about 7% of a round's iterations).
DEFAULTS = {
    "mnist1d": {"seeds": 2, "population_chunk": 4},
    "lenet-fashion": {"seeds": 2, "iterations": 5_000, "rounds": 10, "population_chunk": 4},
}
REWIND = {"mnist1d": 100, "lenet-fashion": 300}


def study_arms(k: int, criteria: tuple[str, ...] = CRITERIA, synflow_iterations: int = 100) -> tuple:
    """IMP at θ0 (the parent of every at-init arm: its density sets theirs) and at θk; IMP's three
    sanity checks; each criterion and its three; a global random mask at the same density."""
    out: list = [
        arms.weight_rewinding("imp", rewind_step=0),
        arms.weight_rewinding("imp_k", rewind_step=k),
        arms.shuffled("imp_shuffled", parent="imp"),
        arms.reinitialized("imp_reinit", parent="imp"),
        arms.inverted("imp_inverted", parent="imp"),
        arms.at_init("random", parent="imp"),
    ]
    for c in criteria:
        options = {"iterations": synflow_iterations} if c == "synflow" else {}
        out += [
            arms.at_init(c, parent="imp", **options),
            arms.shuffled(f"{c}_shuffled", parent=c),
            arms.reinitialized(f"{c}_reinit", parent=c),
            arms.at_init(c, f"{c}_inverted", parent="imp", invert=True, **options),
        ]
    return tuple(out)


def make_spec(args: argparse.Namespace) -> lottery.Spec:
    spec = strategy_study.base_spec(args.preset, args, DEFAULTS)
    k = REWIND[args.preset] if args.rewind_step is None else args.rewind_step
    return dataclasses.replace(spec, arms=study_arms(k, synflow_iterations=args.synflow_iterations))


def table(report: dict) -> str:
    names = ["imp", "imp_k", "random"] + list(CRITERIA) + [f"{c}_inverted" for c in CRITERIA]
    return strategy_study.by_density(report, names)


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--synflow-iterations", type=int, default=100, help="SynFlow's rounds of rescoring (default 100, the paper's)"
    )


def main(argv: list[str] | None = None) -> dict:
    return strategy_study.main("pruning_at_init", __doc__ or "", argv, make_spec, table, options)


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-pruning-at-init`); returns exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
