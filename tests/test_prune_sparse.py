"""The pure pieces of sparse training (funcnn.prune): schedules, drop-and-grow, N:M, layer densities, each
against an independent reference (closed forms, numpy brute force), and jaxpruner's value-level tests
ported where the conventions agree (google-research/jaxpruner, 2024-04 snapshot), with each difference named."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import prune

# --- polynomial_sparsity: Zhu & Gupta / TF Model Optimization's PolynomialDecay ---------------------------


def zhu_gupta(step, final, initial, begin, end, power):
    """TF Model Optimization's PolynomialDecay, in float64."""
    p = min(1.0, max(0.0, (step - begin) / (end - begin)))
    return final + (initial - final) * (1 - p) ** power


@pytest.mark.parametrize("power", [1, 2, 3])
def test_polynomial_sparsity_equals_zhu_gupta_formula(power):
    steps = np.arange(0, 400, 7)
    for final, initial, begin, end in [(0.9, 0.0, 100, 300), (0.5, 0.2, 0, 20), (0.99, 0.5, 50, 51)]:
        got = np.asarray(prune.polynomial_sparsity(steps, final, initial=initial, begin=begin, end=end, power=power))
        want = [zhu_gupta(t, final, initial, begin, end, power) for t in steps]
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_polynomial_sparsity_traced_and_vmapped():
    f = jax.jit(jax.vmap(lambda t, s, b, e: prune.polynomial_sparsity(t, s, begin=b, end=e)))
    got = f(jnp.array([9, 150, 400]), jnp.array([0.5, 0.9, 0.8]), jnp.array([0, 100, 0]), jnp.array([20, 300, 100]))
    want = [zhu_gupta(9, 0.5, 0, 0, 20, 3), zhu_gupta(150, 0.9, 0, 100, 300, 3), 0.8]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_polynomial_sparsity_end_equal_begin_is_a_step():
    got = [float(prune.polynomial_sparsity(t, 0.7, begin=10, end=10)) for t in (9, 10, 11)]
    assert got == pytest.approx([0.0, 0.7, 0.7])


def test_jaxpruner_polynomial_schedule_is_one_step_ahead():
    """jaxpruner's sparsity_schedules_test: 0.4375 at step 9 of (0, 20), target 0.5. Its progress is
    (step + 1 - start)/(end - start): Zhu & Gupta's formula (ours) gives 0.4168 at step 9 and jaxpruner's
    value one step later."""
    assert float(prune.polynomial_sparsity(9, 0.5, begin=0, end=20)) == pytest.approx(0.5 * (1 - 0.55**3), abs=1e-6)
    assert float(prune.polynomial_sparsity(10, 0.5, begin=0, end=20)) == pytest.approx(0.4375)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"begin": 1, "end": 0}, "end must be >= begin, got begin=1, end=0"),  # jaxpruner's WrongEndStep test
        ({"begin": -1, "end": 5}, "begin must be >= 0, got begin=-1"),
        ({"begin": 0, "end": 5, "power": 0}, "power must be > 0, got power=0"),
        ({"begin": 0, "end": 5, "initial": 1.5}, r"initial must be in \[0, 1\], got initial=1.5"),
    ],
)
def test_polynomial_sparsity_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        prune.polynomial_sparsity(3, 0.5, **kwargs)
    with pytest.raises(ValueError, match=r"final must be in \[0, 1\], got final=2"):
        prune.polynomial_sparsity(3, 2, begin=0, end=5)


# --- cosine_fraction: RigL's drop fraction ----------------------------------------------------------------


def test_cosine_fraction_equals_rigl_formula():
    steps = np.array([0, 1, 10, 333, 500, 999, 1000, 1001, 5000])
    got = np.asarray(jax.jit(prune.cosine_fraction)(steps, 0.3, 1000))
    want = [0.3 / 2 * (1 + math.cos(math.pi * min(t, 1000) / 1000)) for t in steps]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="end must be > 0, got end=0"):
        prune.cosine_fraction(1, 0.3, 0)
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\], got fraction=1.2"):
        prune.cosine_fraction(1, 1.2, 10)


# --- drop_and_grow against a numpy brute force ----------------------------------------------------------


def brute_drop_and_grow(mask, drop, grow, fraction):
    """One entry at a time: drop the kept entry of lowest drop score (the first such index), k times;
    then grow the entry of highest grow score among the others (the first such index), k times."""
    kept = mask.ravel().copy()
    k = int(np.floor(kept.sum() * fraction))
    d, g = drop.ravel(), grow.ravel()
    for _ in range(k):
        on = np.flatnonzero(kept)
        kept[on[np.argmin(d[on])]] = False
    new = kept.copy()
    for _ in range(k):
        off = np.flatnonzero(~new)
        new[off[np.argmax(g[off])]] = True
    return new.reshape(mask.shape)


FRACTIONS = [0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 1.0]


@pytest.mark.parametrize("shape", [(5,), (4, 5), (2, 9, 1), (2, 2, 4, 4)])
def test_drop_and_grow_equals_brute_force(shape):
    rng = np.random.default_rng(sum(shape))
    n = math.prod(shape)
    masks, drops, grows, fractions = [], [], [], []
    for density in (0.05, 0.2, 0.5, 0.8, 0.95, 1.0):
        for fraction in FRACTIONS:
            for ties in (False, True):  # integer scores: many ties, decided by the flat index
                mask = np.zeros(n, bool)
                mask[rng.permutation(n)[: round(density * n)]] = True
                draw = (lambda: rng.integers(-2, 3, n).astype(np.float32)) if ties else (lambda: rng.normal(size=n))
                masks.append(mask.reshape(shape))
                drops.append(draw().reshape(shape))
                grows.append(np.abs(draw()).reshape(shape))
                fractions.append(fraction)
    masks, drops, grows = (np.stack(a) for a in (masks, drops, grows))
    python_fractions, fractions = fractions, np.asarray(fractions, np.float32)
    got = np.asarray(jax.jit(jax.vmap(prune.drop_and_grow))(masks, drops, grows, fractions))
    for i in range(len(masks)):
        want = brute_drop_and_grow(masks[i], drops[i], grows[i], python_fractions[i])
        np.testing.assert_array_equal(got[i], want, err_msg=f"case {i}: fraction {fractions[i]}")
        assert got[i].sum() == masks[i].sum()  # the count of the leaf is unchanged


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.0, [0, 1, 0, 1, 0, 1, 1, 0]),
        (0.25, [1, 1, 0, 1, 0, 1, 0, 0]),
        (0.5, [1, 1, 0, 0, 1, 1, 0, 0]),
        (0.75, [1, 0, 1, 0, 1, 1, 0, 0]),
        (1.0, [1, 0, 1, 0, 1, 1, 0, 0]),
    ],
)
def test_jaxpruner_rigl_update_mask_table(fraction, expected):
    """jaxpruner's sparse_trainers_test.testRigLUpdateMask: w = [-9, 1, 4, -1, 5, 8, -2, 3], old mask
    [0,1,0,1,0,1,1,0], drop score w (signed), grow score |w|. Same values: its kept count round(n_on (1 - f))
    equals ours, n_on - floor(n_on f), for n_on = 4 at these fractions."""
    w = jnp.array([-9, 1, 4, -1, 5, 8, -2, 3], jnp.float32)
    old = jnp.array([0, 1, 0, 1, 0, 1, 1, 0], bool)
    got = prune.drop_and_grow(old, w, jnp.abs(w), fraction)
    assert got.astype(int).tolist() == expected


def test_drop_and_grow_trees_and_floor_as_written():
    masks = {"a": jnp.arange(20) < 10, "b": jnp.array([True, False] * 5)}
    scores = {"a": jnp.arange(20.0), "b": jnp.arange(10.0)}
    out = prune.drop_and_grow(masks, scores, {"a": jnp.arange(20.0), "b": -jnp.arange(10.0)}, 0.7)
    # a: floor(10 * 0.7) = 7 (float32's 0.7 * 10 = 6.9999998 would floor to 6): 0..6 go, 13..19 come
    assert out["a"].astype(int).tolist() == [0] * 7 + [1] * 3 + [0] * 3 + [1] * 7
    # b: floor(5 * 0.7) = 3 of 0, 2, 4, 6, 8 dropped (0, 2, 4), the 3 lowest indices grown (0, 1, 2)
    assert out["b"].astype(int).tolist() == [1, 1, 1, 0, 0, 0, 1, 0, 1, 0]


def test_drop_and_grow_bad_input():
    m = {"w": jnp.ones(4, bool)}
    s = {"w": jnp.ones(4)}
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\], got fraction=1.5"):
        prune.drop_and_grow(m, s, s, 1.5)
    with pytest.raises(ValueError, match="drop_scores must have the masks' tree structure"):
        prune.drop_and_grow(m, {"v": jnp.ones(4)}, s, 0.5)
    with pytest.raises(ValueError, match=r"grow_scores for 'w' has shape \(3,\), the mask \(4,\)"):
        prune.drop_and_grow(m, s, {"w": jnp.ones(3)}, 0.5)
    with pytest.raises(ValueError, match="mask 'w' must be boolean"):
        prune.drop_and_grow({"w": jnp.ones(4)}, s, s, 0.5)


# --- n_of_m against numpy -------------------------------------------------------------------------------------


def brute_n_of_m(scores, n, m, axis):
    moved = np.moveaxis(scores, axis, -1)
    out = np.zeros(moved.shape, bool)
    for idx in np.ndindex(moved.shape[:-1]):
        row = moved[idx]
        for start in range(0, row.size, m):
            group = list(range(start, start + m))
            best = sorted(group, key=lambda j: (-row[j], j))[:n]  # highest first; ties: lower index
            out[idx + (best,)] = True
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize(("shape", "n", "m", "axis"), [((8,), 2, 4, 0), ((3, 8), 1, 4, 1), ((8, 3), 2, 4, 0),
                                                        ((2, 6, 5), 2, 3, 1), ((4, 4, 3, 8), 3, 8, -1)])  # fmt: skip
def test_n_of_m_equals_numpy(shape, n, m, axis):
    rng = np.random.default_rng(0)
    for scores in (rng.normal(size=shape), rng.integers(0, 3, shape).astype(np.float32)):
        got = np.asarray(prune.n_of_m(jnp.asarray(scores, jnp.float32), n, m, axis=axis))
        np.testing.assert_array_equal(got, brute_n_of_m(scores, n, m, axis))


# jaxpruner's mask_calculator_test values
SCORE_1 = [
    [[0.69, 0.37, 0.96, 0.81], [0.79, 0.55, 0.88, 0.53], [0.66, 0.88, 0.4, 0.83], [0.13, 0.8, 0.91, 0.96]],
    [[0.34, 0.17, 0.07, 0.74], [0.13, 0.13, 0.83, 0.76], [0.13, 0.92, 0.25, 0.75], [0.37, 0.42, 0.65, 0.46]],
]
MASK_UNS_1 = [
    [[0, 0, 1, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 1, 1]],
    [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]],
]
MASK_N2_M4_1 = [
    [[0, 0, 1, 1], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 1]],
    [[1, 0, 0, 1], [0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 1, 1]],
]
MASK_N2_M4_AXIS1_1 = [
    [[1, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 1], [0, 1, 1, 1]],
    [[1, 0, 0, 0], [0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 1, 0]],
]


def test_jaxpruner_n_by_m_masks():
    """mask_calculator_test.testScoreBasedTopKWithNbyMInput, both axes, and its errors. Difference: on
    all-equal scores (SCORE_2 = ones) jaxpruner's double argsort keeps the higher indices of each group
    ([0,0,1,1,0,0,1,1]); ours keeps the lower ones, as every selection in funcnn.prune takes ties in index order."""
    s = jnp.array(SCORE_1)
    assert prune.n_of_m(s, 2, 4, axis=-1).astype(int).tolist() == MASK_N2_M4_1
    assert prune.n_of_m(s, 2, 4, axis=1).astype(int).tolist() == MASK_N2_M4_AXIS1_1
    assert prune.n_of_m(jnp.ones(8), 2, 4, axis=0).astype(int).tolist() == [1, 1, 0, 0, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="n must be <= m, got n=4, m=2"):
        prune.n_of_m(jnp.arange(8.0), 4, 2, axis=0)
    for shape, axis in (((2, 4, 4), 0), ((2, 5, 3), 1)):  # testTopKWithNbyMTargetAxisNotDivisibleByM
        with pytest.raises(ValueError, match=f"axis {axis} of scores has length {shape[axis]}, not a multiple of m=4"):
            prune.n_of_m(jnp.ones(shape), 2, 4, axis=axis)
    # testTopKWithNbyMGenerateNonPrunedMaskForSparsityZero has no counterpart: n_of_m takes no sparsity
    assert float(prune.n_of_m(jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 8))), 2, 4, axis=2).mean()) == 0.5


def test_jaxpruner_unstructured_topk_via_by_scores():
    """mask_calculator_test.testScoreBasedTopKWithUnstructuredInput through `prune.by_scores` (rate = sparsity):
    SCORE_1 at 0.8 agrees (no ties). With ties jaxpruner keeps the lower indices while `by_scores` prunes
    them first: SCORE_4 (1, .5, .3, .2, 1, 1.5, 1.8, 2, 1, 1 at 0.5) keeps indices 0, 4 there and 8, 9 here."""
    s = {"w": jnp.array(SCORE_1)}
    assert prune.by_scores(s, prune.ones(s), 0.8, spec={"w": True})["w"].astype(int).tolist() == MASK_UNS_1
    s4 = {"w": jnp.array([1, 0.5, 0.3, 0.2, 1, 1.5, 1.8, 2.0, 1, 1])}
    got = prune.by_scores(s4, prune.ones(s4), 0.5, spec={"w": True})["w"].astype(int).tolist()
    assert got == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]  # jaxpruner's MASK_UNS_4: [1, 0, 0, 0, 1, 1, 1, 1, 0, 0]


# --- layer densities --------------------------------------------------------------------------------------


def sparsities(shapes, sparsity, distribution="erk", power=1.0):
    params = {k: np.zeros(v, np.float32) for k, v in shapes.items()}
    dens = prune.layer_densities(params, 1 - sparsity, distribution, power=power, spec=dict.fromkeys(shapes, True))
    return {k: 1 - d for k, d in dens.items()}


@pytest.mark.parametrize(
    ("shapes", "sparsity", "distribution", "power", "expected"),
    [
        ({"a": (2, 4)}, 0.5, "erk", 1.0, {"a": 0.5}),
        ({"a": (2, 4), "b": (3, 6), "c": (2, 4, 6)}, 0.5, "erk", 1.0, {"a": 0.0, "b": 0.31, "c": 0.655}),
        # include_kernel=False: n_in, n_out of the last two axes (our 'erdos_renyi')
        ({"a": (2, 4), "b": (3, 6), "c": (2, 4, 6)}, 0.5, "erdos_renyi", 1.0, {"a": 0.21, "b": 0.47, "c": 0.56}),
        ({"a": (2, 4), "b": (3, 6), "c": (2, 4, 6)}, 0.5, "erk", 2.0, {"a": 0.0, "b": 0.033, "c": 0.758}),
    ],
)
def test_jaxpruner_erdos_renyi_sparsities(shapes, sparsity, distribution, power, expected):
    """sparsity_distributions_test.testGetSparsityERKSucceed, to its 2 places."""
    got = sparsities(shapes, sparsity, distribution, power)
    assert got == pytest.approx(expected, abs=0.005)


def test_jaxpruner_erk_at_08_differs_by_its_floor():
    """testGetSparsityERKSucceed at 0.8 expects 0.556 / 0.70 / 0.85: jaxpruner budgets floor(0.8 n) zeros per
    layer (6, 14, 38 of 8, 18, 48), we the exact 0.8 Σn. Ours keeps exactly 20% of the 74 weights."""
    got = sparsities({"a": (2, 4), "b": (3, 6), "c": (2, 4, 6)}, 0.8)
    assert got == pytest.approx({"a": 0.5889, "b": 0.7259, "c": 0.8630}, abs=1e-4)
    assert sum((1 - s) * n for s, n in zip(got.values(), (8, 18, 48), strict=True)) == pytest.approx(0.2 * 74)


def test_jaxpruner_uniform_and_erk_maps():
    """sparsity_distributions_test: uniform and erk on trees (1-D leaves not sparsified). Differences: we
    return {leaf name: density}, not a tree with None leaves; custom_sparsity_map has no counterpart
    (`prune.by_scores(layer_rates=...)` is ours); a single array is a valid one-leaf tree here, not an error."""
    tree = {"a": np.zeros((2, 4)), "b": {"c": np.zeros((3, 6, 7)), "d": np.ones((7, 4))}}
    assert prune.layer_densities(tree, 0.5, "uniform") == {"a": 0.5, "b/c": 0.5, "b/d": 0.5}
    assert prune.layer_densities([np.zeros((2, 4)), np.ones(4)], 0.5, "uniform") == {"0": 0.5}
    erk = {k: 1 - d for k, d in prune.layer_densities(tree, 0.5, "erk").items()}
    assert erk == pytest.approx({"a": 0.0, "b/c": 0.64, "b/d": 0.0}, abs=0.005)
    tree["b"]["d"] = np.ones(4)
    erk = {k: 1 - d for k, d in prune.layer_densities(tree, 0.5, "erk").items()}
    assert erk == pytest.approx({"a": 0.0, "b/c": 0.53}, abs=0.005)


def test_layer_densities_erk_is_erk_densities_and_budgets_exactly():
    params = {"conv": np.zeros((3, 3, 4, 8)), "d1": np.zeros((288, 64)), "d2": np.zeros((64, 10)), "b": np.zeros(10)}
    for density in (0.02, 0.1, 0.5, 0.9, 1.0):
        ours = prune.layer_densities(params, density, "erk")
        assert ours == pytest.approx(prune.erk_densities(params, density), rel=1e-12)
        for dist in ("uniform", "erdos_renyi", "erk"):
            d = prune.layer_densities(params, density, dist)
            sizes = {"conv": 288, "d1": 288 * 64, "d2": 640}
            assert sum(d[k] * n for k, n in sizes.items()) == pytest.approx(density * sum(sizes.values()))
            assert max(d.values()) <= 1.0
    er = prune.layer_densities(params, 0.1, "erdos_renyi")
    raw = {"conv": 12 / 32, "d1": 352 / (288 * 64), "d2": 74 / 640}  # (n_in + n_out)/(n_in n_out), channels only
    capped = [k for k in raw if er[k] == 1.0]
    ratios = {k: er[k] / raw[k] for k in raw if k not in capped}
    assert len(set(np.round(list(ratios.values()), 9))) == 1  # one ε for the uncapped leaves


def test_layer_densities_epsilon_and_bad_input():
    params = {"a": np.zeros((784, 1000)), "o": np.zeros((1000, 10))}
    got = prune.layer_densities(params, distribution="erdos_renyi", epsilon=13)
    assert got == pytest.approx({"a": 13 * 1784 / 784000, "o": 1.0})  # SET's ε = 13: 1000x10 capped
    for kwargs, match in [
        ({"density": 0.0}, r"density must be in \(0, 1\], got density=0.0"),
        ({"density": 1.5}, r"density must be in \(0, 1\], got density=1.5"),
        ({"density": 0.5, "distribution": "er"}, "distribution must be one of"),
        ({}, "give exactly one of density= and epsilon="),
        ({"epsilon": 2.0, "distribution": "uniform"}, "epsilon= is for 'erdos_renyi' and 'erk'"),
        ({"density": 0.5, "power": -1.0}, "power must be > 0, got power=-1.0"),
    ]:
        with pytest.raises(ValueError, match=match):
            prune.layer_densities(params, **kwargs)
