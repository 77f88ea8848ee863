"""Conv1D (vs loops), Conv2D(use_bias=False), GlobalAvgPool, Reshape, and output_shape for the new layers."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import conv, nn, windows


def same_pads(n, k, s):
    """SAME written out from its definition: ceil(n / s) outputs, the extra padding at the end."""
    total = max(0, (-(-n // s) - 1) * s + k - n)
    return (total // 2, total - total // 2)


def ref_conv1d(x, w, b, s, pads):
    """Brute-force loops: x (N, L, C), w (k, C, F), b (F,) or None."""
    n, length, _ = x.shape
    k, _, f = w.shape
    xp = np.pad(x, [(0, 0), pads, (0, 0)])
    lo = (length + sum(pads) - k) // s + 1
    y = np.zeros((n, lo, f))
    for bi, i, fo in itertools.product(range(n), range(lo), range(f)):
        y[bi, i, fo] = np.sum(xp[bi, i * s : i * s + k, :] * w[:, :, fo]) + (0.0 if b is None else b[fo])
    return y


@pytest.mark.slow
@pytest.mark.parametrize(
    "length,k,s,padding,use_bias",
    [
        (length, k, s, p, bias)
        for length in [7, 8]
        for k in [1, 3]
        for s in [1, 2]
        for p in ["VALID", "SAME", (2, 1)]
        for bias in [True, False]
    ],
)
def test_conv1d_layer_matches_loops(length, k, s, padding, use_bias):
    rng = np.random.default_rng(length * 100 + k * 10 + s)
    layer = nn.Conv1D(4, k, stride=s, padding=padding, use_bias=use_bias, b_init=jax.nn.initializers.normal(1.0))
    params = layer.init(jax.random.key(0), (length, 3))
    assert sorted(params) == (["b", "w"] if use_bias else ["w"])
    assert params["w"].shape == (k, 3, 4)
    x = rng.normal(size=(2, length, 3)).astype(np.float32)
    pads = same_pads(length, k, s) if padding == "SAME" else (0, 0) if padding == "VALID" else padding
    want = ref_conv1d(x, np.asarray(params["w"]), np.asarray(params["b"]) if use_bias else None, s, pads)
    got = layer.apply(params, jnp.asarray(x))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert got.shape[1:] == layer.output_shape((length, 3))
    if padding == "SAME":
        assert got.shape[1] == -(-length // s)


def test_conv1d_function_batch_axes_and_errors():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 9, 2)).astype(np.float32)
    w = rng.normal(size=(3, 2, 5)).astype(np.float32)
    y = conv.conv1d(x, w, stride=2, padding=1)
    assert y.shape == (2, 3, 5, 5)
    np.testing.assert_allclose(conv.conv1d(x[1, 2], w, stride=2, padding=1), y[1, 2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[0], ref_conv1d(x[0], w, None, 2, (1, 1)), rtol=1e-4, atol=1e-4)
    assert windows.output_len(9, 3, 2, 1) == 5


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: conv.conv1d(jnp.ones((5,)), jnp.ones((3, 1, 1))), "rank 1"),
        (lambda: conv.conv1d(jnp.ones((2, 5, 3)), jnp.ones((3, 1, 1))), "3 channels"),
        (lambda: conv.conv1d(jnp.ones((2, 2, 1)), jnp.ones((3, 1, 1))), "larger than the padded input"),
        (lambda: conv.conv1d(jnp.ones((2, 5, 1)), jnp.ones((3, 3, 1, 1))), r"kernel w must be \(k, C_in, C_out\)"),
        (lambda: nn.Conv1D(4, 0), "kernel_size"),
        (lambda: nn.Conv1D(4, 3, stride=(1, 1)), "stride"),
        (lambda: nn.Conv1D(4, 3, padding="FULL"), "padding"),
        (lambda: nn.Conv1D(4, 3, padding=((1, 1), (1, 1))), "padding"),
        (lambda: nn.Conv1D(0, 3), "features"),
        (lambda: nn.Conv1D(4, 3, use_bias=1), "use_bias"),
        (lambda: nn.Conv2D(4, 3, use_bias="no"), "use_bias"),
        (
            lambda: nn.Conv1D(4, 3).init(jax.random.key(0), (28, 28, 1)),
            r"Conv1D: expected a sequence input shape \(L, C\)",
        ),
        (
            lambda: nn.serial(nn.Conv1D(4, 9)).init(jax.random.key(0), (5, 1)),
            r"layer 'conv1d_0': Conv1D: kernel size 9 is larger",
        ),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.slow
def test_conv2d_without_bias_equals_the_biased_conv_with_zero_bias():
    layer = nn.Conv2D(5, 3, padding="SAME", use_bias=False)
    params = layer.init(jax.random.key(0), (6, 6, 2))
    assert jax.tree.map(jnp.shape, params) == {"w": (3, 3, 2, 5)}
    biased = nn.Conv2D(5, 3, padding="SAME")
    assert jax.tree.map(jnp.shape, biased.init(jax.random.key(0), (6, 6, 2))) == {"w": (3, 3, 2, 5), "b": (5,)}
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 2))
    np.testing.assert_array_equal(layer.apply(params, x), biased.apply({"w": params["w"], "b": jnp.zeros(5)}, x))


def test_he_normal_as_pytorch_kaiming_normal():
    w = nn.Conv2D(64, 3, w_init=jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")).init(
        jax.random.key(0), (8, 8, 32)
    )["w"]
    want = np.sqrt(2.0 / (3 * 3 * 32))  # std = sqrt(2 / fan_in), fan_in = kh * kw * C_in
    assert abs(float(jnp.std(w)) - want) < 0.03 * want
    assert float(jnp.max(jnp.abs(w))) > 3 * want  # untruncated, unlike jax.nn.initializers.he_normal()


def test_global_avg_pool_matches_numpy_mean():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 5, 6, 4)).astype(np.float32)
    pool = nn.GlobalAvgPool()
    assert pool.init(jax.random.key(0), (5, 6, 4)) == {}
    np.testing.assert_allclose(pool.apply({}, jnp.asarray(x)), x.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pool.apply({}, jnp.asarray(x[0, 0])), x[0, 0].mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)
    seq = x[:, 0, 0]  # (2, 6, 4) as (batch, L, C)
    np.testing.assert_allclose(nn.GlobalAvgPool(1).apply({}, jnp.asarray(seq)), seq.mean(axis=1), rtol=1e-5, atol=1e-6)
    with pytest.raises(nn.ShapeError, match=r"expected an input shape \(H, W, C\), got \(6, 4\).*spatial_dims=1"):
        pool.output_shape((6, 4))
    with pytest.raises(ValueError, match="spatial_dims"):
        nn.GlobalAvgPool(0)


def test_reshape_round_trip_and_bad_size():
    x = jnp.arange(2 * 24, dtype=jnp.float32).reshape(2, 24)
    net = nn.serial(nn.Reshape((4, 3, 2)), nn.Flatten())
    params = net.init(jax.random.key(0), (24,))
    mid = nn.Reshape((4, 3, 2)).apply({}, x)
    np.testing.assert_array_equal(mid, np.arange(48).reshape(2, 4, 3, 2))
    np.testing.assert_array_equal(net.apply(params, x), x)
    anybatch = nn.Reshape((6, 4), ndim=1)
    assert anybatch.apply({}, jnp.ones((5, 2, 24))).shape == (5, 2, 6, 4)
    with pytest.raises(
        nn.ShapeError, match=r"layer 'reshape_0'.*input shape \(25,\) \(25 values\) to shape \(4, 6\) \(24 values\)"
    ):
        nn.serial(nn.Reshape((4, 6))).init(jax.random.key(0), (25,))
    with pytest.raises(nn.ShapeError, match=r"Reshape: cannot reshape input \(3, 25\)"):
        nn.Reshape((4, 6)).apply({}, jnp.ones((3, 25)))
    for bad in [(), (4, 0), 5, (2.0, 3)]:
        with pytest.raises(ValueError, match="Reshape: shape must be"):
            nn.Reshape(bad)


NEW_LAYERS = [
    (lambda: nn.Dropout(0.3), (5, 2)),
    (nn.LayerNorm, (4, 3)),
    (nn.GlobalAvgPool, (5, 6, 3)),
    (lambda: nn.GlobalAvgPool(1), (5, 3)),
    (lambda: nn.Conv1D(4, 3, stride=2, padding="SAME"), (9, 2)),
    (lambda: nn.Conv2D(4, 3, use_bias=False), (7, 7, 2)),
    (lambda: nn.Reshape((3, 2, 2)), (12,)),
    (nn.BatchNorm, (5, 5, 3)),
    (
        lambda: nn.serial(
            nn.Conv2D(4, 3, use_bias=False), nn.BatchNorm(), nn.Relu(), nn.GlobalAvgPool(), nn.Dropout(0.5), nn.Dense(3)
        ),
        (6, 6, 2),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("make,shape", NEW_LAYERS)
@pytest.mark.parametrize("batch", [(1,), (6,)])
@pytest.mark.parametrize("train", [False, True])
def test_output_shape_equals_apply(make, shape, batch, train):
    layer = make()
    params = layer.init(jax.random.key(1), shape)
    state = layer.init_state(shape)
    x = jax.random.normal(jax.random.key(2), batch + shape)
    y, _ = layer.apply_with_state(params, state, x, key=jax.random.key(3), train=train)
    assert y.shape == batch + layer.output_shape(shape)


# --- im2col vs lax.conv (1-D) ----------------------------------------------------------------------

BATCHES = [(), (2,), (2, 3)]
IM2COL_CASES = [(s, k, p) for s in [1, 2, 3] for k in [1, 3, 5] for p in ["VALID", "SAME", (2, 1)]]


@pytest.mark.slow
@pytest.mark.parametrize("i,case", list(enumerate(IM2COL_CASES)))
def test_im2col_conv1d_equals_lax_conv_with_gradients(i, case):
    s, k, padding = case
    c_in, batch = [1, 3][i % 2], BATCHES[i % 3]  # every (C_in, batch) pair appears across the cases
    rng = np.random.default_rng(i)
    x = jnp.asarray(rng.normal(size=batch + (11, c_in)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(k, c_in, 4)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
    n_out = windows.output_len(11, k, s, padding)
    g = jnp.asarray(rng.normal(size=batch + (n_out, 4)), jnp.float32)

    def both(x, w, g):
        out = []
        for impl in ["xla", "im2col", "mixed"]:
            fn = lambda x, w, impl=impl: conv.conv1d(x, w, b, s, padding, impl=impl)
            out.append((fn(x, w),) + jax.grad(lambda x, w, fn=fn: jnp.sum(fn(x, w) * g), argnums=(0, 1))(x, w))
        return out

    with jax.default_matmul_precision("highest"):
        want, *others = jax.jit(both)(x, w, g)
    for got in others:  # im2col, then mixed (XLA's forward, im2col's gradients)
        assert got[0].shape == batch + (n_out, 4)
        for a, b_ in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b_, rtol=1e-5, atol=1e-5)


def test_conv1d_im2col_under_vmap_and_layer_impl():
    rng = np.random.default_rng(3)
    xs = jnp.asarray(rng.normal(size=(4, 2, 12, 3)), jnp.float32)
    ws = jnp.asarray(rng.normal(size=(4, 3, 3, 5)), jnp.float32)

    def run(impl):
        f = lambda x, w: conv.conv1d(x, w, stride=2, padding=1, impl=impl)
        return (
            jax.vmap(f, in_axes=(None, 0))(xs[0], ws),
            jax.vmap(f)(xs, ws),
            jax.vmap(jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), argnums=(0, 1)))(xs, ws),
        )

    with jax.default_matmul_precision("highest"):
        want = jax.jit(run, static_argnums=0)("xla")
        for impl in ["im2col", "mixed"]:
            got = jax.jit(run, static_argnums=0)(impl)
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    with pytest.raises(
        ValueError, match=r"Conv1D: impl must be one of 'auto', 'xla', 'im2col', 'mixed', got impl='eigen'"
    ):
        nn.Conv1D(4, 3, impl="eigen")
    with pytest.raises(ValueError, match=r"impl must be one of"):
        conv.conv1d(xs[0], ws[0], impl="im2row")
    layer = nn.Conv1D(5, 3, stride=2, padding=1, impl="xla")
    params = layer.init(jax.random.key(0), (12, 3))
    assert jax.tree.map(jnp.shape, params) == {"w": (3, 3, 5), "b": (5,)}
    with jax.default_matmul_precision("highest"):
        np.testing.assert_allclose(
            layer.apply(params, xs[0]),
            nn.Conv1D(5, 3, stride=2, padding=1, impl="im2col").apply(params, xs[0]),
            rtol=1e-5,
            atol=1e-5,
        )
