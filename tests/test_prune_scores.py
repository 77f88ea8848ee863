"""Pruning-at-initialization criteria (funcnn.prune.scores) against independent references:
a numpy forward with hand-derived gradients (themselves checked by central finite differences),
finite differences of gradients for GraSP's Hessian-vector product, SynFlow's conservation law
(Tanaka et al. 2020, Theorem 2), ERK's densities worked by hand, and jit/vmap invariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import losses, nn, prune

NET = nn.serial(nn.Dense(5), nn.Relu(), nn.Dense(3))  # params dense_0 {w (4, 5), b}, relu_1 {}, dense_2 {w (5, 3), b}
LOSS = losses.softmax_cross_entropy


def _setup(seed=0, rate=0.3):
    """NET's params with nonzero biases (so that bias terms count), masks with `rate` of each w
    pruned, and one batch of 8 examples."""
    k = jax.random.split(jax.random.key(seed), 5)
    params = NET.init(k[0], (4,))
    params["dense_0"]["b"] = 0.1 * jax.random.normal(k[1], (5,))
    params["dense_2"]["b"] = 0.1 * jax.random.normal(k[2], (3,))
    masks = prune.random(k[3], params, prune.ones(params), rate)
    x = jax.random.normal(k[4], (8, 4))
    y = jnp.array([0, 1, 2, 0, 1, 2, 2, 1])
    return params, masks, x, y


def _np(tree):
    return jax.tree.map(lambda a: np.array(a, np.float64), tree)  # a copy


def _ref_grad(p, x, y, temperature=1.0):
    """Mean softmax cross-entropy of NET with logits / temperature, and its gradient, by hand (numpy)."""
    w0, b0, w1, b1 = p["dense_0"]["w"], p["dense_0"]["b"], p["dense_2"]["w"], p["dense_2"]["b"]
    h = x @ w0 + b0
    a = np.maximum(h, 0)
    z = (a @ w1 + b1) / temperature
    z = z - z.max(axis=1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    m = len(y)
    onehot = np.eye(3)[y]
    loss = -np.mean(np.log(prob[np.arange(m), y]))
    dz = (prob - onehot) / m / temperature
    da = dz @ w1.T
    dh = da * (h > 0)
    grad = {"dense_0": {"w": x.T @ dh, "b": dh.sum(0)}, "relu_1": {}, "dense_2": {"w": a.T @ dz, "b": dz.sum(0)}}
    return loss, grad


def _ref_synflow(p, m):
    """SynFlow of NET by hand: Q = |p| ⊙ m, R = sum(NET(Q, ones((1, 4)))), s = |Q ⊙ dR/dQ|."""
    q = jax.tree.map(lambda a, mm: np.abs(a) * mm, p, m)
    x = np.ones((1, 4))
    h = x @ q["dense_0"]["w"] + q["dense_0"]["b"]
    a = np.maximum(h, 0)
    dz = np.ones((1, 3))
    dh = (dz @ q["dense_2"]["w"].T) * (h > 0)
    grad = {"dense_0": {"w": x.T @ dh, "b": dh.sum(0)}, "relu_1": {}, "dense_2": {"w": a.T @ dz, "b": dz.sum(0)}}
    return jax.tree.map(lambda qq, g: np.abs(qq * g), q, grad)


def _close(a, b, **tol):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), **tol), a, b)


def _equal(a, b):
    jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), a, b)


@pytest.mark.slow
def test_the_hand_gradient_reference_matches_central_finite_differences():
    params, _, x, y = _setup()
    p, x, y = _np(params), np.asarray(x, np.float64), np.asarray(y)
    for temperature in (1.0, 200.0):
        _, grad = _ref_grad(p, x, y, temperature)
        for layer in ("dense_0", "dense_2"):
            for leaf in ("w", "b"):
                fd = np.zeros_like(p[layer][leaf])
                for idx in np.ndindex(fd.shape):
                    hi, lo = _np(p), _np(p)
                    hi[layer][leaf][idx] += 1e-6
                    lo[layer][leaf][idx] -= 1e-6
                    fd[idx] = (_ref_grad(hi, x, y, temperature)[0] - _ref_grad(lo, x, y, temperature)[0]) / 2e-6
                np.testing.assert_allclose(grad[layer][leaf], fd, rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_snip_is_abs_gradient_times_weight_of_the_masked_net():
    params, masks, x, y = _setup()
    eff = jax.tree.map(lambda a, m: a * m, _np(params), _np(masks))
    _, g = _ref_grad(eff, np.asarray(x, np.float64), np.asarray(y))
    ref = jax.tree.map(lambda w, gw: np.abs(w * gw), eff, g)
    scores = prune.snip_scores(NET.apply, params, masks, x, y, LOSS)
    assert jax.tree.all(jax.tree.map(lambda s: s.dtype == jnp.float32, scores))
    _close(scores, ref, rtol=1e-4, atol=1e-7)
    assert float(jnp.max(scores["dense_0"]["w"])) > 1e-3  # not vacuous: the scores are not all zero


def _fd_hg(params, masks, x, y, temperature):
    """Hg of f(p) = L_T(p ⊙ m) by central differences of the hand gradient along v = g, float64,
    with steps of 1e-5 in w (small enough not to cross a ReLU's kink)."""
    p, m = _np(params), _np(masks)
    x, y = np.asarray(x, np.float64), np.asarray(y)

    def grad_f(q):  # the chain rule through p ⊙ m
        return jax.tree.map(lambda gw, mm: gw * mm, _ref_grad(jax.tree.map(np.multiply, q, m), x, y, temperature)[1], m)

    g = grad_f(p)
    eps = 1e-5 / max(float(np.max(np.abs(leaf))) for leaf in jax.tree.leaves(g))
    hi = grad_f(jax.tree.map(lambda a, v: a + eps * v, p, g))
    lo = grad_f(jax.tree.map(lambda a, v: a - eps * v, p, g))
    hg = jax.tree.map(lambda u, v: (u - v) / (2 * eps), hi, lo)
    return jax.tree.map(lambda w, h, mm: w * h * mm, p, hg, m)


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_hessian_gradient_product_matches_finite_differences_of_gradients(temperature):
    params, masks, x, y = _setup(1)
    ref = _fd_hg(params, masks, x, y, temperature)
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        scores64 = prune.grasp_scores(NET.apply, p64, masks, jnp.asarray(x, jnp.float64), y, LOSS, temperature)
    scale = max(float(np.max(np.abs(leaf))) for leaf in jax.tree.leaves(ref))
    assert scale > 0
    _close(scores64, ref, rtol=1e-5, atol=1e-6 * scale)
    scores32 = prune.grasp_scores(NET.apply, params, masks, x, y, LOSS, temperature)  # the default float32
    _close(scores32, ref, rtol=2e-3, atol=2e-4 * scale)
    signs = np.sign(np.concatenate([np.ravel(s) for s in jax.tree.leaves(scores32)]))
    assert {-1.0, 1.0} <= set(signs.tolist())  # GraSP's scores take both signs


def test_grasp_default_temperature_is_200():
    params, masks, x, y = _setup(2)
    _close(
        prune.grasp_scores(NET.apply, params, masks, x, y, LOSS),
        prune.grasp_scores(NET.apply, params, masks, x, y, LOSS, temperature=200.0),
        rtol=0,
        atol=0,
    )
    a, b = (prune.grasp_scores(NET.apply, params, masks, x, y, LOSS, temperature=t) for t in (200.0, 1.0))
    assert not np.allclose(a["dense_0"]["w"], b["dense_0"]["w"])


@pytest.mark.slow
def test_synflow_scores_match_their_definition():
    params, masks, _, _ = _setup(3)
    scores = prune.synflow_scores(NET.apply, params, masks, (4,))
    _close(scores, _ref_synflow(_np(params), _np(masks)), rtol=1e-5, atol=1e-7)
    with jax.enable_x64(True):  # computed in float64 when x64 is on
        scores64 = prune.synflow_scores(NET.apply, params, masks, (4,))
        assert scores64["dense_0"]["w"].dtype == jnp.float64
    assert scores["dense_0"]["w"].dtype == jnp.float32
    _close(scores64, _ref_synflow(_np(params), _np(masks)), rtol=1e-12, atol=0)


def _bias_free_mlp(key, sizes=(5, 7, 6, 3)):
    keys = jax.random.split(key, len(sizes) - 1)
    params = {
        f"l{i}": jax.random.normal(k, (a, b)) for i, (k, a, b) in enumerate(zip(keys, sizes, sizes[1:], strict=False))
    }

    def forward(p, x):
        for i in range(len(sizes) - 1):
            x = x @ p[f"l{i}"]
            x = jax.nn.relu(x) if i < len(sizes) - 2 else x
        return x

    return params, forward


@pytest.mark.slow
def test_synflow_conserves_the_flow_layer_by_layer_on_a_bias_free_relu_net():
    params, forward = _bias_free_mlp(jax.random.key(4))
    masks = prune.random(jax.random.key(5), params, prune.ones(params), 0.4)
    scores = prune.synflow_scores(forward, params, masks, (5,))
    # R by hand: every layer's scores sum to it (Euler's theorem: R is 1-homogeneous in each layer)
    q = [np.abs(np.asarray(params[f"l{i}"], np.float64)) * np.asarray(masks[f"l{i}"]) for i in range(3)]
    r = float((np.maximum(np.maximum(np.ones((1, 5)) @ q[0], 0) @ q[1], 0) @ q[2]).sum())
    sums = [float(np.sum(np.asarray(scores[f"l{i}"], np.float64))) for i in range(3)]
    np.testing.assert_allclose(sums, [r] * 3, rtol=1e-5)
    # funcnn's Dense has biases, initialized to zero: |b| = 0 adds no flow, and the law holds too
    p = NET.init(jax.random.key(6), (4,))
    s = prune.synflow_scores(NET.apply, p, prune.ones(p), (4,))
    assert float(jnp.sum(s["dense_0"]["b"])) == 0.0
    np.testing.assert_allclose(float(jnp.sum(s["dense_0"]["w"])), float(jnp.sum(s["dense_2"]["w"])), rtol=1e-5)
    # with nonzero biases it breaks (the biases carry flow of their own): the check can fail
    p["dense_0"]["b"] = jnp.ones(5)
    s = prune.synflow_scores(NET.apply, p, prune.ones(p), (4,))
    assert abs(float(jnp.sum(s["dense_0"]["w"])) - float(jnp.sum(s["dense_2"]["w"]))) > 0.1


NET2 = nn.serial(nn.Dense(16), nn.Relu(), nn.Dense(8), nn.Relu(), nn.Dense(3))  # 96 + 128 + 24 = 248 weights
NAMES2 = ("dense_0", "dense_2", "dense_4")


def _alive(masks, names=NAMES2):
    return sum(int(masks[n]["w"].sum()) for n in names)


def _subset(a, b):
    """Every True of masks a is True in b."""
    return jax.tree.all(jax.tree.map(lambda u, v: bool(jnp.all(~u | v)), a, b))


@pytest.mark.slow
@pytest.mark.parametrize("density", [0.5, 0.2, 0.05, 0.017])
def test_synflow_final_density_is_exact(density):
    params = NET2.init(jax.random.key(7), (6,))
    masks = prune.synflow(NET2.apply, params, prune.ones(params), density, (6,), iterations=20)
    assert _alive(masks) == round(density * 248)
    for name in NAMES2:  # biases are never pruned
        assert bool(masks[name]["b"].all())
    per_leaf = prune.synflow(NET2.apply, params, prune.ones(params), density, (6,), iterations=20, scope="layer")
    for name, n in zip(NAMES2, (96, 128, 24), strict=True):
        assert int(per_leaf[name]["w"].sum()) == round(density * n)


@pytest.mark.slow
def test_synflow_schedule_nests_and_follows_density_to_the_j_over_n():
    """The state after k of n steps of density d is synflow(d^(k/n), iterations=k): the same counts
    d^(j/n) at steps j <= k. Each is a subset of the one before, with round(d^(k/n) * 248) survivors."""
    params = NET2.init(jax.random.key(8), (6,))
    start = prune.magnitude(params, prune.ones(params), 0.1)  # from masks already pruned: 224 survivors
    d, n = 0.05, 5
    previous = start
    for k in range(1, n + 1):
        masks = prune.synflow(NET2.apply, params, start, d ** (k / n), (6,), iterations=k)
        assert _alive(masks) == round(d ** (k / n) * 248)
        assert _subset(masks, previous)
        previous = masks
    _equal(previous, prune.synflow(NET2.apply, params, start, d, (6,), iterations=n))


@pytest.mark.slow
def test_synflow_with_one_iteration_is_one_shot_by_scores():
    params = NET2.init(jax.random.key(9), (6,))
    masks = prune.magnitude(params, prune.ones(params), 0.2)
    one = prune.synflow(NET2.apply, params, masks, 0.25, (6,), iterations=1)
    scores = prune.synflow_scores(NET2.apply, params, masks, (6,))
    _equal(one, prune.by_scores(scores, masks, 1 - 0.25 / 0.8, scope="global"))  # 200 survivors -> 62
    assert _alive(one) == 62
    # and iterating differs from one shot (rescoring matters), so the comparison above can fail
    assert not jax.tree.all(jax.tree.map(jnp.array_equal, one, prune.synflow(NET2.apply, params, masks, 0.25, (6,))))


def test_synflow_traces_the_net_once_for_all_its_iterations():
    traces = []

    def forward(p, x):
        traces.append(1)  # runs at trace time only
        return NET2.apply(p, x)

    params = NET2.init(jax.random.key(17), (6,))
    masks = prune.synflow(forward, params, prune.ones(params), 0.1, (6,), iterations=50)
    assert len(traces) == 1 and _alive(masks) == round(0.1 * 248)


def test_synflow_keeps_a_mask_already_sparser_than_the_target():
    params = NET2.init(jax.random.key(10), (6,))
    masks = prune.magnitude(params, prune.ones(params), 0.9, scope="global")  # 25 of 248
    _equal(prune.synflow(NET2.apply, params, masks, 0.5, (6,), iterations=3), masks)


def test_erk_densities_against_the_hand_computed_formula():
    # raw (sum / prod of dims): a 4/4 = 1, b 20/100 = 0.2, c 12/20 = 0.6; 124 weights in all
    params = {"a": jnp.zeros((2, 2)), "b": jnp.zeros((10, 10)), "c": jnp.zeros((10, 2)), "bias": jnp.zeros(10)}
    # density 0.5 keeps 62: ε = 62 / 36 gives a 1.72, capped; then ε = 58 / 32 gives c 1.09,
    # capped; then ε = (62 - 4 - 20) / 20 = 1.9 and b = 0.38 (no cap in the first round for c)
    erk = prune.erk_densities(params, 0.5)
    assert set(erk) == {"a", "b", "c"}  # the 1-D leaf is not prunable
    assert erk["a"] == 1.0 and erk["c"] == 1.0
    np.testing.assert_allclose(erk["b"], 0.38, rtol=1e-12)
    # density 0.1 keeps 12.4: ε = 12.4 / 36, no cap
    erk = prune.erk_densities(params, 0.1)
    eps = 12.4 / 36
    np.testing.assert_allclose([erk["a"], erk["b"], erk["c"]], [eps, 0.2 * eps, 0.6 * eps], rtol=1e-12)
    assert prune.erk_densities(params, 1.0) == {"a": 1.0, "b": 1.0, "c": 1.0}


@pytest.mark.parametrize("density", [0.02, 0.1, 0.3, 0.6, 0.9])
def test_erk_weighted_total_is_the_target_and_none_exceeds_one(density):
    params = {
        "conv": {"w": jnp.zeros((3, 3, 2, 4)), "b": jnp.zeros(4)},  # raw (3 + 3 + 2 + 4) / 72
        "hidden": {"w": jnp.zeros((72, 40))},
        "head": {"w": jnp.zeros((40, 3))},
    }
    sizes = {"conv/w": 72, "hidden/w": 2880, "head/w": 120}
    raw = {"conv/w": 12 / 72, "hidden/w": 112 / 2880, "head/w": 43 / 120}
    erk = prune.erk_densities(params, density)
    assert set(erk) == set(sizes)
    np.testing.assert_allclose(sum(erk[k] * sizes[k] for k in sizes), density * sum(sizes.values()), rtol=1e-12)
    assert all(0 < d <= 1 for d in erk.values())
    free = [k for k in sizes if erk[k] < 1]
    ratios = [erk[k] / raw[k] for k in free]  # one ε for every leaf not capped
    np.testing.assert_allclose(ratios, [ratios[0]] * len(ratios), rtol=1e-12)
    assert all(ratios[0] * raw[k] >= 1 for k in sizes if k not in free)


def test_erk_densities_as_layer_rates_of_by_scores():
    params = NET2.init(jax.random.key(11), (6,))
    erk = prune.erk_densities(params, 0.6)
    assert erk["dense_4/w"] == 1.0  # the 8 x 3 head would get 1.2
    scores = jax.tree.map(jnp.abs, params)
    masks = prune.by_scores(scores, prune.ones(params), 0.0, layer_rates={k: 1 - d for k, d in erk.items()})
    got = prune.density(masks)
    for k, d in erk.items():
        n = params[k.split("/")[0]]["w"].size
        assert abs(float(got[k]) * n - d * n) <= 0.5 + 1e-6, (k, float(got[k]), d)
    assert abs(float(got["total"]) * 248 - 0.6 * 248) <= 1.5


def test_masked_entries_score_exactly_zero_for_every_criterion():
    params, masks, x, y = _setup(12, rate=0.5)
    for scores in (
        prune.snip_scores(NET.apply, params, masks, x, y, LOSS),
        prune.grasp_scores(NET.apply, params, masks, x, y, LOSS),
        prune.synflow_scores(NET.apply, params, masks, (4,)),
    ):
        for name in ("dense_0", "dense_2"):
            s, m = np.asarray(scores[name]["w"]), np.asarray(masks[name]["w"])
            assert np.all(s[~m] == 0.0) and (~m).sum() > 0
            assert np.count_nonzero(s[m]) > 0  # the survivors score


BN_NET = nn.serial(nn.Dense(6), nn.BatchNorm(), nn.Relu(), nn.Dropout(0.5), nn.Dense(3))


@pytest.mark.slow
def test_eval_forward_scores_in_eval_mode_with_the_initial_state():
    params = BN_NET.init(jax.random.key(13), (4,))
    params["batchnorm_1"]["offset"] = 0.3 * jnp.ones(6)
    masks = prune.ones(params)
    x, y = jax.random.normal(jax.random.key(14), (8, 4)), jnp.arange(8) % 3
    forward = prune.eval_forward(BN_NET, (4,))
    state0 = BN_NET.init_state((4,))
    by_hand = lambda p, x: BN_NET.apply_with_state(p, state0, x, train=False)[0]
    for fn in (
        lambda f: prune.snip_scores(f, params, masks, x, y, LOSS),
        lambda f: prune.grasp_scores(f, params, masks, x, y, LOSS),
        lambda f: prune.synflow_scores(f, params, masks, (4,)),
    ):
        first = fn(forward)
        _equal(first, fn(forward))  # deterministic: no dropout
        _equal(first, fn(by_hand))  # eval mode, the initial state
    # the state is used: other running statistics give other scores
    moved = {**state0, "batchnorm_1": {"mean": jnp.full(6, 0.5), "var": jnp.full(6, 4.0)}}
    other = prune.snip_scores(prune.eval_forward(BN_NET, model_state=moved), params, masks, x, y, LOSS)
    assert not np.allclose(other["dense_0"]["w"], prune.snip_scores(forward, params, masks, x, y, LOSS)["dense_0"]["w"])
    # train mode (batch statistics) would give other scores again: eval mode is not vacuous
    train_fwd = lambda p, x: BN_NET.apply_with_state(p, state0, x, train=True, key=jax.random.key(0))[0]
    assert not np.allclose(
        prune.snip_scores(train_fwd, params, masks, x, y, LOSS)["dense_0"]["w"],
        prune.snip_scores(forward, params, masks, x, y, LOSS)["dense_0"]["w"],
    )


def test_eval_forward_of_a_stateless_net_and_bad_input():
    params = NET.init(jax.random.key(15), (4,))
    x = jnp.ones((2, 4))
    _equal(prune.eval_forward(NET)(params, x), NET.apply(params, x))
    with pytest.raises(nn.StateError, match="input_shape="):
        prune.eval_forward(BN_NET)(BN_NET.init(jax.random.key(0), (4,)), x)
    with pytest.raises(TypeError, match="funcnn Layer"):
        prune.eval_forward(NET.apply)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        prune.grasp_scores(NET.apply, params, prune.ones(params), x, jnp.zeros(2, int), LOSS, temperature=0.0)
    with pytest.raises(ValueError, match=r"density must be in \(0, 1\]"):
        prune.synflow(NET.apply, params, prune.ones(params), 1.5, (4,))
    with pytest.raises(ValueError, match="iterations must be a positive int"):
        prune.synflow(NET.apply, params, prune.ones(params), 0.5, (4,), iterations=0)
    with pytest.raises(ValueError, match="scope must be one of"):
        prune.synflow(NET.apply, params, prune.ones(params), 0.5, (4,), scope="everything")
    with pytest.raises(ValueError, match=r"density must be a float in \(0, 1\]"):
        prune.erk_densities(params, 0.0)
    counted = {**params, "steps": jnp.zeros((), jnp.int32)}
    for call in (
        lambda: prune.snip_scores(NET.apply, counted, prune.ones(counted), x, jnp.zeros(2, int), LOSS),
        lambda: prune.synflow_scores(NET.apply, counted, prune.ones(counted), (4,)),
    ):
        with pytest.raises(TypeError, match="leaf 'steps' of the params has dtype int32"):
            call()


def _member(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


@pytest.mark.slow
@pytest.mark.parametrize("criterion", ["snip", "grasp", "synflow_scores", "synflow"])
def test_every_criterion_under_jit_and_vmap_equals_its_unbatched_self(criterion):
    _, _, x, y = _setup()
    keys = jax.random.split(jax.random.key(16), 3)
    params = jax.vmap(lambda k: NET.init(k, (4,)))(keys)
    masks = jax.vmap(lambda k, p: prune.random(k, p, prune.ones(p), 0.4))(jax.random.split(keys[0], 3), params)
    fn = {
        "snip": lambda p, m: prune.snip_scores(NET.apply, p, m, x, y, LOSS),
        "grasp": lambda p, m: prune.grasp_scores(NET.apply, p, m, x, y, LOSS),
        "synflow_scores": lambda p, m: prune.synflow_scores(NET.apply, p, m, (4,)),
        "synflow": lambda p, m: prune.synflow(NET.apply, p, m, 0.2, (4,), iterations=5),
    }[criterion]
    batched = jax.vmap(fn)(params, masks)
    jitted = jax.jit(fn)
    same = _equal if criterion == "synflow" else lambda u, v: _close(u, v, rtol=1e-5, atol=1e-9)
    same(jitted(_member(params, 0), _member(masks, 0)), fn(_member(params, 0), _member(masks, 0)))  # eager
    outs = [jitted(_member(params, i), _member(masks, i)) for i in range(3)]
    for i in range(3):
        same(_member(batched, i), outs[i])
    assert not np.array_equal(outs[0]["dense_0"]["w"], outs[1]["dense_0"]["w"])  # members differ
