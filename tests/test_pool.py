"""funcnn.pool: max and average pooling against brute-force loops; the reshape path against
reduce_window (values, gradients, ties, forward mode, vmap)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import conv, pool, windows
from tests.test_conv import COURSE, PADS, _explicit


def ref_pool(x, k, s, pads, kind):
    n, h, wd, c = x.shape
    ho = (h + sum(pads[0]) - k[0]) // s[0] + 1
    wo = (wd + sum(pads[1]) - k[1]) // s[1] + 1
    y = np.zeros((n, ho, wo, c))
    for bi, i, j, ch in itertools.product(range(n), range(ho), range(wo), range(c)):
        vals = []
        for p, q in itertools.product(range(k[0]), range(k[1])):
            r, cc = i * s[0] + p - pads[0][0], j * s[1] + q - pads[1][0]
            if 0 <= r < h and 0 <= cc < wd:  # only real (unpadded) inputs
                vals.append(x[bi, r, cc, ch])
        y[bi, i, j, ch] = max(vals) if kind == "max" else np.mean(vals)
    return y


def test_course_pooling_example():
    x = COURSE[None, :, :, None]
    np.testing.assert_array_equal(pool.max_pool(x, 2)[0, :, :, 0], [[8, 6], [9, 9]])
    np.testing.assert_allclose(pool.avg_pool(x, 2)[0, :, :, 0], [[6.25, 3.5], [5.25, 5.25]])


@pytest.mark.slow
@pytest.mark.parametrize(
    "hw,k,s,padding", [(hw, k, s, p) for hw in [(4, 4), (5, 7)] for k in [2, 3] for s in [None, 1, 2, 3] for p in PADS]
)
def test_pools_match_loops(hw, k, s, padding):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2,) + hw + (3,)).astype(np.float32)
    ss = (k, k) if s is None else (s, s)
    pads = _explicit(padding, hw, (k, k), ss)
    if any(p >= k for pr in pads for p in pr):
        return  # a window of padding alone has no real input to pool
    np.testing.assert_allclose(pool.max_pool(x, k, s, padding), ref_pool(x, (k, k), ss, pads, "max"), rtol=1e-6)
    np.testing.assert_allclose(
        pool.avg_pool(x, k, s, padding), ref_pool(x, (k, k), ss, pads, "avg"), rtol=1e-5, atol=1e-6
    )
    assert pool.max_pool(x, k, s, padding).shape[-1] == 3  # channels untouched


def test_bad_input():
    with pytest.raises(ValueError, match="larger than the padded input"):
        pool.max_pool(jnp.ones((1, 2, 2, 1)), 3)
    with pytest.raises(ValueError, match="window"):
        pool.avg_pool(jnp.ones((1, 4, 4, 1)), 0)


def test_conv_still_names_the_pools():
    with pytest.raises(AttributeError, match="no attribute 'min_pool'"):
        conv.min_pool  # noqa: B018


def _rw_pool(kind, x, window, stride=None, padding="VALID"):
    """The reduce_window path, whatever the shapes (the reference for the reshape path)."""
    x4, batch, window, strides, pads = pool._pool_args(x, window, stride, padding)
    if kind == "max":
        y = pool._reduce_window(x4, -jnp.inf, jax.lax.max, window, strides, pads)
    else:
        y = pool._reduce_window(x4, 0.0, jax.lax.add, window, strides, pads) / (window[0] * window[1])
    return y.reshape(batch + y.shape[1:])


@pytest.mark.parametrize(
    "window,hw,padding", [(2, (6, 8), "VALID"), (2, (7, 9), "VALID"), ((2, 3), (6, 9), "SAME"), (3, (9, 7), "VALID")]
)
def test_block_pooling_equals_reduce_window_with_gradients_and_ties(window, hw, padding):
    rng = np.random.default_rng(7)
    # ReLU-like input: many exact zeros, plus repeated values, so windows have tied maxima.
    x = np.maximum(rng.integers(-3, 3, size=(2, 3) + hw + (2,)), 0).astype(np.float32)
    x = jnp.asarray(x)
    wh = windows.pair(window, "window")
    assert pool._use_blocks(wh, wh, windows.resolve_padding(padding, hw, wh, wh)) == (jax.default_backend() == "cpu")
    out_shape = x.shape[:2] + windows.output_hw(hw, wh, wh, padding) + (2,)
    g = jnp.asarray(rng.normal(size=out_shape), jnp.float32)
    t = jnp.asarray(rng.normal(size=x.shape), jnp.float32)

    def results(pool):
        """Values, gradient, forward-mode tangent, and per-example gradients under vmap."""
        return (
            pool(x),
            jax.grad(lambda x: jnp.sum(pool(x) * g))(x),
            jax.jvp(pool, (x,), (t,))[1],
            jax.vmap(jax.grad(lambda x: jnp.sum(pool(x) ** 2)))(x),
        )

    for kind, fn in [("max", pool.max_pool), ("avg", pool.avg_pool)]:
        got = jax.jit(lambda fn=fn: results(lambda x: fn(x, window, padding=padding)))()
        want = jax.jit(lambda kind=kind: results(lambda x: _rw_pool(kind, x, window, padding=padding)))()
        assert got[0].shape == out_shape
        for a, b in zip(got, want, strict=True):
            if kind == "max":  # the same values; each window's gradient to its first maximum, as reduce_window
                np.testing.assert_array_equal(a, b)
            else:  # sums in another order
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
