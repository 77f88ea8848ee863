import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import conv, kernels, nn

COURSE = np.array([[7, 3, 5, 2], [8, 7, 1, 6], [4, 9, 3, 9], [0, 8, 4, 5]], np.float32)


def _explicit(padding, n_hw, k_hw, s_hw):
    """Independent reading of the padding forms (SAME written out from its definition)."""
    if padding == "VALID":
        return [(0, 0), (0, 0)]
    if padding == "SAME":
        out = []
        for n, k, s in zip(n_hw, k_hw, s_hw):
            want = -(-n // s)
            total = max(0, (want - 1) * s + k - n)
            out.append((total // 2, total - total // 2))
        return out
    if isinstance(padding, int):
        return [(padding, padding)] * 2
    return [tuple(p) for p in padding]


def ref_conv(x, w, b, s, pads):
    """Brute-force loops: x (N, H, W, C), w (kh, kw, C, F)."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    xp = np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])
    ho = (h + sum(pads[0]) - kh) // s[0] + 1
    wo = (wd + sum(pads[1]) - kw) // s[1] + 1
    y = np.zeros((n, ho, wo, f))
    for bi, i, j, fo in itertools.product(range(n), range(ho), range(wo), range(f)):
        patch = xp[bi, i * s[0] : i * s[0] + kh, j * s[1] : j * s[1] + kw, :]
        y[bi, i, j, fo] = np.sum(patch * w[:, :, :, fo]) + b[fo]
    return y


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
    np.testing.assert_array_equal(conv.max_pool(x, 2)[0, :, :, 0], [[8, 6], [9, 9]])
    np.testing.assert_allclose(conv.avg_pool(x, 2)[0, :, :, 0], [[6.25, 3.5], [5.25, 5.25]])


PADS = ["VALID", "SAME", 1, ((0, 2), (1, 0))]


@pytest.mark.parametrize("hw,k,s,padding", [
    (hw, k, s, p) for hw in [(5, 5), (6, 7)] for k in [1, 2, 3] for s in [1, 2, 3] for p in PADS
])
def test_conv_matches_loops(hw, k, s, padding):
    rng = np.random.default_rng(hash((hw, k, s, str(padding))) % 2**32)
    x = rng.normal(size=(2,) + hw + (3,)).astype(np.float32)
    w = rng.normal(size=(k, k, 3, 2)).astype(np.float32)
    b = rng.normal(size=(2,)).astype(np.float32)
    pads = _explicit(padding, hw, (k, k), (s, s))
    got = conv.conv2d(x, w, b, s, padding)
    np.testing.assert_allclose(got, ref_conv(x, w, b, (s, s), pads), rtol=1e-4, atol=1e-4)
    expect_hw = tuple(conv.output_size(n, k, s, sum(p)) for n, p in zip(hw, pads))
    assert got.shape == (2,) + expect_hw + (2,)
    assert conv.output_hw(hw, (k, k), s, padding) == expect_hw


@pytest.mark.parametrize("hw,k,s,padding", [
    (hw, k, s, p) for hw in [(4, 4), (5, 7)] for k in [2, 3] for s in [None, 1, 2, 3] for p in PADS
])
def test_pools_match_loops(hw, k, s, padding):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2,) + hw + (3,)).astype(np.float32)
    ss = (k, k) if s is None else (s, s)
    pads = _explicit(padding, hw, (k, k), ss)
    if any(p >= k for pr in pads for p in pr):
        return  # a window of padding alone has no real input to pool
    np.testing.assert_allclose(conv.max_pool(x, k, s, padding), ref_pool(x, (k, k), ss, pads, "max"), rtol=1e-6)
    np.testing.assert_allclose(conv.avg_pool(x, k, s, padding), ref_pool(x, (k, k), ss, pads, "avg"), rtol=1e-5, atol=1e-6)
    assert conv.max_pool(x, k, s, padding).shape[-1] == 3  # channels untouched


def test_single_image_and_extra_batch_axes():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    x = rng.normal(size=(2, 3, 8, 8, 2)).astype(np.float32)
    batched = conv.conv2d(x, w, stride=2, padding="SAME")
    assert batched.shape == (2, 3, 4, 4, 4)
    np.testing.assert_allclose(conv.conv2d(x[1, 2], w, stride=2, padding="SAME"), batched[1, 2], rtol=1e-5)


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


@pytest.mark.parametrize("call,match", [
    (lambda: conv.conv2d(jnp.ones((5, 5)), jnp.ones((3, 3, 1, 1))), "rank 2"),
    (lambda: conv.conv2d(jnp.ones((1, 3, 3, 1)), jnp.ones((5, 5, 1, 1))), "larger than the padded input"),
    (lambda: conv.conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1)), stride=0), "stride"),
    (lambda: conv.conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1)), padding="FULL"), "padding"),
    (lambda: conv.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 1, 1))), "3 channels"),
    (lambda: conv.max_pool(jnp.ones((1, 2, 2, 1)), 3), "larger than the padded input"),
    (lambda: nn.Conv2D(4, 3, padding="same-ish"), "padding"),
    (lambda: nn.Conv2D(4, 3).init(jax.random.key(0), (28, 28)), "channel axis"),
    (lambda: nn.MaxPool(0), "window"),
])
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
