import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import losses


def _rand(seed, shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_mse_and_sse_match_loops():
    y_hat, y = _rand(0, (7, 3)), _rand(1, (7, 3))
    m = y.shape[0]
    sq = 0.0
    for i in range(m):
        for k in range(y.shape[1]):
            sq += (y_hat[i, k] - y[i, k]) ** 2
    np.testing.assert_allclose(losses.mse(y_hat, y), sq / (2 * m), rtol=1e-5)
    np.testing.assert_allclose(losses.sse(y_hat, y), sq / 2, rtol=1e-5)
    np.testing.assert_allclose(losses.error(y_hat, y), y_hat - y)


def test_asymmetric_penalises_under_prediction():
    y = np.zeros((4, 1), np.float32)
    under = losses.asymmetric_mse(y - 1.0, y, under_weight=3.0)
    over = losses.asymmetric_mse(y + 1.0, y, under_weight=3.0)
    assert float(under) == pytest.approx(3 * float(over))
    assert float(losses.asymmetric_mse(y + 1.0, y, 1.0, 1.0)) == pytest.approx(float(losses.mse(y + 1.0, y)))


def test_weighted_bce_penalises_false_negatives():
    logits = jnp.array([-2.0, 2.0])
    fn = losses.weighted_binary_cross_entropy(logits[:1], jnp.array([1.0]), fn_weight=5.0)
    fp = losses.weighted_binary_cross_entropy(logits[1:], jnp.array([0.0]), fn_weight=5.0)
    assert float(fn) == pytest.approx(5 * float(fp), rel=1e-5)


@pytest.mark.slow
def test_cross_entropy_and_accuracy():
    logits = _rand(2, (5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ref = -np.mean(np.log(p[np.arange(5), labels]))
    np.testing.assert_allclose(losses.softmax_cross_entropy(logits, labels), ref, rtol=1e-5)
    assert float(losses.accuracy(logits, labels)) == pytest.approx(np.mean(logits.argmax(1) == labels))
    z, t = _rand(3, (6,)), (np.arange(6) % 2).astype(np.float32)
    s = 1 / (1 + np.exp(-z))
    ref = -np.mean(t * np.log(s) + (1 - t) * np.log(1 - s))
    np.testing.assert_allclose(losses.binary_cross_entropy(z, t), ref, rtol=1e-5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        losses.mse(jnp.zeros((3, 2)), jnp.zeros((3,)))
    with pytest.raises(ValueError, match="labels must have shape"):
        losses.softmax_cross_entropy(jnp.zeros((3, 2)), jnp.zeros((4,), jnp.int32))
