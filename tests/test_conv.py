import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import conv, kernels, nn, windows

COURSE = np.array([[7, 3, 5, 2], [8, 7, 1, 6], [4, 9, 3, 9], [0, 8, 4, 5]], np.float32)


def _explicit(padding, n_hw, k_hw, s_hw):
    """Independent reading of the padding forms (SAME written out from its definition)."""
    if padding == "VALID":
        return [(0, 0), (0, 0)]
    if padding == "SAME":
        out = []
        for n, k, s in zip(n_hw, k_hw, s_hw, strict=True):
            want = -(-n // s)
            total = max(0, (want - 1) * s + k - n)
            out.append((total // 2, total - total // 2))
        return out
    if isinstance(padding, int):
        return [(padding, padding)] * 2
    return [tuple(p) for p in padding]


def ref_conv(x, w, b, s, pads):
    """Brute-force loops: x (N, H, W, C), w (kh, kw, C, F)."""
    n, h, wd, _ = x.shape
    kh, kw, _, f = w.shape
    xp = np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
    ho = (h + sum(pads[0]) - kh) // s[0] + 1
    wo = (wd + sum(pads[1]) - kw) // s[1] + 1
    y = np.zeros((n, ho, wo, f))
    for bi, i, j, fo in itertools.product(range(n), range(ho), range(wo), range(f)):
        patch = xp[bi, i * s[0] : i * s[0] + kh, j * s[1] : j * s[1] + kw, :]
        y[bi, i, j, fo] = np.sum(patch * w[:, :, :, fo]) + b[fo]
    return y


PADS = ["VALID", "SAME", 1, ((0, 2), (1, 0))]


@pytest.mark.parametrize(
    "hw,k,s,padding", [(hw, k, s, p) for hw in [(5, 5), (6, 7)] for k in [1, 2, 3] for s in [1, 2, 3] for p in PADS]
)
@pytest.mark.slow
def test_conv_matches_loops(hw, k, s, padding):
    rng = np.random.default_rng(hash((hw, k, s, str(padding))) % 2**32)
    x = rng.normal(size=(2,) + hw + (3,)).astype(np.float32)
    w = rng.normal(size=(k, k, 3, 2)).astype(np.float32)
    b = rng.normal(size=(2,)).astype(np.float32)
    pads = _explicit(padding, hw, (k, k), (s, s))
    got = conv.conv2d(x, w, b, s, padding)
    np.testing.assert_allclose(got, ref_conv(x, w, b, (s, s), pads), rtol=1e-4, atol=1e-4)
    expect_hw = tuple(windows.output_size(n, k, s, sum(p)) for n, p in zip(hw, pads, strict=True))
    assert got.shape == (2,) + expect_hw + (2,)
    assert windows.output_hw(hw, (k, k), s, padding) == expect_hw


def test_single_image_and_extra_batch_axes():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    x = rng.normal(size=(2, 3, 8, 8, 2)).astype(np.float32)
    batched = conv.conv2d(x, w, stride=2, padding="SAME")
    assert batched.shape == (2, 3, 4, 4, 4)
    np.testing.assert_allclose(conv.conv2d(x[1, 2], w, stride=2, padding="SAME"), batched[1, 2], rtol=1e-5)


@pytest.mark.slow
def test_layers_shapes_and_params():
    layer = nn.Conv2D(5, (3, 2), stride=(2, 1), padding=1)
    p = layer.init(jax.random.key(0), (9, 8, 3))
    assert p["w"].shape == (3, 2, 3, 5) and p["b"].shape == (5,)
    for batch in [(), (4,), (2, 3)]:
        y = layer.apply(p, jnp.ones(batch + (9, 8, 3)))
        assert y.shape == batch + layer.output_shape((9, 8, 3))
    for pool in [nn.MaxPool(2), nn.AvgPool(3, stride=1, padding="SAME"), nn.MaxPool((2, 3), padding=((1, 0), (0, 2)))]:
        y = pool.apply({}, jnp.ones((2, 9, 8, 3)))
        assert y.shape == (2,) + pool.output_shape((9, 8, 3))
    assert nn.MaxPool(2).output_shape((28, 28, 6)) == (14, 14, 6)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: conv.conv2d(jnp.ones((5, 5)), jnp.ones((3, 3, 1, 1))), "rank 2"),
        (lambda: conv.conv2d(jnp.ones((1, 3, 3, 1)), jnp.ones((5, 5, 1, 1))), "larger than the padded input"),
        (lambda: conv.conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1)), stride=0), "stride"),
        (lambda: conv.conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1)), padding="FULL"), "padding"),
        (lambda: conv.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 1, 1))), "3 channels"),
        (lambda: nn.Conv2D(4, 3, padding="same-ish"), "padding"),
        (lambda: nn.Conv2D(4, 3).init(jax.random.key(0), (28, 28)), "channel axis"),
        (lambda: nn.MaxPool(0), "window"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_classic_kernels():
    rng = np.random.default_rng(3)
    img = rng.uniform(size=(9, 9)).astype(np.float32)
    np.testing.assert_allclose(kernels.apply_kernel(img, kernels.identity), img, rtol=1e-6)
    assert kernels.gaussian_blur.sum() == pytest.approx(1.0)
    flat = np.full((9, 9), 0.7, np.float32)
    np.testing.assert_allclose(kernels.apply_kernel(flat, kernels.gaussian_blur, "VALID"), 0.7, rtol=1e-6)
    np.testing.assert_allclose(kernels.apply_kernel(flat, kernels.sharpen, "VALID"), 0.7, rtol=1e-6)
    np.testing.assert_allclose(kernels.apply_kernel(flat, kernels.edge_detection, "VALID"), 0.0, atol=1e-6)
    step = np.zeros((9, 9), np.float32)
    step[:, 5:] = 1.0
    edges = np.asarray(kernels.apply_kernel(step, kernels.edge_detection, "VALID"))
    assert np.abs(edges[:, 3:5]).min() > 0  # the columns beside the edge respond
    assert np.abs(edges[:, :2]).max() == 0 and np.abs(edges[:, 5:]).max() == 0
    color = rng.uniform(size=(6, 6, 3)).astype(np.float32)
    out = kernels.apply_kernel(color, kernels.sharpen)
    assert out.shape == (6, 6, 3)
    np.testing.assert_allclose(out[..., 1], kernels.apply_kernel(color[..., 1], kernels.sharpen), rtol=1e-6)


# --- im2col vs lax.conv, pooling as blocks, scan vs loop -------------------------------------------

BATCHES = [(), (2,), (2, 3)]
IM2COL_CASES = [(s, k, p) for s in [1, 2, 3] for k in [1, 3, 5] for p in ["VALID", "SAME", ((2, 0), (1, 3))]] + [
    ((2, 1), (3, 5), "SAME"),
    ((1, 3), (5, 2), "VALID"),
    ((3, 2), (1, 3), ((1, 2), (0, 1))),
]  # non-square


def _conv_pair(f, x, w, g):
    """(y, dL/dx, dL/dw) with L = sum(f(x, w) * g), for impl "xla", "im2col" and "mixed" (one jitted program)."""

    def both(x, w, g):
        out = []
        for impl in ["xla", "im2col", "mixed"]:
            fn = lambda x, w, impl=impl: f(x, w, impl=impl)
            out.append((fn(x, w),) + jax.grad(lambda x, w, fn=fn: jnp.sum(fn(x, w) * g), argnums=(0, 1))(x, w))
        return out

    return jax.jit(both)(x, w, g)


@pytest.mark.slow
@pytest.mark.parametrize("i,case", list(enumerate(IM2COL_CASES)))
def test_im2col_conv2d_equals_lax_conv_with_gradients(i, case):
    s, k, padding = case
    c_in, batch = [1, 3][i % 2], BATCHES[i % 3]  # every (C_in, batch) pair appears across the cases
    rng = np.random.default_rng(i)
    x = jnp.asarray(rng.normal(size=batch + (7, 8, c_in)), jnp.float32)
    k_hw = windows.pair(k, "kernel")
    w = jnp.asarray(rng.normal(size=k_hw + (c_in, 4)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
    out_hw = windows.output_hw((7, 8), k_hw, s, padding)
    g = jnp.asarray(rng.normal(size=batch + out_hw + (4,)), jnp.float32)
    with jax.default_matmul_precision("highest"):
        (y0, dx0, dw0), *others = _conv_pair(lambda x, w, **kw: conv.conv2d(x, w, b, s, padding, **kw), x, w, g)
    for y1, dx1, dw1 in others:  # im2col, then mixed (XLA's forward, im2col's gradients)
        assert y1.shape == y0.shape == batch + out_hw + (4,)
        for got, want in [(y1, y0), (dx1, dx0), (dw1, dw0)]:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_im2col_under_vmap_over_a_population_of_weights():
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(2, 9, 9, 3)), jnp.float32)
    xs = jnp.asarray(rng.normal(size=(4, 2, 9, 9, 3)), jnp.float32)
    ws = jnp.asarray(rng.normal(size=(4, 3, 3, 3, 5)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(4, 2, 5, 5, 5)), jnp.float32)

    def run(impl):
        f = lambda x, w: conv.conv2d(x, w, stride=2, padding="SAME", impl=impl)
        shared = jax.vmap(f, in_axes=(None, 0))(x, ws)  # one input, a population of kernels
        own = jax.vmap(f)(xs, ws)  # each member its own input (as after the first layer)
        grads = jax.vmap(jax.grad(lambda x, w, g: jnp.sum(f(x, w) * g), argnums=(0, 1)))(xs, ws, g)
        return (shared, own) + grads

    with jax.default_matmul_precision("highest"):
        want = jax.jit(run, static_argnums=0)("xla")
        for impl in ["im2col", "mixed"]:
            got = jax.jit(run, static_argnums=0)(impl)
            assert got[0].shape == (4, 2, 5, 5, 5)
            for a, b in zip(got, want, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
        got = jax.jit(run, static_argnums=0)("im2col")
    np.testing.assert_allclose(got[0][1], conv.conv2d(x, ws[1], stride=2, padding="SAME"), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_auto_is_mixed_on_cpu_and_impl_is_validated():
    assert conv.resolve_impl("auto") == ("mixed" if jax.default_backend() == "cpu" else "xla")
    assert conv.resolve_impl("xla") == "xla" and conv.resolve_impl("im2col") == "im2col"
    x, w = jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1))
    for bad in ["eigen", "XLA", None, 1]:
        with pytest.raises(ValueError, match=r"impl must be one of 'auto', 'xla', 'im2col', 'mixed', got impl="):
            conv.conv2d(x, w, impl=bad)
    with pytest.raises(ValueError, match=r"Conv2D: impl must be one of .*got impl='fast'"):
        nn.Conv2D(4, 3, impl="fast")
    layer = nn.Conv2D(2, 3, padding="SAME", impl="xla")
    p = layer.init(jax.random.key(0), (6, 6, 1))
    assert jax.tree.map(jnp.shape, p) == {"w": (3, 3, 1, 2), "b": (2,)}
    xi = jax.random.normal(jax.random.key(1), (2, 6, 6, 1))
    with jax.default_matmul_precision("highest"):
        np.testing.assert_allclose(
            layer.apply(p, xi), nn.Conv2D(2, 3, padding="SAME", impl="im2col").apply(p, xi), rtol=1e-5, atol=1e-6
        )


def _small_cnn(impl="auto"):
    return nn.serial(
        nn.Conv2D(4, 3, padding="SAME", impl=impl),
        nn.Relu(),
        nn.MaxPool(2),
        nn.Conv2D(6, 3, stride=2, impl=impl),
        nn.Relu(),
        nn.Flatten(ndim=3),
        nn.Dense(5),
    )


@pytest.mark.slow
def test_scanned_training_steps_equal_the_python_loop():
    import optax

    from funcnn import losses, train

    rng = np.random.default_rng(8)
    xs = jnp.asarray(rng.normal(size=(3, 6, 10, 10, 1)), jnp.float32)
    ys = jnp.asarray(rng.integers(0, 5, size=(3, 6)))
    tx = optax.adam(1e-2)
    params = _small_cnn().init(jax.random.key(0), (10, 10, 1))

    def run(impl, scan):
        step = train.make_train_step(_small_cnn(impl), losses.softmax_cross_entropy, tx)
        state = train.init_state(params, tx)
        if scan:
            return jax.jit(lambda s: jax.lax.scan(step, s, (xs, ys)))(state)
        jitted, losses_ = jax.jit(step), []
        for i in range(3):
            state, m = jitted(state, (xs[i], ys[i]))
            losses_.append(m["loss"])
        return state, {"loss": jnp.stack(losses_)}

    scanned, loop = run("auto", True), run("auto", False)
    assert int(scanned[0].step) == 3
    assert not np.allclose(scanned[0].params["conv2d_0"]["w"], params["conv2d_0"]["w"])  # it trained
    for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(loop), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with jax.default_matmul_precision("highest"):
        xla_loop, im2col_scan = run("xla", False), run("im2col", True)
    for a, b in zip(jax.tree.leaves(im2col_scan), jax.tree.leaves(xla_loop), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("scan,expect_scan", [(None, True), (False, False)])
def test_fit_scans_conv_nets_by_default(monkeypatch, scan, expect_scan):
    from funcnn import train

    calls = []
    make_epoch = train.make_epoch
    monkeypatch.setattr(train.fitting, "make_epoch", lambda *a, **k: calls.append(1) or make_epoch(*a, **k))
    rng = np.random.default_rng(9)
    x = rng.normal(size=(12, 10, 10, 1)).astype(np.float32)
    y = rng.integers(0, 5, size=12)
    net = _small_cnn()
    params = net.init(jax.random.key(0), (10, 10, 1))
    state, history = train.fit(
        net, params, (x, y), (x, y), batch_size=6, key=jax.random.key(1), progress=False, scan=scan
    )
    assert bool(calls) == expect_scan
    assert int(state.step) == 2 and np.isfinite(history.train_loss[0])
