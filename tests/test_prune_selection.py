"""The selection step: an array `rate` (or an array in `layer_rates`, or synflow's `density`) works in
every pruning function, eagerly, under `jax.jit` and under `jax.vmap` over a batch of rates, each
result equal to the Python float's; and `by_scores` takes any real scores (GraSP's are signed)."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import nn, prune

NET = nn.serial(nn.Dense(10), nn.Relu(), nn.Dense(4), nn.Relu(), nn.Dense(3))  # w: 4x10, 10x4, 4x3
PARAMS = NET.init(jax.random.key(0), (4,))
SCORES = jax.tree.map(lambda a: jax.random.normal(jax.random.key(1), a.shape), PARAMS)  # signed
ONES = prune.ones(PARAMS)
ALL = prune.prunable(PARAMS, lambda name, leaf: True)  # biases too, for 'layer_joint'
# Rates whose float32 values lie just below them, so that with 10, 20, 30 or 40 survivors (or 10
# units) the float32 product lies just below an integer: floor(0.7f * 20) = 13 where Python's
# int(0.7 * 20) = 14; likewise 0.35, 0.9 and 0.65.
RATES = (0.7, 0.35, 0.9, 0.65, 0.2, 0.0)


def _start():
    """Masks already pruned (20, 20 and 6 survivors): counts come from the survivors."""
    return prune.magnitude(PARAMS, ONES, 0.5)


def _pruners(rounding):
    start = _start()
    key = jax.random.key(2)
    return {
        "by_scores": lambda r: prune.by_scores(SCORES, start, r, rounding=rounding),
        "by_scores_global": lambda r: prune.by_scores(SCORES, start, r, scope="global", rounding=rounding),
        "by_scores_joint": lambda r: prune.by_scores(
            SCORES, start, r, scope="layer_joint", spec=ALL, layer_rates={"dense_2": 0.5}, rounding=rounding
        ),
        "by_scores_layer_rates": lambda r: prune.by_scores(
            SCORES, start, 0.3, layer_rates={"dense_2": r, "dense_4/w": r}, rounding=rounding
        ),
        "by_scores_joint_layer_rates": lambda r: prune.by_scores(
            SCORES, start, 0.3, scope="layer_joint", spec=ALL, layer_rates={"dense_0": r}, rounding=rounding
        ),
        "magnitude": lambda r: prune.magnitude(PARAMS, start, r, rounding=rounding),
        "magnitude_global": lambda r: prune.magnitude(PARAMS, start, r, scope="global", rounding=rounding),
        "magnitude_layer_rates": lambda r: prune.magnitude(
            PARAMS, ONES, 0.5, layer_rates={"dense_4": r}, rounding=rounding
        ),
        "random": lambda r: prune.random(key, PARAMS, ONES, r, rounding=rounding),
        "random_joint": lambda r: prune.random(key, PARAMS, start, r, scope="layer_joint", spec=ALL, rounding=rounding),
        "structured": lambda r: prune.structured(PARAMS, ONES, r, rounding=rounding),
        "structured_global": lambda r: prune.structured(PARAMS, ONES, r, scope="global", rounding=rounding),
        "structured_layer_rates": lambda r: prune.structured(
            PARAMS, ONES, 0.4, layer_rates={"dense_2/w": r}, norm="l2", rounding=rounding
        ),
    }


def _equal(a, b, what):
    for (path, u), v in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=f"{what}: {prune.path_name(path)}")


def _check(fn, rates, what):
    """fn(array rate) eagerly, under jit and under vmap equals fn(the Python float), for every rate."""
    floats = [fn(r) for r in rates]
    jitted = jax.jit(fn)
    for r, ref in zip(rates, floats, strict=True):
        _equal(fn(jnp.asarray(r)), ref, f"{what} eager rate={r}")
        _equal(jitted(jnp.asarray(r)), ref, f"{what} jit rate={r}")
    batched = jax.vmap(fn)(jnp.asarray(rates))
    for i, (r, ref) in enumerate(zip(rates, floats, strict=True)):
        _equal(jax.tree.map(lambda a, i=i: a[i], batched), ref, f"{what} vmap rate={r}")
    # the rates prune different counts, so equal results are not vacuous
    alive = {sum(int(np.sum(m)) for m in jax.tree.leaves(out)) for out in floats}
    assert len(alive) > 1, what


@pytest.mark.slow
@pytest.mark.parametrize("rounding", ["nearest", "floor"])
@pytest.mark.parametrize("name", list(_pruners("nearest")))
def test_an_array_rate_equals_the_float_rate_eagerly_under_jit_and_under_vmap(name, rounding):
    _check(_pruners(rounding)[name], RATES, f"{name} ({rounding})")


@pytest.mark.slow
def test_synflow_array_density_equals_the_float_density():
    def fn(density):
        return prune.synflow(NET.apply, PARAMS, ONES, density, (4,), iterations=4)

    _check(fn, (0.3, 0.65, 0.125, 1.0), "synflow")
    # scope 'layer' on leaves of 20 weights: round(0.175 * 20) = round(3.5) = 4 (half to even) where
    # float32's 0.175f * 20 = 3.49999994 would round to 3; likewise 0.575 * 20 = 11.5
    small = nn.serial(nn.Dense(5), nn.Relu(), nn.Dense(4), nn.Relu(), nn.Dense(3))  # w: 4x5, 5x4, 4x3
    p = small.init(jax.random.key(4), (4,))
    per_leaf = lambda d: prune.synflow(small.apply, p, prune.ones(p), d, (4,), iterations=3, scope="layer")
    _check(per_leaf, (0.175, 0.575, 0.8), "synflow scope='layer'")
    assert int(per_leaf(0.175)["dense_0"]["w"].sum()) == 4


def test_floor_with_a_float32_array_rate_removes_what_the_python_float_does():
    """The bug found here: floor(float32(0.7) * 20) = 13, Python's int(0.7 * 20) = 14."""
    w = {"w": jnp.arange(1.0, 21.0).reshape(4, 5)}
    for rate in (0.7, 0.35, 0.15, 0.45):
        expected = 20 - int(rate * 20)  # Python's floor, as the MNIST-1D notebook computes it
        got = prune.magnitude(w, prune.ones(w), jnp.float32(rate), rounding="floor")
        assert int(got["w"].sum()) == expected, rate
        assert int(prune.magnitude(w, prune.ones(w), rate, rounding="floor")["w"].sum()) == expected, rate
    with jax.enable_x64(True):  # a float64 array rate is read as it is
        got = prune.magnitude(w, prune.ones(w), jnp.asarray(0.7, jnp.float64), rounding="floor")
        assert int(got["w"].sum()) == 20 - int(0.7 * 20)


@pytest.mark.slow
def test_random_like_and_structured_random_like_take_no_rate():
    # They copy the survivor counts of a mask; if a rate is ever added, add it to the tests above.
    assert "rate" not in inspect.signature(prune.random_like).parameters
    assert "rate" not in inspect.signature(prune.structured_random_like).parameters
    masks = jax.vmap(lambda r: prune.magnitude(PARAMS, ONES, r))(jnp.array([0.2, 0.6]))
    shuffled = jax.jit(jax.vmap(prune.random_like))(jax.random.split(jax.random.key(3), 2), masks)
    for name in ("dense_0", "dense_2", "dense_4"):
        np.testing.assert_array_equal(shuffled[name]["w"].sum(axis=(1, 2)), masks[name]["w"].sum(axis=(1, 2)))


def _ref_by_scores(s, m, rate):
    """Brute force: remove round(rate * survivors) lowest-scoring survivors, ties by index."""
    s, m = np.asarray(s, np.float64).ravel(), np.asarray(m).ravel().copy()
    alive = np.flatnonzero(m)
    order = alive[np.argsort(s[alive], kind="stable")]
    m[order[: int(np.round(rate * len(alive)))]] = False
    return m


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_by_scores_takes_any_real_scores_and_never_revives_pruned_entries(scope):
    start = _start()
    # pruned entries get the highest scores of all: they must still count as pruned
    scores = jax.tree.map(lambda s, m: jnp.where(m, s - 3.0, 100.0), SCORES, start)  # mostly negative
    new = prune.by_scores(scores, start, 0.4, scope=scope)
    names = ("dense_0", "dense_2", "dense_4")
    if scope == "layer":
        for n in names:
            ref = _ref_by_scores(scores[n]["w"], start[n]["w"], 0.4)
            np.testing.assert_array_equal(np.asarray(new[n]["w"]).ravel(), ref)
    else:
        s = np.concatenate([np.asarray(scores[n]["w"]).ravel() for n in names])
        m = np.concatenate([np.asarray(start[n]["w"]).ravel() for n in names])
        got = np.concatenate([np.asarray(new[n]["w"]).ravel() for n in names])
        np.testing.assert_array_equal(got, _ref_by_scores(s, m, 0.4))
    for n in names:
        assert not np.any(np.asarray(new[n]["w"]) & ~np.asarray(start[n]["w"]))
        assert bool(new[n]["b"].all())
