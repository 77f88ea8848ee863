"""tools/compile_census.py counts JAX's compile events in every process a command starts."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "compile_census.py"
_spec = importlib.util.spec_from_file_location("compile_census", TOOL)
compile_census = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compile_census)

BACKEND = "/jax/core/compile/backend_compile_duration"

# n distinct programs, lowered and compiled explicitly from numpy inputs: no eager op compiles besides.
PROGRAMS = """
import sys, numpy as np, jax
for i in range(int(sys.argv[1])):
    jax.jit(lambda x, i=i: x * i + 1).lower(np.ones(3, np.float32)).compile()
"""


def census(tmp_path, name, command):
    out = tmp_path / name
    r = subprocess.run([sys.executable, str(TOOL), "--out", str(out), "--", *command], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return out, compile_census.summarize(out), r.stdout


@pytest.mark.slow
def test_counts_one_backend_compile_per_program(tmp_path):
    _, two, _ = census(tmp_path, "two", [sys.executable, "-c", PROGRAMS, "2"])
    _, five, stdout = census(tmp_path, "five", [sys.executable, "-c", PROGRAMS, "5"])
    assert five[BACKEND][0] - two[BACKEND][0] == 3  # three more programs, three more compiles
    assert five[BACKEND][1] > 0 and "compile census of 1 processes" in stdout
    assert "XLA backend compile (cache hits included): " in stdout


def test_passes_the_command_status_and_asks_for_a_command(tmp_path):
    r = subprocess.run([sys.executable, str(TOOL), "--out", str(tmp_path / "a"), "--", sys.executable, "-c", "exit(3)"])
    assert r.returncode == 3
    r = subprocess.run([sys.executable, str(TOOL)], capture_output=True, text=True)
    assert r.returncode == 2 and "command:" in r.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "1.json").write_text("{}")
    r = subprocess.run(
        [sys.executable, str(TOOL), "--out", str(tmp_path / "full"), "--", "true"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "--out" in r.stderr
    r = subprocess.run([sys.executable, str(TOOL), "--", "no-such-command-here"], capture_output=True, text=True)
    assert r.returncode == 2 and "command: cannot start 'no-such-command-here'" in r.stderr
    with pytest.raises(ValueError, match=r"1\.json is not a compile census record"):
        compile_census.summarize(tmp_path / "full")


@pytest.mark.slow
def test_counts_the_xdist_workers_too(tmp_path):
    test_file = tmp_path / "test_one.py"
    test_file.write_text(
        "import numpy as np, jax\n"
        "def test_a():\n    jax.jit(lambda x: x - 7).lower(np.ones(2, np.float32)).compile()\n"
        "def test_b():\n    jax.jit(lambda x: x * 7).lower(np.ones(2, np.float32)).compile()\n"
    )
    pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", str(test_file)]
    out, total, _ = census(tmp_path, "census", pytest_cmd)
    records = [json.loads(p.read_text()) for p in out.glob("*.json")]
    workers = [r for r in records if r["events"].get(BACKEND)]
    assert len(records) >= 3 and len(workers) in (1, 2)  # the controller and its two workers wrote
    assert total[BACKEND][0] >= 2  # both tests' programs, from whichever worker ran them
