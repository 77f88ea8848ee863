"""Model state (BatchNorm's statistics) and keys (Dropout's) through every function that trains."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnn as F
from funcnn import data, io, losses, nn, train

BN_NET = nn.serial(nn.Dense(16), nn.BatchNorm(), nn.Relu(), nn.Dense(2))
DROP_NET = nn.serial(nn.Dense(32), nn.Relu(), nn.Dropout(0.5), nn.Dense(2))


def _xor(n=128):
    d = data.load("xor", n=n)
    return d.x_train, d.y_train, d.x_test, d.y_test


def test_stateless_layer_and_apply_function_give_identical_steps():
    x, y, _, _ = _xor()
    net = nn.serial(nn.Dense(8), nn.Tanh(), nn.Dense(2))
    params = net.init(jax.random.key(0), (2,))
    tx = optax.adam(1e-2)
    s_layer = train.init_state(params, tx, model_state=net.init_state((2,)), key=jax.random.key(3))
    s_fn = train.init_state(params, tx)
    by_layer = jax.jit(train.make_train_step(net, losses.softmax_cross_entropy, tx))
    by_fn = jax.jit(train.make_train_step(net.apply, losses.softmax_cross_entropy, tx))
    for _ in range(5):
        s_layer, m1 = by_layer(s_layer, (x[:32], y[:32]))
        s_fn, m2 = by_fn(s_fn, (x[:32], y[:32]))
        assert float(m1["loss"]) == float(m2["loss"])
    chex.assert_trees_all_equal(s_layer.params, s_fn.params)


@pytest.mark.slow
def test_train_step_updates_running_statistics_and_never_the_optimizer_sees_them():
    x, y, _, _ = _xor()
    params = BN_NET.init(jax.random.key(0), (2,))
    # Strong weight decay must not touch the statistics: they are not params.
    for wd in (0.0, 0.5):
        tx = optax.chain(optax.add_decayed_weights(wd), optax.sgd(0.1))
        state = train.init_state(params, tx, model_state=BN_NET.init_state((2,)))
        assert jax.tree.structure(state.opt_state) == jax.tree.structure(tx.init(params))
        new, _ = train.make_train_step(BN_NET, losses.softmax_cross_entropy, tx)(state, (x, y))
        h = np.asarray(x) @ np.asarray(params["dense_0"]["w"]) + np.asarray(params["dense_0"]["b"])
        np.testing.assert_allclose(new.model_state["batchnorm_1"]["mean"], 0.1 * h.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(new.model_state["batchnorm_1"]["var"], 0.9 + 0.1 * h.var(0, ddof=1), rtol=1e-5)


def test_stateful_net_given_as_apply_function_is_a_clear_error():
    x, y, _, _ = _xor()
    params = BN_NET.init(jax.random.key(0), (2,))
    tx = optax.sgd(0.1)
    step = train.make_train_step(BN_NET.apply, losses.softmax_cross_entropy, tx)
    with pytest.raises(nn.StateError, match=r"layer 'batchnorm_1'.*apply_with_state"):
        step(train.init_state(params, tx), (x, y))


def test_dropout_needs_a_key_in_training_and_masks_follow_the_step_count():
    x, y, _, _ = _xor()
    params = DROP_NET.init(jax.random.key(0), (2,))
    tx = optax.sgd(0.1)
    step = jax.jit(train.make_train_step(DROP_NET, losses.softmax_cross_entropy, tx))
    with pytest.raises(nn.LayerError, match="key"):
        step(train.init_state(params, tx, model_state=DROP_NET.init_state((2,))), (x, y))
    state = train.init_state(params, tx, model_state=DROP_NET.init_state((2,)), key=jax.random.key(7))
    _, la = step(state, (x, y))
    _, lb = step(state, (x, y))
    assert float(la["loss"]) == float(lb["loss"])  # same state, same step: the same masks
    _, ll = step(state._replace(step=jnp.asarray(5, jnp.int32)), (x, y))
    assert float(ll["loss"]) != float(la["loss"])  # step 5 draws other masks than step 0
    _, lo = step(state._replace(key=jax.random.key(8)), (x, y))
    assert float(lo["loss"]) != float(la["loss"])


@pytest.mark.slow
def test_population_members_have_their_own_statistics_and_masks():
    x, y, _, _ = _xor(256)
    x, y = jnp.asarray(x), jnp.asarray(y)
    net = nn.serial(nn.Dense(16), nn.BatchNorm(), nn.Relu(), nn.Dropout(0.3), nn.Dense(2))
    params = net.init(jax.random.key(0), (2,))
    # SGD, not Adam: dense_0's bias feeds BatchNorm, so its gradient is rounding noise, which Adam's
    # normalization would blow up to full-size steps that differ between vmapped and alone.
    tx = optax.sgd(0.1, momentum=0.9)
    keys = jnp.stack([jax.random.key(1), jax.random.key(1), jax.random.key(2)])  # members 0, 1 share a key
    states = jax.vmap(lambda k: train.init_state(params, tx, model_state=net.init_state((2,)), key=k))(keys)
    idx = train.batch_indices(jax.random.key(3), len(x), 32)
    epoch = train.make_epoch(train.make_train_step(net, losses.softmax_cross_entropy, tx))
    pop, _ = jax.jit(jax.vmap(epoch, in_axes=(0, None, None, None)))(states, x, y, idx)
    chex.assert_trees_all_equal(jax.tree.map(lambda a: a[0], pop.params), jax.tree.map(lambda a: a[1], pop.params))
    assert not np.allclose(pop.params["dense_0"]["w"][0], pop.params["dense_0"]["w"][2])
    assert not np.allclose(pop.model_state["batchnorm_1"]["mean"][0], pop.model_state["batchnorm_1"]["mean"][2])
    with jax.default_matmul_precision("highest"):
        alone, _ = jax.jit(epoch)(jax.tree.map(lambda a: a[2], states), x, y, idx)
        pop_hi, _ = jax.jit(jax.vmap(epoch, in_axes=(0, None, None, None)))(states, x, y, idx)
    chex.assert_trees_all_close(
        jax.tree.map(lambda a: a[2], (pop_hi.params, pop_hi.model_state)),
        (alone.params, alone.model_state),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.slow
def test_fit_trains_batchnorm_and_evaluates_with_running_statistics():
    x, y, xv, yv = _xor(512)
    params = BN_NET.init(jax.random.key(0), (2,))
    run = lambda: F.fit(
        BN_NET,
        params,
        (x, y),
        (xv, yv),
        optimizer=optax.chain(
            optax.add_decayed_weights(1e-4), optax.sgd(optax.linear_schedule(0.0, 0.1, 20), momentum=0.9)
        ),
        epochs=8,
        batch_size=32,
        key=jax.random.key(1),
        progress=False,
    )
    state, hist = run()
    again, _ = run()
    chex.assert_trees_all_equal((state.params, state.model_state), (again.params, again.model_state))
    assert not np.allclose(state.model_state["batchnorm_1"]["mean"], 0.0)
    ev = train.make_evaluate(BN_NET, losses.softmax_cross_entropy)(
        state.params, jnp.asarray(xv), jnp.asarray(yv), state.model_state
    )
    assert hist.val_accuracy[-1] == pytest.approx(float(ev["accuracy"]), abs=1e-6)
    assert hist.val_accuracy[-1] > 0.9
    assert np.isnan(hist.learning_rate[0]) or hist.learning_rate[0] == 0.0  # a ready chain's rate is logged if exposed


def test_fit_rejects_a_learning_rate_beside_a_ready_transformation():
    x, y, xv, yv = _xor()
    params = BN_NET.init(jax.random.key(0), (2,))
    with pytest.raises(ValueError, match="learning_rate must be left unset"):
        F.fit(
            BN_NET,
            params,
            (x, y),
            (xv, yv),
            optimizer=optax.adam(1e-3),
            learning_rate=0.1,
            epochs=1,
            batch_size=16,
            key=jax.random.key(0),
            progress=False,
        )


@pytest.mark.slow
def test_lr_sweep_runs_a_stateful_net():
    x, y, _, _ = _xor()
    params = BN_NET.init(jax.random.key(0), (2,))
    out = train.lr_sweep(BN_NET, params, (x, y), rates=[1e-3, 1e-1], epochs=2, batch_size=16, key=jax.random.key(0))
    assert out["loss"].shape == (2, 2) and np.all(np.isfinite(out["loss"]))
    assert out["loss"][1, -1] < out["loss"][0, -1]


def test_checkpoint_round_trip_keeps_state_and_keys(tmp_path):
    params = BN_NET.init(jax.random.key(0), (2,))
    state = train.init_state(params, optax.adam(1e-3), model_state=BN_NET.init_state((2,)), key=jax.random.key(5))
    io.save_tree(tmp_path / "ckpt.npz", state)
    back = io.load_tree(tmp_path / "ckpt.npz", state)
    chex.assert_trees_all_equal(jax.random.key_data(back.key), jax.random.key_data(state.key))
    chex.assert_trees_all_equal((back.params, back.model_state), (state.params, state.model_state))
    with pytest.raises(io.CheckpointError, match="batchnorm_1"):
        io.load_tree(tmp_path / "ckpt.npz", state._replace(model_state={}))


# ---- augmentation: a keyed transform of each training batch -----------------------------------------


def _flip_all(key, x):
    del key
    return x[:, :, ::-1]  # mirror every image left-right: a deterministic "augmentation"


@pytest.mark.slow
def test_augment_trains_on_the_transformed_batch_and_evaluation_is_untouched():
    net = nn.serial(nn.Flatten(), nn.Dense(8), nn.Relu(), nn.Dense(3))
    x = jax.random.normal(jax.random.key(0), (6, 4, 5, 1))
    y = jnp.array([0, 1, 2, 0, 1, 2])
    tx = optax.sgd(0.1)
    state = train.init_state(net.init(jax.random.key(1), (4, 5, 1)), tx, key=jax.random.key(2))
    with_aug = train.make_train_step(net, losses.softmax_cross_entropy, tx, augment=_flip_all)(state, (x, y))
    # the same step without augment, on data mirrored by hand: the very same update
    by_hand = train.make_train_step(net, losses.softmax_cross_entropy, tx)(state, (x[:, :, ::-1], y))
    chex.assert_trees_all_close(with_aug[0].params, by_hand[0].params, rtol=0, atol=0)
    np.testing.assert_array_equal(with_aug[1]["loss"], by_hand[1]["loss"])
    plain = train.make_train_step(net, losses.softmax_cross_entropy, tx)(state, (x, y))
    assert not np.allclose(plain[1]["loss"], with_aug[1]["loss"])


@pytest.mark.slow
def test_augment_keys_follow_the_step_so_a_split_run_equals_a_whole_one():
    net = nn.serial(nn.Flatten(), nn.Dense(8), nn.Relu(), nn.Dropout(0.5), nn.Dense(3))
    noisy = lambda key, x: x + jax.random.normal(key, x.shape)  # a keyed augmentation
    x = jax.random.normal(jax.random.key(0), (6, 4, 5, 1))
    y = jnp.array([0, 1, 2, 0, 1, 2])
    tx = optax.adam(1e-2)
    step = jax.jit(train.make_train_step(net, losses.softmax_cross_entropy, tx, augment=noisy))
    start = train.init_state(net.init(jax.random.key(1), (4, 5, 1)), tx, key=jax.random.key(2))
    a, losses_a = start, []
    for _ in range(4):
        a, m = step(a, (x, y))
        losses_a.append(float(m["loss"]))
    b = start
    for _ in range(2):
        b, _ = step(b, (x, y))
    b = jax.tree.map(jnp.array, b)  # a "resumed" state: the same numbers in fresh arrays
    for _ in range(2):
        b, m = step(b, (x, y))
    chex.assert_trees_all_equal(a.params, b.params)
    assert float(m["loss"]) == losses_a[-1]
    # each step draws new noise (the losses are not those of one fixed perturbation), and the key
    # is the step's: fold_in(state.key, step), split into (augment, net)
    k_aug, _ = jax.random.split(jax.random.fold_in(start.key, start.step))
    seen = {}
    spy = lambda key, x: seen.setdefault("x", x + jax.random.normal(key, x.shape))
    train.make_train_step(net, losses.softmax_cross_entropy, tx, augment=spy)(start, (x, y))
    np.testing.assert_array_equal(seen["x"], x + jax.random.normal(k_aug, x.shape))


def test_augment_needs_a_key_and_a_function():
    net = nn.serial(nn.Dense(2))
    tx = optax.sgd(0.1)
    state = train.init_state(net.init(jax.random.key(0), (3,)), tx)  # no key
    step = train.make_train_step(net, losses.mse, tx, augment=lambda k, x: x)
    with pytest.raises(ValueError, match="augment needs a TrainState with a key"):
        step(state, (jnp.ones((2, 3)), jnp.ones((2, 2))))
    with pytest.raises(ValueError, match="augment must be None or a function"):
        train.make_train_step(net, losses.mse, tx, augment="crop-flip")


@pytest.mark.slow
def test_fit_with_augment_is_reproducible_and_differs_from_plain_fit():
    net = nn.serial(nn.Flatten(), nn.Dense(8), nn.Relu(), nn.Dense(2))
    x = jax.random.uniform(jax.random.key(0), (32, 6, 6, 1))
    y = (x[:, :, :3].mean(axis=(1, 2, 3)) > x[:, :, 3:].mean(axis=(1, 2, 3))).astype(jnp.int32)
    params = net.init(jax.random.key(1), (6, 6, 1))
    kw = dict(optimizer=optax.sgd, learning_rate=0.1, epochs=2, batch_size=8, key=jax.random.key(3), progress=False)
    from funcnn.data import cifar10

    a, ha = train.fit(net, params, (x, y), (x, y), augment=cifar10.augment, **kw)
    b, hb = train.fit(net, params, (x, y), (x, y), augment=cifar10.augment, **kw)
    _, hc = train.fit(net, params, (x, y), (x, y), **kw)
    chex.assert_trees_all_equal(a.params, b.params)
    assert ha.train_loss == hb.train_loss and ha.train_loss != hc.train_loss
