"""experiments/pruning_at_init.py and experiments/rewinding.py, CI-sized (MNIST-1D MLP, 1 seed, a
few hundred iterations, 1-2 rounds): they run, write their files, resume, and --report-only reads
the folder back; their arms are what the issue's protocol says."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import pruning_at_init, rewinding

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--seeds", "1", "--rounds", "1", "--iterations", "200", "--eval-every", "100", "--rewind-step", "100"]


def test_pruning_at_init_arms_follow_the_protocol():
    names = [a.name for a in pruning_at_init.study_arms(100)]
    assert names[:2] == ["imp", "imp_k"]
    for c in ("snip", "grasp", "synflow"):
        assert {c, f"{c}_shuffled", f"{c}_reinit", f"{c}_inverted"} <= set(names)
    arms = {a.name: a for a in pruning_at_init.study_arms(100)}
    assert arms["imp_k"].rewind_step == 100 and arms["imp"].rewind_step == 0
    assert arms["snip_shuffled"].parent == "snip" and arms["snip"].parent == "imp"
    assert arms["grasp_inverted"].pruner.name == "grasp_inverted"


def test_rewinding_arms_are_lineages_with_their_schedules():
    arms = {a.name: a for a in rewinding.study_arms(100)}
    assert all(a.lineage for a in arms.values())
    assert (arms["lr_rewinding"].weights, arms["lr_rewinding"].schedule) == ("trained", "rewind")
    assert arms["lr_rewinding_full"].schedule == "start" and arms["fine_tuning"].schedule == "end"
    assert arms["rewind_thetak"].rewind_step == 100 and arms["rewind_theta0"].rewind_step == 0
    sched = rewinding.schedule(1e-3, 1000, 100)
    assert float(sched(0)) == 0.0 and float(sched(100)) == pytest.approx(1e-3)
    assert float(sched(1000)) == pytest.approx(1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("script", ["pruning_at_init", "rewinding"])
def test_strategy_experiment_runs_resumes_and_reports(tmp_path, script):
    extra = ["--synflow-iterations", "3"] if script == "pruning_at_init" else []
    cmd = [sys.executable, f"experiments/{script}.py", *TINY, *extra, "--out", str(tmp_path), "--no-progress"]
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["complete"] and len(report["rounds"]) == 2
    assert {"accuracy_vs_remaining.png", "early_stop_vs_remaining.png", "learning_curves.png"} <= {
        p.name for p in tmp_path.iterdir()
    }
    arms = set(report["rounds"][1]["arms"])
    module = pruning_at_init if script == "pruning_at_init" else rewinding
    expected = {a.name for a in module.study_arms(100)}
    assert arms == expected
    assert "making masks" in first
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    only = subprocess.run(cmd + ["--report-only"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    table = lambda out: out[out.index("round   P_m %") : out.index("training time")]
    assert table(first) == table(again) == table(only)
