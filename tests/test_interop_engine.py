"""flax.nnx, flax.linen and equinox nets (with BatchNorm and Dropout) through funcnn's engines:
`train.fit`, `lottery.run` (weights and whole units), `stability.stability` and `io` (issue #29)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import io, losses, lottery, prune, stability, train
from funcnn.interop import from_equinox, from_flax, from_nnx
from tests.test_interop import ALL, LAYOUTS, STATEFUL, C, EqxBNMLP, LinenCNN, NnxMLP, leaves_differ

N = 64


def data(shape, n=N, seed=0):
    """A C-class problem from a linear teacher on the flattened inputs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    teacher = rng.normal(size=(int(np.prod(shape)), C))
    return x, np.argmax(x.reshape(n, -1) @ teacher, axis=1).astype(np.int32)


@pytest.mark.slow
def test_params_and_model_state_save_and_load(tmp_path):
    for name, (make, shape) in ALL.items():
        net = make()
        params, state = net.init(jax.random.key(0), shape), net.init_state(shape)
        x, _ = data(shape, n=16)
        _, state = net.apply_with_state(params, state, x + 1.0, key=jax.random.key(1), train=True)  # moved
        io.save_tree(tmp_path / f"{name}_params.npz", params)
        io.save_tree(tmp_path / f"{name}_state.npz", state)
        zeros = jax.tree.map(jnp.zeros_like, (params, state))
        p = io.load_tree(tmp_path / f"{name}_params.npz", zeros[0])
        s = io.load_tree(tmp_path / f"{name}_state.npz", zeros[1])
        assert jax.tree.structure(p) == jax.tree.structure(params)
        assert not leaves_differ(p, params) and not leaves_differ(s, state), name
        np.testing.assert_array_equal(
            net.apply_with_state(p, s, x, train=False)[0], net.apply_with_state(params, state, x, train=False)[0]
        )


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_fit_trains_and_threads_the_statistics(name):
    make, shape = ALL[name]
    net = make()
    x, y = data(shape)
    params = net.init(jax.random.key(0), shape)
    state, history = train.fit(
        net, params, (x, y), (x, y), learning_rate=1e-2, epochs=3, batch_size=16, key=jax.random.key(1), progress=False
    )
    assert int(state.step) == 12 and np.all(np.isfinite(history.train_loss))
    assert history.train_loss[-1] < history.train_loss[0]
    assert leaves_differ(state.params, params)
    if name in STATEFUL:  # the running statistics came back from training, and evaluation used them
        assert leaves_differ(state.model_state, net.init_state(shape))
        scores = train.make_evaluate(net, losses.softmax_cross_entropy)(state.params, x, y, state.model_state)
        assert float(scores["accuracy"]) == pytest.approx(history.val_accuracy[-1], abs=1e-6)


def _spec(net, shape, **kw):
    x, y = data(shape)
    base = dict(iterations=20, eval_every=10, rounds=1, seeds=1, batch_size=16, n_val=16, checkpoints_per_round=1)
    return lottery.Spec(net, optax.adam(1e-2), train=(x, y), **{**base, **kw})


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_lottery_run_prunes_weights(name, tmp_path):
    make, shape = ALL[name]
    report = lottery.run(
        _spec(make(), shape, arms=("ticket", "random")), out=tmp_path, progress=False, figures=False, log=lambda s: None
    )
    assert [r["round"] for r in report["rounds"]] == [0, 1]
    for r in report["rounds"]:
        assert np.all(np.isfinite(np.asarray(r["final_test_accuracy"])))
    assert np.all(np.asarray(report["rounds"][1]["density"]) < 1)


UNIT_MLPS = ["nnx_mlp", "linen_mlp", "eqx_mlp", "eqx_bn_mlp"]


def _unit_masks_check(name, masks, output, axes):
    """Every class of the output layer kept; half of the 16 hidden units pruned, whole (leading member axis)."""
    flat = {prune.path_name(p): np.asarray(m) for p, m in jax.tree_util.tree_leaves_with_path(masks)}
    for leaf, axis in axes.items():
        m = flat[leaf]
        unit_axis = axis % (m.ndim - 1) + 1  # past the member axis
        alive = np.moveaxis(m, unit_axis, -1).reshape(m.shape[0], -1, m.shape[unit_axis])
        assert np.all(alive.all(axis=1) | ~alive.any(axis=1)), leaf  # whole units only
        if leaf.startswith(output + "/"):
            assert m.all(), f"{name}: output layer {leaf} lost a class"
        else:
            assert alive.any(axis=1).sum(axis=-1).tolist() == [8] * m.shape[0], leaf  # 16 hidden units, half kept


@pytest.mark.parametrize("name", UNIT_MLPS)
def test_prune_round_by_units_reads_the_adapters_layout(name):
    make, output, axes = LAYOUTS[name]
    net = make()
    params = net.init(jax.random.key(0), (8,))
    spec = _spec(net, (8,), structure="unit", rate=0.5)
    ones = prune.ones(params)
    masks = lottery.prune_round(spec, params, ones, params, 1, prune.prunable(params), layout=net.unit_layout)
    _unit_masks_check(name, jax.tree.map(lambda m: m[None], masks), output, axes)


def test_prune_round_by_units_asks_for_an_undeclared_output_layer():
    net = from_nnx(NnxMLP)  # no input_shape: no probe, so no output layer
    params = net.init(jax.random.key(0), (8,))
    spec = _spec(net, (8,), structure="unit", rate=0.5)
    ones = prune.ones(params)
    with pytest.raises(ValueError, match="output"):
        lottery.prune_round(spec, params, ones, params, 1, prune.prunable(params), layout=net.unit_layout)


@pytest.mark.slow
@pytest.mark.parametrize("name", UNIT_MLPS)
def test_lottery_unit_structure_keeps_the_classes_and_prunes_hidden_units(name, tmp_path):
    make, output, axes = LAYOUTS[name]
    net = make()
    spec = _spec(net, (8,), arms=("ticket",), structure="unit", rate=0.5)
    lottery.run(spec, out=tmp_path, progress=False, figures=False, log=lambda s: None)
    masks = dict(np.load(tmp_path / "round_01" / "masks.npz"))  # members stacked on the leading axis
    _unit_masks_check(name, masks, output, axes)


# recompute_statistics (stat_batches > 0) runs the net in training mode with a fixed key for Dropout: nets with
# Dropout and without it both recompute their statistics.
STABILITY = {
    **{(name, 0): make for name, (make, _) in ALL.items()},  # statistics interpolated like the params
    **{(name, 2): make for name, (make, _) in STATEFUL.items()},  # statistics recomputed from 2 batches
    ("linen_cnn_no_dropout", 2): lambda: from_flax(LinenCNN(dropout=0.0), input_shape=(6, 6, 1)),
    ("eqx_bn_mlp_no_dropout", 2): lambda: from_equinox(lambda k: eqx.nn.make_with_state(EqxBNMLP)(k, 0.0)),
}


def _stability_case(case):
    (name, batches) = case
    return pytest.param(case, id=f"{name}-stat_batches={batches}")


@pytest.mark.slow
@pytest.mark.parametrize("case", [_stability_case(c) for c in STABILITY])
def test_stability_of_adapted_nets(case):
    name, batches = case
    net = STABILITY[case]()
    shape = (6, 6, 1) if "cnn" in name else (8,)
    x, y = data(shape)
    result = stability.stability(
        net,
        net.init(jax.random.key(0), shape),
        optax.sgd(0.05),
        losses.softmax_cross_entropy,
        (x[:48], y[:48]),
        (x[48:], y[48:]),
        steps=6,
        batch_size=16,
        key=jax.random.key(2),
        alphas=[0.0, 0.5, 1.0],
        model_state=net.init_state(shape),
        stat_batches=batches,
        dropout_key=jax.random.key(3),
    )
    assert result.copies.step.tolist() == [6, 6]
    assert np.all(np.isfinite(result.barrier.test_error)) and result.barrier.test_error.shape == (1, 3)
    assert result.barrier.recomputed_statistics == (batches > 0)
