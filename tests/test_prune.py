import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import compaction, losses, models, nn, prune, train


def _params(seed=0):
    net = nn.serial(nn.Dense(13), nn.Relu(), nn.Dense(7), nn.PReLU(), nn.Dense(3))
    return net, net.init(jax.random.key(seed), (5,))


def _ref_layer(w, m, rate):
    """Brute force: remove round(rate * alive) smallest |w| among survivors, ties by index."""
    w, m = np.abs(np.asarray(w)).ravel(), np.asarray(m).ravel().copy()
    alive = np.flatnonzero(m)
    k = int(np.round(rate * len(alive)))
    order = alive[np.argsort(w[alive], kind="stable")]
    m[order[:k]] = False
    return m


@pytest.mark.slow
def test_masks_have_params_structure_and_biases_are_never_pruned():
    _, p = _params()
    m = prune.ones(p)
    assert jax.tree.structure(m) == jax.tree.structure(p)
    spec = prune.prunable(p)
    assert spec["dense_0"] == {"w": True, "b": False}
    assert spec["prelu_3"] == {"alpha": False}
    for _ in range(4):
        m = prune.magnitude(p, m, 0.5)
    assert bool(jnp.all(m["dense_0"]["b"])) and bool(m["prelu_3"]["alpha"])


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 0.9])
def test_layer_magnitude_matches_numpy_reference(rate):
    _, p = _params(1)
    m = prune.ones(p)
    for _ in range(3):
        new = prune.magnitude(p, m, rate, layer_rates={"dense_4": rate / 2})
        for name in ("dense_0", "dense_2", "dense_4"):
            r = rate / 2 if name == "dense_4" else rate
            ref = _ref_layer(p[name]["w"], m[name]["w"], r)
            np.testing.assert_array_equal(np.asarray(new[name]["w"]).ravel(), ref)
            # masks only lose entries
            assert not np.any(np.asarray(new[name]["w"]) & ~np.asarray(m[name]["w"]))
        m = new


def test_global_magnitude_matches_numpy_reference():
    _, p = _params(2)
    m = prune.ones(p)
    m = prune.magnitude(p, m, 0.3)  # a non-trivial starting mask
    new = prune.magnitude(p, m, 0.4, scope="global")
    names = ["dense_0", "dense_2", "dense_4"]
    w = np.concatenate([np.abs(np.asarray(p[n]["w"])).ravel() for n in names])
    mm = np.concatenate([np.asarray(m[n]["w"]).ravel() for n in names])
    ref = _ref_layer(w, mm, 0.4)
    got = np.concatenate([np.asarray(new[n]["w"]).ravel() for n in names])
    np.testing.assert_array_equal(got, ref)
    # one threshold: every survivor is at least as large as every newly pruned weight
    removed = mm & ~got
    assert w[got].min() >= w[removed].max()


def test_ties_are_broken_by_position():
    p = {"l": {"w": jnp.ones((4, 5))}}
    m = prune.magnitude(p, prune.ones(p), 0.3)
    np.testing.assert_array_equal(np.asarray(m["l"]["w"]).ravel(), np.arange(20) >= 6)


@pytest.mark.slow
def test_paper_density_ladder_for_lenet_300_100():
    params = models.lenet_300_100().init(jax.random.key(0), (28, 28, 1))
    m = prune.ones(params)
    step = jax.jit(lambda p, m: prune.magnitude(p, m, 0.2, layer_rates={"dense_5": 0.1}))
    got = {}
    for r in range(1, 16):
        m = step(params, m)
        got[r] = round(float(prune.density(m)["total"]) * 100, 1)
    assert (got[3], got[7], got[9], got[12], got[15]) == (51.3, 21.1, 13.5, 7.0, 3.6)
    closed = lambda k: (265_200 * 0.8**k + 1_000 * 0.9**k) / 266_200 * 100
    for k in got:
        assert abs(got[k] - closed(k)) < 0.06


def test_each_round_removes_rate_of_survivors():
    _, p = _params(3)
    m = prune.ones(p)
    for _ in range(5):
        before = {n: int(np.sum(m[n]["w"])) for n in ("dense_0", "dense_2", "dense_4")}
        m = prune.magnitude(p, m, 0.25)
        for n, b in before.items():
            assert abs((b - int(np.sum(m[n]["w"]))) - 0.25 * b) <= 1


@pytest.mark.slow
def test_random_pruning_has_the_same_counts():
    _, p = _params(4)
    m = prune.magnitude(p, prune.ones(p), 0.6)
    r = prune.random(jax.random.key(0), p, prune.ones(p), 0.6)
    like = prune.random_like(jax.random.key(1), m)
    for n in ("dense_0", "dense_2", "dense_4"):
        assert int(np.sum(r[n]["w"])) == int(np.sum(m[n]["w"])) == int(np.sum(like[n]["w"]))
    assert not np.array_equal(np.asarray(like["dense_0"]["w"]), np.asarray(m["dense_0"]["w"]))


def test_density_and_rewind():
    _, p = _params(5)
    m = prune.magnitude(p, prune.ones(p), 0.5)
    d = prune.density(m)
    assert set(d) == {"dense_0/w", "dense_2/w", "dense_4/w", "total"}
    total_w = sum(p[n]["w"].size for n in ("dense_0", "dense_2", "dense_4"))
    alive = sum(int(np.sum(m[n]["w"])) for n in ("dense_0", "dense_2", "dense_4"))
    assert float(d["total"]) == pytest.approx(alive / total_w)
    theta0 = jax.tree.map(lambda x: x + 1.0, p)
    rewound = prune.rewind(theta0, m)
    for n in ("dense_0", "dense_2", "dense_4"):
        np.testing.assert_array_equal(rewound[n]["w"], np.where(m[n]["w"], theta0[n]["w"], 0.0))
        np.testing.assert_array_equal(rewound[n]["b"], theta0[n]["b"])


@pytest.mark.parametrize("tx", [optax.adam(1e-2), optax.sgd(1e-2, momentum=0.9), optax.adamw(1e-2)])
def test_pruned_weights_stay_exactly_zero_under_optimizers(tx):
    net, p = _params(6)
    m = prune.magnitude(p, prune.ones(p), 0.7)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 5)).astype(np.float32), rng.integers(0, 3, 64)
    step = jax.jit(train.make_train_step(net.apply, losses.softmax_cross_entropy, tx))
    state = train.init_state(p, tx, m)
    for _ in range(200):
        state, _ = step(state, (x, y))
    for n in ("dense_0", "dense_2", "dense_4"):
        w, mask = np.asarray(state.params[n]["w"]), np.asarray(m[n]["w"])
        assert np.all(w[~mask] == 0.0)
        assert np.any(w[mask] != np.asarray(p[n]["w"])[mask])  # survivors did train


def test_changing_masks_does_not_recompile():
    import chex

    net, p = _params(7)
    tx = optax.adam(1e-3)
    step = jax.jit(chex.assert_max_traces(train.make_train_step(net.apply, losses.softmax_cross_entropy, tx), n=1))
    x, y = np.ones((4, 5), np.float32), np.zeros(4, np.int32)
    m = prune.ones(p)
    for _ in range(3):
        m = prune.magnitude(p, m, 0.5)
        step(train.init_state(p, tx, m), (x, y))


@pytest.mark.slow
def test_vmapped_magnitude_uses_per_member_thresholds():
    net = nn.serial(nn.Dense(9), nn.Relu(), nn.Dense(2))
    pop = jax.vmap(net.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), 3), (4,))
    masks = jax.vmap(lambda p: prune.magnitude(p, prune.ones(p), 0.5))(pop)
    for i in range(3):
        one = jax.tree.map(lambda a, i=i: a[i], pop)
        expect = prune.magnitude(one, prune.ones(one), 0.5)
        np.testing.assert_array_equal(masks["dense_0"]["w"][i], expect["dense_0"]["w"])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda p, m: prune.magnitude(p, m, 1.0), "rate must be in"),
        (lambda p, m: prune.magnitude(p, m, -0.1), "rate must be in"),
        (lambda p, m: prune.magnitude(p, m, 0.2, scope="row"), "scope"),
        (lambda p, m: prune.magnitude(p, m, 0.2, layer_rates={"dense_9": 0.1}), "dense_9"),
        (lambda p, m: prune.magnitude(p, {"dense_0": m["dense_0"]}, 0.2), "tree structure"),
        (lambda p, m: prune.apply(p, jax.tree.map(lambda x: x.astype(jnp.float32), m)), "boolean"),
        (lambda p, m: prune.apply(p, jax.tree.map(lambda x: jnp.ones((2,), bool), m)), "shape"),
    ],
)
def test_bad_input(call, match):
    _, p = _params()
    with pytest.raises(ValueError, match=match):
        call(p, prune.ones(p))


@pytest.mark.slow
@pytest.mark.parametrize("act", [nn.Relu, nn.Sigmoid, nn.Tanh])
@jax.default_matmul_precision("highest")  # GPUs' default TF32 matmuls differ by ~1e-4 between shapes
def test_compact_computes_the_same_function(act):
    net = nn.serial(nn.Flatten(), nn.Dense(40), act(), nn.Dense(30), act(), nn.Dense(5))
    p = net.init(jax.random.key(0), (3, 4))
    p = jax.tree.map(lambda a: a + 0.1, p)  # non-zero biases, so dead-input units output constants
    m = prune.magnitude(p, prune.ones(p), 0.8, layer_rates={"dense_5": 0.2})
    # kill some units outright: all incoming (dense_1 columns) and all outgoing (dense_3 rows)
    m["dense_1"]["w"] = m["dense_1"]["w"].at[:, :5].set(False)
    m["dense_3"]["w"] = m["dense_3"]["w"].at[5:9, :].set(False)
    small_net, small = compaction.compact(net, p, m)
    assert small["dense_1"]["w"].shape[1] < 40 and small["dense_3"]["w"].shape[1] <= 30
    x = jax.random.normal(jax.random.key(1), (16, 3, 4))
    np.testing.assert_allclose(small_net.apply(small, x), net.apply(prune.apply(p, m), x), rtol=1e-5, atol=1e-5)
    assert nn.count_params(small) < nn.count_params(p)


def test_non_array_leaves_name_the_leaf_and_the_fix():
    params = {"dense_0": {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}, "activation": jax.nn.relu}
    masks = {"dense_0": {"w": jnp.ones((3, 2), bool), "b": jnp.ones(2, bool)}, "activation": jax.nn.relu}
    calls = [
        lambda: prune.ones(params),
        lambda: prune.prunable(params),
        lambda: prune.apply(params, masks),
        lambda: prune.magnitude(params, masks, 0.5),
        lambda: prune.check_masks(params, masks),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"leaf 'activation'.*'relu', not an array.*eqx\.partition"):
            call()
    # Shape-dtype structs (jax.eval_shape) and Python numbers are fine.
    spec = prune.prunable(jax.eval_shape(lambda: {"w": jnp.ones((3, 2)), "s": 1.0}))
    assert spec == {"w": True, "s": False}


def _joint_params():
    ks = jax.random.split(jax.random.key(3), 4)
    return {
        "dense_0": {"w": jax.random.normal(ks[0], (6, 5)), "b": jax.random.normal(ks[1], (5,))},
        "res/main/dense_0": {"w": jax.random.normal(ks[2], (5, 5)), "b": jax.random.normal(ks[3], (5,))},
    }


@pytest.mark.slow
@pytest.mark.parametrize("rounding", ["nearest", "floor"])
@pytest.mark.parametrize("rate", [0.0, 0.3, 0.55, 0.97])
def test_layer_joint_pools_each_layers_weights_and_biases(rate, rounding):
    # Brute force: per layer, the flattened [w, b] by |value|, the lowest floor/round(rate * n) dropped
    # (ties by position), as the MNIST-1D lottery notebook prunes.
    params = _joint_params()
    spec = prune.prunable(params, lambda name, leaf: True)
    masks = prune.magnitude(params, prune.ones(params), rate, scope="layer_joint", spec=spec, rounding=rounding)
    for layer, leaves in params.items():
        flat = np.concatenate([np.abs(np.asarray(leaves["w"])).ravel(), np.abs(np.asarray(leaves["b"]))])
        n = flat.size
        k = int(np.floor(rate * n)) if rounding == "floor" else int(np.round(rate * n))
        keep = np.ones(n, bool)
        keep[np.argsort(flat, kind="stable")[:k]] = False
        got = np.concatenate([np.asarray(masks[layer]["w"]).ravel(), np.asarray(masks[layer]["b"])])
        np.testing.assert_array_equal(got, keep)


def test_floor_rounding_differs_from_nearest_only_at_half_counts():
    params = {"d": {"w": jnp.arange(1.0, 11.0).reshape(2, 5)}}  # 10 weights
    near = prune.magnitude(params, prune.ones(params), 0.26)  # round(2.6) = 3 pruned
    floor = prune.magnitude(params, prune.ones(params), 0.26, rounding="floor")  # int(2.6) = 2
    assert int(jnp.sum(~near["d"]["w"])) == 3 and int(jnp.sum(~floor["d"]["w"])) == 2
    with pytest.raises(ValueError, match=r"rounding must be one of \('nearest', 'floor'\), got rounding='up'"):
        prune.magnitude(params, prune.ones(params), 0.2, rounding="up")
    with pytest.raises(
        ValueError, match=r"scope must be one of \('layer', 'global', 'layer_joint'\), got scope='unit'"
    ):
        prune.magnitude(params, prune.ones(params), 0.2, scope="unit")


def test_layer_joint_needs_one_rate_per_layer():
    params = _joint_params()
    spec = prune.prunable(params, lambda name, leaf: True)
    masks = prune.magnitude(
        params, prune.ones(params), 0.5, scope="layer_joint", spec=spec, layer_rates={"dense_0": 0.2}
    )  # a layer's rate: fine
    assert int(sum(jnp.sum(m) for m in jax.tree.leaves(masks["dense_0"]))) == 35 - 7
    with pytest.raises(ValueError, match=r"scope='layer_joint' prunes each layer's leaves together"):
        prune.magnitude(params, prune.ones(params), 0.5, scope="layer_joint", spec=spec, layer_rates={"dense_0/b": 0.2})


@pytest.mark.slow
def test_random_like_layer_joint_keeps_each_layers_count_not_each_leafs():
    params = _joint_params()
    spec = prune.prunable(params, lambda name, leaf: True)
    masks = prune.magnitude(params, prune.ones(params), 0.6, scope="layer_joint", spec=spec)
    per_leaf_differs = False
    for i in range(20):
        r = prune.random_like(jax.random.key(i), masks, spec, scope="layer_joint")
        for layer in params:
            assert int(sum(jnp.sum(m) for m in jax.tree.leaves(r[layer]))) == int(
                sum(jnp.sum(m) for m in jax.tree.leaves(masks[layer]))
            )
        per_leaf_differs |= int(jnp.sum(r["dense_0"]["b"])) != int(jnp.sum(masks["dense_0"]["b"]))
    assert per_leaf_differs  # the split between w and b is random, as the notebook's random control
    same = prune.random_like(jax.random.key(0), masks, spec)  # default: each leaf's count
    for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(masks), strict=True):
        assert int(jnp.sum(a)) == int(jnp.sum(b))


@pytest.mark.slow
def test_floor_count_is_pythons_int_of_the_float64_product():
    # The notebook drops int(p * n): 0.7 * 43870 = 30708.999999999996 in float64, so 30,708; float32
    # rounds the product to 30709.0 and would drop one more.
    assert int(0.7 * 43870) == 30708 and int(jnp.floor(jnp.float32(0.7) * jnp.float32(43870))) == 30709
    params = {"d": {"w": jax.random.normal(jax.random.key(0), (10, 4387))}}
    for fn in (
        lambda p: prune.magnitude(p, prune.ones(p), 0.7, rounding="floor"),
        jax.jit(lambda p: prune.magnitude(p, prune.ones(p), 0.7, rounding="floor")),
    ):
        assert int(jnp.sum(~fn(params)["d"]["w"])) == 30708
    pop = jax.tree.map(lambda a: jnp.stack([a, a, a]), params)
    masks = jax.vmap(lambda p: prune.magnitude(p, prune.ones(p), 0.7, rounding="floor"))(pop)
    np.testing.assert_array_equal(jnp.sum(~masks["d"]["w"], axis=(1, 2)), [30708] * 3)


# ---- structured pruning: whole units (Dense columns, conv output channels) ------------------------


def _conv_params(seed=0):
    """Prunable kernels of every kind, in tree order: Conv2D, Conv1D, two Dense; biases beside them."""
    k = jax.random.split(jax.random.key(seed), 4)
    return {
        "conv1d_1": {"w": jax.random.normal(k[1], (3, 4, 5)), "b": jnp.ones(5)},
        "conv2d_0": {"w": jax.random.normal(k[0], (3, 3, 2, 6)), "b": jnp.ones(6)},
        "dense_2": {"w": jax.random.normal(k[2], (20, 9)), "b": jnp.ones(9)},
        "dense_3": {"w": jax.random.normal(k[3], (9, 4)), "b": jnp.ones(4)},
    }


def _random_masks(params, seed, density=0.7, dead_units=True):
    """Random masks of the prunable leaves: entries off at random, and a few whole units off."""
    rng = np.random.default_rng(seed)
    spec = prune.prunable(params)
    out = {}
    for name, layer in params.items():
        out[name] = {}
        for leaf, w in layer.items():
            m = np.ones(w.shape, bool)
            if spec[name][leaf]:
                m = rng.random(w.shape) < density
                if dead_units:
                    m[..., rng.random(w.shape[-1]) < 0.2] = False
            out[name][leaf] = jnp.asarray(m)
    return out


def _ref_structured(ws, ms, rates, norm, scope):
    """Brute force over Python loops: each leaf's units (slices along the last axis), their norms
    over surviving weights, the round(rate * alive) lowest (ties by leaf, then unit index) zeroed."""
    units = []  # (score, leaf, unit) of every alive unit
    for li, (w, m) in enumerate(zip(ws, ms, strict=True)):
        w, m = np.asarray(w, np.float64), np.asarray(m)
        for j in range(w.shape[-1]):
            col, cm = w[..., j].ravel(), m[..., j].ravel()
            if not cm.any():
                continue
            vals = [abs(x) for x, keep in zip(col, cm, strict=True) if keep]
            s = sum(vals) if norm == "l1" else float(np.sqrt(sum(v * v for v in vals)))
            if scope == "global":
                s = s / col.size if norm == "l1" else s / np.sqrt(col.size)
            units.append((s, li, j))
    new = [np.asarray(m).copy() for m in ms]
    groups = [units] if scope == "global" else [[u for u in units if u[1] == li] for li in range(len(ws))]
    for gi, group in enumerate(groups):
        k = int(np.round(rates[gi] * len(group)))
        for _, li, j in sorted(group)[:k]:  # by score, then leaf, then unit index
            new[li][..., j] = False
    return new


PRUNED = ["conv1d_1", "conv2d_0", "dense_2", "dense_3"]


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["l1", "l2"])
@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 1])
def test_structured_matches_numpy_reference_for_dense_and_conv_kernels(norm, scope, rate, seed):
    p = _conv_params(seed)
    m = _random_masks(p, seed) if seed else prune.ones(p)
    layer_rates = {"dense_3": rate / 2, "conv1d_1": 0.0} if scope == "layer" else None
    new = prune.structured(p, m, rate, norm=norm, scope=scope, layer_rates=layer_rates)
    rates = [rate] if scope == "global" else [0.0, rate, rate, rate / 2]
    ref = _ref_structured([p[n]["w"] for n in PRUNED], [m[n]["w"] for n in PRUNED], rates, norm, scope)
    for n, r in zip(PRUNED, ref, strict=True):
        np.testing.assert_array_equal(np.asarray(new[n]["w"]), r, err_msg=n)
        np.testing.assert_array_equal(new[n]["b"], m[n]["b"])  # biases are not masked
    if scope == "layer":
        np.testing.assert_array_equal(new["conv1d_1"]["w"], m["conv1d_1"]["w"])  # a rate of 0: whole


def test_structured_global_normalizes_by_fan_in():
    # Two layers whose weights all have magnitude 1: raw L1 norms 20 vs 9 would prune only dense_3's
    # units; per weight they are equal, so ties go by position and the first leaf's units go first.
    p = {"dense_2": {"w": jnp.ones((20, 4))}, "dense_3": {"w": -jnp.ones((9, 4))}}
    new = prune.structured(p, prune.ones(p), 0.5, scope="global")
    assert new["dense_2"]["w"].any(axis=0).tolist() == [False, False, False, False]
    assert new["dense_3"]["w"].any(axis=0).tolist() == [True] * 4
    p["dense_2"]["w"] = p["dense_2"]["w"].at[:, 1].set(3.0)  # unit 1 of dense_2 now the largest
    new = prune.structured(p, prune.ones(p), 0.5, scope="global", norm="l2")
    assert new["dense_2"]["w"].any(axis=0).tolist() == [False, True, False, False]
    assert new["dense_3"]["w"].any(axis=0).tolist() == [False, True, True, True]


@pytest.mark.parametrize("seed", range(8))
def test_structured_properties_over_random_masks(seed):
    rng = np.random.default_rng(100 + seed)
    p = _conv_params(seed)
    m = _random_masks(p, seed, density=float(rng.uniform(0.05, 1.0)), dead_units=bool(seed % 2))
    rate = float(rng.uniform(0, 0.95))
    for scope in ("layer", "global"):
        new = prune.structured(p, m, rate, scope=scope, norm=("l1", "l2")[seed % 2])
        removed, alive_before = 0, 0
        for n in PRUNED:
            old, cur = np.asarray(m[n]["w"]), np.asarray(new[n]["w"])
            assert not np.any(cur & ~old), "masks never gain entries"
            old_u, cur_u = old.reshape(-1, old.shape[-1]), cur.reshape(-1, cur.shape[-1])
            for j in range(old_u.shape[1]):
                # a unit is either kept as it was or pruned whole
                assert np.array_equal(cur_u[:, j], old_u[:, j]) or not cur_u[:, j].any()
            n_alive, n_removed = int(old_u.any(0).sum()), int(old_u.any(0).sum() - cur_u.any(0).sum())
            if scope == "layer":
                assert n_removed == int(np.round(rate * n_alive)), n
            removed, alive_before = removed + n_removed, alive_before + n_alive
        if scope == "global":
            assert removed == int(np.round(rate * alive_before))
        counts = prune.units_alive(new)
        assert {k: int(v) for k, v in counts.items()} == {
            f"{n}/w": int(np.asarray(new[n]["w"]).reshape(-1, new[n]["w"].shape[-1]).any(0).sum()) for n in PRUNED
        }


@pytest.mark.slow
def test_structured_is_jittable_and_vmaps_per_member():
    p = _conv_params(3)
    m = _random_masks(p, 3)
    for scope in ("layer", "global"):
        eager = prune.structured(p, m, 0.4, scope=scope, norm="l2")
        jitted = jax.jit(lambda p, m, r, scope=scope: prune.structured(p, m, r, scope=scope, norm="l2"))(
            p, m, jnp.float32(0.4)
        )
        for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
            np.testing.assert_array_equal(a, b)
    pop = jax.tree.map(lambda *xs: jnp.stack(xs), *[_conv_params(s) for s in range(3)])
    pop_m = jax.tree.map(lambda *xs: jnp.stack(xs), *[_random_masks(_conv_params(s), s) for s in range(3)])
    out = jax.vmap(lambda p, m: prune.structured(p, m, 0.3, scope="global"))(pop, pop_m)
    for i in range(3):
        one = lambda t, i=i: jax.tree.map(lambda a: a[i], t)
        expect = prune.structured(one(pop), one(pop_m), 0.3, scope="global")
        for got, want in zip(jax.tree.leaves(one(out)), jax.tree.leaves(expect), strict=True):
            np.testing.assert_array_equal(got, want)


def test_structured_iterates_a_unit_ladder_and_breaks_ties_by_position():
    p = {"dense_0": {"w": jnp.ones((3, 16))}}
    m = prune.ones(p)
    alive = []
    for _ in range(4):
        m = prune.structured(p, m, 0.5)
        alive.append(int(prune.units_alive(m)["dense_0/w"]))
    assert alive == [8, 4, 2, 1]
    assert m["dense_0"]["w"].all(axis=0).tolist() == [False] * 15 + [True]  # equal norms: lowest index first


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda p, m: prune.structured(p, m, 1.0), "rate must be in"),
        (lambda p, m: prune.structured(p, m, -0.1), "rate must be in"),
        (lambda p, m: prune.structured(p, m, 0.2, norm="l3"), "norm"),
        (lambda p, m: prune.structured(p, m, 0.2, scope="layer_joint"), "scope"),
        (lambda p, m: prune.structured(p, m, 0.2, rounding="up"), "rounding"),
        (lambda p, m: prune.structured(p, m, 0.2, scope="global", layer_rates={"dense_0": 0.1}), "layer_rates"),
        (lambda p, m: prune.structured(p, m, 0.2, layer_rates={"dense_9": 0.1}), "dense_9"),
        (lambda p, m: prune.structured(p, m, 0.2, layer_rates={"dense_0": 1.5}), r"layer_rates\['dense_0'\]"),
        (lambda p, m: prune.structured(p, {"dense_0": m["dense_0"]}, 0.2), "tree structure"),
        (lambda p, m: prune.unit_scores(p, m, norm="max"), "norm"),
    ],
)
def test_structured_bad_input(call, match):
    _, p = _params()
    with pytest.raises(ValueError, match=match):
        call(p, prune.ones(p))


@pytest.mark.slow
def test_structured_random_like_keeps_each_leafs_unit_count_in_whole_units():
    p = _conv_params(4)
    m = prune.structured(p, prune.ones(p), 0.5)
    spec = prune.prunable(p)
    spec["dense_3"]["w"] = False  # not prunable: kept as it is
    m["dense_3"]["w"] = m["dense_3"]["w"].at[0, 0].set(False)
    fn = jax.jit(lambda k, m: prune.structured_random_like(k, m, spec))
    draws = [fn(jax.random.key(s), m) for s in range(4)]
    for r in draws:
        for n in ["conv1d_1", "conv2d_0", "dense_2"]:
            w = np.asarray(r[n]["w"]).reshape(-1, r[n]["w"].shape[-1])
            assert np.all(w.all(0) | ~w.any(0))  # whole units
            assert int(w.any(0).sum()) == int(prune.units_alive(m)[f"{n}/w"])
            np.testing.assert_array_equal(r[n]["b"], m[n]["b"])
        np.testing.assert_array_equal(r["dense_3"]["w"], m["dense_3"]["w"])
    assert any(not np.array_equal(draws[0]["dense_2"]["w"], d["dense_2"]["w"]) for d in draws[1:])
    pop = jax.tree.map(lambda a: jnp.stack([a, a]), m)
    keys = jax.random.split(jax.random.key(0), 2)
    twice = jax.vmap(lambda k, m: prune.structured_random_like(k, m, spec))(keys, pop)
    assert twice["dense_2"]["w"].shape == (2, 20, 9)


@pytest.mark.slow
@jax.default_matmul_precision("highest")
def test_a_pruned_channel_outputs_its_bias_and_compact_drops_pruned_units():
    conv = nn.Conv2D(4, 3)
    p = conv.init(jax.random.key(0), (6, 6, 2))
    p["b"] = jnp.arange(4.0)
    m = prune.structured({"c": p}, prune.ones({"c": p}), 0.5)["c"]
    dead = np.flatnonzero(~np.asarray(m["w"]).any(axis=(0, 1, 2)))
    assert dead.size == 2
    y = conv.apply(prune.apply(p, m), jax.random.normal(jax.random.key(1), (2, 6, 6, 2)))
    for j in dead:
        np.testing.assert_array_equal(y[..., j], np.full(y.shape[:-1], float(j)))
    net = nn.serial(nn.Dense(10), nn.Relu(), nn.Dense(6), nn.Tanh(), nn.Dense(3))
    params = net.init(jax.random.key(2), (5,))
    masks = prune.structured(params, prune.ones(params), 0.5, layer_rates={"dense_4": 0.0})
    small_net, small = compaction.compact(net, params, masks)
    assert small["dense_0"]["w"].shape == (5, 5) and small["dense_2"]["w"].shape == (5, 3)
    x = jax.random.normal(jax.random.key(3), (4, 5))
    expect = net.apply(prune.apply(params, masks), x)
    np.testing.assert_allclose(small_net.apply(small, x), expect, rtol=1e-5, atol=1e-6)


# ---- leaves that are not floating, and leaves whose units funcnn does not know ------------------


def test_non_floating_leaves_are_never_prunable_and_keep_all_true_masks():
    w = jax.random.normal(jax.random.key(0), (4, 5))
    params = {
        "dense_0": {"w": w, "b": jnp.zeros(5)},
        "step": jnp.arange(6, dtype=jnp.int32).reshape(2, 3),  # an integer matrix: ndim 2, not floating
        "rng": jax.random.split(jax.random.key(1), 2),  # typed PRNG keys
    }
    assert prune.prunable(params) == {"dense_0": {"b": False, "w": True}, "rng": False, "step": False}
    masks = prune.magnitude(params, prune.ones(params), 0.5)
    plain = prune.magnitude({"dense_0": params["dense_0"]}, prune.ones({"dense_0": params["dense_0"]}), 0.5)
    np.testing.assert_array_equal(masks["dense_0"]["w"], plain["dense_0"]["w"])  # the same as without them
    assert bool(masks["step"].all()) and bool(masks["rng"].all())
    out = prune.apply(params, masks)
    np.testing.assert_array_equal(out["step"], params["step"])
    assert jax.random.key_data(out["rng"]).tolist() == jax.random.key_data(params["rng"]).tolist()
    # Masks alone cannot tell an integer matrix's mask from a weight's: density takes the params' spec.
    assert set(prune.density(masks, prune.prunable(params))) == {"dense_0/w", "total"}
    r = prune.random(jax.random.key(2), params, prune.ones(params), 0.5)
    assert int(r["dense_0"]["w"].sum()) == 10 and bool(r["step"].all())
    bad = dict(masks, rng=jnp.array([True, False]))
    with pytest.raises(ValueError, match=r"apply: mask for 'rng' prunes a PRNG key"):
        prune.apply(params, bad)
    with pytest.raises(ValueError, match=r"prunable: predicate marks leaf 'rng' prunable, but it has dtype key<fry>"):
        prune.prunable(params, lambda name, leaf: name != "step")


def test_structured_asks_for_the_unit_axis_of_a_leaf_not_named_w():
    p = {"dense_0": {"w": jnp.ones((3, 4))}, "mine": {"kernel": jnp.ones((4, 2))}}
    with pytest.raises(ValueError, match=r"structured: prunable leaf 'mine/kernel' \(shape \(4, 2\)\).*unit_axis="):
        prune.structured(p, prune.ones(p), 0.5)
    with pytest.raises(ValueError, match=r"units_alive: prunable leaf 'mine/kernel'"):
        prune.units_alive(prune.ones(p))
    masks = prune.structured(p, prune.ones(p), 0.5, unit_axis={"mine": -1})  # declared: pruned
    assert masks["mine"]["kernel"].any(axis=0).tolist() == [False, True]
    spec = {"dense_0": {"w": True}, "mine": {"kernel": False}}  # or left out of the spec
    masks = prune.structured(p, prune.ones(p), 0.5, spec=spec)
    assert bool(masks["mine"]["kernel"].all()) and masks["dense_0"]["w"].any(axis=0).sum() == 2
