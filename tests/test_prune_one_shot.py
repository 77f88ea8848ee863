"""Pruning without retraining (funcnn.prune: layer_inputs, wanda_scores, by_output, sparsegpt; issue #42) against
independent references: numpy forwards and im2col by hand, brute-force per-column selection, numpy least-squares
solves and the closed-form Optimal Brain Surgeon update, and the reconstruction error of magnitude and Wanda."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn, prune, train

MLP = nn.serial(nn.Dense(6), nn.Relu(), nn.Dense(4))  # dense_0 w (8, 6), dense_2 w (6, 4)
CONV = nn.serial(nn.Conv2D(3, 3, stride=2, padding="SAME"), nn.Relu(), nn.Flatten(), nn.Dense(2))


def _mlp(seed=0):
    k = jax.random.split(jax.random.key(seed), 4)
    params = MLP.init(k[0], (8,))
    params["dense_0"]["b"] = 0.1 * jax.random.normal(k[1], (6,))
    x = jax.random.normal(k[2], (20, 8))
    return params, x


def _np_im2col(x, kh, kw, stride, pads):
    """Patches of NHWC images by loops: rows (n, i, j), columns in (p, q, c) order, zero padding."""
    x = np.pad(np.asarray(x, np.float64), [(0, 0), pads[0], pads[1], (0, 0)])
    n, h, w, c = x.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    rows = []
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                rows.append(
                    [x[b, i * stride + p, j * stride + q, ch] for p in range(kh) for q in range(kw) for ch in range(c)]
                )
    return np.array(rows)


def test_wanda_scores_equal_w_times_input_norms_on_a_dense_net():
    params, x = _mlp()
    scores = jax.jit(lambda p, a: prune.wanda_scores(MLP, p, a))(params, x)
    xn = np.asarray(x, np.float64)
    w0, b0, w2 = (
        np.asarray(v, np.float64) for v in (params["dense_0"]["w"], params["dense_0"]["b"], params["dense_2"]["w"])
    )
    h = np.maximum(xn @ w0 + b0, 0)  # dense_2's input
    np.testing.assert_allclose(
        np.asarray(scores["dense_0"]["w"]), np.abs(w0) * np.linalg.norm(xn, axis=0)[:, None], rtol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(scores["dense_2"]["w"]), np.abs(w2) * np.linalg.norm(h, axis=0)[:, None], rtol=1e-5
    )
    assert float(jnp.abs(scores["dense_0"]["b"]).max()) == 0.0 and scores["relu_1"] == {}
    inputs = prune.layer_inputs(MLP, params, x)
    assert sorted(inputs) == ["dense_0/w", "dense_2/w"]
    np.testing.assert_allclose(np.asarray(inputs["dense_2/w"]), h, rtol=1e-5, atol=1e-6)


def test_wanda_scores_of_a_conv_layer_equal_im2col_by_hand():
    params = CONV.init(jax.random.key(1), (5, 5, 2))
    x = jax.random.normal(jax.random.key(2), (3, 5, 5, 2))
    patches = _np_im2col(x, 3, 3, 2, ((1, 1), (1, 1)))  # SAME, stride 2 on 5: 3 outputs, padding 1 each side
    assert patches.shape == (3 * 3 * 3, 18)
    np.testing.assert_allclose(np.asarray(prune.layer_inputs(CONV, params, x)["conv2d_0/w"]), patches, atol=1e-6)
    w = np.asarray(params["conv2d_0"]["w"], np.float64)  # (3, 3, 2, 3): fan_in 18 in (p, q, c) order
    scores = prune.wanda_scores(CONV, params, x)
    want = (np.abs(w).reshape(18, 3) * np.linalg.norm(patches, axis=0)[:, None]).reshape(w.shape)
    np.testing.assert_allclose(np.asarray(scores["conv2d_0"]["w"]), want, rtol=1e-5)
    # the conv's output is the patches times the kernel: what every method relies on
    out = np.asarray(nn.Conv2D(3, 3, stride=2, padding="SAME").apply(params["conv2d_0"], x)).reshape(-1, 3)
    np.testing.assert_allclose(
        out, patches @ w.reshape(18, 3) + np.asarray(params["conv2d_0"]["b"]), rtol=1e-4, atol=1e-5
    )


def test_by_output_keeps_the_best_of_each_column_and_exactly_n_of_m():
    s = np.round(np.random.default_rng(0).normal(size=(3, 2, 4, 5)), 1)  # ties included; fan_in 24, 5 outputs
    scores = {"w": jnp.asarray(s, jnp.float32), "b": jnp.ones(5)}
    for d in (0.25, 0.5, 0.9):
        got = np.asarray(prune.by_output(scores, density=d)["w"]).reshape(24, 5)
        k = int(np.round(np.float32(d) * 24))
        for o in range(5):
            want = np.zeros(24, bool)
            want[np.argsort(-s.reshape(24, 5)[:, o], kind="stable")[:k]] = True
            np.testing.assert_array_equal(got[:, o], want)
    masks = prune.by_output(scores, n_of_m=(2, 4))
    groups = np.asarray(masks["w"]).reshape(6, 4, 5)
    assert (groups.sum(axis=1) == 2).all() and bool(masks["b"].all())
    flat = s.reshape(6, 4, 5)
    kept_min = np.where(groups, flat, np.inf).min(axis=1)
    dropped_max = np.where(~groups, flat, -np.inf).max(axis=1)
    assert (kept_min >= dropped_max).all()
    with pytest.raises(ValueError, match="not a multiple of m=4"):
        prune.by_output({"w": jnp.ones((6, 2))}, n_of_m=(2, 4))
    with pytest.raises(ValueError, match="exactly one of density"):
        prune.by_output(scores)


def _single_output(d=6, n=60, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    x = z @ (np.eye(d) + 0.5 * rng.normal(size=(d, d)))  # correlated, full rank
    w = rng.normal(size=(d, 1))
    w[0, 0] = 0.01  # the smallest saliency by far: the one weight pruned
    return x, w


def test_sparsegpt_update_after_a_pruned_column_is_the_least_squares_optimum():
    x, w = _single_output()
    net = nn.serial(nn.Dense(1))
    params = {"dense_0": {"w": jnp.asarray(w, jnp.float32), "b": jnp.zeros(1)}}
    pruned, masks = prune.sparsegpt(
        net, params, jnp.asarray(x, jnp.float32), density=5 / 6, damping=1e-7, return_masks=True
    )
    assert np.asarray(masks["dense_0"]["w"])[:, 0].tolist() == [False] + [True] * 5
    got = np.asarray(pruned["dense_0"]["w"], np.float64)[:, 0]
    assert got[0] == 0.0
    lstsq = np.linalg.lstsq(x[:, 1:], x @ w[:, 0], rcond=None)[0]  # min ‖Xw − X_R v‖² over the columns left
    np.testing.assert_allclose(got[1:], lstsq, rtol=2e-3, atol=2e-4)
    # with damping, the OBS optimum of the damped quadratic (ŵ − w)ᵀH(ŵ − w), ŵ_0 = 0: ŵ_R = w_R + H_RR⁻¹ H_R0 w_0
    damped = prune.sparsegpt(net, params, jnp.asarray(x, jnp.float32), density=5 / 6, damping=0.5)
    h = 2 * x.T @ x
    h = h + 0.5 * np.mean(np.diag(h)) * np.eye(6)
    obs = w[1:, 0] + np.linalg.solve(h[1:, 1:], h[1:, 0] * w[0, 0])
    np.testing.assert_allclose(np.asarray(damped["dense_0"]["w"], np.float64)[1:, 0], obs, rtol=1e-3, atol=1e-5)


def _correlated_layer(fan_in=48, out=12, n=256, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(fan_in, fan_in)) * (rng.random((fan_in, fan_in)) < 0.2)
    x = rng.normal(size=(n, fan_in)) @ (np.eye(fan_in) + mix) + 0.5 * rng.normal(size=(n, 1))
    w = rng.normal(size=(fan_in, out))
    return x.astype(np.float32), w.astype(np.float32)


@pytest.mark.slow
def test_sparsegpt_keeps_the_density_and_beats_magnitude_and_wanda_at_reconstruction():
    x, w = _correlated_layer()
    net = nn.serial(nn.Dense(12))
    params = {"dense_0": {"w": jnp.asarray(w), "b": jnp.zeros(12)}}
    # one program for every density (traced), blocks of 16: three blocks, lazy updates between them
    run = jax.jit(lambda p, d: prune.sparsegpt(net, p, x, density=d, blocksize=16, return_masks=True))
    xd, wd = x.astype(np.float64), w.astype(np.float64)

    def error(w_hat):
        return float(np.sum((xd @ wd - xd @ np.asarray(w_hat, np.float64)) ** 2))

    wanda = prune.wanda_scores(net, params, x)
    for d in (0.1, 0.3, 0.5, 0.7, 0.9):
        pruned, masks = run(params, jnp.float32(d))
        kept = np.asarray(masks["dense_0"]["w"])
        assert abs(kept.mean() - d) <= 0.02, (d, kept.mean())
        w_hat = np.asarray(pruned["dense_0"]["w"])
        assert (w_hat[~kept] == 0).all()
        magnitude = prune.magnitude(params, prune.ones(params), 1 - d)["dense_0"]["w"]
        by_wanda = prune.by_output(wanda, density=d)["dense_0"]["w"]
        e_sgpt, e_mag, e_wanda = error(w_hat), error(w * np.asarray(magnitude)), error(w * np.asarray(by_wanda))
        assert e_sgpt < e_mag and e_sgpt < e_wanda, (d, e_sgpt, e_mag, e_wanda)
    # 2:4 and 1:4: exactly n of every 4 consecutive inputs of each output, and still the best reconstruction
    for n_keep in (2, 1):
        pruned, masks = prune.sparsegpt(net, params, x, n_of_m=(n_keep, 4), blocksize=16, return_masks=True)
        kept = np.asarray(masks["dense_0"]["w"])
        assert (kept.reshape(12, 4, 12).sum(axis=1) == n_keep).all()
        by_wanda = prune.by_output(wanda, n_of_m=(n_keep, 4))["dense_0"]["w"]
        by_mag = prune.by_output(jax.tree.map(jnp.abs, params), n_of_m=(n_keep, 4))["dense_0"]["w"]
        e = error(pruned["dense_0"]["w"])
        assert e < error(w * np.asarray(by_wanda)) and e < error(w * np.asarray(by_mag))


@pytest.mark.slow
def test_sparsegpt_is_sequential_through_the_pruned_layers():
    params, x = _mlp(1)
    both = prune.sparsegpt(MLP, params, x, density=0.5, blocksize=4)
    # by hand: the first layer alone, then the second layer on the pruned first layer's outputs
    first = prune.sparsegpt(nn.serial(nn.Dense(6)), {"dense_0": params["dense_0"]}, x, density=0.5, blocksize=4)
    np.testing.assert_array_equal(np.asarray(both["dense_0"]["w"]), np.asarray(first["dense_0"]["w"]))
    h = jnp.maximum(x @ first["dense_0"]["w"] + params["dense_0"]["b"][None, :], 0)
    second = prune.sparsegpt(nn.serial(nn.Dense(4)), {"dense_0": params["dense_2"]}, h, density=0.5, blocksize=4)
    np.testing.assert_allclose(
        np.asarray(both["dense_2"]["w"]), np.asarray(second["dense_0"]["w"]), rtol=1e-4, atol=1e-6
    )
    dense_inputs = prune.sparsegpt(MLP, params, x, density=0.5, blocksize=4, sequential=False)
    assert not np.allclose(np.asarray(dense_inputs["dense_2"]["w"]), np.asarray(both["dense_2"]["w"]))
    assert np.array_equal(np.asarray(both["dense_0"]["b"]), np.asarray(params["dense_0"]["b"]))  # biases untouched


def test_foreign_nets_give_their_inputs_and_uncollectable_layers_are_named():
    params, x = _mlp(2)
    # the same net as a pair (init, apply) over its own names: the inputs are declared, not guessed
    foreign = {
        "l1": {"kernel": params["dense_0"]["w"], "bias": params["dense_0"]["b"]},
        "l2": {"kernel": params["dense_2"]["w"]},
    }

    def hidden(p, a):
        return jnp.maximum(a @ p["l1"]["kernel"] + p["l1"]["bias"][None, :], 0)

    inputs = lambda p, a: {"l1/kernel": a, "l2/kernel": hidden(p, a)}
    ours = prune.sparsegpt(MLP, params, x, density=0.5, blocksize=4)
    theirs = prune.sparsegpt(None, foreign, x, density=0.5, blocksize=4, inputs=inputs)
    np.testing.assert_allclose(
        np.asarray(theirs["l2"]["kernel"]), np.asarray(ours["dense_2"]["w"]), rtol=1e-4, atol=1e-6
    )
    scores = prune.wanda_scores(None, foreign, x, inputs=inputs)
    np.testing.assert_allclose(
        np.asarray(scores["l1"]["kernel"]), np.asarray(prune.wanda_scores(MLP, params, x)["dense_0"]["w"]), rtol=1e-5
    )
    with pytest.raises(ValueError, match="'l3/kernel', which is no leaf"):
        prune.wanda_scores(None, foreign, x, inputs=lambda p, a: {"l3/kernel": a})
    with pytest.raises(ValueError, match=r"needs \(\.\.\., 6\)"):
        prune.wanda_scores(None, foreign, x, inputs=lambda p, a: {"l2/kernel": a})
    wrapped = nn.serial(train.as_net((lambda k, s: foreign, lambda p, a: hidden(p, a) @ p["l2"]["kernel"])), nn.Relu())
    with pytest.raises(ValueError, match=r"layer 'net_0' \(kind 'net'\) holds weights \['net_0/l1/kernel'"):
        prune.sparsegpt(wrapped, {"net_0": foreign, "relu_1": {}}, x, density=0.5)
    bn = nn.serial(nn.Dense(3), nn.BatchNorm())
    bn_params = bn.init(jax.random.key(0), (8,))
    with pytest.raises(ValueError, match="pass model_state="):
        prune.wanda_scores(bn, bn_params, x)
    assert prune.wanda_scores(bn, bn_params, x, model_state=bn.init_state((8,)))["dense_0"]["w"].shape == (8, 3)


def test_the_walk_reaches_residual_branches_and_checks_arguments():
    net = nn.serial(nn.Dense(5), nn.Relu(), nn.Residual(nn.serial(nn.Dense(5), nn.Relu())), nn.Dense(2))
    params = net.init(jax.random.key(0), (4,))
    x = jax.random.normal(jax.random.key(1), (9, 4))
    inputs = prune.layer_inputs(net, params, x)
    assert sorted(inputs) == ["dense_0/w", "dense_3/w", "residual_2/main/dense_0/w"]
    h = jnp.maximum(x @ params["dense_0"]["w"] + params["dense_0"]["b"][None, :], 0)
    np.testing.assert_allclose(np.asarray(inputs["residual_2/main/dense_0/w"]), np.asarray(h), rtol=1e-5, atol=1e-6)
    _, masks = prune.sparsegpt(net, params, x, density=0.4, blocksize=4, return_masks=True)
    assert {k: round(float(v), 2) for k, v in prune.density(masks).items()} == {
        "dense_0/w": 0.4,
        "dense_3/w": 0.4,
        "residual_2/main/dense_0/w": 0.4,
        "total": 0.4,
    }
    with pytest.raises(ValueError, match=r"density must be in \(0, 1\], got density=0$"):
        prune.sparsegpt(net, params, x, density=0)
    with pytest.raises(ValueError, match="blocksize must be a multiple of m=4"):
        prune.sparsegpt(net, params, x, n_of_m=(2, 4), blocksize=6)
    with pytest.raises(ValueError, match="n_of_m must be a pair"):
        prune.sparsegpt(net, params, x, n_of_m=(4, 2))
