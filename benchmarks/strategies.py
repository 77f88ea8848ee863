"""Strategies in one program, measured in one run (`python -m benchmarks.strategies`):

1. the MNIST-1D rewinding study (weight rewinding to θ0 and θk, learning-rate rewinding, full
   learning-rate rewinding, fine-tuning: five lineages, one dense run, one program a round) against
   the same lineages run as five separate studies, each training its own dense net;
2. what share of a pruning round making the masks takes, SynFlow's scorings included (the
   pruning-at-initialization study's arms; its second round, the mask programs compiled in the first).

Both on the MNIST-1D MLP at its preset's 1,500 iterations a round (3 rounds, 2 seeds; `--iterations`, `--rounds`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from experiments import pruning_at_init, rewinding
from funcnn import lottery

QUIET = dict(progress=False, log=lambda line: None)


def _base(iterations: int, rounds: int, seeds: int) -> lottery.Spec:
    config = dataclasses.replace(lottery.PRESETS["mnist1d"], iterations=iterations, rounds=rounds, seeds=seeds)
    return config.validate().to_spec()


def rewinding_ratio(iterations: int = 500, rounds: int = 2, seeds: int = 2, k: int = 100) -> dict:
    """Seconds of the five lineages as one study, and as five separate studies; their ratio."""
    base = _base(iterations, rounds, seeds)
    tx = rewinding.optax.adam(rewinding.schedule(2e-3, iterations, k))
    lineages = rewinding.study_arms(k)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        lottery.run(dataclasses.replace(base, optimizer=tx, arms=lineages), out=Path(d) / "one", **QUIET)
        together = time.perf_counter() - t
        t = time.perf_counter()
        for arm in lineages:
            lottery.run(dataclasses.replace(base, optimizer=tx, arms=(arm,)), out=Path(d) / arm.name, **QUIET)
        separate = time.perf_counter() - t
    return {"one_study_s": together, "separate_studies_s": separate, "ratio": separate / together}


def mask_share(iterations: int = 500, seeds: int = 2, k: int = 100, synflow_iterations: int = 100) -> dict:
    """Two pruning rounds of the pruning-at-initialization arms: seconds making masks and the round's
    seconds, for round 1 (the mask programs compile there) and round 2 (compiled: the steady state)."""
    spec = dataclasses.replace(
        _base(iterations, 2, seeds), arms=pruning_at_init.study_arms(k, synflow_iterations=synflow_iterations)
    )
    with tempfile.TemporaryDirectory() as d:
        report = lottery.run(spec, out=d, **QUIET)
    r1, r2 = report["rounds"][1], report["rounds"][2]
    return {
        "arms": len(spec.arms),
        "members": len(r2["arms"]),
        "round_s": r2["train_seconds"],
        "mask_s": r2["mask_seconds"],
        "mask_share": r2["mask_seconds"] / r2["train_seconds"],
        "first_round_s": r1["train_seconds"],
        "first_mask_s": r1["mask_seconds"],
    }


def measure(iterations: int = 1500, rounds: int = 3, seeds: int = 2) -> dict:
    """Both figures, as `make bench` records them."""
    return {
        "rewinding": rewinding_ratio(iterations, rounds, seeds),
        "masks": mask_share(iterations, seeds),
        "seeds": seeds,
    }


def markdown(out: dict) -> str:
    """The strategies' lines of the benchmark report."""
    r, m = out["rewinding"], out["masks"]
    return (
        f"Strategies (MNIST-1D MLP): the rewinding study's five lineages as one study {r['one_study_s']:.1f} s, as "
        f"five separate studies (each its own dense run) {r['separate_studies_s']:.1f} s: **{r['ratio']:.2f}x**. "
        f"Pruning at init, {m['arms']} arms x {out.get('seeds', 2)} seeds: making the masks took "
        f"{m['mask_s']:.1f} s of a {m['round_s']:.1f} s round ({100 * m['mask_share']:.1f}%, SynFlow's 100 "
        f"rescorings included; the first round, which compiles the mask programs: "
        f"{m.get('first_mask_s', float('nan')):.1f} s of {m.get('first_round_s', float('nan')):.1f} s)."
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=1500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    out = measure(args.iterations, args.rounds, args.seeds)
    print(markdown(out))
    if args.out is not None:
        args.out.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
