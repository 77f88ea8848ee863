"""`train.fit_population`: N members of a net, or of a user's own step, in one program. Each member
equals its key trained alone (bit for bit with chunk=1; to float tolerance when vmapped) and equals
`fit`, or a hand-written loop over the user's step, with the documented keys."""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import losses, nn, train

N, BATCH, EPOCHS = 24, 8, 2  # 3 batches an epoch, 6 steps in all
MLP = nn.serial(nn.Dense(8), nn.Tanh(), nn.Dense(3))
BN_DROP = nn.serial(nn.Dense(8), nn.BatchNorm(), nn.Relu(), nn.Dropout(0.3), nn.Dense(3))
# vmapped members against members alone: XLA may fuse a vmapped program differently (float rounding)
VMAP_TOL = {"rtol": 1e-5, "atol": 1e-6}


def _data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] - x[:, 2] > 0).astype(np.int32) + (x[:, 3] > 1).astype(np.int32)


def plain(a):
    """A typed PRNG key as its raw data (chex compares numpy arrays); other leaves as they are."""
    return jax.random.key_data(a) if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else a


def member(tree, i):
    return jax.tree.map(lambda a: plain(a[i]), tree)


def assert_bitwise(a, b):
    chex.assert_trees_all_equal(a, b)


@pytest.mark.slow
@pytest.mark.optimized
@pytest.mark.parametrize("net", [MLP, BN_DROP], ids=["mlp", "batchnorm+dropout"])
def test_net_members_equal_their_keys_alone_and_fit(net):
    (x, y), val = _data(), _data(8, seed=1)
    tx = optax.adam(0.05)
    kw = dict(net=net, optimizer=tx, val=val, epochs=EPOCHS, batch_size=BATCH)
    looped = train.fit_population([0, 1], (x, y), chunk=1, **kw)
    vmapped = train.fit_population(jax.random.split(jax.random.key(9), 2), (x, y), chunk=None, **kw)
    assert looped.metrics["loss"].shape == (2, EPOCHS * (N // BATCH))
    assert looped.val["loss"].shape == looped.val["accuracy"].shape == (2, EPOCHS)
    assert looped.params is looped.state.params and looped.params["dense_0"]["w"].shape == (2, 4, 8)
    assert looped.state.step.tolist() == [6, 6]
    for i in range(2):
        alone = train.fit_population([i], (x, y), chunk=1, **kw)
        assert_bitwise(member(looped.state, i), member(alone.state, 0))
        assert_bitwise(member(looped.metrics, i), member(alone.metrics, 0))
        # and it is fit's run: params net.init(k_init), key k_run, where (k_init, k_run) = split(key(i))
        k_init, k_run = jax.random.split(jax.random.key(i))
        state, history = train.fit(
            net, net.init(k_init, (4,)), (x, y), val, optimizer=tx, epochs=EPOCHS, batch_size=BATCH, key=k_run,
            progress=False,
        )  # fmt: skip
        chex.assert_trees_all_close(member(looped.params, i), state.params, rtol=1e-6, atol=1e-7)
        assert_bitwise(member(looped.state, i).key, plain(state.key))  # the same Dropout keys
        chex.assert_trees_all_close(member(looped.state.model_state, i), state.model_state, rtol=1e-6, atol=1e-7)
        per_epoch = np.asarray(looped.metrics["loss"][i]).reshape(EPOCHS, -1).mean(axis=1)
        np.testing.assert_allclose(per_epoch, history.train_loss, rtol=1e-6)
        np.testing.assert_allclose(looped.val["loss"][i], history.val_loss, rtol=1e-6)
        np.testing.assert_allclose(looped.val["accuracy"][i], history.val_accuracy, rtol=1e-6)
    for i, k in enumerate(jax.random.split(jax.random.key(9), 2)):
        alone = train.fit_population(k[None], (x, y), chunk=1, **kw)
        chex.assert_trees_all_close(member(vmapped.state, i), member(alone.state, 0), **VMAP_TOL)
    assert not np.allclose(looped.params["dense_0"]["w"][0], looped.params["dense_0"]["w"][1])  # own inits


class MyState(NamedTuple):
    params: dict
    opt: optax.OptState


def _user_step(tx):
    """A step written without funcnn: jax.grad and optax on a hand-made 4-6-3 net."""

    def apply(p, x):
        h = jnp.tanh(x @ p["w1"])
        return h @ p["w2"]

    def init(key):
        k1, k2 = jax.random.split(key)
        p = {"w1": jax.random.normal(k1, (4, 6)) / 2, "w2": jax.random.normal(k2, (6, 3)) / 2}
        return MyState(p, tx.init(p))

    def step(state, batch):
        xb, yb = batch
        value, g = jax.value_and_grad(lambda p: losses.softmax_cross_entropy(apply(p, xb), yb))(state.params)
        updates, opt = tx.update(g, state.opt, state.params)
        metrics = {"loss": value, "grad_norm": optax.tree.norm(g)}
        return MyState(optax.apply_updates(state.params, updates), opt), metrics

    def evaluate(state, xv, yv):
        return {"loss": losses.softmax_cross_entropy(apply(state.params, xv), yv)}

    return init, step, evaluate


def _hand_loop(init, step, key_init, order_key, x, y):
    state, losses_ = init(key_init), []
    jitted = jax.jit(step)
    for e in range(EPOCHS):
        for i in np.asarray(train.batch_indices(jax.random.fold_in(order_key, e), N, BATCH)):
            state, metrics = jitted(state, (x[i], y[i]))
            losses_.append(float(metrics["loss"]))
    return state, losses_


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [1, None, 2])
def test_user_step_members_equal_a_hand_written_loop(chunk):
    (x, y), (xv, yv) = _data(), _data(8, seed=1)
    init, step, evaluate = _user_step(optax.sgd(0.2, momentum=0.9))
    run = train.fit_population(
        [3, 4, 5], (x, y), step=step, init=init, val=(xv, yv), evaluate=evaluate, epochs=EPOCHS, batch_size=BATCH,
        chunk=chunk,
    )  # fmt: skip
    assert run.metrics["loss"].shape == run.metrics["grad_norm"].shape == (3, 6) and run.val["loss"].shape == (3, 2)
    assert run.params is run.state.params  # the user's state has a params field
    for i, seed in enumerate([3, 4, 5]):
        k_init, k_data = jax.random.split(jax.random.key(seed))
        want, want_losses = _hand_loop(init, step, k_init, k_data, x, y)
        chex.assert_trees_all_close(member(run.state, i), want, **VMAP_TOL)
        np.testing.assert_allclose(run.metrics["loss"][i], want_losses, **VMAP_TOL)
        np.testing.assert_allclose(run.val["loss"][i, -1], evaluate(want, xv, yv)["loss"], **VMAP_TOL)
        if chunk == 1:
            alone = train.fit_population([seed], (x, y), step=step, init=init, epochs=EPOCHS, batch_size=BATCH, chunk=1)
            assert_bitwise(member(run.state, i), member(alone.state, 0))


@pytest.mark.slow
def test_a_shared_data_key_gives_every_member_the_same_batches():
    x, y = _data()
    init, step, _ = _user_step(optax.sgd(0.2))
    same_init = lambda key: init(jax.random.key(0))  # every member starts alike: only the order can differ
    kw = dict(step=step, init=same_init, epochs=EPOCHS, batch_size=BATCH, chunk=1)
    shared = train.fit_population([1, 2], (x, y), data_key=jax.random.key(7), **kw)
    assert_bitwise(member(shared.state, 0), member(shared.state, 1))
    want, _ = _hand_loop(same_init, step, None, jax.random.key(7), x, y)
    chex.assert_trees_all_close(member(shared.state, 0), want, **VMAP_TOL)
    own = train.fit_population([1, 2], (x, y), **kw)  # each member's order from its own key
    assert not np.allclose(own.params["w1"][0], own.params["w1"][1])


@pytest.mark.slow
def test_member_masks_keep_pruned_weights_at_zero_and_equal_fit_with_those_masks():
    x, y = _data()
    tx = optax.adam(0.05)
    shapes = jax.eval_shape(lambda k: MLP.init(k, (4,)), jax.random.key(0))
    rng = np.random.default_rng(3)
    masks = jax.tree.map(lambda s: jnp.asarray(rng.random((2, *s.shape)) < 0.6) | (len(s.shape) < 2), shapes)
    run = train.fit_population([0, 1], (x, y), net=MLP, optimizer=tx, masks=masks, epochs=EPOCHS, batch_size=BATCH)
    for i in range(2):
        m = member(masks, i)
        for w, keep in zip(jax.tree.leaves(member(run.params, i)), jax.tree.leaves(m), strict=True):
            assert np.all(np.asarray(w)[~np.asarray(keep)] == 0) and np.any(np.asarray(w)[np.asarray(keep)] != 0)
        k_init, k_run = jax.random.split(jax.random.key(i))
        state, _ = train.fit(
            MLP, MLP.init(k_init, (4,)), (x, y), (x, y), optimizer=tx, epochs=EPOCHS, batch_size=BATCH, key=k_run,
            masks=m, progress=False,
        )  # fmt: skip
        chex.assert_trees_all_close(member(run.params, i), state.params, **VMAP_TOL)


def _bad_masks(n_members, shape_fix=None):
    shapes = jax.eval_shape(lambda k: MLP.init(k, (4,)), jax.random.key(0))
    return jax.tree.map(lambda s: jnp.ones((n_members, *(shape_fix or s.shape)), bool), shapes)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(keys=[]), "keys must be a .members,. array of typed PRNG keys"),
        (dict(keys=np.zeros((2, 2), np.uint32)), "keys must be"),
        (dict(keys=["a", "b"]), "keys must be"),
        (dict(keys=jax.random.key(0)), "keys must be"),
        (dict(step=lambda s, b: (s, {})), "pass exactly one"),
        (dict(net=None), "pass exactly one"),
        (dict(optimizer=optax.adam), "ready optax.GradientTransformation"),
        (dict(init=lambda k: {}), "init= is for step="),
        (dict(masks=_bad_masks(3)), "masks has 3 members on its leading axis, keys has 2"),
        (dict(masks=_bad_masks(2, (1,))), "masks must be the params' tree with a leading member axis"),
        (dict(epochs=0), "epochs must be a positive int"),
        (dict(batch_size=100), r"batch_size must be an int in \[1, 24\]"),
        (dict(data_key=[1]), "data_key must be None or one typed PRNG key"),
        (dict(net="mlp"), "net must be a funcnn Layer"),
        (dict(chunk=0), "chunk must be None or an int >= 1"),
        (dict(net=None, step=lambda s, b: (s, {})), "step= needs init="),
        (dict(net=None, step=lambda s, b: (s, {}), init=lambda k: {}), "optimizer= and masks= are for net="),
        (dict(net=None, optimizer=None, step=lambda s, b: (s, {}), init=lambda k: {}, val=_data(8)), "needs evaluate="),
    ],
)
def test_bad_input_is_named(kwargs, match):
    x, y = _data()
    args = dict(keys=[0, 1], train=(x, y), net=MLP, optimizer=optax.sgd(0.1), epochs=1, batch_size=BATCH) | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        train.fit_population(args.pop("keys"), args.pop("train"), **args)
