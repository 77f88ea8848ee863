"""funcnn.stability: copies under different teacher_data orders, their barrier end to end, the rewind-step sweep;
each checked against an independent reference (copies trained one by one, the parent run continued)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import losses, nn, stability, train
from tests.conftest import TEACHER_BATCH as BATCH
from tests.conftest import TEACHER_N as N
from tests.conftest import bn_mlp

LOSS = losses.softmax_cross_entropy


@pytest.mark.slow
def test_copies_with_the_same_seed_have_zero_barrier(teacher_mlp, teacher_data):
    net, params = teacher_mlp
    s = stability.stability(
        net,
        params,
        optax.sgd(0.1),
        LOSS,
        teacher_data[0],
        teacher_data[1],
        steps=12,
        batch_size=BATCH,
        key=jax.random.key(3),
        order_seeds=[5, 5],
    )
    for leaf in jax.tree.leaves(s.copies.params):
        np.testing.assert_array_equal(np.asarray(leaf[0]), np.asarray(leaf[1]))
    b = s.barrier
    assert b.train_error.shape == b.test_error.shape == (1, 11) and not b.recomputed_statistics
    assert np.all(np.asarray(b.train_barrier) == 0) and np.all(np.asarray(b.test_barrier) == 0)
    assert np.all(np.asarray(b.test_error) == np.asarray(b.test_error[:, :1]))


def _count(error, n):
    """The number of misclassified examples behind an error rate over n examples."""
    return int(np.rint(float(error) * n))


@pytest.mark.slow
def test_endpoints_match_make_evaluate(teacher_mlp, teacher_data):
    net, params = teacher_mlp
    s = stability.stability(
        net,
        params,
        optax.sgd(0.2),
        LOSS,
        teacher_data[0],
        teacher_data[1],
        steps=12,
        batch_size=BATCH,
        key=jax.random.key(4),
        copies=3,
    )
    b = s.barrier
    np.testing.assert_array_equal(b.pairs, [[0, 1], [0, 2], [1, 2]])
    evaluate = jax.jit(train.make_evaluate(net, LOSS))
    for m, (i, j) in enumerate(b.pairs):
        for col, c in ((0, i), (-1, j)):
            p = jax.tree.map(lambda a, c=c: a[c], s.copies.params)
            tr, te = evaluate(p, *teacher_data[0]), evaluate(p, *teacher_data[1])
            # the same examples misclassified (the float32 means may differ in the last bit)
            assert _count(b.train_error[m, col], N) == _count(1 - tr["accuracy"], N)
            assert _count(b.test_error[m, col], 64) == _count(1 - te["accuracy"], 64)
            np.testing.assert_allclose(float(b.test_loss[m, col]), float(te["loss"]), rtol=1e-5)
    e = np.asarray(b.test_error)
    np.testing.assert_allclose(np.asarray(b.test_barrier), e.max(1) - (e[:, 0] + e[:, -1]) / 2, rtol=0, atol=1e-7)
    assert np.all(np.asarray(b.train_barrier) >= 0)


@pytest.mark.slow
def test_population_equals_copies_trained_alone(teacher_mlp, teacher_data):
    net, params = teacher_mlp
    (x, y), key, seeds, steps = teacher_data[0], jax.random.key(5), [3, 8], 9  # 9 steps: crosses an epoch boundary
    tx = optax.chain(optax.add_decayed_weights(1e-3), optax.sgd(0.1, momentum=0.9))
    pop = stability.train_copies(
        net, params, tx, LOSS, (x, y), steps=steps, batch_size=BATCH, order_seeds=seeds, key=key
    )
    step = jax.jit(train.make_train_step(net, LOSS, tx))
    for c, seed in enumerate(seeds):
        k = jax.random.fold_in(key, seed)
        order = np.concatenate([np.asarray(train.batch_indices(jax.random.fold_in(k, e), N, BATCH)) for e in (0, 1)])
        state = train.init_state(params, tx)
        for i in order[:steps]:
            state, _ = step(state, (x[i], y[i]))
        for alone, together in zip(jax.tree.leaves(state.params), jax.tree.leaves(pop.params), strict=True):
            np.testing.assert_allclose(np.asarray(together[c]), np.asarray(alone), rtol=1e-5, atol=1e-6)
        assert int(pop.step[c]) == steps


@pytest.mark.slow
@pytest.mark.parametrize("conv", [False, True])
def test_chunks_give_the_same_copies_and_barriers(teacher_mlp, teacher_data, conv):
    """chunk 1 (a plain lax.map: how conv nets run on CPU by default), 2 (lax.map of vmapped pairs)
    and 3 (all vmapped) train the same copies and measure the same barriers, up to float rounding."""
    (x, y), test = teacher_data
    if conv:  # the same teacher_data as 10 positions of 1 channel, through a small conv net
        net = nn.serial(nn.Conv1D(4, 3, padding="SAME"), nn.Relu(), nn.Flatten(), nn.Dense(3))
        x, test = x[..., None], (test[0][..., None], test[1])
        params = net.init(jax.random.key(1), x.shape[1:])
    else:
        net, params = teacher_mlp
    copies = {
        chunk: stability.train_copies(
            net,
            params,
            optax.sgd(0.1),
            LOSS,
            (x, y),
            steps=5,
            batch_size=BATCH,
            order_seeds=[1, 2, 3],
            key=jax.random.key(7),
            chunk=chunk,
        )
        for chunk in (1, 2, 3)
    }
    for chunk in (1, 2):
        for a, b in zip(jax.tree.leaves(copies[chunk].params), jax.tree.leaves(copies[3].params), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    barriers = [
        stability.barrier(net, copies[3].params, (x, y), test, alphas=[0.0, 0.5, 1.0], chunk=chunk).test_error
        for chunk in (1, 3)
    ]
    assert barriers[0].shape == (3, 3)  # 3 pairs x 3 points
    np.testing.assert_allclose(np.asarray(barriers[0]), np.asarray(barriers[1]), atol=1e-6)


@pytest.mark.slow
def test_copy_on_the_parent_seed_continues_the_parent_run(teacher_mlp, teacher_data):
    net, params = teacher_mlp
    tx, key = optax.adam(1e-2), jax.random.key(6)
    run = lambda theta, **kw: stability.train_copies(
        net, theta, tx, LOSS, teacher_data[0], batch_size=BATCH, order_seeds=[0], key=key, **kw
    )
    whole = run(params, steps=10)
    first = jax.tree.map(lambda a: a[0], run(params, steps=4))
    rest = run(first.params, steps=6, start=4, opt_state=first.opt_state)
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(rest.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_barrier_with_batchnorm_recomputes_statistics(teacher_data):
    net = bn_mlp()
    params = net.init(jax.random.key(9), (10,))
    key = jax.random.key(10)
    s = stability.stability(
        net,
        params,
        optax.sgd(0.1),
        LOSS,
        teacher_data[0],
        teacher_data[1],
        steps=8,
        batch_size=BATCH,
        key=key,
        stat_batches=3,
        alphas=[0.0, 0.5, 1.0],
    )
    b = s.barrier
    assert b.recomputed_statistics and b.test_error.shape == (1, 3)
    assert np.all(np.isfinite(np.asarray(b.test_loss)))
    idx = stability.statistics_batches(key, N, BATCH, 3)
    evaluate = jax.jit(train.make_evaluate(net, LOSS))
    p = jax.tree.map(lambda a: a[1], s.copies.params)
    fresh = stability.recompute_statistics(net, p, net.init_state((10,)), jnp.asarray(teacher_data[0][0]), idx)
    assert _count(b.test_error[0, -1], 64) == _count(1 - evaluate(p, *teacher_data[1], fresh)["accuracy"], 64)
    stale = stability.barrier(
        net, s.copies.params, teacher_data[0], teacher_data[1], model_state=s.copies.model_state, alphas=[0.0, 1.0]
    )
    assert not stale.recomputed_statistics


@pytest.mark.slow
def test_sweep_rewind_steps(teacher_mlp, teacher_data):
    net, params = teacher_mlp
    tx, key, steps = optax.sgd(0.1, momentum=0.9), jax.random.key(11), 12
    sweep = stability.sweep_rewind_steps(
        net,
        params,
        tx,
        LOSS,
        teacher_data[0],
        teacher_data[1],
        steps=steps,
        rewind_steps=[0, 6, 12],
        batch_size=BATCH,
        key=key,
        copies=2,
    )
    assert sweep.train_barrier.shape == sweep.test_barrier.shape == (3, 1) and len(sweep.barriers) == 3
    assert float(sweep.test_barrier[2, 0]) == 0  # k = steps: both copies are θ_T itself
    direct = stability.stability(
        net, params, tx, LOSS, teacher_data[0], teacher_data[1], steps=steps, batch_size=BATCH, key=key
    )
    np.testing.assert_array_equal(np.asarray(sweep.barriers[0].test_error), np.asarray(direct.barrier.test_error))
    # k = 6 by hand: the parent (seed 0) to step 6, then copies continuing its optimizer state
    parent = jax.tree.map(
        lambda a: a[0],
        stability.train_copies(
            net, params, tx, LOSS, teacher_data[0], steps=6, batch_size=BATCH, order_seeds=[0], key=key
        ),
    )
    by_hand = stability.stability(
        net,
        parent.params,
        tx,
        LOSS,
        teacher_data[0],
        teacher_data[1],
        steps=steps - 6,
        start=6,
        opt_state=parent.opt_state,
        batch_size=BATCH,
        key=key,
    )
    np.testing.assert_array_equal(np.asarray(sweep.barriers[1].test_error), np.asarray(by_hand.barrier.test_error))


@pytest.mark.parametrize(
    "case, match",
    [
        ("copies", "copies must be an int >= 2"),
        ("seeds", "order_seeds must be"),
        ("rewind", "rewind_steps must be"),
        ("stat_batches", "stat_batches must be"),
        ("chunk", r"chunk must be None or an int >= 1 .*chunk=0"),
    ],
)
def test_bad_input(teacher_mlp, teacher_data, case, match):
    net, params = teacher_mlp
    kw = dict(steps=2, batch_size=BATCH, key=jax.random.key(0))
    calls = {
        "copies": lambda: stability.stability(
            net, params, optax.sgd(0.1), LOSS, teacher_data[0], teacher_data[1], copies=1, **kw
        ),
        "seeds": lambda: stability.train_copies(
            net, params, optax.sgd(0.1), LOSS, teacher_data[0], order_seeds=[], **kw
        ),
        "rewind": lambda: stability.sweep_rewind_steps(
            net, params, optax.sgd(0.1), LOSS, teacher_data[0], teacher_data[1], rewind_steps=[2, 1], **kw
        ),
        "stat_batches": lambda: stability.statistics_batches(jax.random.key(0), N, BATCH, 7),
        "chunk": lambda: stability.train_copies(
            net, params, optax.sgd(0.1), LOSS, teacher_data[0], order_seeds=[1, 2], chunk=0, **kw
        ),
    }
    with pytest.raises(ValueError, match=match):
        calls[case]()
