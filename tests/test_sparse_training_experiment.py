"""experiments/sparse_training.py: the SET tutorial's computation against numpy ports of its code (set_mlp.py's
_feed_forward, _back_prop, _update_w_b, predict and weightsEvolution_II), its data selection against the legacy
numpy stream, the presets' schedules, and both presets end to end at CI size."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import sparse_training
from experiments.sparse_training_parts import tutorial
from tests.conftest import require_fashion_mnist

P = tutorial.Protocol(sizes=(6, 5, 4, 3), epsilon=1, epochs=3)


def sig(v):
    return 1 / (1 + np.exp(-v))


def reference_step(net, x, y, keep, dense, p=P):
    """set_mlp.py (fc_mlp.py for dense=True), one batch: _feed_forward(drop=True) with the given dropout masks,
    _back_prop (sparse dw at the active entries / B, dense dw summed), _update_w_b."""
    w, b, m, vw, vb = ([np.asarray(a, np.float64) for a in part] for part in net)
    a, z = [x], []
    for i in range(len(w)):
        z.append(a[-1] @ w[i] + b[i])
        a.append(sig(z[-1]) if i == len(w) - 1 else np.maximum(z[-1], 0) * keep[i])
    delta = (a[-1] - y) * sig(a[-1]) * (1 - sig(a[-1]))
    updates = {}
    for i in reversed(range(len(w))):
        dw = a[i].T @ delta
        updates[i] = (dw if dense else np.where(m[i], dw / x.shape[0], 0.0), delta)
        if i:
            delta = (delta @ w[i].T) * (z[i - 1] > 0)
    lr = p.lr_dense if dense else p.lr_sparse
    for i, (dw, delta) in updates.items():
        vw[i] = p.momentum * vw[i] - lr * dw
        vb[i] = p.momentum * vb[i] - lr * delta.mean(0)
        w[i] = w[i] + vw[i] - p.decay * w[i]
        b[i] = b[i] + vb[i] - p.decay * b[i]
    return w, b, vw, vb


@pytest.mark.slow
@pytest.mark.parametrize("dense", [False, True])
def test_tutorial_step_equals_the_original_code(dense):
    key = jax.random.key(3)
    net = tutorial.init(key, P, dense)
    net = net._replace(
        b=[jax.random.normal(jax.random.fold_in(key, 9 + i), b.shape) for i, b in enumerate(net.b)],
        vw=[0.01 * jnp.where(m, 1.0, 0.0) for m in net.m],
    )
    x = np.asarray(jax.random.uniform(jax.random.key(4), (8, 6)))
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2, 0, 1]]
    k = jax.random.key(5)
    keep = [np.asarray(jax.random.uniform(jax.random.fold_in(k, i), (8, n)) >= P.dropout) for i, n in enumerate((5, 4))]
    got = jax.jit(tutorial.train_step, static_argnums=(4, 5))(net, jnp.asarray(x), jnp.asarray(y), k, P, dense)
    want = reference_step(net, x, y, keep, dense)
    for g, w in zip((got.w, got.b, got.vw, got.vb), want, strict=True):
        for a, b in zip(g, w, strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_tutorial_evaluate_scales_by_08_from_layer_2():
    net = tutorial.init(jax.random.key(0), P, True)
    x = np.asarray(jax.random.uniform(jax.random.key(1), (10, 6)))
    y = np.eye(3)[np.arange(10) % 3]
    h = x
    for i, (w, b) in enumerate(zip(net.w, net.b, strict=True)):
        zi = (h @ np.asarray(w) + np.asarray(b)) * (0.8 if i else 1.0)
        h = sig(zi) if i == 2 else np.maximum(zi, 0)
    acc, loss = tutorial.evaluate(net, jnp.asarray(x), jnp.asarray(y), P)
    assert float(acc) == pytest.approx(np.mean(h.argmax(1) == y.argmax(1)))
    assert float(loss) == pytest.approx(np.mean((h - y) ** 2), rel=1e-5)


def test_evolution_equals_weights_evolution_ii():
    """The removed set is the original's: values[int(0.7 p)] <= w <= values[int(min(n - 1, last + 0.3 (n - last)))]
    (find_first_pos / find_last_pos on the sorted active weights, numpy below); as many regrown, with new values,
    momentum 0 at every entry not kept and unchanged at the kept ones."""
    rng = np.random.default_rng(0)
    mask = rng.uniform(size=(30, 20)) < 0.3
    w = np.where(mask, np.round(rng.normal(size=(30, 20)), 1), 0.0).astype(np.float32)  # rounding: ties, zeros
    v = np.where(mask, rng.normal(size=(30, 20)), 0.0).astype(np.float32)
    values = np.sort(w[mask])
    n = values.size
    first = np.abs(values).argmin()
    last = n - np.abs(values)[::-1].argmin()
    lo, hi = values[int(0.7 * first)], values[int(min(n - 1, last + 0.3 * (n - last)))]
    keep = mask & ((w > hi) | (w < lo))
    new_w, new_m, new_v = map(
        np.asarray, tutorial.evolve_layer(jnp.asarray(w), jnp.asarray(mask), jnp.asarray(v), jax.random.key(0), 0.3)
    )
    assert new_m.sum() == mask.sum() and np.all(new_m[keep]) and np.array_equal(new_w[keep], w[keep])
    regrown = new_m & ~keep
    assert regrown.sum() == mask.sum() - keep.sum() > 0 and np.all(new_w[regrown] != 0) and np.all(new_w[~new_m] == 0)
    assert np.array_equal(new_v[keep], v[keep]) and np.all(new_v[~keep] == 0)


def test_tutorial_init_draws_with_replacement():
    net = jax.jit(tutorial.init, static_argnums=(1, 2))(jax.random.key(0), tutorial.Protocol(), False)
    active = [int(m.sum()) for m in net.m]
    draws = [13 * (a + b) for a, b in zip((784, 1000, 1000, 1000), (1000, 1000, 1000, 10), strict=True)]
    assert all(a <= d for a, d in zip(active, draws, strict=True))
    assert 0.70 < active[-1] / 10_000 < 0.76  # 13,130 draws into 10,000 entries: 1 - e^-1.313 = 73% distinct
    w, m = np.asarray(net.w[1]), np.asarray(net.m[1])
    assert np.std(w[m]) == pytest.approx(0.1, rel=0.05) and np.all(w[~m] == 0)


def test_fashion_subset_is_the_tutorials_selection():
    require_fashion_mnist()
    saved = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(0)  # noqa: NPY002 load_fashion_mnist_data's stream, verbatim
        index_train = np.arange(60000)
        np.random.shuffle(index_train)  # noqa: NPY002
        index_test = np.arange(10000)
        np.random.shuffle(index_test)  # noqa: NPY002
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    from funcnn import data

    d = data.load("fashion-mnist")
    x, _, _, yt = sparse_training.fashion_subset(2000, 1000)
    np.testing.assert_array_equal(x, d.x_train[index_train[:2000]].reshape(2000, 784))
    np.testing.assert_array_equal(yt, d.y_test[index_test[:1000]])
    assert x.max() == 1.0 and x.dtype == np.float32  # pixels / 255


def test_preset_schedules():
    s = sparse_training.schedule(400, 50)  # set-fashion: evolve after every epoch but the last
    assert (s.every, s.set_end, s.rigl_end, s.gradual_begin, s.gradual_end) == (50, 19950, 15000, 1000, 10000)
    s = sparse_training.schedule(40, 35, every=100, set_end=1050)  # mnist1d: RigL's ΔT = 100
    assert (s.every, s.set_end, s.rigl_end, s.gradual_begin, s.gradual_end) == (100, 1050, 1050, 100, 700)


@pytest.mark.slow
def test_mnist1d_preset_ci_sized(tmp_path):
    args = "--preset mnist1d --epochs 2 --seeds 1 --rounds 1 --chunk 7 --no-progress".split()
    result = sparse_training.main([*args, "--out", str(tmp_path)])
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert {p.name for p in tmp_path.iterdir()} >= {
        "results.json",
        "table.md",
        "accuracy_vs_density.png",
        "accuracy_curves.png",
    }
    methods = {r["method"] for r in on_disk["rows"]}
    assert methods == {
        "dense",
        "static_uniform",
        "static_er",
        "static_erk",
        "gradual",
        "set",
        "rigl",
        "imp_ticket",
        "snip_at_init",
    }
    (density,) = result["densities"]  # IMP's one round sets the density of every method
    for m in on_disk["members"]:
        want = 1.0 if m["method"] == "dense" else density
        assert math.isclose(m["final_density"], want, abs_tol=2e-3), m["method"]
        assert len(m["curve"]) == 2 and 0 <= m["final_test_accuracy"] <= 1
    assert "| rigl |" in (tmp_path / "table.md").read_text()


@pytest.mark.slow
def test_set_fashion_preset_ci_sized(tmp_path):
    require_fashion_mnist()
    args = "--preset set-fashion --epochs 2 --seeds 1 --hidden 16 --n-train 80 --n-test 40 --no-progress".split()
    result = sparse_training.main([*args, "--out", str(tmp_path)])
    methods = {r["method"] for r in result["rows"]}
    assert methods == {
        "tutorial_set",
        "tutorial_fixprob",
        "tutorial_dense",
        "dense",
        "dense_he_init",
        "static_er",
        "set",
        "rigl",
        "gradual",
        "static_erk",
    }
    rows = {r["method"]: r for r in result["rows"]}
    assert rows["set"]["density"] == pytest.approx(result["set_density"], abs=0.02)
    assert rows["tutorial_dense"]["density"] == 1.0 and len(rows["tutorial_set"]["curve"]) == 2
    assert (tmp_path / "accuracy_curves.png").exists()
