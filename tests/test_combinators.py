"""Combinators: Identity, FanOut, FanInSum, FanInConcat, Parallel, Residual (and their use in serial)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn
from funcnn.nn.layer import add_bias, stateful

normal = jax.nn.initializers.normal(1.0)


def RunningMean():
    """Test layer with state {"mean", "count"}: y = x + mean (the old one); train mode folds x's batch mean in."""

    def output_shape(input_shape):
        return tuple(input_shape)

    def init(key, input_shape):
        del key, input_shape
        return {}

    def init_state(input_shape):
        return {"mean": jnp.zeros(input_shape), "count": jnp.zeros((), jnp.int32)}

    def apply_with_state(params, state, x, *, key=None, train=False):
        del params, key
        y = add_bias(x, state["mean"])
        if not train:
            return y, state
        batch_mean = x.reshape((-1,) + state["mean"].shape).mean(0)
        count = state["count"] + 1
        mean = state["mean"] + (batch_mean - state["mean"]) / count
        return y, {"mean": mean, "count": count}

    return stateful("runningmean", init, init_state, apply_with_state, output_shape)


def Noise(sign=1.0):
    """Test layer: x + sign * N(0, 1) noise drawn from the key (x unchanged without a key)."""

    def apply(params, x, *, key=None, train=False):
        del params, train
        return x if key is None else x + sign * jax.random.normal(key, x.shape)

    return nn.Layer("noise", lambda key, s: {}, apply, tuple)


def lin(p, x):
    """x @ w + b by hand (b broadcast over x's batch axes)."""
    return x @ p["w"] + p["b"].reshape((1,) * (x.ndim - 1) + p["b"].shape)


def mlp(p, x):
    return lin(p["dense_2"], jax.nn.relu(lin(p["dense_0"], x)))


def paths(params):
    return {"/".join(k.key for k in path): leaf.shape for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


# ---------------------------------------------------------------- each combinator against its hand composition


def test_identity(getkey):
    layer = nn.Identity()
    x = jax.random.normal(getkey(), (4, 3))
    assert layer.kind == "identity" and layer.init(getkey(), (3,)) == {}
    np.testing.assert_array_equal(layer.apply({}, x), x)
    assert layer.output_shape((3,)) == (3,)


def test_fanout_faninsum_faninconcat(getkey):
    x, y, z = (jax.random.normal(getkey(), (2, 3, 4)) for _ in range(3))
    fan = nn.FanOut(3)
    assert fan.kind == "fanout" and fan.output_shape((3, 4)) == ((3, 4),) * 3
    outs = fan.apply(fan.init(getkey(), (3, 4)), x)
    assert isinstance(outs, tuple) and len(outs) == 3 and all(o is x for o in outs)

    s = nn.FanInSum()
    assert s.kind == "faninsum" and s.output_shape(((3, 4),) * 3) == (3, 4)
    np.testing.assert_allclose(s.apply({}, (x, y, z)), x + y + z, rtol=1e-6)

    w = jax.random.normal(getkey(), (2, 3, 2))
    c = nn.FanInConcat()
    assert c.kind == "faninconcat" and c.output_shape(((3, 4), (3, 2))) == (3, 6)
    np.testing.assert_array_equal(c.apply({}, (x, w)), jnp.concatenate([x, w], axis=-1))
    c2 = nn.FanInConcat(axis=-2)
    v = jax.random.normal(getkey(), (2, 5, 4))
    assert c2.output_shape(((3, 4), (5, 4))) == (8, 4)
    np.testing.assert_array_equal(c2.apply({}, (x, v)), jnp.concatenate([x, v], axis=1))


def test_parallel_applies_each_layer_to_its_input(getkey):
    a, b = nn.Dense(3, b_init=normal), nn.serial(nn.Dense(4, b_init=normal), nn.Relu())
    par = nn.Parallel(a, b)
    params = par.init(getkey(), ((5,), (6,)))
    assert set(params) == {"dense_0", "serial_1"}
    x1, x2 = jax.random.normal(getkey(), (2, 5)), jax.random.normal(getkey(), (2, 6))
    y1, y2 = par.apply(params, (x1, x2))
    np.testing.assert_allclose(y1, lin(params["dense_0"], x1), rtol=1e-5)
    p = params["serial_1"]["dense_0"]
    np.testing.assert_allclose(y2, jax.nn.relu(lin(p, x2)), rtol=1e-5)
    assert par.kind == "parallel" and par.layers == (a, b)


def test_residual_is_x_plus_main(getkey):
    net = nn.Residual(nn.serial(nn.Dense(5, b_init=normal), nn.Relu(), nn.Dense(5, b_init=normal)))
    params = net.init(getkey(), (5,))
    x = jax.random.normal(getkey(), (7, 5))
    np.testing.assert_allclose(net.apply(params, x), x + mlp(params["main"], x), rtol=1e-5, atol=1e-6)
    assert net.kind == "residual" and [layer.kind for layer in net.layers] == ["serial", "identity"]


def test_residual_with_projection_shortcut(getkey):
    net = nn.Residual(nn.serial(nn.Dense(4, b_init=normal), nn.Relu(), nn.Dense(3)), nn.Dense(3, b_init=normal))
    params = net.init(getkey(), (6,))
    x = jax.random.normal(getkey(), (2, 6))
    proj = lin(params["shortcut"], x)
    np.testing.assert_allclose(net.apply(params, x), mlp(params["main"], x) + proj, rtol=1e-5, atol=1e-6)
    assert net.output_shape((6,)) == (3,)


def test_serial_composes_with_branches(getkey):
    net = nn.serial(nn.FanOut(2), nn.Parallel(nn.Dense(3), nn.serial(nn.Dense(3), nn.Relu())), nn.FanInSum())
    assert net.output_shape((4,)) == (3,)
    params = net.init(getkey(), (4,))
    x = jax.random.normal(getkey(), (5, 4))
    p1, p2 = params["parallel_1"]["dense_0"], params["parallel_1"]["serial_1"]["dense_0"]
    want = lin(p1, x) + jax.nn.relu(lin(p2, x))
    np.testing.assert_allclose(net.apply(params, x), want, rtol=1e-5, atol=1e-6)
    table = nn.summary(net, (4,))
    assert "((4,), (4,))" in table and "parallel_1" in table and "total" in table


# ---------------------------------------------------------------- golden param names (pruning paths use them)


def test_golden_param_names_residual():
    net = nn.serial(nn.Dense(8), nn.Residual(nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(8))), nn.Dense(2))
    params = net.init(jax.random.key(0), (4,))
    assert jax.tree.map(lambda a: a.shape, params) == {
        "dense_0": {"w": (4, 8), "b": (8,)},
        "residual_1": {
            "main": {"dense_0": {"w": (8, 8), "b": (8,)}, "relu_1": {}, "dense_2": {"w": (8, 8), "b": (8,)}},
            "shortcut": {},
        },
        "dense_2": {"w": (8, 2), "b": (2,)},
    }
    assert "residual_1/main/dense_0/w" in paths(params)


def test_golden_param_names_projection_shortcut():
    block = nn.Residual(
        nn.serial(nn.Conv2D(8, 3, stride=2, padding="SAME"), nn.Relu(), nn.Conv2D(8, 3, padding="SAME")),
        nn.Conv2D(8, 1, stride=2),
    )
    net = nn.serial(nn.Conv2D(4, 3, padding="SAME"), block, nn.Flatten(ndim=3), nn.Dense(2))
    assert net.output_shape((8, 8, 3)) == (2,)
    assert paths(jax.eval_shape(lambda k: net.init(k, (8, 8, 3)), jax.random.key(0))) == {
        "conv2d_0/w": (3, 3, 3, 4),
        "conv2d_0/b": (4,),
        "residual_1/main/conv2d_0/w": (3, 3, 4, 8),
        "residual_1/main/conv2d_0/b": (8,),
        "residual_1/main/conv2d_2/w": (3, 3, 8, 8),
        "residual_1/main/conv2d_2/b": (8,),
        "residual_1/shortcut/w": (1, 1, 4, 8),
        "residual_1/shortcut/b": (8,),
        "dense_3/w": (128, 2),
        "dense_3/b": (2,),
    }


def test_golden_param_names_branches():
    net = nn.serial(nn.FanOut(2), nn.Parallel(nn.Dense(3), nn.serial(nn.Dense(3), nn.Relu())), nn.FanInConcat())
    params = net.init(jax.random.key(0), (4,))
    assert jax.tree.map(lambda a: a.shape, params) == {
        "fanout_0": {},
        "parallel_1": {
            "dense_0": {"w": (4, 3), "b": (3,)},
            "serial_1": {"dense_0": {"w": (4, 3), "b": (3,)}, "relu_1": {}},
        },
        "faninconcat_2": {},
    }


# ---------------------------------------------------------------- output_shape == apply's shape, any batch axes

NETS = [
    (nn.Identity, (3, 2)),
    (lambda: nn.FanOut(2), (3,)),
    (nn.FanInSum, ((3, 2), (3, 2))),
    (nn.FanInConcat, ((3, 2), (3, 5))),
    (lambda: nn.FanInConcat(-2), ((3, 2), (4, 2))),
    (lambda: nn.Parallel(nn.Dense(3), nn.Relu()), ((5,), (2, 2))),
    (lambda: nn.Residual(nn.serial(nn.Dense(4), nn.Relu(), nn.Dense(5))), (5,)),
    (lambda: nn.Residual(nn.Dense(2), nn.Dense(2)), (5,)),
    (lambda: nn.serial(nn.FanOut(3), nn.Parallel(nn.Dense(2), nn.Dense(3), nn.Identity()), nn.FanInConcat()), (4,)),
    (lambda: nn.serial(nn.Dense(6), nn.Residual(nn.Residual(nn.Dense(6))), nn.Dense(1)), (3,)),
]


@pytest.mark.slow
@pytest.mark.parametrize("make,shape", NETS)
@pytest.mark.parametrize("batch", [(), (1,), (6,), (2, 3)])
def test_output_shape_equals_apply(make, shape, batch):
    layer = make()
    params = layer.init(jax.random.key(1), shape)
    multi = isinstance(shape[0], tuple)
    x = tuple(jnp.ones(batch + s) for s in shape) if multi else jnp.ones(batch + shape)
    y = layer.apply(params, x)
    out = layer.output_shape(shape)
    if isinstance(out[0], tuple):
        assert tuple(a.shape for a in y) == tuple(batch + o for o in out)
    else:
        assert y.shape == batch + out


# ---------------------------------------------------------------- state


def test_state_threads_through_residual_and_parallel(getkey):
    net = nn.serial(
        nn.Dense(3),
        nn.Residual(nn.serial(nn.Dense(3), RunningMean()), RunningMean()),
        nn.FanOut(2),
        nn.Parallel(RunningMean(), nn.Identity()),
        nn.FanInSum(),
    )
    assert nn.has_state(net, (2,))
    state = net.init_state((2,))
    assert jax.tree.map(lambda a: a.shape, state) == {
        "dense_0": {},
        "residual_1": {
            "main": {"dense_0": {}, "runningmean_1": {"mean": (3,), "count": ()}},
            "shortcut": {"mean": (3,), "count": ()},
        },
        "fanout_2": {},
        "parallel_3": {"runningmean_0": {"mean": (3,), "count": ()}, "identity_1": {}},
        "faninsum_4": {},
    }
    params = net.init(getkey(), (2,))
    x = jax.random.normal(getkey(), (8, 2))
    y0, state1 = net.apply_with_state(params, state, x, train=True)
    h = lin(params["dense_0"], x)
    m = lin(params["residual_1"]["main"]["dense_0"], h)
    np.testing.assert_allclose(y0, 2 * (m + h), rtol=1e-5, atol=1e-6)  # zero means: y = r + r
    np.testing.assert_allclose(state1["residual_1"]["main"]["runningmean_1"]["mean"], m.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state1["residual_1"]["shortcut"]["mean"], h.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state1["parallel_3"]["runningmean_0"]["mean"], (m + h).mean(0), rtol=1e-5, atol=1e-6)
    assert int(state1["parallel_3"]["runningmean_0"]["count"]) == 1
    # the next call uses the updated state; eval mode leaves it alone
    y1, state2 = net.apply_with_state(params, state1, x, train=False)
    mean = lambda *path: functools.reduce(lambda t, k: t[k], path, state1)["mean"][None]
    r = (m + mean("residual_1", "main", "runningmean_1")) + (h + mean("residual_1", "shortcut"))
    np.testing.assert_allclose(y1, 2 * r + mean("parallel_3", "runningmean_0"), rtol=1e-5, atol=1e-5)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), state1, state2))


@pytest.mark.slow
def test_state_under_vmap_over_a_population(getkey):
    net = nn.serial(
        nn.Dense(3), nn.Residual(nn.serial(nn.Dense(3), RunningMean())), nn.FanOut(1), nn.Parallel(RunningMean())
    )
    keys = jax.random.split(getkey(), 3)
    pop = jax.vmap(net.init, in_axes=(0, None))(keys, (2,))
    state = jax.tree.map(lambda a: jnp.stack([a] * 3), net.init_state((2,)))
    xs = jax.random.normal(getkey(), (3, 4, 2))  # a different batch per member
    ys, new = jax.vmap(lambda p, s, x: net.apply_with_state(p, s, x, train=True))(pop, state, xs)
    for i in range(3):
        p_i = jax.tree.map(lambda a, i=i: a[i], pop)
        y_i, s_i = net.apply_with_state(p_i, net.init_state((2,)), xs[i], train=True)
        np.testing.assert_allclose(ys[0][i], y_i[0], rtol=1e-5, atol=1e-6)
        jax.tree.map(lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=1e-5, atol=1e-6), new, s_i)
    means = new["residual_1"]["main"]["runningmean_1"]["mean"]
    assert means.shape == (3, 3) and not np.allclose(means[0], means[1])
    np.testing.assert_array_equal(new["parallel_3"]["runningmean_0"]["count"], [1, 1, 1])


def test_plain_apply_of_stateful_net_names_the_path(getkey):
    net = nn.serial(nn.Dense(3), nn.Residual(nn.serial(nn.Dense(3), RunningMean())))
    params = net.init(getkey(), (2,))
    with pytest.raises(nn.StateError, match=r"layer 'residual_1/main/runningmean_1': .*apply_with_state"):
        net.apply(params, jnp.ones((1, 2)))
    par = nn.serial(nn.FanOut(2), nn.Parallel(nn.Identity(), RunningMean()))
    with pytest.raises(nn.StateError, match=r"layer 'parallel_1/runningmean_1'"):
        par.apply(par.init(getkey(), (2,)), jnp.ones((2,)))


# ---------------------------------------------------------------- keys


@pytest.mark.parametrize(
    "make", [lambda: nn.Residual(Noise(), Noise(-1.0)), lambda: nn.serial(nn.FanOut(2), nn.Parallel(Noise(), Noise()))]
)
def test_key_is_split_per_branch(make, getkey):
    net = make()
    params = net.init(getkey(), (4,))
    x = jnp.zeros((4,))
    k1, k2 = getkey(), getkey()
    a, a2, b = (net.apply(params, x, key=k) for k in (k1, k1, k2))
    leaves = lambda t: jax.tree.leaves(t)
    for u, v in zip(leaves(a), leaves(a2), strict=True):
        np.testing.assert_array_equal(u, v)
    for u, v in zip(leaves(a), leaves(b), strict=True):
        assert not np.allclose(u, v)
    for u in leaves(net.apply(params, x)):
        np.testing.assert_array_equal(u, x)  # no key, no noise
    # the two branches got different keys: their noises differ (and do not cancel in the Residual)
    if net.kind == "serial":
        assert not np.allclose(a[0], a[1])
    else:
        assert not np.allclose(a, x)


# ---------------------------------------------------------------- errors


def test_residual_shape_mismatch_names_both_shapes_and_path():
    with pytest.raises(
        nn.ShapeError, match=r"Residual: main branch gives \(3,\), shortcut gives \(5,\); give a projection shortcut"
    ):
        nn.Residual(nn.Dense(3)).init(jax.random.key(0), (5,))
    net = nn.serial(nn.Dense(5), nn.Residual(nn.Dense(3)))
    with pytest.raises(
        nn.ShapeError, match=r"layer 'residual_1': Residual: main branch gives \(3,\), shortcut gives \(5,\)"
    ):
        net.output_shape((4,))
    with pytest.raises(nn.ShapeError, match=r"layer 'residual_1': Residual: main branch gives"):
        net.init_state((4,))


def test_error_inside_a_branch_carries_the_path(getkey):
    net = nn.serial(nn.Dense(6), nn.Relu(), nn.Dense(5), nn.Residual(nn.serial(nn.Dense(5), nn.Relu()), nn.Dense(5)))
    params = net.init(getkey(), (4,))
    bad = dict(params, dense_2={"w": jnp.ones((6, 7)), "b": jnp.ones((7,))})
    with pytest.raises(
        nn.ShapeError, match=r"layer 'residual_3/main/dense_0': Dense: expected input of shape \(\*batch, 5\)"
    ):
        net.apply(bad, jnp.ones((2, 4)))
    block = nn.serial(nn.Dense(5), nn.Residual(nn.Dense(5), nn.Flatten(ndim=2)))
    with pytest.raises(nn.ShapeError, match=r"layer 'residual_1/shortcut'"):
        block.output_shape((3,))


def test_parallel_needs_one_input_per_branch(getkey):
    par = nn.Parallel(nn.Dense(3), nn.Dense(3))
    with pytest.raises(nn.ShapeError, match=r"Parallel: expected a tuple of 2 input shapes.*got \(4,\).*FanOut\(2\)"):
        par.init(getkey(), (4,))
    with pytest.raises(nn.ShapeError, match=r"tuple of 2 input shapes.*got \(\(4,\), \(4,\), \(4,\)\)"):
        par.output_shape(((4,),) * 3)
    params = par.init(getkey(), ((4,), (4,)))
    with pytest.raises(nn.ShapeError, match=r"Parallel: expected a tuple of 2 arrays.*got 3 inputs"):
        par.apply(params, (jnp.ones(4),) * 3)
    with pytest.raises(nn.ShapeError, match=r"got one array of shape \(4,\)"):
        par.apply(params, jnp.ones(4))
    with pytest.raises(nn.ShapeError, match=r"layer 'dense_1': Dense"):
        par.output_shape(((4,), (2, 2)))
    one = nn.Parallel(nn.Dense(3))
    with pytest.raises(nn.ShapeError, match="tuple of 1 input shapes"):
        one.init(getkey(), (4,))  # a plain shape is not a tuple of one shape


def test_fanin_shape_errors():
    with pytest.raises(nn.ShapeError, match=r"FanInSum: all inputs must have the same shape, got \(3,\), \(4,\)"):
        nn.FanInSum().output_shape(((3,), (4,)))
    with pytest.raises(nn.ShapeError, match=r"got \(2, 3\), \(2, 4\)"):
        nn.FanInSum().apply({}, (jnp.ones((2, 3)), jnp.ones((2, 4))))
    with pytest.raises(
        nn.ShapeError, match=r"FanInSum: expected a tuple of input shapes, got \(3,\); put it after FanOut"
    ):
        nn.FanInSum().init(jax.random.key(0), (3,))
    with pytest.raises(nn.ShapeError, match=r"agree on every axis but axis=-1, got \(2, 3\), \(3, 3\)"):
        nn.FanInConcat().output_shape(((2, 3), (3, 3)))
    with pytest.raises(nn.ShapeError, match="equal rank"):
        nn.FanInConcat().apply({}, (jnp.ones((2, 3)), jnp.ones((3,))))
    with pytest.raises(nn.ShapeError, match="rank of at least 3"):
        nn.FanInConcat(-3).output_shape(((2, 3), (2, 3)))


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match="Parallel: argument 1 must be a Layer"):
        nn.Parallel(nn.Dense(3), nn.Relu)
    with pytest.raises(TypeError, match="Residual: argument 0 must be a Layer"):
        nn.Residual(nn.Dense)
    with pytest.raises(TypeError, match="Residual: argument 1 must be a Layer"):
        nn.Residual(nn.Dense(3), nn.Dense)
    with pytest.raises(ValueError, match="at least one layer"):
        nn.Parallel()
    with pytest.raises(ValueError, match="n must be a positive int"):
        nn.FanOut(0)
    with pytest.raises(ValueError, match="axis must be a negative int"):
        nn.FanInConcat(axis=1)


def test_params_from_another_network_are_rejected(getkey):
    net = nn.Residual(nn.Dense(3), nn.Dense(3))
    with pytest.raises(ValueError, match="no entry 'shortcut'"):
        net.apply({"main": {}}, jnp.ones(3))
    par = nn.Parallel(nn.Dense(3))
    with pytest.raises(ValueError, match="no entry 'dense_0'"):
        par.apply({"relu_0": {}}, (jnp.ones(3),))


# ---------------------------------------------------------------- jit and grad


def test_jit_and_grad_through_residual_net(getkey):
    net = nn.serial(
        nn.Dense(5, b_init=normal),
        nn.Residual(nn.serial(nn.Dense(5, b_init=normal), nn.Relu(), nn.Dense(5))),
        nn.Dense(2),
    )
    params = net.init(getkey(), (3,))
    x = jax.random.normal(getkey(), (4, 3))

    def loss(p):
        return jnp.sum(net.apply(p, x) ** 2)

    def hand_loss(p):
        h = lin(p["dense_0"], x)
        h = h + mlp(p["residual_1"]["main"], h)
        return jnp.sum(lin(p["dense_2"], h) ** 2)

    np.testing.assert_allclose(jax.jit(loss)(params), hand_loss(params), rtol=1e-5)
    g, g_hand = jax.jit(jax.grad(loss))(params), jax.grad(hand_loss)(params)
    assert jax.tree.structure(g) == jax.tree.structure(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g, g_hand)
    assert float(jnp.abs(g["residual_1"]["main"]["dense_0"]["w"]).sum()) > 0
