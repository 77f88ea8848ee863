import jax
import numpy as np
import optax
import pytest

import funcnn as F
from funcnn import data, nn, schedules, train


def test_step_decay_boundaries():
    S = 7
    halve = schedules.step_decay(1.0, 0.5, 5, S)
    assert float(halve(5 * S - 1)) == 1.0  # last update of epoch 4 (0-based)
    assert float(halve(5 * S)) == 0.5  # first update of epoch 5
    assert float(halve(10 * S - 1)) == 0.5
    assert float(halve(10 * S)) == 0.25
    assert float(halve(15 * S)) == 0.125
    tenth = schedules.step_decay(1.0, 0.1, 20, S)
    assert float(tenth(20 * S - 1)) == 1.0
    assert float(tenth(20 * S)) == pytest.approx(0.1)
    assert float(tenth(40 * S)) == pytest.approx(0.01)
    assert float(tenth(40 * S - 1)) == pytest.approx(0.1)


def test_exponential_decay_formula():
    S, lr0, rate = 11, 0.3, 0.9
    smooth = schedules.exponential_decay(lr0, rate, S)
    stair = schedules.exponential_decay(lr0, rate, S, decay_epochs=2, staircase=True)
    for t in [0, 1, 5, 11, 12, 50, 131]:
        assert float(smooth(t)) == pytest.approx(lr0 * rate ** (t / S), rel=1e-5)
        assert float(stair(t)) == pytest.approx(lr0 * rate ** (t // (2 * S)), rel=1e-5)
    assert float(schedules.constant(0.2)(1000)) == pytest.approx(0.2)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: schedules.step_decay(0.0, 0.5, 5, 10), "init_lr"),
        (lambda: schedules.step_decay(0.1, 1.5, 5, 10), "factor"),
        (lambda: schedules.step_decay(0.1, 0.5, 0, 10), "every_epochs"),
        (lambda: schedules.step_decay(0.1, 0.5, 5, 0), "steps_per_epoch"),
        (lambda: schedules.exponential_decay(0.1, 0.0, 10), "decay_rate"),
        (lambda: schedules.exponential_decay(0.1, 0.9, -3), "steps_per_epoch"),
        (lambda: schedules.Plateau(0.1, factor=1.0).init(), "factor"),
        (lambda: schedules.Plateau(0.1, patience=-1).init(), "patience"),
        (lambda: schedules.Plateau(0.1, min_lr=0.5).init(), "min_lr"),
        (lambda: schedules.Plateau(0.1, mode="up").init(), "mode"),
        (lambda: schedules.Plateau(0.1, min_delta=-1.0).init(), "min_delta"),
    ],
)
def test_bad_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def keras_reference(values, lr, factor, patience, cooldown=0, min_lr=0.0, min_delta=0.0, rel=0.0, mode="min"):
    """ReduceLROnPlateau.on_epoch_end written out as Keras documents it (plus |best|-relative delta)."""
    best = np.inf if mode == "min" else -np.inf
    wait = cd = 0
    out = []
    for v in values:
        if cd > 0:
            cd -= 1
            wait = 0
        margin = min_delta + (rel * abs(best) if np.isfinite(best) else 0.0)
        better = v < best - margin if mode == "min" else v > best + margin
        if better:
            best, wait = v, 0
        elif not cd > 0:
            wait += 1
            if wait >= patience and lr > min_lr:
                lr = max(lr * factor, min_lr)
                cd, wait = cooldown, 0
        out.append(lr)
    return out


def run_plateau(values, **kw):
    policy = schedules.Plateau(**kw)
    state = policy.init()
    update = jax.jit(policy.update)
    lrs = []
    for v in values:
        state = update(state, v)
        lrs.append(float(state.lr))
    return lrs


CASES = [
    # hand-derived from the rules: the epoch after the patience-th non-improving epoch is reduced
    (
        [5, 4, 4, 4, 4, 4, 3, 3, 3],
        dict(init_lr=1.0, factor=0.5, patience=2, min_lr=0.01),
        [1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125],
    ),
    ([1] * 7, dict(init_lr=1.0, factor=0.5, patience=1, cooldown=2), [1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]),
    ([1.0, 0.95, 0.85, 0.84], dict(init_lr=1.0, factor=0.5, patience=1, min_delta=0.1), [1, 0.5, 0.5, 0.25]),
    ([1] * 4, dict(init_lr=1.0, factor=0.1, patience=1, min_lr=0.05), [1, 0.1, 0.05, 0.05]),
    ([10, 9.5, 8.5, 8.4], dict(init_lr=1.0, factor=0.5, patience=1, min_delta_rel=0.1), [1, 0.5, 0.5, 0.25]),
    ([0.5, 0.6, 0.6, 0.6, 0.7], dict(init_lr=1.0, factor=0.5, patience=2, mode="max"), [1, 1, 1, 0.5, 0.5]),
]


@pytest.mark.parametrize("values,kw,expected", CASES)
def test_plateau_against_hand_derived_epochs(values, kw, expected):
    got = run_plateau(values, **kw)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    ref_kw = dict(kw)
    ref_kw["lr"] = ref_kw.pop("init_lr")
    ref_kw["rel"] = ref_kw.pop("min_delta_rel", 0.0)
    np.testing.assert_allclose(keras_reference(values, **ref_kw), expected, rtol=1e-6)


@pytest.mark.parametrize("values,kw,expected", CASES)
def test_plateau_is_shift_invariant_for_negative_values(values, kw, expected):
    if kw.get("mode") == "max":
        return
    shift = -20.0 if "min_delta_rel" in kw else -100.0
    # relative deltas use |best|: shifting 10 -> -10 keeps the same magnitudes in this case
    got = run_plateau([v + shift for v in values], **kw)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.slow
def test_plateau_random_sequences_match_keras_reference():
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = list(np.cumsum(rng.normal(-0.05, 0.2, size=40)) - 3.0)
        kw = dict(
            init_lr=1.0,
            factor=0.5,
            patience=int(rng.integers(0, 4)),
            cooldown=int(rng.integers(0, 3)),
            min_lr=0.01,
            min_delta=float(rng.choice([0.0, 0.05])),
            min_delta_rel=float(rng.choice([0.0, 0.02])),
        )
        ref_kw = dict(kw)
        ref_kw["lr"], ref_kw["rel"] = ref_kw.pop("init_lr"), ref_kw.pop("min_delta_rel")
        np.testing.assert_allclose(run_plateau(values, **kw), keras_reference(values, **ref_kw), rtol=1e-5)


def _xor_net():
    d = data.load("xor", n=128)
    net = nn.serial(nn.Dense(8), nn.Tanh(), nn.Dense(2))
    return d, net, net.init(jax.random.key(0), (2,))


@pytest.mark.slow
def test_fit_logs_scheduled_learning_rate():
    d, net, params = _xor_net()
    S = 128 // 16
    sched = schedules.step_decay(0.1, 0.5, 2, S)
    _, hist = F.fit(
        net,
        params,
        (d.x_train, d.y_train),
        (d.x_test, d.y_test),
        optimizer=optax.sgd,
        learning_rate=sched,
        epochs=6,
        batch_size=16,
        key=jax.random.key(0),
        progress=False,
    )
    np.testing.assert_allclose(hist.learning_rate, [0.1, 0.1, 0.05, 0.05, 0.025, 0.025], rtol=1e-6)


def test_fit_with_plateau_follows_the_rules():
    d, net, params = _xor_net()
    policy = schedules.Plateau(0.5, factor=0.5, patience=1, min_lr=1e-3)
    _, hist = F.fit(
        net,
        params,
        (d.x_train, d.y_train),
        (d.x_test, d.y_test),
        optimizer=optax.sgd,
        learning_rate=policy,
        epochs=25,
        batch_size=16,
        key=jax.random.key(0),
        progress=False,
    )
    replay = keras_reference(hist.val_loss, 0.5, 0.5, 1, min_lr=1e-3)
    # the rate in force in epoch e+1 is the policy's answer after epoch e
    np.testing.assert_allclose(hist.learning_rate[1:], replay[:-1], rtol=1e-6)
    assert hist.learning_rate[-1] < 0.5


@pytest.mark.slow
def test_lr_sweep_shows_too_high_and_too_low():
    d = data.load("spirals", n=256)
    net = nn.serial(nn.Dense(32), nn.Tanh(), nn.Dense(2))
    params = net.init(jax.random.key(0), (2,))
    out = train.lr_sweep(
        net, params, (d.x_train, d.y_train), rates=[1e-4, 0.3, 50.0], epochs=10, batch_size=32, key=jax.random.key(1)
    )
    low, good, high = out["loss"][:, -1]
    assert out["loss"].shape == (3, 10)
    assert not np.isfinite(high) or high > good  # too high: diverges or ends worse
    assert abs(out["initial_loss"] - low) < abs(out["initial_loss"] - good)  # too low: has moved less
    assert good < out["initial_loss"]
