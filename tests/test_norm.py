"""BatchNorm and LayerNorm against plain numpy written from the formulas, and their state plumbing."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn


def ref_batchnorm(x, scale, offset, running_mean, running_var, momentum, eps, train):
    """Per-feature loops in float64: (y, new_mean, new_var), PyTorch's BatchNorm semantics."""
    x = np.asarray(x, np.float64)
    c = x.shape[-1]
    cols = x.reshape(-1, c)
    y = np.empty_like(cols)
    new_mean, new_var = np.array(running_mean, np.float64), np.array(running_var, np.float64)
    for f in range(c):
        col = cols[:, f]
        n = len(col)
        if train:
            mu = sum(col) / n
            sq = sum((v - mu) ** 2 for v in col)
            var = sq / n
            new_mean[f] = (1 - momentum) * running_mean[f] + momentum * mu
            new_var[f] = (1 - momentum) * running_var[f] + momentum * sq / (n - 1)
        else:
            mu, var = running_mean[f], running_var[f]
        y[:, f] = [(v - mu) / math.sqrt(var + eps) * scale[f] + offset[f] for v in col]
    return y.reshape(x.shape), new_mean, new_var


def _random_params(rng, c):
    return {
        "scale": jnp.asarray(rng.normal(size=c), jnp.float32),
        "offset": jnp.asarray(rng.normal(size=c), jnp.float32),
    }


@pytest.mark.parametrize("shape", [(8, 3), (4, 5, 3, 2)])
def test_batchnorm_matches_numpy_over_five_updates(shape):
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm(momentum=0.1)
    c = shape[-1]
    params = _random_params(rng, c)
    state = bn.init_state(shape[1:])
    np.testing.assert_array_equal(state["mean"], np.zeros(c))
    np.testing.assert_array_equal(state["var"], np.ones(c))
    ref_mean, ref_var = np.zeros(c), np.ones(c)
    for step in range(5):
        x = (rng.normal(size=shape) * (step + 1) + step).astype(np.float32)
        y, state = bn.apply_with_state(params, state, jnp.asarray(x), train=True)
        want, ref_mean, ref_var = ref_batchnorm(
            x, params["scale"], params["offset"], ref_mean, ref_var, 0.1, 1e-5, True
        )
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(state["mean"], ref_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state["var"], ref_var, rtol=1e-5, atol=1e-6)
    x = rng.normal(size=shape).astype(np.float32)
    y, after = bn.apply_with_state(params, state, jnp.asarray(x), train=False)
    want, _, _ = ref_batchnorm(
        x, params["scale"], params["offset"], np.asarray(state["mean"]), np.asarray(state["var"]), 0.1, 1e-5, False
    )
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    assert after is state  # eval mode leaves the state as it was


def test_batchnorm_eval_output_is_per_example():
    bn = nn.BatchNorm(eps=0.25)
    params = {"scale": jnp.array([2.0, 1.0]), "offset": jnp.array([0.0, -1.0])}
    state = {"mean": jnp.array([1.0, -1.0]), "var": jnp.array([3.75, 0.75])}
    y, _ = bn.apply_with_state(params, state, jnp.array([3.0, 0.0]))  # no batch axis is fine in eval mode
    np.testing.assert_allclose(y, [2.0 / 2.0 * 2.0, 1.0 / 1.0 - 1.0])


def test_stateful_layer_refuses_plain_apply():
    bn = nn.BatchNorm()
    with pytest.raises(nn.StateError, match="apply_with_state"):
        bn.apply(bn.init(jax.random.key(0), (3,)), jnp.ones((2, 3)))
    net = nn.serial(nn.Dense(4), nn.BatchNorm(), nn.Relu())
    params = net.init(jax.random.key(0), (5,))
    with pytest.raises(nn.StateError, match=r"layer 'batchnorm_1'.*apply_with_state"):
        net.apply(params, jnp.ones((2, 5)))


def test_serial_threads_state_under_the_layer_name():
    net = nn.serial(nn.Dense(4), nn.BatchNorm())
    params = net.init(jax.random.key(0), (5,))
    state = net.init_state((5,))
    assert jax.tree.map(jnp.shape, state) == {"dense_0": {}, "batchnorm_1": {"mean": (4,), "var": (4,)}}
    assert jax.tree.map(jnp.shape, params)["batchnorm_1"] == {"scale": (4,), "offset": (4,)}
    assert nn.has_state(net, (5,)) and not nn.has_state(nn.Dense(4), (5,))
    x = jax.random.normal(jax.random.key(1), (6, 5))
    y, new = net.apply_with_state(params, state, x, train=True)
    h = np.asarray(x) @ np.asarray(params["dense_0"]["w"]) + np.asarray(params["dense_0"]["b"])
    np.testing.assert_allclose(new["batchnorm_1"]["mean"], 0.1 * np.mean(h, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.mean(y, axis=0), 0.0, atol=1e-5)


@pytest.mark.slow
def test_batchnorm_under_vmap_keeps_each_members_statistics():
    bn = nn.BatchNorm(scale_init=jax.nn.initializers.normal(1.0))
    keys = jax.random.split(jax.random.key(0), 3)
    pop_params = jax.vmap(bn.init, in_axes=(0, None))(keys, (4,))
    pop_state = jax.vmap(lambda _: bn.init_state((4,)))(jnp.arange(3))
    xs = jax.random.normal(jax.random.key(1), (3, 8, 4)) * jnp.arange(1.0, 4.0).reshape(3, 1, 1)
    step = jax.jit(jax.vmap(lambda p, s, x: bn.apply_with_state(p, s, x, train=True)))
    ys, new = step(pop_params, pop_state, xs)
    for i in range(3):
        member = jax.tree.map(lambda a, i=i: a[i], (pop_params, pop_state))
        y_i, s_i = bn.apply_with_state(*member, xs[i], train=True)
        np.testing.assert_allclose(ys[i], y_i, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(new["var"][i], s_i["var"], rtol=1e-5)
    assert not np.allclose(new["var"][0], new["var"][2])


def test_gradients_reach_scale_and_offset_not_state():
    rng = np.random.default_rng(3)
    bn = nn.BatchNorm()
    params = _random_params(rng, 3)
    state = bn.init_state((3,))
    x = jnp.asarray(rng.normal(size=(10, 3)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(10, 3)), jnp.float32)

    def loss(p):
        y, _ = bn.apply_with_state(p, state, x, train=True)
        return jnp.sum(y * g)

    grads = jax.grad(loss)(params)
    assert jax.tree.structure(grads) == jax.tree.structure(params)  # state is not in params
    xn = np.asarray(x, np.float64)
    xhat = (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5)
    np.testing.assert_allclose(grads["offset"], np.asarray(g).sum(0), rtol=1e-5)
    np.testing.assert_allclose(grads["scale"], (np.asarray(g) * xhat).sum(0), rtol=1e-4)
    # The running statistics are not differentiated through.
    dstate = jax.grad(lambda xx: jnp.sum(bn.apply_with_state(params, state, xx, train=True)[1]["var"]))(x)
    np.testing.assert_array_equal(dstate, np.zeros((10, 3)))


def test_layernorm_matches_numpy():
    rng = np.random.default_rng(4)
    ln = nn.LayerNorm(eps=1e-3)
    for shape in [(4, 6), (2, 3, 5)]:
        params = _random_params(rng, shape[-1])
        assert jax.tree.map(jnp.shape, ln.init(jax.random.key(0), shape[1:])) == {
            "scale": (shape[-1],),
            "offset": (shape[-1],),
        }
        x = rng.normal(size=shape).astype(np.float32) * 3 + 1
        want = np.empty(shape)
        for idx in np.ndindex(*shape[:-1]):
            row = x[idx].astype(np.float64)
            mu = row.sum() / len(row)
            var = ((row - mu) ** 2).sum() / len(row)
            want[idx] = (row - mu) / math.sqrt(var + 1e-3) * np.asarray(params["scale"]) + np.asarray(params["offset"])
        np.testing.assert_allclose(ln.apply(params, jnp.asarray(x)), want, rtol=1e-4, atol=1e-4)
    assert not nn.has_state(ln, (6,))


@pytest.mark.parametrize(
    "call,error,match",
    [
        (
            lambda: nn.BatchNorm().init(jax.random.key(0), ()),
            nn.ShapeError,
            r"BatchNorm: expected an input shape with a features axis \(\.\.\., C\), got \(\)",
        ),
        (
            lambda: nn.serial(nn.BatchNorm()).init(jax.random.key(0), ()),
            nn.ShapeError,
            r"layer 'batchnorm_0': BatchNorm.*features axis",
        ),
        (lambda: nn.serial(nn.BatchNorm()).init_state(()), nn.ShapeError, r"layer 'batchnorm_0'"),
        (
            lambda: nn.BatchNorm().apply_with_state(
                {"scale": jnp.ones(3), "offset": jnp.zeros(3)},
                {"mean": jnp.zeros(3), "var": jnp.ones(3)},
                jnp.ones((4, 5)),
            ),
            nn.ShapeError,
            r"BatchNorm.*3 features.*\(4, 5\)",
        ),
        (
            lambda: nn.BatchNorm().apply_with_state(
                {"scale": jnp.ones(3), "offset": jnp.zeros(3)},
                {"mean": jnp.zeros(3), "var": jnp.ones(3)},
                jnp.ones(3),
                train=True,
            ),
            nn.ShapeError,
            r"BatchNorm: training mode needs.*batch axis",
        ),
        (
            lambda: nn.BatchNorm().apply_with_state(
                {"scale": jnp.ones(3), "offset": jnp.zeros(3)}, {}, jnp.ones((2, 3))
            ),
            nn.StateError,
            r"BatchNorm: state has no entry 'mean'",
        ),
        (lambda: nn.LayerNorm().init(jax.random.key(0), ()), nn.ShapeError, r"LayerNorm.*features axis"),
        (
            lambda: nn.LayerNorm().apply({"scale": jnp.ones(3), "offset": jnp.zeros(3)}, jnp.ones((2, 4))),
            nn.ShapeError,
            "LayerNorm",
        ),
        (lambda: nn.BatchNorm(momentum=1.5), ValueError, r"momentum must be in \[0, 1\], got momentum=1.5"),
        (lambda: nn.BatchNorm(momentum="0.1"), ValueError, "momentum"),
        (lambda: nn.BatchNorm(eps=0.0), ValueError, r"eps must be > 0, got eps=0.0"),
        (lambda: nn.LayerNorm(eps=-1), ValueError, "eps"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
