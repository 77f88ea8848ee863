"""Named networks: ResNet-20 / VGG (OpenLTH's), conv2-6 with dropout, the MNIST-1D residual MLP and CNN."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import data, fit, losses, models, nn, train
from funcnn.nn import StateError
from tests.conftest import require_fashion_mnist


def _leaves(tree) -> dict:
    """{'a/b/w': shape} for every leaf of a params or state tree."""
    return {
        "/".join(str(k.key) for k in path): tuple(leaf.shape)
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


def _abstract_params(net, shape):
    return _leaves(jax.eval_shape(lambda: net.init(jax.random.key(0), shape)))


# ------------------------------------------------------------------------------------------------ ResNet


def test_resnet20_golden_param_names_and_shapes():
    p = _abstract_params(models.resnet20(), (28, 28, 1))
    assert p["conv2d_0/w"] == (3, 3, 1, 16) and "conv2d_0/b" not in p  # stem: no bias
    assert p["batchnorm_1/scale"] == (16,) and p["batchnorm_1/offset"] == (16,)
    assert p["residual_3/main/conv2d_0/w"] == (3, 3, 16, 16)
    assert p["residual_3/main/batchnorm_1/scale"] == (16,)
    assert p["residual_3/main/conv2d_3/w"] == (3, 3, 16, 16)
    assert p["residual_3/main/batchnorm_4/offset"] == (16,)
    assert p["residual_9/main/conv2d_0/w"] == (3, 3, 16, 32)  # first block of stage 2
    assert p["residual_9/shortcut/conv2d_0/w"] == (1, 1, 16, 32)
    assert p["residual_9/shortcut/batchnorm_1/scale"] == (32,)
    assert p["residual_15/main/conv2d_0/w"] == (3, 3, 32, 64)  # first block of stage 3
    assert p["residual_15/shortcut/conv2d_0/w"] == (1, 1, 32, 64)
    assert p["residual_19/main/conv2d_3/w"] == (3, 3, 64, 64)  # last block
    assert p["dense_22/w"] == (64, 10) and p["dense_22/b"] == (10,)
    # a projection shortcut exactly at the first blocks of stages 2 and 3; identity (no params) elsewhere
    with_shortcut = {k.split("/")[0] for k in p if "/shortcut/" in k}
    assert with_shortcut == {"residual_9", "residual_15"}
    blocks = sorted({k.split("/")[0] for k in p if k.startswith("residual_")}, key=lambda s: int(s.split("_")[1]))
    assert blocks == [f"residual_{3 + 2 * b}" for b in range(9)]
    # no conv carries a bias: every conv "b" would be pruned/decayed by mistake
    assert not [k for k in p if k.startswith(("conv2d", "residual")) and k.endswith("/b")]


def _resnet_weights_by_hand(c_in: int, widths=(16, 32, 64), n=3, n_classes=10) -> int:
    k = 3 * 3
    total = k * c_in * widths[0]  # stem
    prev = widths[0]
    for w in widths:
        for _ in range(n):
            total += k * prev * w + k * w * w  # two 3x3 convs
            if prev != w:
                total += prev * w  # 1x1 projection shortcut
            prev = w
    return total + widths[-1] * n_classes


def test_resnet20_weight_and_param_counts():
    # by hand: stem 9*16; stage 1: 6 convs of 9*16*16; stage 2: 9*16*32 + 5 of 9*32*32 + 1x1 16*32;
    # stage 3: 9*32*64 + 5 of 9*64*64 + 1x1 32*64; fc 64*10
    assert 144 + 6 * 2304 + (4608 + 5 * 9216 + 512) + (18432 + 5 * 36864 + 2048) + 640 == 270_608
    assert _resnet_weights_by_hand(1) == 270_608 and _resnet_weights_by_hand(3) == 270_896  # OpenLTH's "~271K"
    for c_in, expected in ((1, 270_608), (3, 270_896)):
        p = _abstract_params(models.resnet20(), (28, 28, c_in))
        weights = sum(math.prod(s) for k, s in p.items() if k.endswith("/w"))
        assert weights == expected
        bn_channels = 16 + 6 * 16 + (6 * 32 + 32) + (6 * 64 + 64)  # stem, 2 per block, shortcuts' BN
        assert sum(math.prod(s) for s in p.values()) == expected + 2 * bn_channels + 10
    assert _resnet_weights_by_hand(1, (4, 8, 16), 1) == sum(
        math.prod(s) for k, s in _abstract_params(models.resnet(8, 4), (28, 28, 1)).items() if k.endswith("/w")
    )


def test_resnet_state_names():
    net = models.resnet20()
    s = _leaves(jax.eval_shape(lambda: net.init_state((28, 28, 1))))
    assert s["batchnorm_1/mean"] == (16,) and s["batchnorm_1/var"] == (16,)
    assert s["residual_9/shortcut/batchnorm_1/var"] == (32,)
    assert s["residual_19/main/batchnorm_4/mean"] == (64,)
    assert all(k.endswith(("/mean", "/var")) for k in s)
    # one (mean, var) pair per BatchNorm: 1 stem + 2 per block * 9 + 2 shortcuts
    assert len(s) == 2 * (1 + 18 + 2)
    assert {k.rsplit("/", 1)[0] for k in s} == {
        k.rsplit("/", 1)[0] for k in _abstract_params(net, (28, 28, 1)) if "batchnorm" in k.rsplit("/", 2)[-2]
    }


@pytest.fixture(scope="module")
def resnet20_params():
    """ResNet-20's params for 1-channel images (any H, W), made once for the tests below."""
    return jax.jit(models.resnet20().init, static_argnums=1)(jax.random.key(0), (28, 28, 1))


@pytest.mark.slow
def test_resnet_init_follows_openlth(resnet20_params):
    p = resnet20_params
    w = np.asarray(p["residual_19"]["main"]["conv2d_3"]["w"])  # 36,864 weights
    std = math.sqrt(2.0 / (3 * 3 * 64))
    assert abs(w.std() / std - 1) < 0.03
    assert np.abs(w).max() > 3 * std  # untruncated (kaiming_normal_): jax's he_normal stops near 2 std
    bns = [v for _, v in _bn_params(p)]
    assert len(bns) == 21
    scales = np.concatenate([np.asarray(v["scale"]) for v in bns])
    offsets = np.concatenate([np.asarray(v["offset"]) for v in bns])
    assert scales.min() >= 0 and scales.max() < 1 and 0.4 < scales.mean() < 0.6  # U[0, 1)
    assert np.all(offsets == 0)
    assert np.all(np.asarray(p["dense_22"]["b"]) == 0)


def _bn_params(tree, prefix=""):
    for k, v in tree.items():
        if k.startswith("batchnorm_"):
            yield prefix + k, v
        elif isinstance(v, dict):
            yield from _bn_params(v, prefix + k + "/")


@pytest.mark.slow
def test_resnet_apply_needs_state_and_modes(resnet20_params):
    net, params = models.resnet20(), resnet20_params
    shape = (8, 8, 1)  # small images: the params fit any H, W
    state = net.init_state(shape)
    x = jax.random.uniform(jax.random.key(1), (4,) + shape)
    with pytest.raises(StateError, match="apply_with_state"):
        net.apply(params, x)
    run = jax.jit(net.apply_with_state, static_argnames="train")
    y, trained = run(params, state, x, train=True)
    assert y.shape == (4, 10)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state, trained)
    assert all(jax.tree.leaves(changed))  # every running mean and var moved
    y_eval, same = run(params, trained, x, train=False)
    assert y_eval.shape == (4, 10)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), trained, same))
    assert not np.allclose(y, y_eval)  # batch statistics vs running statistics


def test_resnet_shapes_and_depths():
    for shape in ((28, 28, 1), (32, 32, 3), (9, 13, 2)):
        net = models.resnet(14, 8, n_classes=7)
        assert net.output_shape(shape) == (7,)
        y = jax.eval_shape(
            lambda net=net, shape=shape: net.apply_with_state(
                net.init(jax.random.key(0), shape), net.init_state(shape), jnp.zeros((2,) + shape), train=True
            )[0]
        )
        assert y.shape == (2, 7)
    # depth 6n + 2: n blocks per stage
    assert len([k for k in _abstract_params(models.resnet(32), (28, 28, 1)) if k.endswith("main/conv2d_0/w")]) == 15
    for bad in (21, 6, 0, 20.0):
        with pytest.raises(ValueError, match="depth"):
            models.resnet(bad)


@pytest.mark.slow
def test_build_new_names():
    for name in ("resnet20", "vgg11", "vgg16", "resmlp", "mnist1d_cnn"):
        assert name in models.MODELS and isinstance(models.build(name), nn.Layer)
    p = _abstract_params(models.build("resnet-8-4"), (28, 28, 1))
    assert p["conv2d_0/w"] == (3, 3, 1, 4) and p["dense_10/w"] == (16, 10)
    with pytest.raises(ValueError, match="depth"):
        models.build("resnet-21-16")
    with pytest.raises(ValueError, match="resnet-D-W"):
        models.build("resnet-x")


# ------------------------------------------------------------------------------------------------ VGG


def test_vgg16_output_shapes_and_structure():
    net = models.vgg16()
    for shape in ((28, 28, 1), (32, 32, 3)):
        assert net.output_shape(shape) == (10,)
        params = jax.eval_shape(lambda shape=shape: net.init(jax.random.key(0), shape))
        y = jax.eval_shape(
            lambda p, shape=shape: net.apply_with_state(p, net.init_state(shape), jnp.zeros((2,) + shape))[0], params
        )
        assert y.shape == (2, 10)
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("conv2d") == 13 and kinds.count("batchnorm") == 13 and kinds.count("maxpool") == 4
    p = _abstract_params(net, (32, 32, 3))
    assert p["conv2d_0/w"] == (3, 3, 3, 64) and p["conv2d_0/b"] == (64,)  # convs keep their bias
    last = f"dense_{len(net.layers) - 1}"
    assert p[f"{last}/w"] == (512, 10)
    assert sum(math.prod(s) for s in p.values()) == 14_728_266
    widths = [
        s[-1]
        for k, s in sorted(p.items(), key=lambda kv: int(kv[0].split("/")[0].split("_")[1]))
        if k.startswith("conv2d") and k.endswith("/w")
    ]
    assert widths == [c for c in models.VGG16_PLAN if c != "M"]
    assert _abstract_params(models.vgg11(), (28, 28, 1))["conv2d_25/w"] == (3, 3, 512, 512)  # its 8th and last conv
    with pytest.raises(ValueError, match="plan"):
        models.vgg(["M", 64])


# ------------------------------------------------------------------------------------------------ conv2/4/6 + dropout

CONV2_NAMES = {  # conv2() on (28, 28, 1) before the dropout option existed (names pruning and golden files use)
    "conv2d_0/b": (64,),
    "conv2d_0/w": (3, 3, 1, 64),
    "conv2d_2/b": (64,),
    "conv2d_2/w": (3, 3, 64, 64),
    "dense_10/b": (10,),
    "dense_10/w": (256, 10),
    "dense_6/b": (256,),
    "dense_6/w": (12544, 256),
    "dense_8/b": (256,),
    "dense_8/w": (256, 256),
}


def test_conv_n_names_unchanged_without_dropout():
    assert _abstract_params(models.conv2(), (28, 28, 1)) == CONV2_NAMES
    assert _abstract_params(models.conv2(dropout=0.0), (28, 28, 1)) == CONV2_NAMES
    p4 = _abstract_params(models.conv4(), (28, 28, 1))
    assert sorted(k.split("/")[0] for k in p4 if k.endswith("/w")) == sorted(
        ["conv2d_0", "conv2d_2", "conv2d_5", "conv2d_7", "dense_11", "dense_13", "dense_15"]
    )
    p6 = _abstract_params(models.conv6(), (32, 32, 3))
    assert p6["dense_16/w"] == (4096, 256) and p6["dense_20/w"] == (256, 10)


@pytest.mark.slow
def test_conv2_dropout_train_stochastic_eval_deterministic():
    net = models.conv2(dropout=0.5)
    kinds = [layer.kind for layer in net.layers]
    assert kinds[-7:] == ["dense", "relu", "dropout", "dense", "relu", "dropout", "dense"]  # after each hidden ReLU
    params = net.init(jax.random.key(0), (28, 28, 1))
    x = jax.random.uniform(jax.random.key(1), (2, 28, 28, 1))
    apply = jax.jit(net.apply, static_argnames="train")
    a = apply(params, x, key=jax.random.key(2), train=True)
    b = apply(params, x, key=jax.random.key(3), train=True)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, apply(params, x, key=jax.random.key(2), train=True))
    e1 = apply(params, x, key=jax.random.key(2), train=False)
    e2 = apply(params, x, key=jax.random.key(3), train=False)
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_allclose(e1, models.conv2().apply(params_without_dropout(params), x), rtol=1e-5, atol=1e-5)
    for bad in (1.0, -0.1, "0.5"):
        with pytest.raises(ValueError, match="dropout"):
            models.conv4(dropout=bad)


def params_without_dropout(params):
    """conv2(dropout>0)'s params renamed to conv2()'s (the dropout layers shift the dense indices)."""
    renamed = {name: {} for name in nn.layer_names(models.conv2().layers)}  # the parameterless layers
    renamed.update(
        conv2d_0=params["conv2d_0"],
        conv2d_2=params["conv2d_2"],
        dense_6=params["dense_6"],
        dense_8=params["dense_9"],
        dense_10=params["dense_12"],
    )
    return renamed


# ------------------------------------------------------------------------------------------------ MNIST-1D nets


@pytest.mark.slow
def test_resmlp_equals_hand_computation():
    net = models.resmlp()
    params = net.init(jax.random.key(0), (40,))
    assert set(params) == {"dense_0", "relu_1", "residual_2", "dense_3"}
    l1, l2, l3 = params["dense_0"], params["residual_2"]["main"]["dense_0"], params["dense_3"]
    assert l1["w"].shape == (40, 500) and l2["w"].shape == (500, 500) and l3["w"].shape == (500, 10)
    assert nn.count_params(params) == 40 * 500 + 500 + 500 * 500 + 500 + 500 * 10 + 10 == 276_010
    x = jax.random.normal(jax.random.key(1), (5, 40))
    with jax.default_matmul_precision("highest"):
        h = np.maximum(np.asarray(x) @ np.asarray(l1["w"]) + np.asarray(l1["b"]), 0)
        h = h + np.maximum(h @ np.asarray(l2["w"]) + np.asarray(l2["b"]), 0)
        want = h @ np.asarray(l3["w"]) + np.asarray(l3["b"])
        got = net.apply(params, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_resmlp_torch_init_bounds():
    params = models.resmlp().init(jax.random.key(0), (40,))
    layers = {"dense_0": 40, "residual_2/main/dense_0": 500, "dense_3": 500}
    for path, fan_in in layers.items():
        p = params
        for k in path.split("/"):
            p = p[k]
        bound = 1 / math.sqrt(fan_in)
        for name in ("w", "b"):
            v = np.asarray(p[name])
            assert np.abs(v).max() <= bound, (path, name)
            if v.size >= 500:  # spread over U(-bound, bound), not bunched near 0
                assert np.abs(v).max() > 0.9 * bound and abs(v.mean()) < 0.2 * bound, (path, name)
        assert abs(np.asarray(p["w"]).std() - bound / math.sqrt(3)) < 0.05 * bound  # uniform's std
    glorot = models.resmlp(torch_init=False).init(jax.random.key(0), (40,))
    assert np.all(np.asarray(glorot["dense_0"]["b"]) == 0)
    w = np.asarray(glorot["dense_0"]["w"])
    assert abs(w.std() / math.sqrt(2 / (40 + 500)) - 1) < 0.05  # Glorot: std 0.061, U(+-1/sqrt(40))'s is 0.091


@pytest.mark.slow
def test_mnist1d_cnn_shapes_and_count():
    net = models.mnist1d_cnn()
    p = _abstract_params(net, (40,))
    assert p["conv1d_1/w"] == (5, 1, 25) and p["conv1d_3/w"] == (3, 25, 25) and p["conv1d_5/w"] == (3, 25, 25)
    assert p["dense_8/w"] == (125, 10)  # lengths 40 -> 19 -> 10 -> 5, 5 * 25 features
    assert sum(math.prod(s) for s in p.values()) == (5 * 25 + 25) + 2 * (3 * 25 * 25 + 25) + (125 * 10 + 10) == 5_210
    params = net.init(jax.random.key(0), (40,))
    assert net.apply(params, jnp.zeros((3, 40))).shape == (3, 10)
    assert net.apply(params, jnp.zeros((2, 3, 40))).shape == (2, 3, 10)  # any batch axes
    bound = 1 / math.sqrt(5)
    assert 0.9 * bound < np.abs(np.asarray(params["conv1d_1"]["w"])).max() <= bound  # PyTorch's default init


@pytest.mark.slow
@pytest.mark.optimized
def test_mnist1d_cnn_reaches_90_percent():
    d = data.load("mnist1d")
    net = models.mnist1d_cnn()
    _, hist = fit(
        net,
        net.init(jax.random.key(0), (40,)),
        (d.x_train, d.y_train),
        (d.x_test, d.y_test),
        learning_rate=1e-2,
        epochs=60,
        batch_size=100,
        key=jax.random.key(1),
        progress=False,
    )
    assert hist.val_accuracy[-1] >= 0.90  # measured 0.930 (the paper: 0.94)


# ------------------------------------------------------------------------------------------------ populations


@pytest.mark.slow
def test_resnet_population_vmap_equals_members_alone():
    """8 ResNets trained together (vmap) equal each member trained alone, running statistics included.

    ResNet-8 (width 8) on 12x12 images has every kind of block ResNet-20 has (the stem, a block with
    an identity shortcut, blocks with stride 2 and a 1x1 BatchNorm projection), at a fraction of
    ResNet-20's compile time; the depth adds only more blocks of the same kinds. Three SGD steps
    (momentum, weight decay, BatchNorm in training mode), each member with its own init and its own
    batches. Compared in float64, to 1e-9: in float32 the vmapped (grouped) convolutions
    sum in another order, ~1e-7 differences flip a few ReLUs at their kink, and a gradient entry then
    moves by ~1% (measured; with Softplus in place of ReLU float32 agrees to ~1e-5). The float32
    forward pass, running statistics included, is compared too.
    """
    net, shape, n, steps = models.resnet(8, 8), (12, 12, 1), 8, 3
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(0.1, momentum=0.9))
    step = train.make_train_step(net, losses.softmax_cross_entropy, tx)
    params32 = jax.vmap(lambda k: net.init(k, shape))(jax.random.split(jax.random.key(0), n))
    state32 = net.init_state(shape)
    xs32 = jax.random.uniform(jax.random.key(1), (steps, n, 8) + shape)  # each member its own batches
    ys = jax.random.randint(jax.random.key(2), (steps, n, 8), 0, 10)
    member = lambda tree, i: jax.tree.map(lambda a: a[i], tree)
    close = lambda a, b, **tol: jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, **tol), a, b)

    with jax.default_matmul_precision("highest"):
        forward = lambda p, x: net.apply_with_state(p, state32, x, train=True)
        y_pop, stats_pop = jax.jit(jax.vmap(forward))(params32, xs32[0])
        one = jax.jit(forward)
        for i in range(n):
            y, stats = one(member(params32, i), xs32[0, i])
            close(y, y_pop[i], rtol=1e-4, atol=1e-5)
            close(stats, member(stats_pop, i), rtol=1e-4, atol=1e-6)

    with jax.enable_x64(True):
        f64 = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)
        params, model_state, xs = f64(params32), f64(state32), f64(xs32)
        pop = jax.vmap(lambda p: train.init_state(p, tx, model_state=model_state))(params)
        together = jax.jit(jax.vmap(step))
        for t in range(steps):
            pop, _ = together(pop, (xs[t], ys[t]))
        alone = jax.jit(step)
        for i in range(n):
            start = member(params, i)
            s = train.init_state(start, tx, model_state=model_state)
            for t in range(steps):
                s, _ = alone(s, (xs[t, i], ys[t, i]))
            # training moved every weight and every running statistic: the comparison is not vacuous
            assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), s.params, start))
            assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), s.model_state, model_state))
            assert jax.tree.leaves(s.params)[0].dtype == jnp.float64
            close(member(pop.params, i), s.params, rtol=1e-9, atol=1e-12)
            close(member(pop.model_state, i), s.model_state, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------------------------ learning


@pytest.mark.slow
@pytest.mark.optimized
def test_small_resnet_learns_fashion_mnist():
    """resnet(8, 8), the script's optimizer recipe, 2 epochs on 5,000 images: > 65% on 2,000 test images."""
    require_fashion_mnist()
    from experiments.resnet_fashion import optimizer

    d = data.load("fashion-mnist")
    x, y = d.x_train[:5000], d.y_train[:5000]
    net = models.resnet(8, 8)
    epochs, batch = 2, 32
    total = len(x) // batch * epochs
    tx, _ = optimizer(0.1, 5e-4, total, total // 10)
    state, hist = fit(
        net,
        net.init(jax.random.key(0), (28, 28, 1)),
        (x, y),
        (d.x_test[:2000], d.y_test[:2000]),
        optimizer=tx,
        epochs=epochs,
        batch_size=batch,
        key=jax.random.key(1),
        progress=False,
    )
    evaluate = jax.jit(train.make_evaluate(net, losses.softmax_cross_entropy))
    acc = float(evaluate(state.params, d.x_test[:2000], d.y_test[:2000], state.model_state)["accuracy"])
    assert acc == pytest.approx(hist.val_accuracy[-1], abs=1e-6)
    assert acc > 0.65  # measured 0.743; an untrained or broken net stays near 0.10


@pytest.mark.slow
@pytest.mark.parametrize(
    "build, shape",
    [
        (lambda impl: models.lenet5(impl=impl), (28, 28, 1)),
        (lambda impl: models.cnn((4, 8), 16, impl=impl), (12, 12, 1)),
        (lambda impl: models.conv2(impl=impl), (8, 8, 1)),
        (lambda impl: models.conv4(impl=impl), (8, 8, 1)),
        (lambda impl: models.resnet(8, 4, impl=impl), (8, 8, 3)),
        (lambda impl: models.vgg([4, "M", 8], impl=impl), (8, 8, 3)),
        (lambda impl: models.mnist1d_cnn(channels=4, impl=impl), (40,)),
    ],
)
def test_conv_models_take_the_convolution_impl(build, shape):
    # The same params (init does not depend on impl), the same function: XLA's convolution and im2col.
    x = jax.random.normal(jax.random.key(1), (2,) + shape)
    outs = {}
    for impl in ("xla", "im2col"):
        net = build(impl)
        params = net.init(jax.random.key(0), shape)
        state = net.init_state(shape)
        outs[impl] = (params, net.apply_with_state(params, state, x, train=False)[0])
    chex.assert_trees_all_equal(outs["xla"][0], outs["im2col"][0])
    np.testing.assert_allclose(outs["xla"][1], outs["im2col"][1], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"impl must be one of 'auto', 'xla', 'im2col', 'mixed', got impl='eigen'"):
        build("eigen")


@pytest.mark.slow
def test_build_scaled_vgg_by_name():
    net = models.build("vgg16-8")  # VGG-16's plan at 1/8 of its widths: 8 ... 64
    params = net.init(jax.random.key(0), (32, 32, 3))
    widths = [p["w"].shape[-1] for n, p in params.items() if n.startswith("conv2d")]
    assert widths == [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64]
    assert len([n for n in params if n.startswith("conv2d")]) == 13
    assert [
        p["w"].shape[-1]
        for n, p in models.build("vgg11-16").init(jax.random.key(0), (32, 32, 3)).items()
        if n.startswith("conv2d")
    ] == [16, 32, 64, 64, 128, 128, 128, 128]
    with pytest.raises(ValueError, match=r"unknown model name='vgg16-0'.*'vgg16-W' / 'vgg11-W'"):
        models.build("vgg16-0")
