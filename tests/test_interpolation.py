"""funcnn.interpolation: the linear path, BatchNorm statistics recomputed along it, the error barrier;
each checked against an independent reference (numpy loops, float64 statistics, evaluations by hand)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import interpolation, losses, models, stability, train
from tests.conftest import TEACHER_BATCH as BATCH
from tests.conftest import TEACHER_N as N
from tests.conftest import bn_mlp

LOSS = losses.softmax_cross_entropy


@pytest.mark.slow
def test_interpolate_matches_numpy_loop(teacher_mlp):
    net, a = teacher_mlp
    b = net.init(jax.random.key(2), (10,))
    alphas = [0.0, 0.25, 0.5, 0.7, 1.0]
    out = interpolation.interpolate(a, b, alphas)
    for leaf, la, lb in zip(jax.tree.leaves(out), jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        la, lb = np.asarray(la), np.asarray(lb)
        assert leaf.shape == (len(alphas),) + la.shape
        for j, al in enumerate(alphas):
            ref = la.astype(np.float64) + al * (lb.astype(np.float64) - la)
            np.testing.assert_allclose(np.asarray(leaf[j]), ref, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(np.asarray(leaf[0]), la)  # bit-exact ends
        np.testing.assert_array_equal(np.asarray(leaf[-1]), lb)
    same = interpolation.interpolate(a, a, alphas)
    for leaf, la in zip(jax.tree.leaves(same), jax.tree.leaves(a), strict=True):
        np.testing.assert_array_equal(np.asarray(leaf), np.broadcast_to(la, leaf.shape))


def _numpy_statistics(params, x, idx):
    """Per batch, the train-mode forward pass of bn_mlp in float64; the batch means and unbiased
    variances at both BatchNorms, averaged over batches."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    sums = {name: [0.0, 0.0] for name in ("batchnorm_1", "batchnorm_4")}
    for i in idx:
        h = x[i].astype(np.float64)
        for name, dense in (("batchnorm_1", "dense_0"), ("batchnorm_4", "dense_3")):
            h = h @ p[dense]["w"] + p[dense]["b"]
            mean, var = h.mean(0), h.var(0)
            sums[name][0] += mean
            sums[name][1] += var * len(h) / (len(h) - 1)
            h = np.maximum((h - mean) / np.sqrt(var + 1e-5) * p[name]["scale"] + p[name]["offset"], 0)
    return {name: {"mean": m / len(idx), "var": v / len(idx)} for name, (m, v) in sums.items()}


def test_recompute_statistics_matches_numpy(teacher_data):
    net = bn_mlp()
    params, state = net.init(jax.random.key(7), (10,)), net.init_state((10,))
    x = teacher_data[0][0] * 3 + 2  # statistics far from the reset values
    idx = stability.statistics_batches(jax.random.key(8), N, BATCH, 4)
    got = jax.jit(lambda p, s, i: interpolation.recompute_statistics(net, p, s, x, i))(params, state, idx)
    want = _numpy_statistics(params, x, np.asarray(idx))
    for name in want:
        for stat in ("mean", "var"):
            np.testing.assert_allclose(np.asarray(got[name][stat]), want[name][stat], rtol=1e-5, atol=1e-6)
    assert jax.tree.structure(got) == jax.tree.structure(state)


def test_recompute_statistics_leaves_stateless_state(teacher_mlp, teacher_data):
    net, params = teacher_mlp
    idx = jnp.zeros((2, BATCH), jnp.int32)
    assert interpolation.recompute_statistics(net, params, None, teacher_data[0][0], idx) is None
    empty = net.init_state((10,))
    assert interpolation.recompute_statistics(net, params, empty, teacher_data[0][0], idx) is empty


@pytest.mark.slow
def test_train_eval_measures_the_train_error_on_a_prefix(teacher_mlp, teacher_data):
    net, params = teacher_mlp
    pop = jax.tree.map(lambda a, b: jnp.stack([a, b]), params, net.init(jax.random.key(7), (10,)))
    full = interpolation.barrier(net, pop, teacher_data[0], teacher_data[1], alphas=[0.0, 0.5, 1.0])
    assert np.array_equal(
        interpolation.barrier(
            net, pop, teacher_data[0], teacher_data[1], alphas=[0.0, 0.5, 1.0], train_eval=N
        ).train_error,
        full.train_error,
    )
    part = interpolation.barrier(net, pop, teacher_data[0], teacher_data[1], alphas=[0.0, 0.5, 1.0], train_eval=40)
    evaluate = train.make_evaluate(net, LOSS)
    for j, copy in ((0, 0), (2, 1)):
        p = jax.tree.map(lambda a, copy=copy: a[copy], pop)
        ref = 1 - evaluate(p, teacher_data[0][0][:40], teacher_data[0][1][:40])["accuracy"]
        assert round(float(part.train_error[0, j]) * 40) == round(float(ref) * 40)
    np.testing.assert_array_equal(part.test_error, full.test_error)
    with pytest.raises(
        ValueError, match=r"train_eval must be an int in \[1, 96\] \(training examples\), got train_eval=0"
    ):
        interpolation.barrier(net, pop, teacher_data[0], teacher_data[1], train_eval=0)


def test_stability_names_are_interpolations():
    for name in ("Barrier", "barrier", "interpolate", "recompute_statistics", "DEFAULT_ALPHAS"):
        assert getattr(stability, name) is getattr(interpolation, name)


@pytest.mark.slow
def test_barrier_chunks_agree(teacher_mlp, teacher_data):
    net = teacher_mlp[0]
    inits = jax.vmap(net.init, in_axes=(0, None))(jax.random.split(jax.random.key(3), 3), (10,))
    errors = [
        np.asarray(
            interpolation.barrier(
                net, inits, teacher_data[0], teacher_data[1], alphas=[0.0, 0.5, 1.0], chunk=c
            ).test_error
        )
        for c in (None, 2, 1)
    ]
    assert errors[0].shape == (3, 3)  # 3 pairs x 3 points
    for e in errors[1:]:
        np.testing.assert_allclose(e, errors[0], atol=1.5 / 64)  # at most one test example flips


@pytest.mark.parametrize(
    "case, match",
    [
        ("tree", "params_b must have params_a's tree structure"),
        ("shape", r"params_b\['dense_0'\]\['b'\] has shape \(8,\), expected \(16,\)"),
        ("alpha_range", "alphas must be a 1-D sequence in"),
        ("alpha_2d", "alphas must be a 1-D sequence in"),
        ("alpha_ends", "increasing from 0 to 1"),
        ("pairs", "pairs must be"),
        ("chunk", r"chunk must be None or an int >= 1 .*chunk=0"),
    ],
)
def test_bad_input(teacher_mlp, teacher_data, case, match):
    net, params = teacher_mlp
    other = models.mlp((8,), n_classes=3).init(jax.random.key(0), (10,))
    pop = jax.tree.map(lambda a: jnp.stack([a, a]), params)
    calls = {
        "tree": lambda: interpolation.interpolate(params, {"dense_0": params["dense_0"]}, [0.5]),
        "shape": lambda: interpolation.interpolate(params, other, [0.5]),
        "alpha_range": lambda: interpolation.interpolate(params, params, [0.0, 1.5]),
        "alpha_2d": lambda: interpolation.interpolate(params, params, [[0.0, 1.0]]),
        "alpha_ends": lambda: interpolation.barrier(net, pop, teacher_data[0], teacher_data[1], alphas=[0.2, 1.0]),
        "pairs": lambda: interpolation.barrier(net, pop, teacher_data[0], teacher_data[1], pairs=[[0, 0]]),
        "chunk": lambda: interpolation.barrier(net, pop, teacher_data[0], teacher_data[1], chunk=0),
    }
    with pytest.raises(ValueError, match=match):
        calls[case]()


def _adapter_bn(kind):
    """(net, eps, biased): a net of one BatchNorm over 1 feature, with momentum 0.9, from each library."""
    if kind == "funcnn":
        from funcnn import nn

        return nn.serial(nn.BatchNorm(momentum=0.9)), 1e-5, False
    if kind == "nnx":
        from flax import nnx

        from funcnn.interop import from_nnx

        return from_nnx(lambda rngs: nnx.BatchNorm(1, momentum=0.9, rngs=rngs), input_shape=(1,)), 1e-5, True
    if kind == "linen":
        import flax.linen as fnn

        from funcnn.interop import from_flax

        class BN(fnn.Module):
            @fnn.compact
            def __call__(self, x, train: bool = False):
                return fnn.BatchNorm(use_running_average=not train, momentum=0.9)(x)

        return from_flax(BN()), 1e-5, True
    import equinox as eqx

    from funcnn.interop import from_equinox

    mode = kind.split("-")[1]

    class Net(eqx.Module):
        bn: eqx.nn.BatchNorm

        def __init__(self, key):
            self.bn = eqx.nn.BatchNorm(1, axis_name="batch", mode=mode, momentum=0.9)

        def __call__(self, x, state):
            return self.bn(x, state)

    return from_equinox(lambda key: eqx.nn.make_with_state(Net)(key), input_shape=(1,)), 1e-5, True


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["funcnn", "nnx", "linen", "equinox-ema", "equinox-batch"])
def test_recompute_statistics_is_the_closed_form_for_every_adapter(kind):
    """Batches [0..3] and [4..7]: eval mode then normalizes by their average mean 3.5 and their average
    variance (each library's own: unbiased 5/3 for funcnn, biased 5/4 for flax and equinox), whatever
    the library keeps beside its statistics (equinox's first-step flag or step counter)."""
    net, eps, biased = _adapter_bn(kind)
    params, state = net.init(jax.random.key(0), (1,)), net.init_state((1,))
    x, idx = jnp.arange(8.0).reshape(8, 1), jnp.arange(8).reshape(2, 4)
    new = interpolation.recompute_statistics(net, params, state, x, idx)
    var = np.mean([np.var(b, ddof=0 if biased else 1) for b in ([0, 1, 2, 3], [4, 5, 6, 7])])
    probe = jnp.array([[0.0], [10.0]])
    y, _ = train.as_forward(net)(params, new, probe, train=False)
    np.testing.assert_allclose(np.asarray(y)[:, 0], (np.array([0.0, 10.0]) - 3.5) / np.sqrt(var + eps), rtol=2e-5)
