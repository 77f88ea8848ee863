"""Dropout: rate is the probability of dropping, kept units are scaled by 1 / (1 - rate)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn


def test_identity_in_eval_mode_and_for_rate_zero():
    x = jax.random.normal(jax.random.key(0), (4, 7))
    layer = nn.Dropout(0.5)
    assert layer.init(jax.random.key(0), (7,)) == {}
    np.testing.assert_array_equal(layer.apply({}, x), x)
    np.testing.assert_array_equal(layer.apply({}, x, key=jax.random.key(1)), x)  # the key is ignored
    np.testing.assert_array_equal(nn.Dropout(0.0).apply({}, x, key=jax.random.key(1), train=True), x)
    np.testing.assert_array_equal(nn.Dropout(0).apply({}, x, train=True), x)  # needs no key: nothing to draw


@pytest.mark.parametrize("rate", [0.2, 0.7])
def test_rate_is_the_drop_probability_with_inverted_scaling(rate):
    n = 100_000
    y = np.asarray(nn.Dropout(rate).apply({}, jnp.ones(n), key=jax.random.key(3), train=True))
    dropped = np.mean(y == 0)
    sigma = math.sqrt(rate * (1 - rate) / n)
    assert abs(dropped - rate) < 3 * sigma
    assert abs(y.mean() - 1.0) < 3 * sigma / (1 - rate)  # mean kept at 1: E[mask] / (1 - rate) = 1
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / (1 - rate)], rtol=1e-7)


def test_kept_values_are_exactly_x_over_keep():
    rate = 0.3
    x = np.asarray(jax.random.normal(jax.random.key(0), (50, 20)))
    y = np.asarray(nn.Dropout(rate).apply({}, jnp.asarray(x), key=jax.random.key(1), train=True))
    kept = y != 0
    assert 0 < kept.mean() < 1
    # x / (1 - rate) up to float32 rounding (computed as x * (1 / (1 - rate)), jitted or not).
    np.testing.assert_allclose(y[kept], (x.astype(np.float64) / (1 - rate))[kept], rtol=2e-7)
    np.testing.assert_array_equal(
        jax.jit(lambda v: nn.Dropout(rate).apply({}, v, key=jax.random.key(1), train=True))(x), y
    )


def test_keys_give_different_masks_also_across_a_vmapped_population():
    layer = nn.Dropout(0.5)
    x = jnp.ones((200,))
    a = layer.apply({}, x, key=jax.random.key(0), train=True)
    b = layer.apply({}, x, key=jax.random.key(1), train=True)
    assert not np.array_equal(a == 0, b == 0)
    keys = jax.random.split(jax.random.key(2), 4)
    pop = jax.jit(jax.vmap(lambda k: layer.apply({}, x, key=k, train=True)))(keys)
    masks = np.asarray(pop) == 0
    assert all(not np.array_equal(masks[i], masks[j]) for i in range(4) for j in range(i + 1, 4))
    np.testing.assert_array_equal(pop[1], layer.apply({}, x, key=keys[1], train=True))


def test_inside_serial_each_dropout_gets_its_own_key():
    net = nn.serial(nn.Dropout(0.5), nn.Dropout(0.5))
    y = np.asarray(net.apply({"dropout_0": {}, "dropout_1": {}}, jnp.ones(10_000), key=jax.random.key(0), train=True))
    # Two independent masks keep a quarter of the units at 4x; one mask reused would keep half.
    assert abs(np.mean(y != 0) - 0.25) < 0.02
    assert set(np.unique(y)) == {0.0, 4.0}


def test_training_without_key_is_an_error_naming_dropout_and_key():
    with pytest.raises(nn.LayerError, match=r"Dropout.*needs a key.*pass key= to apply"):
        nn.Dropout(0.5).apply({}, jnp.ones(3), train=True)
    net = nn.serial(nn.Dense(3), nn.Dropout(0.5))
    params = net.init(jax.random.key(0), (2,))
    with pytest.raises(nn.LayerError, match=r"layer 'dropout_1': Dropout.*key"):
        net.apply(params, jnp.ones((4, 2)), train=True)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "a", None, True, float("nan")])
def test_bad_rates(rate):
    with pytest.raises(ValueError, match=r"Dropout: rate must be in \[0, 1\).*got rate="):
        nn.Dropout(rate)
