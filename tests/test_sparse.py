"""funcnn.sparse: sparsified nets compute the masked dense function, under jit, for any batch shape."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import models, nn, prune, sparse

ROOT = Path(__file__).resolve().parent.parent


def random_layer(rng, fan_in, out, density):
    w = rng.standard_normal((fan_in, out)).astype(np.float32)
    mask = rng.random((fan_in, out)) < density
    b = rng.standard_normal(out).astype(np.float32)
    params = {"w": jax.device_put(w), "b": jax.device_put(b)}
    masks = {"w": jax.device_put(mask), "b": jax.device_put(np.ones(out, bool))}
    return params, masks, w * mask, b


def random_masks(params, density, seed=0):
    """Weight matrices keep round(density * size) random entries (density: a float or {layer: float}); biases all."""
    rng = np.random.default_rng(seed)

    def mask(path, leaf):
        if leaf.ndim < 2:
            return jax.device_put(np.ones(leaf.shape, bool))
        d = density if isinstance(density, float) else density[prune.layer_of(prune.path_name(path))]
        keep = np.zeros(leaf.size, bool)
        keep[rng.permutation(leaf.size)[: round(d * leaf.size)]] = True
        return jax.device_put(keep.reshape(leaf.shape))

    return jax.tree_util.tree_map_with_path(mask, params)


@pytest.fixture(scope="module")
def lenet():
    net = models.lenet_300_100()
    return net, jax.jit(net.init, static_argnums=1)(jax.random.key(0), (28, 28, 1))


def sparse_layers(p):
    """The paths of the layers sparsify made sparse."""
    paths = [prune.path_name(k) for k, _ in jax.tree_util.tree_leaves_with_path(p)]
    return sorted(prune.layer_of(path) for path in paths if path.endswith("/rows"))


@pytest.mark.parametrize("fmt", sparse.FORMATS)
@pytest.mark.parametrize("lead", [(), (1,), (7,), (3, 5), (9,)])
def test_dense_layer_matches_numpy_brute_force(fmt, lead):
    rng = np.random.default_rng(0)
    params, masks, w, b = random_layer(rng, 13, 6, 0.3)
    snet, sparams = sparse.sparsify(nn.Dense(6), params, masks, max_density=1.0, fmt=fmt)
    x = rng.standard_normal((*lead, 13)).astype(np.float32)
    want = np.zeros((*lead, 6))
    for idx in np.ndindex(*lead):  # y[j] = sum_k x[k] w[k, j] + b[j], element by element
        for j in range(6):
            want[idx + (j,)] = sum(float(x[idx + (k,)]) * float(w[k, j]) for k in range(13)) + b[j]
    y = jax.jit(snet.apply)(sparams, x)
    assert y.shape == (*lead, 6)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_stored_entries_are_the_kept_weights():
    rng = np.random.default_rng(1)
    params, masks, w, _ = random_layer(rng, 20, 8, 0.2)
    _, sp = sparse.sparsify(nn.Dense(8), params, masks, max_density=1.0)
    dense = np.zeros((8, 20), np.float32)  # wᵀ rebuilt from the CSR arrays
    for j in range(8):
        lo, hi = int(sp["indptr"][j]), int(sp["indptr"][j + 1])
        dense[j, np.asarray(sp["indices"][lo:hi])] = np.asarray(sp["data"][lo:hi])
        assert (np.asarray(sp["rows"][lo:hi]) == j).all()
    np.testing.assert_array_equal(dense, w.T)
    assert sp["data"].shape == (int(np.asarray(masks["w"]).sum()),)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["auto", "bcsr", "coo"])
def test_lenet_300_100_equals_masked_dense(fmt, lenet):
    net, params = lenet
    masks = random_masks(params, 0.05)
    snet, sp = sparse.sparsify(net, params, masks, fmt=fmt)
    assert sparse_layers(sp) == ["dense_1", "dense_3", "dense_5"]
    masked = jax.jit(prune.apply)(params, masks)
    f, ref = jax.jit(snet.apply), jax.jit(net.apply)
    for lead in [(1,), (16,)]:  # Flatten() keeps one batch axis
        x = jax.random.normal(jax.random.key(1), (*lead, 28, 28, 1))
        np.testing.assert_allclose(f(sp, x), ref(masked, x), rtol=1e-5, atol=1e-5)
    assert snet.output_shape((28, 28, 1)) == (10,)


@pytest.mark.slow
def test_dense_inside_residual_and_parallel_and_stateful_nets():
    net = nn.serial(
        nn.Dense(8),
        nn.BatchNorm(),
        nn.Residual(nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(8))),
        nn.FanOut(2),
        nn.Parallel(nn.Dense(4), nn.serial(nn.Dense(4), nn.Tanh())),
        nn.FanInConcat(),
    )
    params = jax.jit(net.init, static_argnums=1)(jax.random.key(0), (12,))
    state = net.init_state((12,))
    masks = random_masks(params, 0.2)
    snet, sp = sparse.sparsify(net, params, masks, max_density=0.5)
    assert sparse_layers(sp) == [
        "dense_0",
        "parallel_4/dense_0",
        "parallel_4/serial_1/dense_0",
        "residual_2/main/dense_0",
        "residual_2/main/dense_2",
    ]
    x = jax.random.normal(jax.random.key(1), (9, 12))
    want, _ = jax.jit(net.apply_with_state)(jax.jit(prune.apply)(params, masks), state, x)
    got, _ = jax.jit(snet.apply_with_state)(sp, state, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_layers_above_max_density_stay_masked_dense():
    net = nn.serial(nn.Dense(10), nn.Relu(), nn.Dense(3))
    params = jax.jit(net.init, static_argnums=1)(jax.random.key(0), (20,))
    masks = random_masks(params, {"dense_0": 0.5, "dense_2": 0.1})
    snet, sp = sparse.sparsify(net, params, masks, max_density=0.1)
    assert sorted(sp["dense_0"]) == ["b", "w"] and sparse_layers(sp) == ["dense_2"]
    np.testing.assert_array_equal(sp["dense_0"]["w"], prune.apply(params, masks)["dense_0"]["w"])
    x = jax.random.normal(jax.random.key(1), (4, 20))
    want = jax.jit(net.apply)(jax.jit(prune.apply)(params, masks), x)
    np.testing.assert_allclose(jax.jit(snet.apply)(sp, x), want, rtol=1e-5, atol=1e-5)
    _, all_sparse = sparse.sparsify(net, params, masks, max_density=1.0)
    assert sparse_layers(all_sparse) == ["dense_0", "dense_2"]
    _, exact = sparse.sparsify(net, params, masks, max_density=0.5)  # density == max_density goes sparse
    assert sparse_layers(exact) == ["dense_0", "dense_2"]


@pytest.mark.parametrize("fmt", sparse.FORMATS)
def test_fully_pruned_layer_gives_its_bias(fmt):
    params = {"w": jnp.ones((5, 3)), "b": jnp.array([1.0, 2.0, 3.0])}
    masks = {"w": jnp.zeros((5, 3), bool), "b": jnp.ones(3, bool)}
    snet, sp = sparse.sparsify(nn.Dense(3), params, masks, fmt=fmt)
    np.testing.assert_array_equal(jax.jit(snet.apply)(sp, jnp.ones((2, 5))), [[1.0, 2.0, 3.0]] * 2)


@pytest.mark.slow
def test_bad_input_raises_naming_the_argument(lenet):
    net, params = lenet
    masks = prune.ones(params)
    for bad in (0, 0.0, -0.1, 1.5, True, "0.1", float("nan")):
        with pytest.raises(ValueError, match="max_density must be a number in \\(0, 1\\]"):
            sparse.sparsify(net, params, masks, max_density=bad)
    with pytest.raises(ValueError, match="fmt must be one of"):
        sparse.sparsify(net, params, masks, fmt="csr")
    with pytest.raises(ValueError, match="net must be a funcnn nn"):
        sparse.sparsify(lambda p, x: x, params, masks)
    with pytest.raises(ValueError, match="must be boolean"):
        sparse.sparsify(net, params, jax.tree.map(lambda m: m.astype(jnp.float32), masks))
    small = nn.serial(nn.Relu(), nn.Dense(3))
    population = jax.vmap(lambda k: small.init(k, (4,)))(jax.random.split(jax.random.key(0), 2))
    with pytest.raises(ValueError, match=r"params\['dense_1/w'\] has shape \(2, 4, 3\).*population"):
        sparse.sparsify(small, population, prune.ones(population))
    with pytest.raises(ValueError, match="call sparsify outside"):
        jax.jit(lambda p, m: sparse.sparsify(net, p, m)[1])(params, masks)
    with pytest.raises(ValueError, match="has no init"):
        sparse.sparsify(net, params, masks, max_density=1.0)[0].init(jax.random.key(0), (28, 28, 1))
    with pytest.raises(ValueError, match="fmt must be one of"):
        sparse.time_layer(4, 4, 1, 0.5, ("ell",))
    with pytest.raises(ValueError, match="density must be in"):
        sparse.time_layer(4, 4, 1, 0.0)
    snet, sp = sparse.sparsify(net, params, masks, max_density=1.0)
    with pytest.raises(nn.ShapeError, match="dense_1"):
        snet.apply(sp, jnp.ones((2, 27, 28, 1)))


def test_time_layer_and_crossover():
    t = sparse.time_layer(32, 16, 8, 0.1, ("auto", "coo"), repeats=1, min_seconds=0.0)
    assert set(t) == {"dense", "auto", "coo"} and all(v > 0 for v in t.values())
    times = {0.5: {"dense": 1.0, "x": 2.0}, 0.1: {"dense": 1.0, "x": 0.5}, 0.3: {"dense": 1.0, "x": None}}
    assert sparse.crossover(times, "x") == 0.1 and sparse.crossover(times, "missing") is None


@pytest.mark.slow
def test_quick_benchmark_writes_json_and_table(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks.sparse_crossover", "--quick", "--out", str(tmp_path)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=120)
    res = json.loads((tmp_path / "sparse-crossover-quick.json").read_text())
    assert [(r["batch"], r["auto_is"]) for r in res["layers"]] == [(1, "coo"), (1000, "bcsr")]
    for r in res["layers"]:
        assert set(r["crossover"]) == {"bcsr", "coo", "bcoo", "auto"}
        assert all(t["dense"] > 0 for t in r["seconds"].values())
    assert all(r["dense_images_per_s"] > 0 and r["sparse_images_per_s"] > 0 for r in res["lenet"])
    table = (tmp_path / "sparse-crossover-quick.md").read_text()
    assert "| 300x100 | 1000 |" in table and "Whole LeNet-300-100" in table
