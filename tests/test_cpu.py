"""funcnn.cpu: the opt-in XLA:CPU flags for populations. Importing funcnn sets nothing; the flags
give one CPU device per core; a user's own choice is kept; a late call raises."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import pytest

from funcnn import cpu

ROOT = Path(__file__).resolve().parent.parent


def test_fast_flags_name_the_core_count():
    assert cpu.fast_flags(3) == "--xla_force_host_platform_device_count=3 --xla_cpu_multi_thread_eigen=false"
    assert f"device_count={cpu.cores()}" in cpu.fast_flags()
    assert cpu.cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("bad", [0, -1, 2.0, "2"])
def test_fast_flags_refuse_a_bad_core_count(bad):
    with pytest.raises(ValueError, match=r"n_cores must be a positive int, got n_cores="):
        cpu.fast_flags(bad)


def test_use_fast_flags_appends_to_the_users_flags():
    env = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
    assert cpu.use_fast_flags(env, n_cores=2) is True
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x " + cpu.fast_flags(2)
    empty: dict = {}
    assert cpu.use_fast_flags(empty, n_cores=4) and empty["XLA_FLAGS"] == cpu.fast_flags(4)


@pytest.mark.parametrize("theirs", ["--xla_force_host_platform_device_count=8", "--xla_cpu_multi_thread_eigen=true"])
def test_use_fast_flags_keeps_the_users_choice(theirs):
    env = {"XLA_FLAGS": theirs}
    assert cpu.use_fast_flags(env) is False
    assert env == {"XLA_FLAGS": theirs}


def test_use_fast_flags_after_jax_started_raises_and_changes_nothing(monkeypatch):
    jax.devices()  # the backend has started
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with pytest.raises(RuntimeError, match=r"use_fast_flags\(\) must run before JAX's first computation"):
        cpu.use_fast_flags(n_cores=2)
    assert "XLA_FLAGS" not in os.environ


def run_python(code: str, env_extra: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(env_extra, JAX_PLATFORMS="cpu")
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


def test_importing_funcnn_sets_no_flags_and_the_call_gives_a_device_per_core():
    out = run_python(
        """
        import os, funcnn, funcnn.lottery, funcnn.cpu
        before = os.environ.get("XLA_FLAGS")
        funcnn.cpu.use_fast_flags(n_cores=3)
        import jax
        print(before, jax.device_count(), jax.default_backend())
    """,
        {},
    )
    assert out.splitlines()[-1] == "None 3 cpu"
