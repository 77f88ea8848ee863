"""Compaction is exact: the compacted net equals the masked net on random inputs, for every layer kind."""

import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import compaction, io, models, nn, prune

# GPUs' default TF32 matmuls differ by ~1e-4 between shapes; exactness is checked at full precision
pytestmark = pytest.mark.usefixtures("highest_precision")


@pytest.fixture
def highest_precision():
    with jax.default_matmul_precision("highest"):
        yield


def _noisy_state(state, key):
    """Running statistics away from (0, 1), so BatchNorm is a real per-channel affine map."""
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(key, max(len(leaves), 1))
    return jax.tree.unflatten(
        treedef, [a + jax.random.uniform(k, a.shape, minval=0.1, maxval=0.9) for a, k in zip(leaves, keys, strict=True)]
    )


def _check_same(net, params, masks, small_net, small, shape, state=None, small_state=None, n=5):
    x = jax.random.normal(jax.random.key(7), (n, *shape))
    masked = prune.apply(params, masks)
    if state is None:
        want, got = jax.jit(net.apply)(masked, x), jax.jit(small_net.apply)(small, x)
    else:
        run = lambda n, p, s: jax.jit(n.apply_with_state)(p, s, x)[0]
        want, got = run(net, masked, state), run(small_net, small, small_state)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # the compacted net is a plain funcnn net: its init and output_shape describe the new params
    like = jax.eval_shape(lambda k: small_net.init(k, shape), jax.random.key(0))
    assert jax.tree.map(jnp.shape, like) == jax.tree.map(jnp.shape, small)
    assert small_net.output_shape(shape) == net.output_shape(shape)


def _widths(params):
    return {k: np.shape(v)[-1] for k, v in _flat(params).items() if k.endswith("/w")}


def _flat(tree):
    return {prune.path_name(p): a for p, a in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.mark.slow
@pytest.mark.parametrize("act", [nn.Relu, nn.Sigmoid, nn.Tanh])
def test_mlp_dead_in_units_fold_into_the_next_bias_and_dead_out_units_go(act):
    net = nn.serial(nn.Flatten(), nn.Dense(40), act(), nn.Dense(30), act(), nn.Dense(5))
    p = net.init(jax.random.key(0), (3, 4))
    p = jax.tree.map(lambda a: a + 0.1, p)  # non-zero biases, so dead-input units output constants
    m = prune.magnitude(p, prune.ones(p), 0.8, layer_rates={"dense_5": 0.2})
    m["dense_1"]["w"] = m["dense_1"]["w"].at[:, :5].set(False)  # no inputs: outputs act(b)
    m["dense_3"]["w"] = m["dense_3"]["w"].at[5:9, :].set(False)  # dense_1 units 5..8 feed nothing
    small_net, small = compaction.compact(net, p, m)  # input shape read from the params
    dead = ~np.asarray(m["dense_1"]["w"]).any(0) | ~np.asarray(m["dense_3"]["w"]).any(1)
    assert small["dense_1"]["w"].shape == (12, 40 - dead.sum())
    _check_same(net, p, m, small_net, small, (3, 4))


@pytest.mark.slow
def test_a_conv_net_loses_the_channels_of_structured_pruning_with_their_biases():
    net = models.conv2()
    shape = (12, 12, 1)
    p = net.init(jax.random.key(0), shape)
    p = jax.tree.map(lambda a: a + 0.05, p)  # positive biases: without masking them, channels stay
    m = prune.structured(p, prune.ones(p), 0.5, layer_rates={"dense_10": 0.0})
    small_net, small = compaction.compact(net, p, m, input_shape=shape)
    # relu(b) > 0 is a constant that SAME padding spreads unevenly: those channels must stay
    assert small["conv2d_0"]["w"].shape[-1] == 64
    _check_same(net, p, m, small_net, small, shape)
    m = compaction.mask_dead_biases(m)
    small_net, small = compaction.compact(net, p, m, input_shape=shape)
    alive = {k: int(v) for k, v in prune.units_alive(m).items()}
    assert _widths(small) == {k: alive[k] for k in _widths(small)}
    assert small["dense_6"]["w"].shape == (6 * 6 * 32, 128)  # the flatten rows of removed channels go too
    _check_same(net, p, m, small_net, small, shape)


@pytest.mark.slow
@pytest.mark.parametrize("padding", ["VALID", 0])
def test_a_dead_conv_channel_folds_into_a_valid_conv_bias(padding):
    net = nn.serial(nn.Conv2D(6, 3, padding=padding), nn.Tanh(), nn.Conv2D(4, 3), nn.Relu(), nn.MaxPool(2))
    shape = (10, 10, 2)
    p = jax.tree.map(lambda a: a + 0.3, net.init(jax.random.key(1), shape))
    m = prune.ones(p)
    m["conv2d_0"]["w"] = m["conv2d_0"]["w"].at[..., 1:3].set(False)  # outputs tanh(b) everywhere
    small_net, small = compaction.compact(net, p, m, input_shape=shape)
    assert small["conv2d_0"]["w"].shape == (3, 3, 2, 4) and small["conv2d_2"]["w"].shape == (3, 3, 4, 4)
    _check_same(net, p, m, small_net, small, shape)


@pytest.mark.slow
def test_pools_keep_constant_channels_constant():
    net = nn.serial(
        nn.Conv2D(5, 3, padding="SAME"),
        nn.Sigmoid(),
        nn.AvgPool(3, stride=2, padding="SAME"),  # padded windows average fewer inputs: still constant
        nn.MaxPool(2, padding="SAME"),
        nn.Flatten(),
        nn.Dense(3),
    )
    shape = (9, 9, 1)
    p = jax.tree.map(lambda a: a + 0.2, net.init(jax.random.key(2), shape))
    m = prune.ones(p)
    m["conv2d_0"]["w"] = m["conv2d_0"]["w"].at[..., ::2].set(False)
    small_net, small = compaction.compact(net, p, m, input_shape=shape)
    assert small["conv2d_0"]["w"].shape[-1] == 2
    _check_same(net, p, m, small_net, small, shape)


@pytest.mark.slow
def test_conv1d_and_global_average_pooling():
    net = nn.serial(nn.Conv1D(8, 3, padding=1), nn.Relu(), nn.Conv1D(6, 3, stride=2), nn.Relu(), nn.GlobalAvgPool(1))
    net = nn.serial(net, nn.Dense(3))
    shape = (20, 2)
    p = net.init(jax.random.key(3), shape)
    m = compaction.mask_dead_biases(prune.structured(p, prune.ones(p), 0.5, layer_rates={"dense_1": 0.0}))
    small_net, small = compaction.compact(net, p, m, input_shape=shape)
    assert _widths(small) == {"serial_0/conv1d_0/w": 4, "serial_0/conv1d_2/w": 3, "dense_1/w": 3}
    _check_same(net, p, m, small_net, small, shape)


@pytest.mark.slow
def test_batchnorm_drops_the_statistics_of_removed_channels():
    net = nn.serial(nn.Conv2D(6, 3, use_bias=False), nn.BatchNorm(), nn.Relu(), nn.GlobalAvgPool(), nn.Dense(2))
    shape = (7, 7, 3)
    p, s = net.init(jax.random.key(4), shape), _noisy_state(net.init_state(shape), jax.random.key(5))
    m = prune.ones(p)
    for c in (0, 4):  # a whole channel, BatchNorm's scale and offset too: it outputs exactly 0
        m["conv2d_0"]["w"] = m["conv2d_0"]["w"].at[..., c].set(False)
        m["batchnorm_1"] = {k: v.at[c].set(False) for k, v in m["batchnorm_1"].items()}
    with pytest.raises(ValueError, match="state="):
        compaction.compact(net, p, m, input_shape=shape)
    small_net, small, small_s = compaction.compact(net, p, m, input_shape=shape, state=s)
    assert small_s["batchnorm_1"]["mean"].tolist() == np.delete(np.asarray(s["batchnorm_1"]["mean"]), [0, 4]).tolist()
    assert small["conv2d_0"]["w"].shape == (3, 3, 3, 4)
    _check_same(net, p, m, small_net, small, shape, s, small_s)


@pytest.mark.slow
def test_a_residual_channel_goes_only_where_both_branches_drop_it():
    block = nn.Residual(nn.serial(nn.Dense(6), nn.Relu(), nn.Dense(4)))
    net = nn.serial(nn.Dense(4), block, nn.Relu(), nn.Dense(2))
    p = jax.tree.map(lambda a: a + 0.1, net.init(jax.random.key(6), (3,)))
    m = prune.ones(p)
    main = m["residual_1"]["main"]
    main["dense_2"]["w"] = main["dense_2"]["w"].at[:, 1:3].set(False)  # main drops channels 1 and 2
    m["dense_0"]["w"] = m["dense_0"]["w"].at[:, 2].set(False)  # the shortcut's source only 2
    m = compaction.mask_dead_biases(m)
    small_net, small = compaction.compact(net, p, m)
    assert small["dense_0"]["w"].shape == (3, 3) and small["residual_1"]["main"]["dense_2"]["w"].shape == (6, 3)
    _check_same(net, p, m, small_net, small, (3,))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_random_structured_masks_on_a_resnet_with_batchnorm(seed):
    net = models.resnet(depth=8, width=8)
    shape = (8, 8, 3)
    key, k_state = jax.random.split(jax.random.key(seed))
    p, s = net.init(key, shape), _noisy_state(net.init_state(shape), k_state)
    m = prune.structured_random_like(jax.random.key(seed + 10), prune.ones(p))
    m = prune.structured(p, m, 0.5, layer_rates={"dense_10": 0.0})
    small_net, small, small_s = compaction.compact(net, p, m, input_shape=shape, state=s)
    assert nn.count_params(small) < nn.count_params(p)
    _check_same(net, p, m, small_net, small, shape, s, small_s)
    folded_net, folded, folded_s = compaction.fold_batchnorm(small_net, small, small_s)
    assert not any("batchnorm" in k for k in _flat(folded))
    _check_same(net, p, m, folded_net, folded, shape, s, folded_s)


@pytest.mark.slow
def test_branches_fan_out_parallel_and_concatenate():
    branch = nn.Parallel(nn.serial(nn.Dense(5), nn.Relu()), nn.serial(nn.Dense(3), nn.ELU()))
    net = nn.serial(nn.FanOut(2), branch, nn.FanInConcat(), nn.Dense(4), nn.FanOut(2), nn.FanInSum(), nn.Dense(2))
    p = jax.tree.map(lambda a: a + 0.1, net.init(jax.random.key(8), (6,)))
    m = prune.ones(p)
    m["parallel_1"]["serial_0"]["dense_0"]["w"] = m["parallel_1"]["serial_0"]["dense_0"]["w"].at[:, :2].set(False)
    m["dense_3"]["w"] = m["dense_3"]["w"].at[:, 0].set(False)
    small_net, small = compaction.compact(net, p, m, input_shape=(6,))
    assert small["dense_3"]["w"].shape == (6, 3)  # 8 concatenated inputs - 2 dead; 4 outputs - 1 dead
    _check_same(net, p, m, small_net, small, (6,))


def test_layernorm_and_foreign_layers_keep_what_they_read():
    net = nn.serial(nn.Dense(6), nn.LayerNorm(), nn.Dense(5), nn.Reshape((5, 1)), nn.Flatten(), nn.Dense(2))
    p = net.init(jax.random.key(9), (4,))
    m = prune.ones(p)
    m["dense_0"]["w"] = m["dense_0"]["w"].at[:, :3].set(False)  # constants LayerNorm still averages over
    m["dense_2"]["w"] = m["dense_2"]["w"].at[:, :2].set(False)  # read by Reshape
    m = compaction.mask_dead_biases(m)
    small_net, small = compaction.compact(net, p, m)
    assert jax.tree.map(jnp.shape, small) == jax.tree.map(jnp.shape, p)
    _check_same(net, p, m, small_net, small, (4,))


@pytest.mark.slow
def test_a_population_compacts_to_the_units_every_member_can_lose():
    net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(3))
    keys = jax.random.split(jax.random.key(10), 3)
    pop = jax.vmap(lambda k: net.init(k, (4,)))(keys)
    masks = prune.ones(pop)
    w = masks["dense_0"]["w"]
    masks["dense_0"]["w"] = w.at[:, :, :3].set(False).at[0, :, 3].set(False)  # all lose 0-2; member 0 also 3
    masks = compaction.mask_dead_biases(masks)
    small_net, small = compaction.compact(net, pop, masks)
    assert small["dense_0"]["w"].shape == (3, 4, 5)
    x = jax.random.normal(jax.random.key(11), (6, 4))
    want = jax.vmap(lambda p: net.apply(p, x))(prune.apply(pop, masks))
    np.testing.assert_allclose(jax.vmap(lambda p: small_net.apply(p, x))(small), want, rtol=1e-5, atol=1e-5)
    member = jax.tree.map(lambda a: a[0], (pop, masks))  # one member alone loses its own units
    assert compaction.compact(net, *member)[1]["dense_0"]["w"].shape == (4, 4)


def test_a_layer_that_would_lose_every_unit_keeps_one():
    net = nn.serial(nn.Dense(4), nn.Relu(), nn.Dense(2))
    p = net.init(jax.random.key(12), (3,))
    m = compaction.mask_dead_biases(
        {**prune.ones(p), "dense_0": {"w": jnp.zeros((3, 4), bool), "b": jnp.ones(4, bool)}}
    )
    small_net, small = compaction.compact(net, p, m)
    assert small["dense_0"]["w"].shape == (3, 1)
    _check_same(net, p, m, small_net, small, (3,))


@pytest.mark.slow
def test_compacted_params_save_and_load_with_io():
    net = models.conv2()
    shape = (10, 10, 1)
    p = net.init(jax.random.key(13), shape)
    m = compaction.mask_dead_biases(prune.structured(p, prune.ones(p), 0.75, layer_rates={"dense_10": 0.0}))
    small_net, small = compaction.compact(net, p, m, input_shape=shape)
    with tempfile.TemporaryDirectory() as folder:
        io.save_tree(f"{folder}/small.npz", small)
        like = small_net.init(jax.random.key(0), shape)
        loaded = io.load_tree(f"{folder}/small.npz", like)
    x = jax.random.normal(jax.random.key(14), (2, *shape))
    np.testing.assert_array_equal(small_net.apply(loaded, x), small_net.apply(small, x))


@pytest.mark.slow
def test_compaction_keeps_working_under_jit_and_vmap_of_the_result():
    net = models.lenet_300_100()
    p = net.init(jax.random.key(15), (28, 28, 1))
    m = compaction.mask_dead_biases(prune.structured(p, prune.ones(p), 0.6, layer_rates={"dense_5": 0.0}))
    small_net, small = compaction.compact(net, p, m, input_shape=(28, 28, 1))
    x = jax.random.normal(jax.random.key(16), (3, 4, 28, 28, 1))
    y = jax.jit(jax.vmap(lambda xb: small_net.apply(small, xb)))(x)
    np.testing.assert_allclose(y, jax.vmap(lambda xb: net.apply(prune.apply(p, m), xb))(x), rtol=1e-5, atol=1e-5)


def test_bad_input_names_the_argument():
    net = models.conv2()
    p = net.init(jax.random.key(17), (8, 8, 1))
    m = prune.ones(p)
    with pytest.raises(ValueError, match="input_shape="):
        compaction.compact(net, p, m)
    with pytest.raises(ValueError, match="input_shape"):
        compaction.compact(net, p, m, input_shape=(10, 10, 1))  # not the shape these params were made for
    with pytest.raises(ValueError, match="masks"):
        compaction.compact(net, p, {"conv2d_0": m["conv2d_0"]}, input_shape=(8, 8, 1))


def test_mask_dead_biases_of_a_population_and_of_conv_kernels():
    masks = {"c": {"w": jnp.ones((2, 3, 3, 1, 4), bool).at[1, ..., 2].set(False), "b": jnp.ones((2, 4), bool)}}
    out = compaction.mask_dead_biases(masks)
    assert out["c"]["b"].tolist() == [[True] * 4, [True, True, False, True]]
    assert out["c"]["w"] is masks["c"]["w"]


@pytest.mark.slow
def test_mask_batchnorms_and_stream_convs_compact_a_resnet_exactly():
    """A ResNet's structured masks: BatchNorm scale and offset go with their conv's removed channels,
    the residual-stream convs stay whole, and compaction removes the inner channels exactly."""
    net = models.resnet(depth=8, width=4)
    whole = compaction.stream_convs(net)
    assert whole == (
        "conv2d_0",
        "residual_3/main/conv2d_3",
        "residual_5/main/conv2d_3",
        "residual_5/shortcut/conv2d_0",
        "residual_7/main/conv2d_3",
        "residual_7/shortcut/conv2d_0",
        "dense_10",
    )
    shape = (8, 8, 1)
    p, s = net.init(jax.random.key(0), shape), net.init_state(shape)
    s = jax.tree.map(lambda a: a + 0.3, s)  # BatchNorm a real affine map
    m = prune.structured(p, prune.ones(p), 0.5, layer_rates=dict.fromkeys(whole, 0))
    m = compaction.mask_batchnorms(net, m)
    bn = m["residual_3"]["main"]["batchnorm_1"]
    assert np.asarray(bn["scale"]).sum() == 2 and np.array_equal(bn["scale"], bn["offset"])
    assert np.asarray(m["batchnorm_1"]["scale"]).all()  # the stem conv is whole
    small_net, small, small_s = compaction.compact(net, p, m, input_shape=shape, state=s)
    # The stream's convs keep every channel; each block's inner conv lost half of them.
    kernels = [(path, w) for path, w in jax.tree_util.tree_leaves_with_path(p) if w.ndim > 1]
    assert len(kernels) == 10
    for path, w in kernels:
        name, small_w = "/".join(k.key for k in path[:-1]), small
        for k in path:
            small_w = small_w[k.key]
        assert small_w.shape[-1] == (w.shape[-1] if name in whole else w.shape[-1] // 2), name
    x = jax.random.normal(jax.random.key(1), (3, *shape))
    want = net.apply_with_state(prune.apply(p, m), s, x)[0]
    np.testing.assert_allclose(small_net.apply_with_state(small, small_s, x)[0], want, rtol=1e-5, atol=1e-5)
