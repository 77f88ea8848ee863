import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import activations as act

GRID = jnp.linspace(-4.0, 4.0, 161)  # includes negatives, 0 and positives


@pytest.mark.parametrize("name", sorted(act.FUNCTIONS))
def test_analytic_derivative_matches_grad(name):
    f, df = act.get(name), act.derivative(name)
    auto = jax.vmap(jax.grad(lambda x: f(x)))(GRID)
    away = np.ones(GRID.shape, bool)
    for k in act.KINKS.get(name, ()):
        away &= np.abs(np.asarray(GRID) - k) > 1e-6
    np.testing.assert_allclose(np.asarray(df(GRID))[away], np.asarray(auto)[away], atol=1e-5)
    assert df(GRID).shape == GRID.shape


def test_values_against_closed_forms():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0], np.float32)
    np.testing.assert_allclose(act.sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(act.arctan(x), np.arctan(x), rtol=1e-6)
    np.testing.assert_allclose(act.binary_step(x), [0, 0, 1, 1, 1])
    np.testing.assert_allclose(act.relu(x), [0, 0, 0, 0.5, 2])
    np.testing.assert_allclose(act.prelu(x, 0.1), [-0.2, -0.05, 0, 0.5, 2], rtol=1e-6)
    np.testing.assert_allclose(act.elu(x, 1.0), np.where(x > 0, x, np.exp(x) - 1), rtol=1e-6)
    np.testing.assert_allclose(act.softplus(x), np.log1p(np.exp(x)), rtol=1e-6)


def test_binary_step_gradient_is_zero():
    assert float(jnp.abs(jax.vmap(jax.grad(act.binary_step))(GRID)).max()) == 0.0


def test_unknown_name():
    with pytest.raises(ValueError, match="name='swish'"):
        act.derivative("swish")
