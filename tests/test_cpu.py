"""funcnn.cpu: the opt-in XLA:CPU flags for populations. Importing funcnn sets nothing; the flags
give one CPU device per core; a user's own choice is kept; a late call raises."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import cpu, models

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


@pytest.mark.slow
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


def test_map_members_equals_vmap_for_every_chunk():
    xs = {"a": jnp.arange(14.0).reshape(7, 2), "b": jnp.arange(7.0)}  # 7 members: chunks 2, 3 leave a rest
    fn = lambda m: jnp.sum(m["a"] ** 2) + m["b"]
    want = np.array([np.sum(np.arange(2.0 * i, 2.0 * i + 2) ** 2) + i for i in range(7)])
    for chunk in (None, 1, 2, 3, 7, 9):
        np.testing.assert_allclose(np.asarray(jax.jit(lambda t, c=chunk: cpu.map_members(fn, t, c))(xs)), want)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_chunk_or_default_names_a_bad_chunk(bad):
    with pytest.raises(ValueError, match=rf"chunk must be None or an int >= 1 .*got chunk={bad!r}"):
        cpu.chunk_or_default(bad, models.lenet_300_100(), (28, 28, 1))


def test_chunk_or_default_keeps_ints_and_defaults_by_net():
    assert cpu.chunk_or_default(np.int64(3), models.conv2(), (28, 28, 1)) == 3
    net, shape = models.conv2(), (28, 28, 1)
    assert cpu.chunk_or_default(None, net, shape) == cpu.default_chunk(net, shape)


def test_map_members_chunk_one_never_vmaps():
    # chunk 1 is a loop over members even for one member (the lottery engine's per-device shares rely
    # on it for bit-identical results); chunk None, or one at least the member count, is one vmap
    one = jnp.ones((1, 3))
    loops = lambda chunk, xs: "scan" in str(jax.make_jaxpr(lambda t: cpu.map_members(jnp.sum, t, chunk))(xs))
    assert loops(1, one) and loops(1, jnp.ones((4, 3))) and loops(2, jnp.ones((4, 3)))
    assert not loops(None, one) and not loops(4, jnp.ones((4, 3)))
