"""Scale-out: the population split over (forced) CPU devices in one process, sharded over two
processes over loopback, and data-parallel fit, each checked against the single-device result.
Runs in subprocesses because the device count is fixed when JAX starts."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Population sizes as "3,4,6": one process (one JAX start) trains each in turn and prints a RESULT per n.
POPULATION = textwrap.dedent("""
    import dataclasses, json, sys
    import jax, jax.numpy as jnp, numpy as np
    from funcnn import distributed, lottery, prune
    if len(sys.argv) > 2:
        distributed.initialize()
    sizes = list(map(int, sys.argv[1].split(",")))
    # One study of the most members (one Study built, one set of masks); each population is its first n
    # members (member i's θ0, mask and batches do not depend on how many there are).
    cfg = dataclasses.replace(lottery.PRESETS["mnist1d"], model="mlp-32-32", iterations=200, eval_every=100,
                              rounds=0, seeds=max(sizes), population_chunk=1)
    study = lottery.Study(cfg, progress=False)
    all_masks = jax.vmap(lambda p: prune.magnitude(p, prune.ones(p), 0.5))(study.theta0)
    for n in sizes:
        theta0, masks = jax.tree.map(lambda a: a[:n], (study.theta0, all_masks))
        out = {"n": n, "devices": jax.device_count(), "processes": jax.process_count(), "layout": study.layout}
        if study.mesh is not None:
            padded = distributed.pad_population(theta0, distributed.padded_size(n, study.mesh))
            placed = distributed.put_population(padded, study.mesh)
            w = placed["dense_1"]["w"]
            out["shard_shape"] = list(w.sharding.shard_shape(w.shape))
            out["local_shards"] = len(w.addressable_shards)
        params, curves, failed = study.train_population(theta0, masks, jnp.arange(n), 0, "x")
        out["curves"] = np.asarray(curves).tolist()
        out["w"] = np.asarray(params["dense_1"]["w"]).ravel()[:50].tolist()
        if jax.process_index() == 0:
            print("RESULT " + json.dumps(out))
""")

DATA_PARALLEL = textwrap.dedent("""
    import json, jax, numpy as np
    import funcnn as F
    from funcnn import data, models
    d = data.load("mnist1d")
    net = models.mlp((64,))
    params = net.init(jax.random.key(0), (40,))
    state, hist = F.fit(net, params, (d.x_train, d.y_train), (d.x_test, d.y_test), epochs=2, batch_size=100,
                        key=jax.random.key(1), progress=False, data_parallel=True)
    print("RESULT " + json.dumps({"devices": jax.device_count(), "loss": hist.train_loss,
                                  "w": np.asarray(state.params["dense_0"]["w"]).ravel()[:50].tolist()}))
""")


def run(script, args=(), devices=1, env_extra=None, timeout=300):
    env = dict(
        os.environ,
        # the suite's own XLA flags (conftest.py) stay
        XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip(),
        JAX_PLATFORMS="cpu",
        **(env_extra or {}),
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def results(proc, timeout=900):
    """The RESULT lines a process printed, parsed (the timeout is generous: one process trains several
    populations, and a shared CI machine may be slow)."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]


def result(proc, timeout=900):
    found = results(proc, timeout)
    return found[-1] if found else None


def by_n(found):
    return {r["n"]: r for r in found}


@pytest.fixture(scope="module")
def single():
    return by_n(results(run(POPULATION, ["3,4,6"])))


@pytest.fixture(scope="module")
def split():
    return by_n(results(run(POPULATION, ["6,4,3"], devices=4)))


@pytest.mark.slow
@pytest.mark.parametrize("n", [6, 4, 3])
def test_population_split_over_four_cpu_devices(single, split, n):
    # One process, several CPU devices: each device runs the one-device program on its share, so the
    # results are bit-identical: 4 members, one a device; 6 padded to 8, two a device; 3 on 4 devices,
    # one device idle.
    assert sorted(single) == [3, 4, 6] == sorted(split)
    r = split[n]
    assert r["devices"] == 4 and r["layout"] == "split"
    assert r["curves"] == single[n]["curves"]
    assert r["w"] == single[n]["w"]


@pytest.mark.slow
def test_two_processes_over_loopback(single):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [
        run(
            POPULATION,
            ["4", "dist"],
            devices=2,
            env_extra={
                "FUNCNN_COORDINATOR": f"127.0.0.1:{port}",
                "FUNCNN_NUM_PROCESSES": "2",
                "FUNCNN_PROCESS_ID": str(i),
            },
        )
        for i in range(2)
    ]
    results = [result(p) for p in procs]
    r = results[0]
    assert results[1] is None  # only process 0 reports
    assert r["processes"] == 2 and r["devices"] == 4 and r["layout"] == "shard"
    assert r["local_shards"] == 2  # each host holds 2 of the 4
    np.testing.assert_allclose(r["curves"], single[4]["curves"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r["w"], single[4]["w"], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_data_parallel_fit_matches_single_device():
    one = result(run(DATA_PARALLEL, devices=1))
    four = result(run(DATA_PARALLEL, devices=4))
    assert four["devices"] == 4
    np.testing.assert_allclose(four["loss"], one["loss"], rtol=1e-4)
    np.testing.assert_allclose(four["w"], one["w"], rtol=1e-3, atol=1e-5)
