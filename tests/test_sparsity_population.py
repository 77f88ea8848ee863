"""Sparse training in funcnn's own training: `train.fit` and `train.fit_population` take a sparse-training
method; a population whose members differ in method, density and seed is one program, and member i equals
the same method and seed trained alone, bit for bit at chunk 1; RigL inside funcnn's step grows by the dense
gradient (recomputed here with jax.grad at the masked params)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import losses, models, sparsity, train

EPOCHS, BATCH = 2, 16  # 96 points: 6 steps an epoch, 12 in all
ADAM = optax.adam(0.02)


def members():
    """(names, transformations): dense, static uniform / ER / ERK, gradual, SET, RigL at density 0.3 (and
    RigL at 0.5), each with its own key; one inner object, every = 3."""
    k = [jax.random.key(10 + i) for i in range(8)]
    txs = {
        "dense": sparsity.static(ADAM, density=1.0, key=k[0]),
        "static_uniform": sparsity.static(ADAM, density=0.3, key=k[1], distribution="uniform"),
        "static_er": sparsity.static(ADAM, density=0.3, key=k[2], distribution="erdos_renyi"),
        "static_erk": sparsity.static(ADAM, density=0.3, key=k[3]),
        "gradual": sparsity.gradual(ADAM, density=0.3, begin=3, end=9, every=3),
        "set": sparsity.set(ADAM, density=0.3, every=3, fraction=0.3, key=k[5], end=12),
        "rigl": sparsity.rigl(ADAM, density=0.3, every=3, fraction=0.3, key=k[6], end=12),
        "rigl_half": sparsity.rigl(ADAM, density=0.5, every=3, fraction=0.3, key=k[7], end=9),
    }
    return list(txs), list(txs.values())


@pytest.fixture(scope="module")
def population(teacher_data):
    (x, y), val = teacher_data
    names, txs = members()
    run = train.fit_population(
        list(range(len(txs))), (x, y), net=models.mlp((16,), n_classes=3), optimizer=txs, val=val,
        epochs=EPOCHS, batch_size=BATCH, chunk=1,
    )  # fmt: skip
    return names, txs, run


def member(run, i):
    return jax.tree.map(lambda a: a[i], run.state)


def test_population_trains_each_method_with_its_masks(population):
    names, _, run = population
    assert run.metrics["loss"].shape == (len(names), EPOCHS * 6) and run.val["accuracy"].shape == (len(names), EPOCHS)
    for i, name in enumerate(names):
        state = member(run, i)
        masks = sparsity.masks(state.opt_state)
        assert state.masks is None  # the masks live in the optimizer state
        for p, m in zip(jax.tree.leaves(state.params), jax.tree.leaves(masks), strict=True):
            assert bool(jnp.all(jnp.where(m, True, p == 0.0))), name
        total = sum(int(m.sum()) for m in (masks["dense_0"]["w"], masks["dense_2"]["w"]))
        want = {"dense": 208, "rigl_half": 104}.get(name, round(0.3 * 208))  # 10*16 + 16*3 = 208 weights
        assert abs(total - want) <= 2, (name, total)
    assert float(run.val["accuracy"][names.index("dense"), -1]) > 0.5


def test_masks_moved_inside_the_program(population):
    """SET and RigL masks at the end differ from their initial ones (recomputed by init_with); static ones not."""
    names, txs, run = population
    shapes = jax.eval_shape(lambda k: models.mlp((16,), n_classes=3).init(k, (10,)), jax.random.key(0))
    for name in ("static_erk", "set", "rigl"):
        i = names.index(name)
        tx = txs[i]
        first = tx.init_with(shapes, tx.numbers(shapes), tx.key).masks["dense_0"]["w"]
        last = sparsity.masks(member(run, i).opt_state)["dense_0"]["w"]
        assert bool(jnp.array_equal(first, last)) == (name == "static_erk"), name
        assert int(first.sum()) == int(last.sum())


@pytest.mark.slow
@pytest.mark.optimized
@pytest.mark.parametrize("name", ["gradual", "rigl"])
def test_member_equals_the_same_method_trained_alone(population, teacher_data, name):
    """Bit for bit at chunk 1: fit_population with that one method and seed, and train.fit with it."""
    (x, y), val = teacher_data
    names, txs, run = population
    i = names.index(name)
    net = models.mlp((16,), n_classes=3)
    alone = train.fit_population([i], (x, y), net=net, optimizer=[txs[i]], val=val, epochs=EPOCHS, batch_size=BATCH,
                                 chunk=1)  # fmt: skip
    for a, b in zip(jax.tree.leaves(run.state), jax.tree.leaves(alone.state), strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        assert bool(jnp.array_equal(a[i], b[0])), name
    if name == "rigl":
        k_init, k_run = jax.random.split(jax.random.key(i))
        state, history = train.fit(net, net.init(k_init, (10,)), (x, y), val, optimizer=txs[i], epochs=EPOCHS,
                                   batch_size=BATCH, key=k_run, progress=False)  # fmt: skip
        for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(run.params), strict=True):
            assert bool(jnp.array_equal(a, b[i]))
        assert history.val_accuracy == pytest.approx(np.asarray(run.val["accuracy"][i]).tolist(), abs=0)


@pytest.mark.slow
def test_rigl_in_funcnns_step_grows_by_the_dense_gradient(teacher_data):
    """One RigL update step through train.make_train_step: the grown entries are the highest |dJ/dw| (jax.grad at
    the masked params, here) among the entries not kept: the step hands the method the dense gradient."""
    (x, y), _ = teacher_data
    net = models.mlp((16,), n_classes=3)
    tx = sparsity.rigl(ADAM, density=0.3, every=1, fraction=0.5, key=jax.random.key(3), end=10)
    params = net.init(jax.random.key(1), (10,))
    opt_state = tx.init(params)
    params = sparsity.sparsify(params, opt_state)
    start = train.TrainState(params, opt_state, jnp.zeros((), jnp.int32))
    new, _ = jax.jit(train.make_train_step(net, losses.softmax_cross_entropy, tx))(start, (x[:16], y[:16]))
    g = jax.grad(lambda p: losses.softmax_cross_entropy(net.apply(p, x[:16]), y[:16]))(params)["dense_0"]["w"]
    old = np.asarray(opt_state.masks["dense_0"]["w"]).ravel()
    now = np.asarray(sparsity.masks(new.opt_state)["dense_0"]["w"]).ravel()
    w = np.abs(np.asarray(params["dense_0"]["w"])).ravel()
    k = int(np.floor(old.sum() * np.float32(0.25 * (1 + np.cos(np.pi / 10)))))
    on = np.flatnonzero(old)
    kept = old.copy()
    kept[on[np.argsort(w[on], kind="stable")[:k]]] = False
    grown = now & ~kept
    g = np.abs(np.asarray(g)).ravel()
    assert grown.sum() == k > 0 and g[grown].min() >= g[~now].max()
    assert np.abs(g[~old]).max() > 0  # the gradient at pruned entries is not masked


def test_sparse_optimizer_errors(teacher_data):
    (x, y), val = teacher_data
    net = models.mlp((16,), n_classes=3)
    params = net.init(jax.random.key(0), (10,))
    tx = sparsity.static(ADAM, density=0.5, key=jax.random.key(0))
    with pytest.raises(ValueError, match="masks= cannot be combined with a sparse-training optimizer"):
        train.fit(net, params, (x, y), val, optimizer=tx, masks=jax.tree.map(lambda p: p != 0, params),
                  key=jax.random.key(1), progress=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"one funcnn.sparsity transformation per member \(2\), got 1 items"):
        train.fit_population([0, 1], (x, y), net=net, optimizer=[tx], batch_size=BATCH)
    other = sparsity.static(optax.adam(0.02), density=0.5, key=jax.random.key(0))
    with pytest.raises(ValueError, match="same inner transformation object"):
        train.fit_population([0, 1], (x, y), net=net, optimizer=[tx, other], batch_size=BATCH)
    every = [tx, sparsity.rigl(ADAM, density=0.5, every=2, fraction=0.3, key=jax.random.key(0), end=9),
             sparsity.set(ADAM, density=0.5, every=3, fraction=0.3, key=jax.random.key(0), end=9)]  # fmt: skip
    with pytest.raises(ValueError, match=r"must share `every`.*every=\[2, 3\]"):
        train.fit_population([0, 1, 2], (x, y), net=net, optimizer=every, batch_size=BATCH)
