"""`python -m benchmarks`' table (benchmarks/results/latest.md), a function of its JSON."""

from __future__ import annotations

from benchmarks import sparse_training, strategies


def markdown(res: dict) -> str:
    m, pin, two, fast = res["machine"], res["pinned"], res["two_core"], res["fast_cpu"]
    lines = [
        f"Benchmarks of {res['date']}: {m['cpu_count']} cores ({m['cpu']}), {m['platform']}, Python {m['python']}, "
        f"JAX {m['jax']}; `make bench` took {res['wall_s'] / 60:.1f} min. Medians of 7 chunks (worst chunk in "
        'brackets where it matters); "pinned" rows ran on one core, the others on both.',
        "",
        f"float32 matmul peak: **{pin['peak_gflops']:.1f} GFLOP/s** on one core, **{two['peak_gflops']:.1f}** on two.",
        "",
        "| cores | batch | implementation | steps/s | GFLOP/s | of peak | vs hand-written scan | compile s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for cores, rows in (("1 (pinned)", pin["one_model"]), ("2", two["one_model"])):
        for r in rows:
            if "skipped" in r:
                lines.append(f"| {cores} | {r['batch']} | {r['impl']} | skipped: {r['skipped']} | | | | |")
            else:
                c = f"{r['compile_s']:.2f}" if r["compile_s"] is not None else ""
                lines.append(
                    f"| {cores} | {r['batch']} | {r['impl']} | {r['steps_per_s']:.0f} | {r['gflops']:.1f} | "
                    f"{r['fraction_of_peak']:.0%} | {r['ratio_vs_reference']:.2f}x | {c} |"
                )
    e = pin["eval_share"]
    lines += [
        "",
        f"Evaluation's share of a lottery round (pinned; LeNet-300-100, {e['steps']} steps at batch 60 then "
        "the evaluation, as one interval of `eval_every`):",
        "",
        "| interval | ms (worst) | share of the interval |",
        "|---|---:|---:|",
        f"| {e['steps']} steps | {e['ms']['train'] * 1e3:.0f} ({e['worst_ms']['train'] * 1e3:.0f}) | |",
        f"| + validation (5,000): funcnn's rounds | {e['ms']['train + val'] * 1e3:.0f} "
        f"({e['worst_ms']['train + val'] * 1e3:.0f}) | {e['val_share']:.0%} |",
        f"| + validation and test (15,000): the old rounds | {e['ms']['train + val + test'] * 1e3:.0f} "
        f"({e['worst_ms']['train + val + test'] * 1e3:.0f}) | {e['old_eval_share']:.0%} |",
        "",
        f"Evaluating test once at the end instead of every interval: {e['round_speedup_from_eval']:.2f}x per interval.",
        "",
        "Convolution training steps (pinned, batch 60, Adam; im2col = `funcnn.conv`'s CPU path, used "
        "inside compiled loops):",
        "",
        "| model | variant | steps/s (worst) | vs xla conv in a Python loop |",
        "|---|---|---:|---:|",
    ]
    for r in pin["conv"]:
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['steps_per_s']:.3g} ({r['worst_steps_per_s']:.3g}) "
            f"| {r['vs_xla_loop']:.2f}x |"
        )
    lines += ["", "| ResNet step (pinned, SGD momentum) | implementation | s/step (worst) |", "|---|---|---:|"]
    for r in pin["resnet"]:
        lines.append(
            f"| {r['model']}, {r['params']:,} params | {r['impl']} | {r['s_per_step']:.2f} "
            f"({r['worst_s_per_step']:.2f}) |"
        )
    lines += [
        "",
        "| model | N | sequential model-steps/s | all-vmapped | / sequential "
        "| vmap 4 at a time (lax.map) | / sequential |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in two["populations"]:
        lines.append(
            f"| {r['model']} | {r['N']} | {r['sequential_model_steps_per_s']:.0f} "
            f"| {r['vmapped_model_steps_per_s']:.0f} | {r['ratio']:.2f}x "
            f"| {r['chunked_model_steps_per_s']:.0f} | {r['chunked_ratio']:.2f}x |"
        )
    lines += [
        "",
        "Two-core regime stability (`benchmarks/regime.py`: 8 LeNet-300-100s, `lax.map` over chunks of 4, "
        "a fresh process per run, configurations alternating):",
        "",
        "| configuration | run | median model-steps/s | worst chunk |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r['config']} | {r['run']} | {r['median']:.0f} | {r['worst']:.0f} |" for r in res["regime"]]
    lr, s = fast["lenet_round"], fast["study"]
    lines += [
        "",
        f"Lottery programs as the experiments run them (`funcnn.cpu.fast_flags()`: {fast['devices']} CPU devices, "
        "each training its share of the members):",
        "",
        f"- {lr['dataset']} LeNet-300-100 round sample ({lr['members']} members x {lr['iterations']} iterations, "
        f"validation every 100): {lr['model_steps_per_s']:.0f} model-steps/s (worst chunk "
        f"{lr['members'] * lr['iterations'] / lr['worst_seconds']:.0f}), {lr['gflops']:.1f} GFLOP/s = "
        f"{lr['fraction_of_peak']:.0%} of the 2-core peak; validation is {lr['val_share']:.0%} of the time. "
        f"The full protocol (11.5M model-steps) at this rate: {lr['protocol_minutes_at_this_rate']:.0f} min.",
        f"- Whole MNIST-1D study ({s['config']['rounds']} rounds, {s['config']['seeds']} seeds x 3 arms, "
        f"{s['config']['iterations']} it/round): {s['wall_s']:.1f} s wall, {s['model_steps_per_s']:.0f} model-steps/s, "
        f"{s['outside_training_fraction']:.1%} of wall time outside compiled training, training at "
        f"{s['training_gflops']:.1f} GFLOP/s = {s['training_fraction_of_peak']:.0%} of the 2-core peak.",
    ]
    if "conv_round" in res:  # results from before 2026-11-28 lack it
        c = res["conv_round"]
        lines += [
            "",
            f"A conv2-fashion lottery round on CPU (`benchmarks/conv_round.py`: {c['members']} members x "
            f"{c['iterations']} iterations, validation every 100"
            + (f", validation and test sets of {c['eval_size']} images" if c.get("eval_size") else "")
            + "): funcnn's round program against a per-step "
            f"Python loop over XLA's convolutions with the old evaluation ({c['loop_s']:.1f} s after "
            f"{c['loop_compile_s']:.0f} s of compilation):",
            "",
            "| round program's convolutions | s | vs the loop | compile s (first call - timed call) "
            "| max rel. diff of val loss |",
            "|---|---:|---:|---:|---:|",
        ]
        for impl, r in c["rounds"].items():
            lines.append(
                f"| {impl} | {r['round_s']:.1f} | {r['speedup']:.2f}x | {r['compile_s'] - r['round_s']:.0f} "
                f"| {r['val_loss_max_rel_diff']:.1e} |"
            )
    lines += [
        "",
        "| P_m % | hidden widths after compact | masked dense img/s | compacted img/s | funcnn.sparse img/s "
        "| fastest |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for r in two["pruning"]:
        lines.append(
            f"| {r['P_m_percent']:.1f} | {r['hidden_widths']} | {r['masked dense images/s']:.0f} | "
            f"{r['compacted dense images/s']:.0f} | {r['funcnn.sparse images/s']:.0f} | {r['fastest']} |"
        )
    if "strategies" in res:  # runs of make bench before the strategies' section have none
        lines += ["", strategies.markdown(res["strategies"])]
    if "sparse_training" in res:
        lines += ["", sparse_training.markdown(res["sparse_training"])]
    return "\n".join(lines) + "\n"
