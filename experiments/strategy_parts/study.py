"""Shared plumbing of the strategy experiments (`pruning_at_init`, `rewinding`): the command line, a
preset's Spec with the experiment's arms, the run folder named by the study's identity, and the
table, figures and results.json. Each experiment only says which arms it trains."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments import common
from funcnn import lottery

PRESETS = ("mnist1d", "lenet-fashion")
"""The presets: MNIST-1D's MLP (minutes on 2 cores) and LeNet-300-100 on Fashion-MNIST."""


def parser(name: str, doc: str) -> argparse.ArgumentParser:
    p = common.parser(name, doc)
    p.set_defaults(out=None)
    p.add_argument("--preset", default="mnist1d", choices=PRESETS, help="net, data and protocol (default mnist1d)")
    p.add_argument("--seeds", type=common.positive_int, help="number of seeds (overrides the preset)")
    p.add_argument("--rounds", type=common.non_negative_int, help="pruning rounds after the dense round")
    p.add_argument("--iterations", type=common.positive_int, help="training iterations per round")
    p.add_argument("--eval-every", type=common.positive_int, help="evaluate every K iterations")
    p.add_argument("--rewind-step", type=common.non_negative_int, help="k of the θk arms (late rewinding)")
    p.add_argument("--population-chunk", type=common.positive_int, help="members vmapped together")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument("--report-only", action="store_true", help="train nothing: table and figures of the run so far")
    return p


def base_spec(preset: str, args: argparse.Namespace, defaults: dict[str, Any]) -> lottery.Spec:
    """The preset's Spec (`lottery.PRESETS[preset]`, data and net), the experiment's defaults, then the
    command line's overrides."""
    fields = {**defaults.get(preset, {})}
    for name in ("seeds", "rounds", "iterations", "eval_every", "population_chunk"):
        if getattr(args, name, None) is not None:
            fields[name] = getattr(args, name)
    config_fields = {k: v for k, v in fields.items() if k in {f.name for f in dataclasses.fields(lottery.Config)}}
    spec = dataclasses.replace(lottery.PRESETS[preset], **config_fields).validate().to_spec()
    return dataclasses.replace(spec, **{k: v for k, v in fields.items() if k not in config_fields})


def digest(spec: lottery.Spec) -> str:
    """A short hash of the study's fields and arms: another study, another folder."""
    described = spec.describe()
    described["arms"] = [repr(a) if isinstance(a, lottery.Arm) else a for a in spec.arms]
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=repr).encode()).hexdigest()[:10]


def main(
    name: str,
    doc: str,
    argv: list[str] | None,
    make_spec: Callable[[argparse.Namespace], lottery.Spec],
    table: Callable[[dict], str],
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> dict:
    """Parse (`extra(parser)` adds the experiment's own options), build the study, run (or resume) it
    in runs/<name>/<preset>-<hash>/, print the tables."""
    p = parser(name, doc)
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    spec = make_spec(args)
    out = Path(args.out or Path("runs") / name / f"{args.preset}-{digest(spec)}")
    if args.report_only:
        try:
            report = lottery.load_report(out)
        except ValueError as e:
            raise SystemExit(f"error: --report-only: {e}") from e
        report["figures"] = [str(p) for p in lottery.plot(report, out)]
    else:
        out = common.out_folder(out)
        print(f"{name} study '{args.preset}': {len(spec.arms)} arms x {spec.seeds} seeds -> {out}")
        t0 = time.perf_counter()
        report = lottery.run(spec, out=out, progress=not args.no_progress)
        report["wall_seconds_with_plots"] = time.perf_counter() - t0
        common.save_results(out, report)
    print(lottery.summary_table(report))
    print()
    print(table(report))
    masks = sum(r.get("mask_seconds", 0.0) for r in report["rounds"])
    print(
        f"training time, all rounds: {report['train_seconds_total'] / 60:.1f} min "
        f"({masks:.1f} s of it making masks); results: {out / 'results.json'}"
    )
    if not args.report_only:
        print(common.seconds_line(report))
    return report


def by_density(report: dict, arms: list[str]) -> str:
    """Test accuracy (mean ± std) per round of each named arm with its own P_m: a compact table."""
    rows = report["summary"]
    header = ["round"] + [f"{a} (P_m %, acc %)" for a in arms]
    body = []
    for rnd in sorted({r["round"] for r in rows}):
        line: list[Any] = [rnd]
        for a in arms:
            hit = [r for r in rows if r["round"] == rnd and r["arm"] == a]
            line.append(
                f"{hit[0]['percent_remaining']:.1f}: {hit[0]['final_test_accuracy_mean'] * 100:.2f} ± "
                f"{hit[0]['final_test_accuracy_std'] * 100:.2f}"
                if hit
                else "-"
            )
        body.append(line)
    return common.table(header, body)
