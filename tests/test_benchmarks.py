"""The benchmark runs in its tiny mode and writes its JSON and table (structure only, never speed)."""
import json

import pytest

from benchmarks import run


@pytest.mark.slow
def test_tiny_benchmark_writes_json_and_table(tmp_path):
    res = run.main(["--tiny", "--out", str(tmp_path)])
    on_disk = json.loads((tmp_path / "tiny.json").read_text())
    assert on_disk["peak_gflops"] > 0
    impls = {r["impl"] for r in on_disk["one_model"]}
    assert {"funcnn train step (scan)", "hand-written JAX (lax.scan)", "hand-written JAX (jit per step)"} <= impls
    assert any("PyTorch" in i for i in impls)  # measured, or reported as skipped
    for r in on_disk["one_model"]:
        assert ("skipped" in r) or (r["steps_per_s"] > 0 and "ratio_vs_reference" in r and "fraction_of_peak" in r)
    assert {r["model"] for r in on_disk["populations"]} == {"LeNet-300-100", "MNIST-1D MLP 40-300-300-10"}
    assert all(r["ratio"] > 0 and r["chunked_ratio"] > 0 for r in on_disk["populations"])
    assert [round(r["P_m_percent"]) for r in on_disk["pruning"]] == [100, 21, 4, 1]
    assert all(r["fastest"] in ("masked dense", "compacted dense", "BCOO sparse") for r in on_disk["pruning"])
    assert 0 <= on_disk["study"]["outside_training_fraction"] < 1
    table = (tmp_path / "tiny.md").read_text()
    assert "matmul peak" in table and "| funcnn train step (scan) |" in table
    assert res["study"]["wall_s"] > 0


def test_population_sweep_reports_each_size(tmp_path):
    from benchmarks import population

    res = population.main(["--sizes", "1,3", "--steps", "5", "--repeats", "1", "--out", str(tmp_path / "p.json")])
    on_disk = json.loads((tmp_path / "p.json").read_text())
    assert [r["members"] for r in on_disk["rows"]] == [1, 3] == [r["members"] for r in res["rows"]]
    assert all(r["model_steps_per_s"] > 0 and r["fraction_of_peak"] > 0 for r in on_disk["rows"])
    assert on_disk["rows"][0]["params_per_member"] == 40 * 300 + 300 + 300 * 300 + 300 + 300 * 10 + 10
