"""Issue #39: every way a study or a prune call gave a wrong answer without an error, reproduced from its
description. Each test fails on the code before the fix (a resume, a silent mask, a stale statistic)."""

import inspect
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import data, losses, lottery, nn, prune, stability, train
from funcnn.lottery import Study, programs
from funcnn.lottery.identity import VERSION, program_digests

QUIET = dict(progress=False, log=lambda s: None, figures=False)  # no test here looks at the PNGs
D = data.load("mnist1d")
TRAIN, TEST = (D.x_train[:600], D.y_train[:600]), (D.x_test[:200], D.y_test[:200])


def spec(**kw):
    base = dict(
        net=nn.serial(nn.Dense(16), nn.Relu(), nn.Dense(10)),
        optimizer=optax.adam(1e-3),
        train=TRAIN,
        test=TEST,
        n_val=100,
        iterations=40,
        batch_size=50,
        eval_every=20,
        rounds=1,
        seeds=2,
        rate=0.5,
        arms=("ticket", "random"),
    )
    return lottery.Spec(**(base | kw))


def refused(s, out, needle):
    with pytest.raises(ValueError, match="will not be resumed") as info:
        lottery.run(s, out=out, **QUIET)
    assert needle in str(info.value), str(info.value)


def resumed(s, out):
    lines = []
    lottery.run(s, out=out, progress=False, figures=False, log=lines.append)
    assert lines and all("resumed" in line for line in lines), lines


# ---- (1) a changed study resumes -------------------------------------------------------------------


def _nnx(act):
    from flax import nnx

    from funcnn.interop import from_nnx

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.hidden, self.out = nnx.Linear(40, 16, rngs=rngs), nnx.Linear(16, 10, rngs=rngs)

        def __call__(self, x):
            return self.out(act(self.hidden(x)))

    return from_nnx(MLP)


def _equinox(act):
    import equinox as eqx

    from funcnn.interop import from_equinox

    return from_equinox(lambda key: eqx.nn.MLP(40, 10, 16, 1, activation=act, key=key))


@pytest.mark.slow
@pytest.mark.parametrize("make", [_nnx, _equinox], ids=["nnx", "equinox"])
def test_relu_to_relu6_in_a_foreign_net_is_refused(tmp_path, make):
    lottery.run(spec(net=make(jax.nn.relu), rounds=0), out=tmp_path, **QUIET)
    refused(spec(net=make(jax.nn.relu6), rounds=0), tmp_path, "the net in training mode differs")
    resumed(spec(net=make(jax.nn.relu), rounds=0), tmp_path)


def _schedule(drop):
    return optax.piecewise_constant_schedule(1e-3, {drop: 0.1})


def _comment_a(z, y):
    # the mean cross-entropy
    return optax.softmax_cross_entropy_with_integer_labels(z, y).mean()


def _comment_b(z, y):
    # another comment, another name: the same computation
    return optax.softmax_cross_entropy_with_integer_labels(z, y).mean()


@pytest.mark.slow
def test_changes_only_the_programs_show_are_refused_and_a_comment_is_not(tmp_path):
    """Dropout 0.1 -> 0.5 and BatchNorm momentum 0.99 -> 0.5 show only in training mode; the learning-rate
    drop at step 30 -> 20 only in the schedule; probes of a few inputs missed all three."""
    drop = lambda rate: nn.serial(nn.Dense(16), nn.Relu(), nn.Dropout(rate), nn.Dense(10))
    lottery.run(spec(net=drop(0.1), rounds=0), out=tmp_path / "d", **QUIET)
    refused(spec(net=drop(0.5), rounds=0), tmp_path / "d", "the net in training mode differs")
    bn = lambda m: nn.serial(nn.Dense(16), nn.BatchNorm(momentum=m), nn.Relu(), nn.Dense(10))
    lottery.run(spec(net=bn(0.99), rounds=0), out=tmp_path / "b", **QUIET)
    refused(spec(net=bn(0.5), rounds=0), tmp_path / "b", "the net in training mode differs")
    lottery.run(spec(optimizer=optax.adam(_schedule(30)), loss=_comment_a, rounds=0), out=tmp_path / "s", **QUIET)
    refused(spec(optimizer=optax.adam(_schedule(20)), loss=_comment_a, rounds=0), tmp_path / "s", "the optimizer")
    # a loss that differs only in its comments and its name computes the same: it resumes
    resumed(spec(optimizer=optax.adam(_schedule(30)), loss=_comment_b, rounds=0), tmp_path / "s")


def _late_arm(r_from):
    """An arm whose weights change from round r_from on (it reads ctx.round as a Python int)."""

    def fn(ctx):
        scale = 0.5 if ctx.round >= r_from else 1.0
        return jax.tree.map(lambda w: scale * w, ctx.theta_rewind), ctx.parent_masks

    return lottery.Arm("late", fn)


def _late_pruner(r_from):
    """A pruner that keeps 5% from round r_from on, 25% before (it reads ctx.round as a Python int)."""

    def fn(ctx):
        rate = 0.95 if ctx.round >= r_from else 0.75
        return prune.magnitude(ctx.trained, prune.ones(ctx.trained), rate, spec=ctx.spec_prunable)

    return lottery.Arm("mine", pruner=fn, lineage=True)


@pytest.mark.slow
def test_an_arm_or_a_pruner_that_reads_the_round_is_identified_round_by_round(tmp_path):
    lottery.run(spec(arms=("ticket", _late_arm(3)), rounds=2), out=tmp_path / "a", **QUIET)
    refused(spec(arms=("ticket", _late_arm(2)), rounds=2), tmp_path / "a", "arm 'late' (what it does")
    refused(spec(arms=("ticket", _late_arm(2)), rounds=2), tmp_path / "a", "from round 2 on")
    resumed(spec(arms=("ticket", _late_arm(3)), rounds=2), tmp_path / "a")
    lottery.run(spec(arms=(_late_pruner(3),), rounds=2), out=tmp_path / "p", **QUIET)
    refused(spec(arms=(_late_pruner(2),), rounds=2), tmp_path / "p", "arm 'mine' (what it does")


@pytest.mark.slow
def test_the_round_program_is_lowered_once_and_keeps_its_stored_digest(tmp_path, monkeypatch):
    """The identity lowers the round program for arguments placed as the run places them, so the run reuses
    that lowering (it was lowered twice); its digest is the one of the unplaced lowering stored before."""
    from jax._src.interpreters import mlir  # JAX's lowering, counted (a rename in jax fails here, loudly)

    names = []
    lower = mlir.lower_jaxpr_to_module
    monkeypatch.setattr(mlir, "lower_jaxpr_to_module", lambda name, *a, **k: names.append(name) or lower(name, *a, **k))
    s = spec(net=nn.serial(nn.Dense(16), nn.BatchNorm(), nn.Relu(), nn.Dropout(0.1), nn.Dense(10)))
    lottery.run(s, out=tmp_path, **QUIET)
    study = Study(s, progress=False)
    assert names.count(f"jit({study.round_fn.__name__})") == 1  # a fresh round program, before this Study
    placed = program_digests(study)["round"]
    monkeypatch.setattr(programs, "placed", lambda tree, device: tree)  # lowered unplaced, as stored before
    assert program_digests(study)["round"] == placed


def test_the_same_study_in_two_fresh_folders_has_one_identity_and_v1_folders_are_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    lottery.run(spec(rounds=0), out=a, **QUIET)
    lottery.run(spec(rounds=0), out=b, **QUIET)
    ident_a, ident_b = (json.loads((f / "identity.json").read_text()) for f in (a, b))
    assert ident_a == ident_b and ident_a["version"] == VERSION == 2
    # a folder written by identity v1 (no version, probes instead of programs) is never resumed
    stored = dict(ident_a)
    del stored["version"]
    (a / "identity.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"identity v1 .* never resumes an older folder by guess"):
        lottery.run(spec(rounds=0), out=a, **QUIET)
    # another jax lowered the programs: said so, and resumed only when the user says the study is the same
    moved = dict(ident_b, versions={**ident_b["versions"], "jax": "0.0.1"})
    moved["programs"] = {**moved["programs"], "round": "0" * 64}
    (b / "identity.json").write_text(json.dumps(moved))
    with pytest.raises(ValueError, match=r"lowered by jax 0\.0\.1 and now by jax .*allow_version_change=True"):
        lottery.run(spec(rounds=0), out=b, **QUIET)
    lottery.run(spec(rounds=0), out=b, allow_version_change=True, **QUIET)
    assert json.loads((b / "identity.json").read_text())["programs"] == ident_b["programs"]


# ---- (2) and (7): statistics that follow the weights -----------------------------------------------


@pytest.mark.slow
def test_a_reloaded_bn_ticket_scores_what_its_run_reported(tmp_path):
    """Each arm's trained statistics are kept with its weights, recomputed before every evaluation: the
    ticket reloaded (`lottery.load_round`) and evaluated scores the run's reported test accuracy."""
    net = nn.serial(nn.Dense(16), nn.BatchNorm(momentum=0.99), nn.Relu(), nn.Dense(10))
    report = lottery.run(spec(net=net, rounds=1), out=tmp_path, **QUIET)
    rec = report["rounds"][1]
    assert rec["statistics_batches"] == 10
    assert "recomputed from 10 training batches" in lottery.summary_table(report)
    for arm in ("ticket", "random"):
        like, state_like = net.init(jax.random.key(0), (40,)), net.init_state((40,))
        arrays = lottery.load_round(tmp_path, 1, arm, like=like, state_like=state_like)
        evaluate = train.make_evaluate(net, losses.softmax_cross_entropy, losses.accuracy)
        reported = np.array(rec["final_test_accuracy"])[np.array(rec["arms"]) == arm]
        for i in range(2):
            member = lambda t, i=i: jax.tree.map(lambda a: a[i], t)
            acc = evaluate(member(arrays.params), *map(jnp.asarray, TEST), member(arrays.model_state))["accuracy"]
            assert float(acc) == pytest.approx(float(reported[i]), abs=1e-6)


def _eqx_bn_mlp():
    import equinox as eqx

    from funcnn.interop import from_equinox

    class Net(eqx.Module):
        l1: eqx.nn.Linear
        bn: eqx.nn.BatchNorm
        l2: eqx.nn.Linear

        def __init__(self, key):
            k1, k2 = jax.random.split(key)
            self.l1 = eqx.nn.Linear(4, 6, key=k1)
            self.bn = eqx.nn.BatchNorm(6, axis_name="batch", momentum=0.99, mode="ema")
            self.l2 = eqx.nn.Linear(6, 3, key=k2)

        def __call__(self, x, state):
            h, state = self.bn(self.l1(x), state)
            return self.l2(jax.nn.relu(h)), state

    return from_equinox(lambda key: eqx.nn.make_with_state(Net)(key), input_shape=(4,))


def _hand_error(p, x, y, xs, eps=1e-5):
    """An equinox Linear-BN-ReLU-Linear net's error in eval mode, its BN statistics the average over the
    batches xs of each batch's (biased) mean and variance: numpy, by hand."""
    w1, b1, w2, b2 = (np.asarray(a, np.float64) for a in (p.l1.weight, p.l1.bias, p.l2.weight, p.l2.bias))
    hs = [xb @ w1.T + b1 for xb in xs]
    mean = np.mean([h.mean(0) for h in hs], axis=0)
    var = np.mean([h.var(0) for h in hs], axis=0)
    h = np.maximum((x @ w1.T + b1 - mean) / np.sqrt(var + eps) * np.asarray(p.bn.weight) + np.asarray(p.bn.bias), 0)
    return float(np.mean(np.argmax(h @ w2.T + b2, axis=1) != y))


@pytest.mark.slow
def test_stability_of_an_equinox_bn_net_is_the_barrier_computed_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = (x @ rng.normal(size=(4, 3))).argmax(1).astype(np.int32)
    net = _eqx_bn_mlp()
    theta = net.init(jax.random.key(0), (4,))
    out = stability.stability(
        net, theta, optax.sgd(0.3), losses.softmax_cross_entropy, (x, y), (x, y), steps=12, batch_size=16,
        key=jax.random.key(1), alphas=[0.0, 0.5, 1.0], stat_batches=3,
    )  # fmt: skip
    idx = np.asarray(stability.statistics_batches(jax.random.key(1), len(x), 16, 3))
    a, b = (jax.tree.map(lambda t, i=i: np.asarray(t[i]) if t is not None else None, out.copies.params) for i in (0, 1))
    errors = []
    for alpha in (0.0, 0.5, 1.0):
        p = jax.tree.map(lambda u, v, t=alpha: (1 - t) * u + t * v, a, b)
        errors.append(_hand_error(p, x, y, [x[i] for i in idx]))
    np.testing.assert_allclose(np.asarray(out.barrier.test_error[0]), errors, atol=1e-6)
    assert float(out.barrier.test_barrier[0]) == pytest.approx(max(errors) - (errors[0] + errors[2]) / 2, abs=1e-6)


# ---- (3) and (8): where the units are, probed; flags with other names ------------------------------


@pytest.mark.slow
def test_unit_pruning_of_a_pytorch_layout_nnx_layer_prunes_its_units_not_its_inputs(tmp_path):
    from flax import nnx

    from funcnn.interop import from_nnx

    class TorchLinear(nnx.Module):  # PyTorch's layout: kernel (out, in)
        def __init__(self, din, dout, rngs):
            self.kernel = nnx.Param(jax.random.normal(rngs.params(), (dout, din)) / np.sqrt(din))
            self.bias = nnx.Param(jnp.zeros(dout))

        def __call__(self, x):
            return x @ self.kernel.T + self.bias[None]

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.hidden, self.out = TorchLinear(40, 32, rngs), nnx.Linear(32, 10, rngs=rngs)

        def __call__(self, x):
            return self.out(nnx.relu(self.hidden(x)))

    report = lottery.run(spec(net=from_nnx(MLP), structure="unit", rounds=1), out=tmp_path, **QUIET)
    masks = lottery.load_round(tmp_path, 1).masks
    hidden = np.asarray(masks["hidden"]["kernel"][0])  # (32, 40): rows are the units
    assert hidden.all(axis=1).sum() == 16 and (~hidden).all(axis=1).sum() == 16  # 16 of 32 units, whole
    assert hidden.any(axis=0).all()  # every one of the 40 input features is still read
    assert np.asarray(masks["out"]["kernel"]).all()  # the output layer: never
    # units are the hidden layer's outputs: its inputs and the next layer's weights stay
    assert report["rounds"][1]["density"][0] == pytest.approx((16 * 40 + 32 * 10) / (32 * 40 + 32 * 10))


@pytest.mark.slow
def test_a_plain_net_whose_head_is_named_dense_0_keeps_its_head_not_dense_2(tmp_path):
    def init(key, shape):
        k1, k2 = jax.random.split(key)
        return {"dense_2": {"w": jax.random.normal(k1, (shape[0], 24)) / 6, "b": jnp.zeros(24)},
                "dense_0": {"w": jax.random.normal(k2, (24, 10)) / 5, "b": jnp.zeros(10)}}  # fmt: skip

    def apply(p, x):
        h = jax.nn.relu(x @ p["dense_2"]["w"] + p["dense_2"]["b"][None])
        return h @ p["dense_0"]["w"] + p["dense_0"]["b"][None]

    lottery.run(spec(net=(init, apply), structure="unit", rounds=1), out=tmp_path, **QUIET)
    masks = lottery.load_round(tmp_path, 1).masks
    assert np.asarray(masks["dense_0"]["w"]).all()  # the head, probed: kept whole
    assert np.asarray(masks["dense_2"]["w"][0]).all(axis=0).sum() == 12  # half of the 24 hidden units, whole


@pytest.mark.parametrize("name", ["training", "is_training", "deterministic", "rng", "rngs"])
def test_an_apply_with_another_librarys_flag_names_is_refused(name):
    def apply(params, x, **kw):
        return x

    P = inspect.Parameter
    apply.__signature__ = inspect.Signature(
        [P(n, P.POSITIONAL_OR_KEYWORD) for n in ("p", "x")] + [P(name, P.KEYWORD_ONLY, default=None)]
    )
    with pytest.raises(TypeError, match=f"takes `{name}=`, which funcnn never passes"):
        train.as_net((lambda k, s: {}, apply))
    with pytest.raises(ValueError, match=f"takes `{name}=`"):
        spec(net=(lambda k, s: {"w": jnp.ones((40, 10))}, apply)).validate()


# ---- (4), (5), (6): bad values, traced or not ---------------------------------------------------------

W = {"w": jnp.arange(12.0).reshape(3, 4) - 5.5}


@pytest.mark.parametrize("rate", [-0.2, float("nan"), 1.0, 1.5])
def test_a_bad_traced_rate_stops_and_names_the_argument(rate):
    f = jax.jit(lambda w, r: prune.magnitude(w, prune.ones(w), r))
    with pytest.raises(Exception, match=r"rate must be in \[0, 1\), got rate="):
        jax.block_until_ready(f(W, rate))
    g = jax.jit(jax.vmap(lambda r: prune.magnitude(W, prune.ones(W), r)))
    with pytest.raises(Exception, match=r"rate must be in \[0, 1\)"):
        jax.block_until_ready(g(jnp.array([0.5, rate])))
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        prune.magnitude(W, prune.ones(W), jnp.float32(rate))  # a concrete array: at once


@pytest.mark.parametrize("density", [0.0, 1.5, float("nan")])
def test_a_bad_traced_synflow_density_stops(density):
    net = nn.serial(nn.Dense(4), nn.Relu(), nn.Dense(2))
    params = net.init(jax.random.key(0), (3,))
    f = jax.jit(lambda d: prune.synflow(net.apply, params, prune.ones(params), d, (3,), iterations=2))
    with pytest.raises(Exception, match=r"synflow: density must be in \(0, 1\]"):
        jax.block_until_ready(f(jnp.float32(density)))


def test_nan_weights_and_nan_snip_scores_are_refused_not_ranked():
    bad = {"w": W["w"].at[0, 0].set(jnp.nan)}
    with pytest.raises(ValueError, match="must be finite: 1 NaN or infinite entries in 'w'"):
        prune.magnitude(bad, prune.ones(bad), 0.5)
    with pytest.raises(Exception, match="must be finite"):
        jax.block_until_ready(jax.jit(lambda w: prune.magnitude(w, prune.ones(w), 0.5))(bad))
    # NaN weights that are already pruned are not read
    masks = {"w": jnp.ones((3, 4), bool).at[0, 0].set(False)}
    assert int(prune.magnitude(bad, masks, 0.5)["w"].sum()) == 5
    net = nn.serial(nn.Dense(2))
    params = {"dense_0": {"w": jnp.full((3, 2), jnp.nan), "b": jnp.zeros(2)}}
    x, y = jnp.ones((4, 3)), jnp.zeros(4, jnp.int32)
    with pytest.raises(ValueError, match=r"snip_scores: scores .* must be finite"):
        prune.snip_scores(net.apply, params, prune.ones(params), x, y, losses.softmax_cross_entropy)


def test_decreasing_sparsities_with_iterative_pruning_are_refused():
    with pytest.raises(ValueError, match="sparsities must be non-decreasing with iterative pruning"):
        spec(sparsities=(0.5, 0.3), rounds=2).validate()
    spec(sparsities=(0.5, 0.3), rounds=2, pruning="oneshot").validate()  # each round from the dense run: fine


# ---- (9): the report and the folder agree -----------------------------------------------------------


@pytest.mark.slow
def test_a_shorter_rerun_and_a_criteria_only_study_report_what_the_folder_holds(tmp_path):
    lottery.run(spec(rounds=2), out=tmp_path / "r", **QUIET)
    again = lottery.run(spec(rounds=1), out=tmp_path / "r", **QUIET)
    loaded = lottery.load_report(tmp_path / "r")
    assert again["rounds_completed"] == loaded["rounds_completed"] == 3 and again["complete"] and loaded["complete"]
    on_disk = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [r["round"] for r in on_disk["rounds"]] == [0, 1, 2]
    criteria = spec(rounds=1, arms=(lottery.at_init("snip", density=0.2), lottery.at_init("random", density=0.2)))
    report = lottery.run(criteria, out=tmp_path / "c", **QUIET)
    loaded = lottery.load_report(tmp_path / "c")
    assert loaded["rounds_completed"] == 1 and loaded["complete"] and loaded["summary"] == report["summary"]


# ---- the smaller ones ---------------------------------------------------------------------------------


def test_masked_takes_multisteps_and_zeroes_params_never_masked():
    m = {"w": jnp.array([[True, False], [True, True]])}
    params = {"w": jnp.array([[1.0, 2.0], [3.0, 4.0]])}  # the pruned 2.0 was never masked
    tx = prune.masked(optax.MultiSteps(optax.adam(0.1), 2), m)
    state = tx.init(params)
    for _ in range(3):
        updates, state = tx.update({"w": jnp.ones((2, 2))}, state, params)
        params = optax.apply_updates(params, updates)
        assert float(params["w"][0, 1]) == 0.0  # brought to 0 by the first update, kept there


def test_stability_takes_an_unhashable_net_and_gives_dropout_its_key():
    class Net:  # an object with init/apply whose instances do not hash
        __hash__ = None

        def init(self, key, shape):
            return {"w": jax.random.normal(key, (shape[0], 2))}

        def apply(self, params, x, key=None, train=False):
            h = x @ params["w"]
            if train:  # Dropout that needs its key in training
                h = h * jax.random.bernoulli(key, 0.9, h.shape) / 0.9
            return h

    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    net = Net()
    theta, loss = net.init(jax.random.key(0), (3,)), losses.softmax_cross_entropy
    out = stability.stability(
        net, theta, optax.sgd(0.1), loss, (x, y), (x, y), steps=2, batch_size=8, key=jax.random.key(1), alphas=[0, 1]
    )
    assert out.copies.step.tolist() == [2, 2]


def test_density_refuses_colliding_names_and_a_learned_temperature_is_not_pruned():
    masks = {"a/b": jnp.ones((2, 2), bool), "a": {"b": jnp.zeros((2, 2), bool)}}
    with pytest.raises(ValueError, match="two prunable leaves are named 'a/b'"):
        prune.density(masks)

    def init(key, shape):
        return {"w": jax.random.normal(key, (shape[0], 10)), "temperature": jnp.ones((1, 10))}

    def apply(p, x):  # the (1, 10) temperature has a weight's ndim, but no dot consumes it
        return (x @ p["w"]) / p["temperature"]

    study = lottery.Study(spec(net=(init, apply)), progress=False)
    assert study.spec_prunable == {"w": True, "temperature": False}


def test_an_unknown_layer_rates_name_is_refused_by_validate_before_any_folder(tmp_path):
    bad = spec(layer_rates={"dense_9": 0.1})
    with pytest.raises(ValueError, match="layer_rates names 'dense_9', which is no prunable layer"):
        bad.validate()
    with pytest.raises(ValueError, match="layer_rates names 'dense_9'"):
        lottery.run(bad, out=tmp_path / "x", **QUIET)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_two_reinit_arms_built_alike_draw_different_nets(tmp_path):
    arms = ("ticket", lottery.reinitialized("reinit_a"), lottery.reinitialized("reinit_b"))
    lottery.run(spec(arms=arms, rounds=1), out=tmp_path, **QUIET)
    a, b = (lottery.load_round(tmp_path, 1, name).params for name in ("reinit_a", "reinit_b"))
    assert not np.array_equal(np.asarray(a["dense_0"]["w"]), np.asarray(b["dense_0"]["w"]))


def test_inverted_says_what_it_inverts():
    doc = lottery.inverted.__doc__
    assert "parent='snip'" in doc and "invert=True" in doc
