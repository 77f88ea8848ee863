"""Sparse training as optax transformations (funcnn.sparsity): counts, growth by the dense gradient, random
regrowth, static and gradual masks, exact zeros, moments of regrown weights under every optax state, the
STE, bad input, and the one-program population's real `cond`. References: numpy recomputations of each
rule, Zhu & Gupta's formula, and jaxpruner's sparse_trainers_test and ste_test values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import prune, sparsity

KEY = jax.random.key(0)


def net_params(key=KEY):
    """A 4-leaf tree: a conv kernel, a dense matrix, their biases (never sparse)."""
    k1, k2 = jax.random.split(key)
    return {
        "conv": {"w": jax.random.normal(k1, (3, 3, 2, 4)), "b": jnp.zeros(4)},
        "dense": {"w": jax.random.normal(k2, (12, 6)), "b": jnp.zeros(6)},
    }


def grads_at(t, params):
    return jax.tree.map(lambda p: jax.random.normal(jax.random.fold_in(KEY, 100 + t), p.shape), params)


def run(tx, params, steps, grads=grads_at):
    """(params, states after each step): the jitted update applied `steps` times."""
    state = tx.init(params)
    params = sparsity.sparsify(params, state)
    update = jax.jit(lambda g, s, p: tx.update(g, s, p))
    history = []
    for t in range(steps):
        u, state = update(grads(t, params), state, params)
        params = optax.apply_updates(params, u)
        history.append((params, state))
    return params, history


def counts(masks):
    return {prune.path_name(p): int(m.sum()) for p, m in jax.tree_util.tree_leaves_with_path(masks)}


def pruned_are_zero(params, masks):
    pairs = zip(jax.tree.leaves(params), jax.tree.leaves(masks), strict=True)
    return all(bool(np.all(np.where(m, True, np.asarray(p) == 0.0))) for p, m in pairs)


METHODS = {
    "static": lambda inner: sparsity.static(inner, density=0.3, key=KEY),
    "gradual": lambda inner: sparsity.gradual(inner, density=0.2, begin=2, end=8, every=2),
    "set": lambda inner: sparsity.set(inner, density=0.3, every=2, fraction=0.3, key=KEY, end=20),
    "rigl": lambda inner: sparsity.rigl(inner, density=0.3, every=2, fraction=0.4, key=KEY, end=20),
}
STEPS = 10


@pytest.fixture(scope="module")
def runs():
    """The four methods around AdamW (its weight decay would move pruned weights if they were not held), 10
    steps, as one population (`sparsity.stack`: one compiled program): {name: [(params, state) before step 1,
    after step 1, ..., after step 10]} with member i's slices."""
    adamw = optax.adamw(0.05, weight_decay=0.1)
    params = net_params()
    tx, numbers, keys = sparsity.stack([make(adamw) for make in METHODS.values()], params)

    def member(n, k):
        state = tx.init_with(params, n, k)
        p = sparsity.sparsify(params, state)

        def body(carry, t):
            p, s = carry
            u, s = tx.update(grads_at(t, p), s, p)
            p = optax.apply_updates(p, u)
            return (p, s), (p, s)

        _, (ps, ss) = jax.lax.scan(body, (p, state), jnp.arange(STEPS))
        return (p, state), (ps, ss)

    (p0, s0), (ps, ss) = jax.device_get(jax.jit(jax.vmap(member))(numbers, keys))
    out = {}
    for i, name in enumerate(METHODS):
        first = jax.tree.map(lambda a, i=i: a[i], (p0, s0))
        out[name] = [first] + [jax.tree.map(lambda a, i=i, t=t: a[i, t], (ps, ss)) for t in range(STEPS)]
    return out


@pytest.mark.slow
def test_pruned_weights_exactly_zero_after_every_step(runs):
    for name, history in runs.items():
        for t, (params, state) in enumerate(history):
            assert pruned_are_zero(params, sparsity.masks(state)), (name, t)


@pytest.mark.slow
def test_counts_per_leaf_never_change_under_set_rigl_and_static(runs):
    for name in ("set", "rigl", "static"):
        first = counts(sparsity.masks(runs[name][0][1]))
        assert all(counts(sparsity.masks(s)) == first for _, s in runs[name]), name
        assert first["conv/b"] == 4 and first["dense/b"] == 6  # biases dense


def test_static_masks_never_change(runs):
    first = jax.tree.leaves(sparsity.masks(runs["static"][0][1]))
    for _, state in runs["static"]:
        now = jax.tree.leaves(sparsity.masks(state))
        assert all(bool(jnp.array_equal(a, b)) for a, b in zip(first, now, strict=True))


def test_set_and_rigl_masks_move_only_at_update_steps(runs):
    for name in ("set", "rigl"):
        masks = [sparsity.masks(s)["dense"]["w"] for _, s in runs[name]]
        for step in range(1, STEPS + 1):
            changed = not bool(jnp.array_equal(masks[step], masks[step - 1]))
            assert changed == (step % 2 == 0), (name, step)


def test_gradual_counts_follow_zhu_gupta_and_keep_the_largest(runs):
    """At each update step t: kept = round((1 - s(t)) n) (± 1), s Zhu & Gupta's formula (begin 2, end 8,
    final 0.8); the kept weights are the largest |w| among the survivors of the params the call received."""
    history = runs["gradual"]
    for step in range(1, STEPS + 1):
        (received, before), (_, after) = history[step - 1], history[step]
        for name in ("conv", "dense"):
            old, new = np.asarray(before.masks[name]["w"]), np.asarray(after.masks[name]["w"])
            w = np.abs(np.asarray(received[name]["w"]))
            s = 0.8 * (1 - (1 - min(1, max(0, (step - 2) / 6))) ** 3)
            if step % 2 == 0 and 2 <= step <= 8:
                assert abs(new.sum() - round((1 - s) * new.size)) <= 1, (name, step)
                assert not np.any(new & ~old)  # masks only lose entries
                dropped = w[old & ~new]
                assert dropped.size == 0 or w[new].min() >= dropped.max(), (name, step)
            else:
                assert np.array_equal(new, old), (name, step)
    final = sparsity.masks(history[-1][1])
    assert counts(final)["dense/w"] == round(0.2 * 72) and counts(final)["conv/w"] == round(0.2 * 72)


def test_rigl_grows_the_highest_dense_gradient(runs):
    """At each RigL update step: the k = floor(n_on f) lowest |w| of the old mask dropped (numpy), f RigL's
    cosine (α 0.4, end 20), and the k grown entries are the highest |g| among all entries not kept; regrown
    weights start at 0.0; no gradient step on that call (kept weights unchanged)."""
    history = runs["rigl"]
    for step in (2, 4, 6, 8, 10):
        (w_before, before), (w_after, after) = history[step - 1], history[step]
        for name in ("conv", "dense"):
            old, new = np.asarray(before.masks[name]["w"]).ravel(), np.asarray(after.masks[name]["w"]).ravel()
            w = np.asarray(w_before[name]["w"]).ravel()
            g = np.asarray(grads_at(step - 1, w_before)[name]["w"]).ravel()
            k = math.floor(old.sum() * np.float32(0.4 / 2 * (1 + math.cos(math.pi * step / 20))))
            on = np.flatnonzero(old)
            kept = old.copy()
            kept[on[np.argsort(np.abs(w[on]), kind="stable")[:k]]] = False
            grown = new & ~kept
            assert grown.sum() == k and new.sum() == old.sum(), (name, step)
            assert k > 0 or name == "conv", (name, step)  # the dense leaf moves at every update step
            assert k == 0 or np.abs(g[grown]).min() >= np.abs(g[~new]).max(), (name, step)
            after_w = np.asarray(w_after[name]["w"]).ravel()
            assert np.all(after_w[grown & ~old] == 0.0) and np.array_equal(after_w[kept], w[kept])


@pytest.mark.slow
def test_set_with_two_keys_regrows_different_entries():
    def regrown(key):
        tx = sparsity.set(optax.sgd(0.1), density=0.3, every=1, fraction=0.5, key=key, end=10, distribution="uniform")
        params = {"w": jax.random.normal(KEY, (20, 10))}
        state = tx.init(params)
        state = state._replace(masks={"w": jnp.arange(200).reshape(20, 10) % 3 == 0})  # the same old mask
        params = sparsity.sparsify(params, state)
        _, state = tx.update({"w": jnp.ones((20, 10))}, state, params)
        return np.asarray(sparsity.masks(state)["w"])

    old = np.arange(200).reshape(20, 10) % 3 == 0
    a, b = regrown(jax.random.key(1)), regrown(jax.random.key(2))
    assert a.sum() == b.sum() == old.sum() and (a & ~old).sum() > 0 and not np.array_equal(a, b)


@pytest.mark.slow
def test_set_drops_each_sign_separately_and_regrows_normal_values():
    """SET's rule (the leaf rule with signed=True): floor(f n_pos) smallest positive and floor(f n_neg) largest
    negative weights go (by hand below); SET's wrapper regrows as many, at N(0, 1)/10 (std 0.1 by default)."""
    w = jnp.array([0.5, -0.01, 0.2, -0.02, 0.05, -0.03, 0.7, -0.04, 0.0, 0.0, 0.0, 0.0])
    mask = w != 0
    grow_zeros = (w == 0).astype(jnp.float32)  # grow where w = 0, so that the dropped are not regrown
    new = np.asarray(prune.drop_grow.leaf_update(mask, jnp.abs(w), grow_zeros, 0.5, None, w, True))
    # positives 0.5, 0.2, 0.05, 0.7: floor(0.5 * 4) = 2 smallest go (0.2, 0.05); negatives: -0.01, -0.02 go
    assert new.astype(int).tolist() == [1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    unsigned = np.asarray(prune.drop_grow.leaf_update(mask, jnp.abs(w), grow_zeros, 0.5, None, w, False))
    assert unsigned.astype(int).tolist() == [1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1, 1]  # the 4 smallest |w| instead
    params = {"w": w.reshape(3, 4)}
    tx = sparsity.set(optax.sgd(0.0), density=8 / 12, every=1, fraction=0.5, key=KEY, end=5, anneal="constant",
                      distribution="uniform", spec={"w": True})  # fmt: skip
    state = tx.init(params)._replace(masks={"w": mask.reshape(3, 4)})
    u, state = tx.update({"w": jnp.zeros((3, 4))}, state, params)
    after = np.asarray(sparsity.masks(state)["w"]).ravel()
    regrown = np.asarray(optax.apply_updates(params, u)["w"]).ravel()[after & ~np.asarray(mask)]
    assert after.sum() == 8 and regrown.size >= 1 and np.all(regrown != 0.0) and np.all(np.abs(regrown) < 0.5)


INNERS = {
    "adam": (lambda: optax.adam(0.01), ["mu", "nu"]),
    "adamw": (lambda: optax.adamw(0.01, weight_decay=0.1), ["mu", "nu"]),
    "sgd_momentum": (lambda: optax.sgd(0.01, momentum=0.9), ["trace"]),
    "chain_clip_adam": (lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.01)), ["mu", "nu"]),
    "inject_hyperparams": (lambda: optax.inject_hyperparams(optax.adam)(learning_rate=0.01), ["mu", "nu"]),
    "multi_steps": (lambda: optax.MultiSteps(optax.adam(0.01), 2).gradient_transformation(), ["mu", "nu", "acc_grads"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rigl", "set"])
@pytest.mark.parametrize("inner", list(INNERS))
def test_moments_of_regrown_weights_are_zero_for_any_optax_state(inner, method):
    """jaxpruner's testDynamicSparseUpdateStateInnerReset, for every state jaxpruner's type switch raises on:
    moments set to ones, one update step; at the regrown entries every moment is 0, elsewhere not."""
    make, names = INNERS[inner]
    build = {"rigl": sparsity.rigl, "set": sparsity.set}[method]
    tx = build(make(), density=0.4, every=1, fraction=0.5, key=KEY, end=10, regrow_std=0.0, distribution="uniform")
    params = {"w": jax.random.normal(KEY, (6, 5))}
    state = tx.init(params)
    params = sparsity.sparsify(params, state)
    ones = {"w": jnp.ones((6, 5))}
    for name in names:  # one at a time: optax's tree_set misses mu when given acc_grads beside it
        state = optax.tree_utils.tree_set(state, **{name: ones})
    old = sparsity.masks(state)["w"]
    u, state = tx.update(grads_at(0, params), state, params)
    regrown = sparsity.masks(state)["w"] & ~old  # new entries (one dropped and regrown keeps its moments)
    assert 0 < int(regrown.sum()) <= math.floor(12 * 0.5)
    for name in names:
        for _, moment in optax.tree_utils.tree_get_all_with_path(state, name):
            assert float(jnp.abs(moment["w"][regrown]).max()) == 0.0, name
            if method == "rigl":  # no step taken: every other entry keeps its 1.0
                assert float(jnp.abs(moment["w"][~regrown]).min()) == 1.0, name
    assert float(jnp.abs(optax.apply_updates(params, u)["w"][regrown]).max()) == 0.0  # regrown start at 0.0


def test_reset_where_is_jaxpruners_restart_using_mask():
    """sparse_trainers_test.testRestartUsingMask: zero where the mask is 1, on a params-shaped part of a state."""
    target = {"a": jnp.array([-9.0, 1, 4, -1, 5, 8, -2, 3])}
    mask = {"a": jnp.array([0, 1, 0, 1, 0, 1, 1, 0], bool)}
    out = sparsity.reset_where((jnp.zeros(()), target), target, mask)
    assert out[1]["a"].tolist() == [-9, 0, 4, 0, 5, 0, 0, 3]


def test_jaxpruner_static_random_sparse():
    """testStaticRandomSparse: sparsity 0.75 of 4 weights keeps 1."""
    params = {"w": jnp.array([0.1, 0.9, 0.2, 0.5])}
    tx = sparsity.static(optax.sgd(0.1), density=0.25, key=KEY, distribution="uniform", spec={"w": True})
    assert int(sparsity.masks(tx.init(params))["w"].sum()) == 1


@pytest.mark.slow
def test_jaxpruner_dynamic_sparse_constant_sparsity():
    """testDynamicSparseUpdateStateConstantSparsity: RigL and SET at sparsity 0, 0.5, 0.95 keep the count of
    each of the shapes (1,), (5,), (4, 5), (2, 9, 1), (2, 2, 4, 4) through an update (the shapes as the leaves
    of one tree, the six members one vmapped program)."""
    shapes = [(1,), (5,), (4, 5), (2, 9, 1), (2, 2, 4, 4)]
    params = {str(i): jax.random.normal(jax.random.key(i), shape) for i, shape in enumerate(shapes)}
    spec = dict.fromkeys(params, True)
    sgd = optax.sgd(0.1)
    builds = [(b, s) for b in (sparsity.rigl, sparsity.set) for s in (0.0, 0.5, 0.95)]
    members = [
        build(sgd, density=1 - s, every=1, fraction=0.3, key=jax.random.key(i), end=10, distribution="uniform",
              spec=spec)
        for i, (build, s) in enumerate(builds)
    ]  # fmt: skip
    tx, numbers, keys = sparsity.stack(members, params)
    grads = jax.tree.map(lambda p: jax.random.normal(jax.random.key(8), p.shape), params)

    def member(n, k):
        state = tx.init_with(params, n, k)
        _, new = tx.update(grads, state, params)
        return jax.tree.map(jnp.sum, state.masks), jax.tree.map(jnp.sum, new.masks)

    before, after = jax.jit(jax.vmap(member))(numbers, keys)
    for leaf in params:
        assert before[leaf].tolist() == after[leaf].tolist(), leaf
    assert before["4"].tolist() == [64, 32, 3, 64, 32, 3]  # round(0.05 * 64) = 3


def _outside_cond(jaxpr, name: str) -> int:
    """How many `name` equations the jaxpr runs outside any cond (sub-jaxprs of scans, jits, ... included)."""
    n = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "cond":
            continue
        n += eqn.primitive.name == name
        for v in eqn.params.values():
            for sub in v if isinstance(v, (list, tuple)) else (v,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    n += _outside_cond(inner, name)
    return n


def test_population_update_is_a_real_cond_under_vmap():
    """A stacked population's state made inside the vmapped function keeps its step unbatched: the mask
    update stays a `cond` (its selections, bisection loops, inside), not a `select` that would run it on every step."""
    params = {"w": jnp.ones((6, 6))}
    adam = optax.adam(0.01)
    members = [sparsity.static(adam, density=0.5, key=KEY), METHODS["rigl"](adam), METHODS["set"](adam)]
    tx, numbers, keys = sparsity.stack(members, params)

    def member(n, k):
        def body(s, t):
            return tx.update(grads_at(0, params), s, params)[1], None

        return jax.lax.scan(body, tx.init_with(params, n, k), jnp.arange(4))[0]

    jaxpr = jax.make_jaxpr(jax.vmap(member))(numbers, keys).jaxpr
    text = str(jaxpr)
    # the selections (bisection loops: `scan`s) of the rule exist, inside the cond's branches; outside it, only
    # the training loop's scan and the initial masks' selection (one leaf)
    assert "cond[" in text and text.count("scan[") > 4
    assert _outside_cond(jaxpr, "scan") == 2


@pytest.mark.slow
def test_foreign_trees_nnx_state_and_equinox():
    from flax import nnx

    model = nnx.Sequential(nnx.Linear(4, 8, rngs=nnx.Rngs(0)), nnx.Linear(8, 2, rngs=nnx.Rngs(1)))
    state_params = nnx.state(model, nnx.Param)
    tx = sparsity.rigl(optax.adam(0.01), density=0.5, every=1, fraction=0.3, key=KEY, end=5)
    params, history = run(tx, state_params, 3)
    masks = sparsity.masks(history[-1][1])
    assert pruned_are_zero(params, masks) and sum(counts(masks).values()) == 8 + 2 + 16 + 8  # biases dense

    import equinox as eqx

    mlp = eqx.nn.MLP(4, 2, 8, 1, key=jax.random.key(0))
    arrays = eqx.filter(mlp, eqx.is_array)
    params, history = run(sparsity.set(optax.sgd(0.1), density=0.5, every=1, fraction=0.3, key=KEY, end=5), arrays, 3)
    assert pruned_are_zero(params, sparsity.masks(history[-1][1]))


def test_update_zeros_pruned_weights_even_unsparsified():
    params = {"w": jnp.ones((4, 4))}
    tx = sparsity.static(optax.sgd(0.1), density=0.25, key=KEY)
    state = tx.init(params)
    u, state = tx.update({"w": jnp.ones((4, 4))}, state, params)  # params never sparsified
    new = optax.apply_updates(params, u)["w"]
    assert int((new == 0.0).sum()) == 12 and bool(jnp.all(new[sparsity.masks(state)["w"]] == 0.9))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: sparsity.rigl(optax.sgd(1.0), density=1.5, every=10, fraction=0.3, key=KEY, end=100),
         r"sparsity.rigl: density must be in \(0, 1\], got density=1.5"),
        (lambda: sparsity.static(optax.sgd(1.0), density=0.0, key=KEY),
         r"sparsity.static: density must be in \(0, 1\], got density=0.0"),
        (lambda: sparsity.set(optax.sgd(1.0), density=0.5, every=10, fraction=0.3, key=KEY, end=5, begin=10),
         "sparsity.set: end must be an int >= begin, got begin=10, end=5"),
        (lambda: sparsity.rigl(optax.sgd(1.0), density=0.5, every=0, fraction=0.3, key=KEY, end=100),
         "sparsity.rigl: every must be an int >= 1, got every=0"),
        (lambda: sparsity.gradual(optax.sgd(1.0), density=0.5, every=0, end=100),
         "sparsity.gradual: every must be an int >= 1, got every=0"),
        (lambda: sparsity.gradual(optax.sgd(1.0), density=0.5, every=30, end=100),
         "sparsity.gradual: end must be an update step"),
        (lambda: sparsity.rigl(optax.sgd(1.0), density=0.5, every=10, fraction=1.3, key=KEY, end=100),
         r"fraction must be in \[0, 1\], got fraction=1.3"),
        (lambda: sparsity.rigl(optax.sgd, density=0.5, every=10, fraction=0.3, key=KEY, end=100),
         "inner must be an optax.GradientTransformation"),
        (lambda: sparsity.static(optax.sgd(1.0), density=0.5, key=None), "key is required"),
        (lambda: sparsity.static(optax.sgd(1.0), density=0.5, key=KEY, distribution="er"), "distribution must be"),
    ],
)  # fmt: skip
def test_bad_input_names_the_argument_and_value(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_masks_that_do_not_match_the_params():
    tx = sparsity.static(optax.sgd(1.0), density=0.5, key=KEY)
    state = tx.init({"w": jnp.ones((4, 4))})
    with pytest.raises(ValueError, match="params must have the params' tree structure"):
        tx.update({"w": jnp.ones((4, 4))}, state, {"v": jnp.ones((4, 4))})
    with pytest.raises(ValueError, match=r"grads 'w' has shape \(4, 3\), its mask \(4, 4\)"):
        tx.update({"w": jnp.ones((4, 3))}, state, {"w": jnp.ones((4, 4))})
    with pytest.raises(ValueError, match="sparsify: the state's masks do not fit params"):
        sparsity.sparsify({"w": jnp.ones((2, 2))}, state)
    with pytest.raises(ValueError, match="state holds no sparse-training state"):
        sparsity.masks(optax.adam(0.1).init({"w": jnp.ones(2)}))
    with pytest.raises(ValueError, match="same inner transformation object"):
        sparsity.stack([sparsity.static(optax.sgd(1.0), density=0.5, key=KEY),
                        sparsity.static(optax.sgd(1.0), density=0.5, key=KEY)], {"w": jnp.ones((4, 4))})  # fmt: skip


# --- STE --------------------------------------------------------------------------------------------------


def test_jaxpruner_ste_magnitude_instant_sparsify():
    """ste_test.testSteMagnitudePruningInstantSparsify: the 4x4 weight at sparsity 0.5."""
    weight = jnp.array([[0.11, -1.08, -1.6, 0.37], [-0.3, 1.03, 0.02, -0.78], [-0.95, 0.47, -1.3, 0.87],
                        [1.96, 3.02, 0.3, -0.92]])  # fmt: skip
    pruned = [[0.0, -1.08, -1.6, 0.0], [0.0, 1.03, 0.0, 0.0], [-0.95, 0.0, -1.3, 0.0], [1.96, 3.02, 0.0, -0.92]]
    np.testing.assert_allclose(sparsity.ste_weights(weight, density=0.5), pruned)


def test_jaxpruner_ste_sparse_forward_dense_weights():
    """ste_test.testStePruningGeneratesMaskEachIterationAndKeepDenseWeight: 10 Adam steps on -Σ|w̃|; each
    forward weight is 50% sparse, the dense weights stay dense."""
    tx = sparsity.ste(optax.adam(1e-4), density=0.5)
    params = {"w": jax.random.normal(KEY, (10, 10))}
    state = tx.init(params)
    grad_fn = jax.jit(jax.grad(lambda p: -jnp.abs(tx.weights(p)["w"]).sum()))
    update = jax.jit(tx.update)
    for _ in range(10):
        pruned = tx.weights(params)
        assert float((pruned["w"] == 0).mean()) == 0.5
        u, state = update(grad_fn(params), state, params)
        params = optax.apply_updates(params, u)
        assert float((params["w"] == 0).mean()) == 0.0
    assert bool(jnp.array_equal(sparsity.masks(state)["w"], pruned["w"] != 0))


def test_ste_n_of_m_and_sr_ste_decay():
    """N:M masks along the input axis equal `prune.n_of_m` of |w|; SR-STE adds decay (1 - M) ⊙ w to the gradient."""
    w = jax.random.normal(KEY, (8, 3))
    masks = sparsity.ste_masks({"w": w}, n=2, m=4)
    assert bool(jnp.array_equal(masks["w"], prune.n_of_m(jnp.abs(w), 2, 4, axis=0)))
    tx = sparsity.ste(optax.sgd(1.0), n=2, m=4, decay=2e-4)
    g = jax.random.normal(jax.random.key(1), (8, 3))
    u, _ = tx.update({"w": g}, tx.init({"w": w}), {"w": w})
    np.testing.assert_allclose(u["w"], -(g + 2e-4 * jnp.where(masks["w"], 0.0, w)), rtol=1e-6)
    with pytest.raises(ValueError, match=r"give density= .* or n= and m="):
        sparsity.ste(optax.sgd(1.0))
    with pytest.raises(ValueError, match="decay must be >= 0, got decay=-1"):
        sparsity.ste(optax.sgd(1.0), density=0.5, decay=-1)


def test_jaxpruner_periodic_schedule():
    """sparsity_schedules_test.testPeriodicSchedule (freq 5, start 0, end 20): step 10 updates, step 9 does not.
    The step numbers differ by one: jaxpruner's step is its count of earlier calls (0 at the first call), ours is
    the call's number (1 at the first), so jaxpruner updates masks at calls 1, 6, 11, ... and we at 5, 10, 15."""
    from funcnn.sparsity.rule import Schedule

    s = Schedule(every=5, begin=0, end=20, changes=True)
    assert bool(s.is_update(jnp.int32(10))) and not bool(s.is_update(jnp.int32(9)))
    assert not bool(s.is_update(jnp.int32(25)))  # after end
