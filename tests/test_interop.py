"""flax.linen and equinox networks as funcnn nets: pruned, trained and put through a lottery study."""

import equinox as eqx
import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import data, lottery, prune
from funcnn.interop import from_equinox, from_flax, from_nnx

# MNIST-1D, small: 1600 train / 400 test examples of 40 features, generated once a test run (~1 s) into the
# tests' cache folder (conftest.py), which the other test processes read.
D = data.mnist1d(num_samples=2000)


class FlaxMLP(fnn.Module):
    @fnn.compact
    def __call__(self, x):
        x = fnn.relu(fnn.Dense(32)(x))
        return fnn.Dense(10)(x)


def flax_net():
    return from_flax(FlaxMLP())


def equinox_net():
    return from_equinox(lambda key: eqx.nn.MLP(40, 10, 32, 2, key=key))


NETS = {"flax": flax_net, "equinox": equinox_net}


@pytest.mark.slow
@pytest.mark.parametrize("make", NETS.values(), ids=NETS.keys())
def test_adapted_net_matches_the_module(make, getkey):
    net = make()
    params = net.init(getkey(), (40,))
    x = jax.random.normal(getkey(), (7, 40))
    assert net.output_shape((40,)) == (10,) and net.apply(params, x).shape == (7, 10)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(params))
    # Different keys draw different weights (each lottery seed gets its own θ0).
    other = net.init(getkey(), (40,))
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(other), strict=True))


def test_flax_params_are_the_modules_own_and_apply_is_the_modules():
    module = FlaxMLP()
    params = from_flax(module).init(jax.random.key(0), (40,))
    assert jax.tree.map(jnp.shape, params) == {
        "Dense_0": {"kernel": (40, 32), "bias": (32,)},
        "Dense_1": {"kernel": (32, 10), "bias": (10,)},
    }
    x = jnp.ones((3, 40))
    np.testing.assert_array_equal(from_flax(module).apply(params, x), module.apply({"params": params}, x))


# Full float32 matmuls: a GPU's default TF32 rounds a batched and an unbatched matmul differently (~1e-3;
# seen on an H200). The claim is that vmapping over the batch changes nothing; on CPU this is a no-op.
@jax.default_matmul_precision("highest")
def test_equinox_apply_maps_the_model_over_the_batch():
    make = lambda key: eqx.nn.MLP(40, 10, 32, 2, key=key)
    params = from_equinox(make).init(jax.random.key(0), (40,))
    model = make(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, 40))
    np.testing.assert_allclose(
        from_equinox(make).apply(params, x), jnp.stack([model(xi) for xi in x]), rtol=1e-6, atol=1e-6
    )


@pytest.mark.slow
@pytest.mark.parametrize("make", NETS.values(), ids=NETS.keys())
def test_prune_takes_adapted_params(make):
    net = make()
    params = net.init(jax.random.key(0), (40,))
    spec = prune.prunable(params)
    assert sum(jax.tree.leaves(spec)) == (3 if make is equinox_net else 2)  # weights, never biases
    masks = prune.magnitude(params, prune.ones(params), 0.5, spec=spec)
    assert jax.tree.structure(masks) == jax.tree.structure(params)
    assert float(prune.density(masks, spec)["total"]) == pytest.approx(0.5, abs=0.01)
    pruned = prune.apply(params, masks)
    n_zero = sum(int(jnp.sum(p == 0)) for p, s in zip(jax.tree.leaves(pruned), jax.tree.leaves(spec), strict=True) if s)
    n_weights = sum(p.size for p, s in zip(jax.tree.leaves(pruned), jax.tree.leaves(spec), strict=True) if s)
    assert n_zero == n_weights // 2
    assert net.apply(pruned, jnp.ones((2, 40))).shape == (2, 10)


def test_flax_module_with_batch_stats_is_refused():
    class WithNorm(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            return fnn.BatchNorm(use_running_average=True)(fnn.Dense(4)(x))

    with pytest.raises(ValueError, match="batch_stats"):
        from_flax(WithNorm()).init(jax.random.key(0), (3,))


def test_equinox_needs_a_factory_not_a_built_model():
    model = eqx.nn.MLP(40, 10, 32, 2, key=jax.random.key(0))
    with pytest.raises(TypeError, match="lambda key"):
        from_equinox(model)


def test_whole_equinox_model_in_prune_gets_a_clear_error():
    model = eqx.nn.MLP(40, 10, 32, 2, key=jax.random.key(0))
    for call in (
        lambda: prune.ones(model),
        lambda: prune.prunable(model),
        lambda: prune.magnitude(model, model, 0.5),
        lambda: prune.apply(model, model),
    ):
        with pytest.raises(ValueError, match=r"leaf 'activation'.*relu.*eqx\.partition\(model, eqx\.is_array\)"):
            call()
    # Partitioned, the same model prunes.
    params, static = eqx.partition(model, eqx.is_array)
    masks = prune.magnitude(params, prune.ones(params), 0.5)
    pruned = eqx.combine(prune.apply(params, masks), static)
    assert pruned(jnp.ones(40)).shape == (10,)


def _check_report(report):
    assert [r["round"] for r in report["rounds"]] == [0, 1]
    for r in report["rounds"]:
        acc = np.asarray(r["final_test_accuracy"])
        assert acc.shape == (2 * len(set(r["arms"])),) and np.all(np.isfinite(acc))
    ticket = np.asarray(report["rounds"][1]["arms"]) == "ticket"
    assert np.all(np.asarray(report["rounds"][1]["density"])[ticket] < 1)
    dense = np.mean(report["rounds"][0]["final_test_accuracy"])
    assert dense > 0.2, dense  # 10 classes: it learned something in 200 steps


@pytest.mark.slow
def test_lottery_study_of_a_flax_mlp(tmp_path):
    # What a user writes (flax).
    class MLP(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            x = fnn.relu(fnn.Dense(32)(x))
            return fnn.Dense(10)(x)

    spec = lottery.Spec(
        from_flax(MLP()),
        optax.adam(1e-3),
        train=(D.x_train, D.y_train),
        test=(D.x_test, D.y_test),
        iterations=200,
        eval_every=100,
        rounds=1,
        seeds=2,
        batch_size=50,
    )
    report = lottery.run(spec, out=tmp_path, progress=False, figures=False, log=lambda s: None)
    _check_report(report)


@pytest.mark.slow
def test_lottery_study_of_an_equinox_mlp(tmp_path):
    # What a user writes (equinox).
    net = from_equinox(lambda key: eqx.nn.MLP(40, 10, 32, 2, key=key))
    spec = lottery.Spec(
        net,
        optax.adam(1e-3),
        train=(D.x_train, D.y_train),
        test=(D.x_test, D.y_test),
        iterations=200,
        eval_every=100,
        rounds=1,
        seeds=2,
        batch_size=50,
    )
    report = lottery.run(spec, out=tmp_path, progress=False, figures=False, log=lambda s: None)
    _check_report(report)


# ---------------------------------------------------------------------------------------------------
# Stateful modules (BatchNorm, Dropout), flax.nnx, and the unit layout each adapter declares (issue #29).
# The models below are shared with tests/test_interop_engine.py. F input features (MLPs), 6x6x1 images
# (CNNs), C classes; BatchNorm momentum 0.5 so that a few steps move the statistics far.

from flax import nnx  # noqa: E402

from funcnn.nn import StateError  # noqa: E402
from funcnn.prune.layout import UnitLayout  # noqa: E402

F, C, HW, M = 8, 3, 6, 0.5


class NnxMLP(nnx.Module):
    # The output layer is named first ("a_head" sorts before "b_body"), so tree order would pick the wrong one.
    def __init__(self, rngs):
        self.a_head = nnx.Linear(16, C, rngs=rngs)
        self.b_body = nnx.Linear(F, 16, rngs=rngs)

    def __call__(self, x):
        return self.a_head(nnx.relu(self.b_body(x)))


class NnxCNN(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(4, momentum=M, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.layers = nnx.List([nnx.Linear(4 * HW * HW, C, rngs=rngs)])

    def __call__(self, x):
        x = self.drop(nnx.relu(self.bn(self.conv(x))))
        return self.layers[0](x.reshape(x.shape[0], -1))


class LinenCNN(fnn.Module):
    dropout: float = 0.5

    @fnn.compact
    def __call__(self, x, train: bool = False):
        x = fnn.Conv(4, (3, 3))(x)
        x = fnn.relu(fnn.BatchNorm(use_running_average=not train, momentum=M)(x))
        x = fnn.Dropout(self.dropout, deterministic=not train)(x)
        return fnn.Dense(C)(x.reshape(x.shape[0], -1))


class LinenMLP(fnn.Module):
    @fnn.compact
    def __call__(self, x):
        return fnn.Dense(C, name="head")(fnn.relu(fnn.Dense(16, name="body")(x)))


class EqxBNMLP(eqx.Module):
    head: eqx.nn.Linear
    body: eqx.nn.Linear
    bn: eqx.nn.BatchNorm
    drop: eqx.nn.Dropout

    def __init__(self, key, dropout=0.3):
        k1, k2 = jax.random.split(key)
        self.head = eqx.nn.Linear(16, C, key=k1)
        self.body = eqx.nn.Linear(F, 16, key=k2)
        self.bn = eqx.nn.BatchNorm(16, axis_name="batch", momentum=M, mode="batch")
        self.drop = eqx.nn.Dropout(dropout)

    def __call__(self, x, state, *, key=None):
        h, state = self.bn(self.body(x), state)
        return self.head(self.drop(jax.nn.relu(h), key=key)), state


def nnx_mlp():
    return from_nnx(NnxMLP, input_shape=(F,))


def nnx_cnn():
    return from_nnx(lambda rngs: NnxCNN(rngs), input_shape=(HW, HW, 1))


def linen_cnn():
    return from_flax(LinenCNN(), input_shape=(HW, HW, 1))


def linen_mlp():
    return from_flax(LinenMLP(), input_shape=(F,))


def eqx_bn_mlp():
    return from_equinox(lambda key: eqx.nn.make_with_state(EqxBNMLP)(key), input_shape=(F,))


def eqx_mlp():
    return from_equinox(lambda key: eqx.nn.MLP(F, C, 16, 1, key=key), input_shape=(F,))


STATEFUL = {"nnx_cnn": (nnx_cnn, (HW, HW, 1)), "linen_cnn": (linen_cnn, (HW, HW, 1)), "eqx_bn_mlp": (eqx_bn_mlp, (F,))}
ALL = {"nnx_mlp": (nnx_mlp, (F,)), **STATEFUL}


def batch(shape, n=16, shift=0.0, seed=1):
    return jax.random.normal(jax.random.key(seed), (n, *shape)) + shift


def leaves_differ(a, b):
    return any(not np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_stateful_adapters_shapes_and_init_by_key(name):
    make, shape = ALL[name]
    net = make()
    params = net.init(jax.random.key(0), shape)
    state = net.init_state(shape)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves((params, state)))
    assert net.output_shape(shape) == (C,)
    for train in (False, True):
        y, _ = net.apply_with_state(params, state, batch(shape), key=jax.random.key(5), train=train)
        assert y.shape == (16, C) and bool(jnp.all(jnp.isfinite(y)))
    # Each seed its own init; the same seed the same init.
    assert leaves_differ(params, net.init(jax.random.key(1), shape))
    assert not leaves_differ(params, net.init(jax.random.key(0), shape))


def test_nnx_params_are_the_param_state_under_clean_names_and_state_the_statistics():
    params = nnx_cnn().init(jax.random.key(0), (HW, HW, 1))
    assert jax.tree.map(jnp.shape, params) == {
        "bn": {"bias": (4,), "scale": (4,)},
        "conv": {"bias": (4,), "kernel": (3, 3, 1, 4)},
        "layers": {0: {"bias": (C,), "kernel": (4 * HW * HW, C)}},
    }
    state = nnx_cnn().init_state((HW, HW, 1))
    np.testing.assert_array_equal(state["bn"]["mean"], np.zeros(4))  # RNG state is not model state
    assert jax.tree.structure(state) == jax.tree.structure({"bn": {"mean": 0, "var": 0}})
    # The same weights as the module nnx itself builds from that key.
    model = NnxCNN(nnx.Rngs(jax.random.key(0)))
    np.testing.assert_array_equal(params["conv"]["kernel"], model.conv.kernel[...])


def test_stateless_nnx_apply_is_the_modules_and_stateful_apply_is_an_error():
    net = nnx_mlp()
    params = net.init(jax.random.key(0), (F,))
    model = NnxMLP(nnx.Rngs(jax.random.key(0)))
    x = batch((F,))
    np.testing.assert_allclose(net.apply(params, x), model(x), rtol=1e-6)
    assert net.init_state((F,)) == {}
    for make, shape in STATEFUL.values():
        cnn = make()
        with pytest.raises(StateError, match="apply_with_state"):
            cnn.apply(cnn.init(jax.random.key(0), shape), batch(shape))


def _train_steps(net, params, state, x, steps=4):
    for i in range(steps):
        _, state = net.apply_with_state(params, state, x, key=jax.random.key(10 + i), train=True)
    return state


def _bn_reference(h, mean, var, scale, bias, eps):
    h, mean, var, scale, bias = map(np.asarray, (h, mean, var, scale, bias))
    return (h - mean) / np.sqrt(var + eps) * scale + bias


def _conv_nhwc(x, kernel, bias):
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return np.asarray(y) + np.asarray(bias)


def _hand_cnn(x, conv, bn, stats, dense, eps):
    h = _conv_nhwc(x, conv["kernel"], conv["bias"])
    h = np.maximum(_bn_reference(h, stats["mean"], stats["var"], bn["scale"], bn["bias"], eps), 0)
    return h.reshape(len(h), -1) @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"])


def _check_statistics(stats, h, steps):
    # Fixed params and batch: each step's batch statistics are the same, so after k steps from
    # (mean 0, var 1): mean_k = (1 - m^k) * mean(h), var_k = m^k + (1 - m^k) * var(h) (biased).
    h, axes, w = np.asarray(h), tuple(range(np.ndim(h) - 1)), 1 - M**steps
    np.testing.assert_allclose(stats["mean"], w * h.mean(axes), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats["var"], M**steps + w * h.var(axes), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("which", ["nnx", "linen"])
def test_cnn_batch_statistics_are_updated_in_training_and_used_in_eval(which):
    net = nnx_cnn() if which == "nnx" else linen_cnn()
    shape = (HW, HW, 1)
    params, state0 = net.init(jax.random.key(0), shape), net.init_state(shape)
    conv, bn, dense = (
        (params["conv"], params["bn"], params["layers"][0])
        if which == "nnx"
        else (params["Conv_0"], params["BatchNorm_0"], params["Dense_0"])
    )
    get = (lambda s: s["bn"]) if which == "nnx" else (lambda s: s["BatchNorm_0"])
    x = batch(shape, shift=3.0)  # far from the initial statistics (mean 0, var 1)
    state = _train_steps(net, params, state0, x)
    _check_statistics(get(state), _conv_nhwc(x, conv["kernel"], conv["bias"]), 4)
    y_eval, same = net.apply_with_state(params, state, x, train=False)
    assert not leaves_differ(same, state)  # eval leaves the statistics alone
    y_eval0, _ = net.apply_with_state(params, state0, x, train=False)
    assert float(jnp.max(jnp.abs(y_eval - y_eval0))) > 1e-2  # the stored statistics are used ...
    eps = 1e-5
    np.testing.assert_allclose(
        y_eval, _hand_cnn(x, conv, bn, get(state), dense, eps), rtol=1e-4, atol=1e-4
    )  # ... as such
    # Training mode normalizes by the batch instead (Dropout aside: the same key twice).
    y_train, _ = net.apply_with_state(params, state, x, key=jax.random.key(3), train=True)
    assert float(jnp.max(jnp.abs(y_train - y_eval))) > 1e-2


def test_equinox_batch_statistics_are_updated_in_training_and_used_in_eval():
    net = eqx_bn_mlp()
    params, state0 = net.init(jax.random.key(0), (F,)), net.init_state((F,))
    assert isinstance(state0, eqx.nn.State)
    x = batch((F,), shift=3.0)
    h = np.asarray(x) @ np.asarray(params.body.weight).T + np.asarray(params.body.bias)
    state = _train_steps(net, params, state0, x, steps=3)
    built = eqx.nn.make_with_state(EqxBNMLP)(jax.random.key(0))[0]
    hidden_mean, hidden_var = state.get(built.bn.batch_state_index)
    # mode="batch": from (0, 1), k steps of the same batch statistics give (1 - m^k) * mean(h) and
    # m^k + (1 - m^k) * var(h); eval divides both by 1 - m^k (the counter k, carried as a float).
    k, w = 3, 1 - M**3
    assert float(state.get(built.bn.batch_counter)) == k
    np.testing.assert_allclose(hidden_mean, w * h.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(hidden_var, M**k + w * h.var(0), rtol=1e-4, atol=1e-4)
    mean, var = np.asarray(hidden_mean) / w, np.asarray(hidden_var) / w
    y_eval, _ = net.apply_with_state(params, state, x, train=False)
    y_eval0, _ = net.apply_with_state(params, net.init_state((F,)), x, train=False)
    bn = _bn_reference(h, np.asarray(mean), np.asarray(var), params.bn.weight, params.bn.bias, 1e-5)
    hand = np.maximum(bn, 0) @ np.asarray(params.head.weight).T + np.asarray(params.head.bias)
    np.testing.assert_allclose(y_eval, hand, rtol=1e-4, atol=1e-4)
    assert not np.allclose(y_eval, y_eval0, atol=1e-2)  # not the initial (empty) statistics
    with pytest.raises(StateError, match="apply_with_state"):
        net.apply(params, x)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nnx_cnn", "linen_cnn", "eqx_bn_mlp"])
def test_dropout_is_keyed_in_training_and_off_in_eval(name):
    make, shape = ALL[name]
    net = make()
    params, state = net.init(jax.random.key(0), shape), net.init_state(shape)
    x = batch(shape)
    run = lambda key, train: net.apply_with_state(params, state, x, key=key, train=train)[0]
    k1, k2 = jax.random.key(1), jax.random.key(2)
    np.testing.assert_array_equal(run(k1, True), run(k1, True))
    assert not np.allclose(run(k1, True), run(k2, True))
    np.testing.assert_array_equal(run(k1, False), run(k2, False))
    np.testing.assert_array_equal(run(k1, False), run(None, False))
    # Under jit, the key traced: the same masks as eagerly.
    jitted = jax.jit(lambda k: net.apply_with_state(params, state, x, key=k, train=True)[0])
    np.testing.assert_allclose(jitted(k1), run(k1, True), rtol=1e-5, atol=1e-6)


def test_nnx_dropout_without_a_key_in_training_is_an_error():
    net = nnx_cnn()
    params, state = net.init(jax.random.key(0), (HW, HW, 1)), net.init_state((HW, HW, 1))
    with pytest.raises(StateError, match="needs a key"):
        net.apply_with_state(params, state, batch((HW, HW, 1)), train=True)


# Probed from each module's program (the axis its dot or convolution keeps): flax's last axis, equinox's first.
LAYOUTS = {
    "nnx_mlp": (nnx_mlp, "a_head", {"a_head/kernel": 1, "b_body/kernel": 1}),
    "nnx_cnn": (nnx_cnn, "layers/0", {"conv/kernel": 3, "layers/0/kernel": 1}),
    "linen_cnn": (linen_cnn, "Dense_0", {"Conv_0/kernel": 3, "Dense_0/kernel": 1}),
    "linen_mlp": (linen_mlp, "head", {"body/kernel": 1, "head/kernel": 1}),
    "eqx_bn_mlp": (eqx_bn_mlp, "head", {"body/weight": 0, "head/weight": 0}),
    "eqx_mlp": (eqx_mlp, "layers/1", {"layers/0/weight": 0, "layers/1/weight": 0}),
}


@pytest.mark.parametrize("name", LAYOUTS)
def test_unit_layout_axes_and_probed_output_layer(name):
    make, output, axes = LAYOUTS[name]
    net = make()
    layout = net.unit_layout
    assert isinstance(layout, UnitLayout)
    assert layout.output_layer == output and dict(layout.unit_axes) == axes
    hash(net)  # a Layer is a static argument of jitted programs (stability): its layout must hash too


def test_unit_axes_hold_the_units_the_outputs_follow():
    # Independent of the probe: in each MLP, the output layer's units along the declared axis are C
    # (the classes) and the hidden layer's units along it are 16 (what the output layer takes in).
    for name in ("nnx_mlp", "linen_mlp", "eqx_mlp", "eqx_bn_mlp"):
        make, output, axes = LAYOUTS[name]
        net = make()
        params = net.init(jax.random.key(0), (F,))
        leaves = {prune.path_name(p): v for p, v in jax.tree_util.tree_leaves_with_path(params)}
        for leaf, axis in axes.items():
            assert leaves[leaf].shape[axis] == (C if leaf.startswith(output + "/") else 16), (name, leaf)


def test_output_layer_probe_refuses_to_guess():
    # Two heads summed: both map unit j onto output j, so no one output layer; no input shape: no probe.
    class TwoHeads(nnx.Module):
        def __init__(self, rngs):
            self.h1, self.h2 = nnx.Linear(F, C, rngs=rngs), nnx.Linear(F, C, rngs=rngs)

        def __call__(self, x):
            return self.h1(x) + self.h2(x)

    assert from_nnx(TwoHeads, input_shape=(F,)).unit_layout.output_layer is None
    # no input shape: nothing to probe with, nothing declared (no library's layout is assumed)
    assert from_nnx(NnxMLP).unit_layout == UnitLayout(None, {})
    # A hidden layer as wide as the output is not mistaken for it (its units reach every output).
    make = lambda key: eqx.nn.MLP(F, C, C, 1, key=key)
    assert from_equinox(make, input_shape=(F,)).unit_layout.output_layer == "layers/1"
    assert from_flax(LinenMLP()).unit_layout is None  # linen needs the input shape even for the names


def test_from_flax_points_nnx_modules_to_from_nnx():
    for bad in (NnxMLP, NnxMLP(nnx.Rngs(0))):
        with pytest.raises(TypeError, match=r"NnxMLP is a flax\.nnx Module: use funcnn\.interop\.from_nnx") as e:
            from_flax(bad)
        assert len(str(e.value)) < 200 and "\n" not in str(e.value)  # no repr of the module
    with pytest.raises(TypeError, match=r"e\.g\. LinenMLP\(\), not LinenMLP"):
        from_flax(LinenMLP)
    with pytest.raises(TypeError, match="factory make"):
        from_nnx(NnxMLP(nnx.Rngs(0)))


@pytest.mark.slow
def test_from_flax_train_arg_names_or_maps_the_mode():
    class Drop(fnn.Module):
        @fnn.compact
        def __call__(self, x, eval_mode: bool = True):
            return fnn.Dropout(0.5, deterministic=eval_mode)(fnn.Dense(32)(x))

    x = batch((F,))
    for train_arg in ("auto", None):  # 'auto' finds no known name: eval_mode stays at its default
        net = from_flax(Drop(), train_arg=train_arg)
        params = net.init(jax.random.key(0), (F,))
        np.testing.assert_array_equal(net.apply(params, x, key=jax.random.key(1), train=True), net.apply(params, x))
    net = from_flax(Drop(), train_arg=lambda train: {"eval_mode": not train})
    params = net.init(jax.random.key(0), (F,))
    y = net.apply(params, x, key=jax.random.key(1), train=True)
    assert 0.3 < float(jnp.mean(y == 0)) < 0.7  # half the units dropped
    np.testing.assert_array_equal(net.apply(params, x, train=False), Drop().apply({"params": params}, x))

    # A keyword name gets `train` itself.
    class Train(fnn.Module):
        @fnn.compact
        def __call__(self, x, is_training: bool = False):
            return fnn.Dropout(0.5, deterministic=not is_training)(x)

    net = from_flax(Train(), train_arg="is_training")
    assert float(jnp.mean(net.apply({}, jnp.ones((4, 64)), key=jax.random.key(0), train=True) == 0)) > 0.3
    with pytest.raises(TypeError, match="train_arg"):
        from_flax(Train(), train_arg=3)
