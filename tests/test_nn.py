import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn

TOY_W = [
    (np.array([[1.0, -2.0], [-1.0, 1.0]]), np.array([1.0, 0.0])),
    (np.array([[2.0, -1.0], [-2.0, -1.0]]), np.array([0.0, 0.0])),
    (np.array([[3.0, -1.0], [-1.0, 4.0]]), np.array([-2.0, 2.0])),
]


def toy_net():
    layers = []
    for _ in range(3):
        layers += [nn.Dense(2), nn.Sigmoid()]
    net = nn.serial(*layers)
    params = net.init(jax.random.key(0), (2,))
    for i, (w, b) in enumerate(TOY_W):
        # Rows of the course's W are output units, so our (fan_in, features) w is its transpose.
        params[f"dense_{2 * i}"] = {"w": jnp.asarray(w.T, jnp.float32), "b": jnp.asarray(b, jnp.float32)}
    return net, params


def test_course_toy_network_forward_pass():
    net, params = toy_net()
    x = jnp.array([1.0, -1.0])
    np.testing.assert_allclose(np.round(net.apply(params, x), 2), [0.62, 0.83])
    sub = nn.serial(*net.layers[:2])
    h1 = sub.apply({"dense_0": params["dense_0"], "sigmoid_1": {}}, x)
    np.testing.assert_allclose(np.round(h1, 2), [0.98, 0.12])
    h2 = jax.nn.sigmoid(h1 @ params["dense_2"]["w"] + params["dense_2"]["b"])
    np.testing.assert_allclose(np.round(h2, 2), [0.86, 0.11])


ALL_LAYERS = [
    (lambda: nn.Dense(7), (5,)),
    (nn.Sigmoid, (5,)),
    (nn.Tanh, (3, 4)),
    (nn.Arctan, (5,)),
    (nn.BinaryStep, (5,)),
    (nn.Relu, (2, 3, 4)),
    (nn.PReLU, (5,)),
    (lambda: nn.ELU(0.5), (5,)),
    (nn.Softplus, (5,)),
    (nn.Flatten, (3, 4, 2)),
    (lambda: nn.Flatten(ndim=3), (3, 4, 2)),
    (lambda: nn.serial(nn.Flatten(), nn.Dense(4), nn.Relu(), nn.Dense(3)), (2, 5)),
]


@pytest.mark.parametrize("make,shape", ALL_LAYERS)
@pytest.mark.parametrize("batch", [(1,), (6,)])
def test_output_shape_equals_apply(make, shape, batch):
    layer = make()
    params = layer.init(jax.random.key(1), shape)
    y = layer.apply(params, jnp.ones(batch + shape))
    assert y.shape == batch + layer.output_shape(shape)


@pytest.mark.parametrize("make,shape", [m for m in ALL_LAYERS if m[0] is not nn.Flatten])
def test_any_number_of_batch_axes(make, shape):
    layer = make()
    if layer.kind == "serial":
        return  # its Flatten() assumes one batch axis by design
    params = layer.init(jax.random.key(1), shape)
    y = layer.apply(params, jnp.ones((2, 3) + shape))
    assert y.shape == (2, 3) + layer.output_shape(shape)


def test_golden_param_names_and_shapes():
    net = nn.serial(nn.Flatten(), nn.Dense(300), nn.Relu(), nn.Dense(100), nn.PReLU(), nn.Dense(10))
    params = net.init(jax.random.key(0), (28, 28, 1))
    shapes = jax.tree.map(lambda a: a.shape, params)
    assert shapes == {
        "flatten_0": {},
        "dense_1": {"w": (784, 300), "b": (300,)},
        "relu_2": {},
        "dense_3": {"w": (300, 100), "b": (100,)},
        "prelu_4": {"alpha": ()},
        "dense_5": {"w": (100, 10), "b": (10,)},
    }
    table = nn.summary(net, (28, 28, 1))
    assert "dense_1" in table and "(300,)" in table and "266,611" in table


def test_dense_uses_the_given_initializer():
    layer = nn.Dense(3, w_init=jax.nn.initializers.ones, b_init=jax.nn.initializers.constant(0.5))
    p = layer.init(jax.random.key(0), (4,))
    np.testing.assert_array_equal(p["w"], np.ones((4, 3)))
    np.testing.assert_array_equal(p["b"], np.full((3,), 0.5))
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(layer.apply(p, x), x @ np.ones((4, 3)) + 0.5)


@pytest.mark.slow
def test_vmapped_init_gives_independent_population():
    net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))
    keys = jax.random.split(jax.random.key(0), 5)
    pop = jax.vmap(net.init, in_axes=(0, None))(keys, (3,))
    assert pop["dense_0"]["w"].shape == (5, 3, 8)
    single = net.init(keys[2], (3,))
    # to float rounding: compiled without XLA's optimizations (conftest.py), a vmapped and a single
    # truncated normal may round an entry differently (1 ulp, measured); another key differs by ~1
    np.testing.assert_allclose(pop["dense_0"]["w"][2], single["dense_0"]["w"], rtol=1e-6)
    assert not np.allclose(pop["dense_0"]["w"][0], pop["dense_0"]["w"][1])


@pytest.mark.slow
def test_shape_error_names_the_layer_and_fix():
    net = nn.serial(nn.Dense(10), nn.Relu(), nn.Dense(5))
    with pytest.raises(nn.ShapeError, match=r"layer 'dense_0'.*Flatten"):
        net.init(jax.random.key(0), (28, 28))
    params = net.init(jax.random.key(0), (784,))
    with pytest.raises(
        nn.ShapeError, match=r"layer 'dense_0'.*expected input of shape \(\*batch, 784\), got \(32, 28\)"
    ):
        net.apply(params, jnp.ones((32, 28)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="features"):
        nn.Dense(0)
    with pytest.raises(TypeError, match="argument 1 must be a Layer"):
        nn.serial(nn.Dense(3), nn.Relu)
    with pytest.raises(ValueError, match="alpha"):
        nn.ELU(alpha=-1.0)
