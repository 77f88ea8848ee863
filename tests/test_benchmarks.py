"""The benchmark runs in its tiny mode and writes its JSON and table (structure only, never speed)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import run
from funcnn import cpu
from tests.conftest import require_fashion_mnist

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_tiny_benchmark_writes_json_and_table(tmp_path):
    """Every part, in one process started with the fast flags (JAX starts once: compiling is most of it)."""
    res = run.main(["--tiny", "--out", str(tmp_path)])
    on_disk = json.loads((tmp_path / "tiny.json").read_text())
    pinned, two, fast = on_disk["pinned"], on_disk["two_core"], on_disk["fast_cpu"]
    assert pinned["peak_gflops"] > 0 and two["peak_gflops"] > 0
    assert pinned["threads_pinned"][0] == pinned["threads_pinned"][1] > 0  # every thread on the one core
    for rows in (pinned["one_model"], two["one_model"]):
        impls = {r["impl"] for r in rows}
        assert {"funcnn train step (scan)", "hand-written JAX (lax.scan)", "hand-written JAX (jit per step)"} <= impls
        for r in rows:
            assert ("skipped" in r) or (r["steps_per_s"] > 0 and "ratio_vs_reference" in r and "fraction_of_peak" in r)
    assert any("PyTorch" in r["impl"] for r in two["one_model"])  # measured, or reported as skipped
    e = pinned["eval_share"]
    # shares of one timed chunk each: their formulas, not their signs (on a loaded machine "train" alone
    # can take longer than "train + val")
    assert 0 < e["ms"]["train"] and e["val_share"] == pytest.approx(1 - e["ms"]["train"] / e["ms"]["train + val"])
    assert e["old_eval_share"] == pytest.approx(1 - e["ms"]["train"] / e["ms"]["train + val + test"])
    assert [(r["model"][:5], r["variant"][:3]) for r in pinned["conv"]] == [
        ("small", "(a)"),
        ("small", "(b)"),
        ("small", "(c)"),
        ("Conv-", "(b)"),
        ("Conv-", "(c)"),
        ("Conv-", "(d)"),
        ("small", "(e)"),
        ("Conv-", "(e)"),
    ]
    assert all(r["steps_per_s"] > 0 for r in pinned["conv"])
    assert [r["impl"].split("(")[-1] for r in pinned["resnet"]] == [
        "mixed)",
        "im2col)",
        "xla conv, jitted step in a Python loop",
    ]
    assert all(r["s_per_step"] > 0 for r in pinned["resnet"])
    c = on_disk["conv_round"]
    assert (c["members"], c["iterations"], list(c["rounds"])) == (1, 4, ["mixed"]) and c["loop_s"] > 0
    r = c["rounds"]["mixed"]
    assert r["round_s"] > 0 and r["speedup"] == pytest.approx(c["loop_s"] / r["round_s"])
    # The same training as the loop up to float rounding, which Adam amplifies (0.5% after 200 steps of
    # 2 members in `make bench`); a wrong convolution would be off by far more.
    assert r["val_loss_max_rel_diff"] < 1e-2
    assert {r["model"] for r in two["populations"]} == {"LeNet-300-100", "MNIST-1D MLP 40-300-300-10"}
    assert all(r["ratio"] > 0 and r["chunked_ratio"] > 0 for r in two["populations"])
    assert [round(r["P_m_percent"]) for r in two["pruning"]] == [100, 21, 4, 1]
    assert all(r["fastest"] in ("masked dense", "compacted dense", "funcnn.sparse") for r in two["pruning"])
    assert fast["devices"] == cpu.cores() and "xla_cpu_multi_thread_eigen=false" in fast["xla_flags"]
    assert fast["lenet_round"]["model_steps_per_s"] > 0 and 0 < fast["lenet_round"]["fraction_of_peak"]
    assert 0 <= fast["study"]["outside_training_fraction"] < 1
    assert [r["config"] for r in on_disk["regime"]] == ["default", "fast", "pinned (1 core)"]
    assert all(r["in_process"] for r in on_disk["regime"]) and c["in_process"]  # in that one process
    assert all(0 < r["worst"] <= r["median"] for r in on_disk["regime"])
    table = (tmp_path / "tiny.md").read_text()
    assert "matmul peak" in table and "| funcnn train step (scan) |" in table and "Two-core regime" in table
    assert "A conv2-fashion lottery round on CPU" in table and "| mixed |" in table
    assert res["fast_cpu"]["study"]["wall_s"] > 0
    assert not list(tmp_path.glob("part-*.json"))  # the parts' files are folded into tiny.json


def test_markdown_rewrites_the_committed_table():
    """The table is a function of the results' JSON: the committed latest.md comes back from latest.json,
    every section and row (its two conv-round rows were put in another order by hand)."""
    results = json.loads((ROOT / "benchmarks" / "results" / "latest.json").read_text())
    table = run.markdown(results)
    committed = (ROOT / "benchmarks" / "results" / "latest.md").read_text()
    assert sorted(table.splitlines()) == sorted(committed.splitlines())
    assert table.count("\n| ") > 40 and "float32 matmul peak" in table and "Two-core regime" in table


@pytest.mark.slow
def test_population_sweep_reports_each_size(tmp_path):
    from benchmarks import population

    res = population.main(["--sizes", "1,3", "--steps", "5", "--repeats", "1", "--out", str(tmp_path / "p.json")])
    on_disk = json.loads((tmp_path / "p.json").read_text())
    assert [r["members"] for r in on_disk["rows"]] == [1, 3] == [r["members"] for r in res["rows"]]
    assert all(r["model_steps_per_s"] > 0 and r["fraction_of_peak"] > 0 for r in on_disk["rows"])
    assert on_disk["rows"][0]["params_per_member"] == 40 * 300 + 300 + 300 * 300 + 300 + 300 * 10 + 10


@pytest.mark.slow
def test_stability_chunk_benchmark_reports_both_layouts():
    """In a process of its own: the benchmark pins its threads to one core."""
    require_fashion_mnist()
    cmd = [sys.executable, "-m", "benchmarks.stability_chunk", "--steps", "2", "--train-size", "512"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    r = json.loads(out.stdout[out.stdout.index("{") :])
    assert r["copies"] == 2 and r["one_at_a_time_copy_steps_per_s"] > 0 and r["vmapped_copy_steps_per_s"] > 0
    assert r["speedup_of_one_at_a_time"] == pytest.approx(
        r["one_at_a_time_copy_steps_per_s"] / r["vmapped_copy_steps_per_s"]
    )
