"""flax.linen and equinox networks as funcnn nets: pruned, trained and put through a lottery study."""

import equinox as eqx
import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import data, lottery, prune
from funcnn.interop import from_equinox, from_flax

# MNIST-1D, small: 1600 train / 400 test examples of 40 features, generated (not cached) in ~0.3 s.
D = data.mnist1d(num_samples=2000, cache=False)


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
    report = lottery.run(spec, out=tmp_path, progress=False, log=lambda s: None)
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
    report = lottery.run(spec, out=tmp_path, progress=False, log=lambda s: None)
    _check_report(report)
