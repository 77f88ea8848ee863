"""Straight-through masks and supermask nets (funcnn.sparsity, issue #42) against independent references:
numpy's stable argsort for the top-k, closed-form gradients (identity; σ(1 − σ)), the sampling error of a
Bernoulli mean, a hand-written numpy edge-popup forward, and the frozen weights compared bit for bit."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import io, nn, prune, sparsity, train

MLP = nn.serial(nn.Dense(16), nn.Relu(), nn.Dense(3))  # dense_0 w (6, 16), dense_2 w (16, 3)
IN = (6,)


def _np_topk(s, density):
    """The reference top-k: numpy's stable argsort of -|s| (ties to the lower flat index), round half to even."""
    flat = np.abs(np.asarray(s, np.float32)).ravel()
    k = int(np.round(np.float32(density) * np.float32(flat.size)))
    mask = np.zeros(flat.size, np.float32)
    mask[np.argsort(-flat, kind="stable")[:k]] = 1.0
    return mask.reshape(np.shape(s))


def _same(a, b):
    """Two trees with the same leaves, bit for bit."""
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return all(x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y)) for x, y in pairs)


def _dot(coef, masks):
    """Σ c ⊙ m over the leaves: a linear function of the masks."""
    return sum(jnp.sum(c * m) for c, m in zip(jax.tree.leaves(coef), jax.tree.leaves(masks), strict=True))


def _scores(seed=0):
    # few distinct values (rounded to tenths): many ties, so the tie rule is tested too
    k = jax.random.split(jax.random.key(seed), 3)
    return {
        "a": jnp.round(jax.random.normal(k[0], (7,)), 1),
        "b": {"w": jnp.round(jax.random.normal(k[1], (3, 4)), 1)},
        "c": jnp.round(jax.random.normal(k[2], (2, 3, 5)), 1),
    }


DENSITIES = np.array([0.1, 0.3, 0.5, 0.7, 0.9, 1.0], np.float32)


@pytest.mark.slow
def test_topk_mask_keeps_exact_counts_per_leaf_under_jit_and_vmap():
    scores = _scores()
    # vmapped over densities (traced) and, inside, over 3 copies of the scores: one compiled program
    batched = jax.tree.map(lambda s: jnp.stack([s, -s, 2 * s]), scores)
    fn = jax.jit(jax.vmap(lambda d: jax.vmap(lambda s: sparsity.topk_mask(s, d))(batched)))
    out = fn(jnp.asarray(DENSITIES))
    for (path, leaf), got in zip(jax.tree_util.tree_leaves_with_path(scores), jax.tree.leaves(out), strict=True):
        assert got.shape == (len(DENSITIES), 3, *leaf.shape) and got.dtype == leaf.dtype
        for i, d in enumerate(DENSITIES):
            for j, factor in enumerate((1, -1, 2)):
                want = _np_topk(np.asarray(leaf) * factor, d)
                np.testing.assert_array_equal(np.asarray(got[i, j]), want, err_msg=f"{jax.tree_util.keystr(path)} {d}")
                assert np.asarray(got[i, j]).sum() == np.round(np.float32(d) * np.float32(leaf.size))
    # a Python density, eagerly: the same masks
    python_density = jax.jit(lambda s: sparsity.topk_mask(s, 0.3))(scores)
    np.testing.assert_array_equal(np.asarray(python_density["b"]["w"]), _np_topk(scores["b"]["w"], 0.3))


def test_topk_mask_gradient_is_the_incoming_gradient():
    scores = _scores(1)
    coef = jax.tree.map(lambda s: jnp.arange(s.size, dtype=jnp.float32).reshape(s.shape) - 3.0, scores)

    def linear(s, d):  # a linear function of the mask: Σ c ⊙ m, whose gradient w.r.t. m is c
        return _dot(coef, sparsity.topk_mask(s, d))

    for d in (0.3, jnp.float32(0.7)):
        grads = jax.jit(jax.grad(linear))(scores, d)
        jax.tree.map(lambda g, c: np.testing.assert_array_equal(np.asarray(g), np.asarray(c)), grads, coef)
    # an infinite score: the mask is still exact and the gradient still finite (no s - stop_gradient(s) NaN)
    s = {"w": jnp.array([jnp.inf, 1.0, -2.0, 0.5])}
    assert sparsity.topk_mask(s, 0.5)["w"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert jax.grad(lambda t: jnp.sum(sparsity.topk_mask(t, 0.5)["w"]))(s)["w"].tolist() == [1.0] * 4


def test_bernoulli_mask_samples_sigmoid_and_its_gradient_is_sigmoid_prime():
    logits = {"w": jnp.array([-2.0, -0.5, 0.0, 0.7, 3.0]), "v": jnp.array([[1.5]])}
    keys = jax.random.split(jax.random.key(0), 4000)
    samples = jax.jit(jax.vmap(lambda k: sparsity.bernoulli_mask(logits, k)))(keys)
    for name in ("w", "v"):
        s = np.asarray(samples[name])
        assert set(np.unique(s).tolist()) <= {0.0, 1.0}
        p = 1 / (1 + np.exp(-np.asarray(logits[name], np.float64)))
        se = np.sqrt(p * (1 - p) / len(keys))
        assert np.all(np.abs(s.mean(axis=0) - p) < 4.5 * se), (s.mean(axis=0), p)
    coef = {"w": jnp.array([1.0, -2.0, 3.0, 0.5, 1.0]), "v": jnp.array([[-1.0]])}
    grad = jax.grad(lambda lg: _dot(coef, sparsity.bernoulli_mask(lg, keys[0])))(logits)
    for name in ("w", "v"):
        p = 1 / (1 + np.exp(-np.asarray(logits[name], np.float64)))
        np.testing.assert_allclose(np.asarray(grad[name]), p * (1 - p) * np.asarray(coef[name]), rtol=1e-5)


def test_masks_reject_bad_arguments():
    with pytest.raises(ValueError, match=r"sparsity.topk_mask: density must be in \(0, 1\], got density=0$"):
        sparsity.topk_mask({"w": jnp.ones(3)}, 0)
    with pytest.raises(ValueError, match="must be a floating array"):
        sparsity.topk_mask({"w": jnp.ones(3, int)}, 0.5)
    with pytest.raises(ValueError, match="typed PRNG key"):
        sparsity.bernoulli_mask({"w": jnp.ones(3)}, 0)
    with pytest.raises(ValueError, match=r"sparsity.supermask: density must be in \(0, 1\], got density=0$"):
        sparsity.supermask(MLP, density=0, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"density must be in \(0, 1\), got density=1"):
        sparsity.supermask(MLP, density=1, key=jax.random.key(0), method="bernoulli")
    with pytest.raises(ValueError, match="method must be one of"):
        sparsity.supermask(MLP, density=0.5, key=jax.random.key(0), method="edgepopup")
    with pytest.raises(ValueError, match="weights must be one of"):
        sparsity.supermask(MLP, density=0.5, key=jax.random.key(0), weights="glorot")


def _data(n=80, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *IN)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)
    return x, y


@pytest.fixture(scope="module")
def fitted():
    """An edge-popup supermask of MLP at 30% trained 100 steps (10 epochs of 10 batches of 8)."""
    sm = sparsity.supermask(MLP, density=0.3, key=jax.random.key(0))
    scores, state = sm.init(jax.random.key(1), IN), sm.init_state(IN)
    x, y = _data()
    out, history = train.fit(
        sm,
        scores,
        (x, y),
        (x, y),
        model_state=state,
        optimizer=optax.sgd(0.1, momentum=0.9),  # edge-popup's optimizer
        epochs=10,
        batch_size=8,
        key=jax.random.key(2),
        progress=False,
    )
    return sm, scores, state, out, history


def test_training_a_supermask_changes_only_its_scores(fitted):
    sm, scores, state, out, history = fitted
    assert int(out.step) == 100
    assert jax.tree.structure(out.params) == jax.tree.structure(scores)
    assert sorted(prune.path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(out.params)) == [
        "dense_0/w",
        "dense_2/w",
    ]
    assert _same(out.model_state, state)  # the frozen weights, bit for bit
    assert not any(_same(a, b) for a, b in zip(jax.tree.leaves(out.params), jax.tree.leaves(scores), strict=True))
    assert history.train_loss[-1] < history.train_loss[0]
    # init_state is a function of the key alone: called again, the same weights
    assert _same(sm.init_state(IN), state)


@pytest.mark.slow
def test_the_mask_keeps_exactly_the_asked_count_per_layer(fitted):
    _, _, _, out, _ = fitted
    params, masks = jax.jit(lambda s, st: sparsity.subnetwork(s, st))(out.params, out.model_state)
    assert int(masks["dense_0"]["w"].sum()) == round(0.3 * 6 * 16) and int(masks["dense_2"]["w"].sum()) == round(
        0.3 * 48
    )
    assert bool(masks["dense_0"]["b"].all()) and float(jnp.abs(params["dense_0"]["b"]).max()) == 0.0  # biases off
    x, _ = _data(5, seed=3)
    y_sub = jax.jit(MLP.apply)(params, x)
    y_sm = jax.jit(fitted[0].apply_with_state)(out.params, out.model_state, x)[0]
    np.testing.assert_allclose(np.asarray(y_sub), np.asarray(y_sm), rtol=1e-6)


def test_a_population_holds_one_density_per_member_in_its_state():
    densities = jnp.array([0.1, 0.5, 0.9])

    def member(d):  # built inside vmap: the density is traced, and the forward pass reads it from the state
        sm = sparsity.supermask(MLP, density=d, key=jax.random.key(5))
        return sm.init(jax.random.key(6), IN), sm.init_state(IN)

    scores, states = jax.vmap(member)(densities)
    masks = jax.jit(jax.vmap(lambda s, st: sparsity.subnetwork(s, st)[1]))(scores, states)
    for i, d in enumerate((0.1, 0.5, 0.9)):
        assert int(masks["dense_0"]["w"][i].sum()) == round(d * 96) and int(masks["dense_2"]["w"][i].sum()) == round(
            d * 48
        )
    assert _same(jax.tree.map(lambda a: a[0], states["weights"]), jax.tree.map(lambda a: a[2], states["weights"]))


def test_supermask_forward_equals_a_hand_written_edge_popup_forward():
    net = nn.serial(nn.Dense(5), nn.Relu(), nn.Dense(4))
    sm = sparsity.supermask(net, density=0.4, key=jax.random.key(3))
    scores, state = sm.init(jax.random.key(4), (3,)), sm.init_state((3,))
    w1, w2 = (np.asarray(state["weights"][n]["w"], np.float64) for n in ("dense_0", "dense_2"))
    # signed Kaiming constant: ±√2/√fan_in, fan_in the rows of a Dense w
    assert np.allclose(np.abs(w1), math.sqrt(2 / 3)) and np.allclose(np.abs(w2), math.sqrt(2 / 5))
    # scores Kaiming-uniform (a = √5): within ±1/√fan_in
    assert np.abs(np.asarray(scores["dense_0"]["w"])).max() <= 1 / math.sqrt(3)
    x = np.random.default_rng(0).normal(size=(7, 3))
    m1, m2 = (_np_topk(scores[n]["w"], 0.4) for n in ("dense_0", "dense_2"))
    want = np.maximum(x @ (w1 * m1), 0) @ (w2 * m2)
    apply = jax.jit(sm.apply_with_state, static_argnames="train")
    got, new_state = apply(scores, state, jnp.asarray(x, jnp.float32), train=True, key=jax.random.key(0))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    assert _same(new_state, state)
    # edge-popup's backward: GetSubnet(|s|) passes ∂L/∂m straight to |s|, so ∂L/∂s = sign(s) · W ⊙ ∂L/∂(W ⊙ m)
    c = np.random.default_rng(1).normal(size=(7, 4))
    grads = jax.jit(jax.grad(lambda t: jnp.sum(jnp.asarray(c, jnp.float32) * sm.apply_with_state(t, state, x)[0])))(
        scores
    )
    z = x @ (w1 * m1)
    h = np.maximum(z, 0)
    g2 = h.T @ c
    g1 = x.T @ ((c @ (w2 * m2).T) * (z > 0))
    for name, w, g in (("dense_0", w1, g1), ("dense_2", w2, g2)):
        want_g = np.sign(np.asarray(scores[name]["w"])) * w * g
        np.testing.assert_allclose(np.asarray(grads[name]["w"]), want_g, rtol=1e-4, atol=1e-6)
    with pytest.raises(nn.StateError):  # a stateful net: its plain apply says what to call
        sm.apply(scores, x)


@pytest.mark.slow
def test_weight_draws_kaiming_normal_scale_fan_and_init():
    net = nn.serial(nn.Dense(200), nn.Relu(), nn.Dense(10))
    # Kaiming normal with edge-popup's scale_fan: std = √2 / √(fan_in · density)
    kn = sparsity.supermask(net, density=0.25, key=jax.random.key(0), weights="kaiming_normal", scale_fan=True)
    w = np.asarray(kn.init_state((50,))["weights"]["dense_0"]["w"])
    assert abs(w.std() / math.sqrt(2 / (50 * 0.25)) - 1) < 0.04 and abs(w.mean()) < 0.02
    own = sparsity.supermask(net, density=0.25, key=jax.random.key(0), weights="init")
    frozen = own.init_state((50,))["weights"]
    ref = jax.jit(net.init, static_argnums=1)(jax.random.split(jax.random.key(0))[0], (50,))
    assert np.array_equal(np.asarray(frozen["dense_2"]["w"]), np.asarray(ref["dense_2"]["w"]))
    assert float(jnp.abs(frozen["dense_2"]["b"]).max()) == 0.0


@pytest.mark.slow
def test_bernoulli_supermask_trains_with_keys_and_evaluates_with_a_fixed_draw():
    sm = sparsity.supermask(MLP, density=0.5, key=jax.random.key(0), method="bernoulli")
    scores, state = sm.init(jax.random.key(1), IN), sm.init_state(IN)
    assert float(jnp.abs(scores["dense_0"]["w"]).max()) == 0.0  # logit(0.5) = 0: Zhou et al.'s init
    x, y = _data(16)
    with pytest.raises(ValueError, match="needs a key"):
        sm.apply_with_state(scores, state, x, train=True)
    apply = jax.jit(sm.apply_with_state)
    y1, y2 = apply(scores, state, x)[0], apply(scores, state, x)[0]
    assert np.array_equal(np.asarray(y1), np.asarray(y2))  # evaluation: the same draw each time
    run = train.fit_population([0, 1], (x, y), net=sm, optimizer=optax.adam(0.1), epochs=2, batch_size=8, chunk=None)
    assert run.params["dense_0"]["w"].shape == (2, 6, 16)
    assert not np.array_equal(np.asarray(run.params["dense_0"]["w"][0]), np.asarray(run.params["dense_0"]["w"][1]))
    # both members train over the one frozen net of the supermask's key
    for a, b in zip(jax.tree.leaves(run.state.model_state), jax.tree.leaves(state), strict=True):
        assert np.array_equal(np.asarray(a[0]), np.asarray(b)) and np.array_equal(np.asarray(a[1]), np.asarray(b))


def test_batchnorm_is_non_affine_and_keeps_its_statistics_in_the_state(tmp_path):
    net = nn.serial(nn.Dense(8), nn.BatchNorm(), nn.Relu(), nn.Dense(3))
    sm = sparsity.supermask(net, density=0.5, key=jax.random.key(0))
    scores, state = sm.init(jax.random.key(1), IN), sm.init_state(IN)
    assert "batchnorm_1" in scores and scores["batchnorm_1"] == {}  # scale and offset are not trained
    bn = state["weights"]["batchnorm_1"]
    assert np.all(np.asarray(bn["scale"]) == 1) and np.all(np.asarray(bn["offset"]) == 0)
    x, _ = _data(8)
    _, new = jax.jit(sm.apply_with_state, static_argnames="train")(scores, state, x, train=True)
    assert not np.array_equal(
        np.asarray(new["net"]["batchnorm_1"]["mean"]), np.asarray(state["net"]["batchnorm_1"]["mean"])
    )
    assert _same(new["weights"], state["weights"])
    # scores and state save and load with funcnn.io as any params and model state
    io.save_tree(tmp_path / "scores.npz", scores)
    io.save_tree(tmp_path / "state.npz", new)
    assert _same(io.load_tree(tmp_path / "state.npz", new), new)
    assert jax.tree.structure(io.load_tree(tmp_path / "scores.npz", scores)) == jax.tree.structure(scores)
