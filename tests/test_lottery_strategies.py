"""Pruners, arms and lineages in the lottery engine (funcnn.lottery.pruners, .arms, .rounds): what each
arm starts from, where its schedule starts, that lineages prune their own weights, that one study
equals the separate studies it replaces, and the engine defects of issue #28. Tiny studies only
(a 6-12-2 MLP, 40 iterations a round)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import io, lottery, nn, prune
from funcnn.lottery import arms, plans, pruners
from funcnn.lottery import rounds as rounds_lib
from funcnn.lottery.context import Context

QUIET = dict(progress=False, log=lambda s: None, figures=False)  # the tests that look at the PNGs draw them
DRAWN = QUIET | {"figures": True}
_rng = np.random.default_rng(0)
X = _rng.normal(size=(160, 6)).astype(np.float32)
Y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int32)


def net():
    return nn.serial(nn.Dense(12), nn.Relu(), nn.Dense(2))


def spec(**kw):
    base = dict(
        net=net(),
        optimizer=optax.adam(1e-2),
        train=(X[:128], Y[:128]),
        test=(X[128:], Y[128:]),
        n_val=32,
        iterations=40,
        eval_every=10,
        rounds=1,
        seeds=2,
        rate=0.5,
        checkpoints_per_round=2,
        batch_size=16,
    )
    return lottery.Spec(**(base | kw))


def load(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def by_arm(rec, key):
    arms_ = np.array(rec["arms"])
    return {a: np.array(rec[key])[arms_ == a] for a in dict.fromkeys(rec["arms"])}


def fake_round(runtime, trained_scale=2.0, k=0):
    """Lineages after a dense run whose trained weights are θ0 x trained_scale, rewind points at 0 and k."""
    ones = jax.vmap(prune.ones)(runtime.theta0)
    dense = jax.tree.map(lambda a: a * trained_scale, runtime.theta0)
    lineages = {p.name: rounds_lib.Lineage(dense, ones, None) for p in runtime.plans if p.lineage}
    rewinds = {0: {"params": runtime.theta0, "model_state": None, "opt_state": None}}
    if k:
        rewinds[k] = {"params": jax.tree.map(lambda a: a + 1.0, runtime.theta0), "model_state": None, "opt_state": None}
    return lineages, rewinds, dense


def select(tree, idx):
    return jax.tree.map(lambda a: a[jnp.asarray(idx)], tree)


# ---- where each arm starts ---------------------------------------------------------------------------


@pytest.mark.slow
def test_lr_rewinding_starts_from_the_trained_weights_with_the_schedule_at_k():
    sched = optax.piecewise_constant_schedule(1.0, {10: 0.1})  # 1.0 before step 10, 0.1 from it
    runtime = lottery.Study(
        spec(optimizer=optax.sgd(sched), rewind_step=10, arms=("ticket", arms.lr_rewinding())), progress=False
    )
    lineages, rewinds, dense = fake_round(runtime, k=10)
    members, masks = rounds_lib.build(runtime, 1, lineages, rewinds, dense)
    lrr = np.flatnonzero(np.array(members.arm) == "lr_rewinding")
    tick = np.flatnonzero(np.array(members.arm) == "ticket")
    chex_equal = lambda a, b: jax.tree.map(np.testing.assert_array_equal, a, b)
    chex_equal(select(members.params, lrr), jax.vmap(prune.rewind)(dense, masks["lr_rewinding"]))  # trained
    chex_equal(select(members.params, tick), jax.vmap(prune.rewind)(rewinds[10]["params"], masks["ticket"]))
    assert members.start[lrr].tolist() == [10, 10] and members.schedule_start[lrr].tolist() == [10, 10]
    states = runtime.initial_states(
        select(members.params, lrr), select(members.masks, lrr), members.seeds[lrr], 10, schedule_start=[10, 10]
    )
    grads = jax.tree.map(jnp.ones_like, states.params)
    updates, _ = jax.vmap(runtime.tx.update)(grads, states.opt_state)
    for u in jax.tree.leaves(updates):
        np.testing.assert_allclose(u, -0.1)  # schedule(10), not schedule(0) = 1.0


@pytest.mark.slow
def test_fine_tuning_trains_at_the_final_rate_throughout():
    T = 40
    sched = optax.linear_schedule(1.0, 0.0, T)  # the rate of the last iteration T - 1: 1/40
    runtime = lottery.Study(spec(optimizer=optax.sgd(sched), arms=("ticket", arms.fine_tuning())), progress=False)
    lineages, rewinds, dense = fake_round(runtime)
    members, _ = rounds_lib.build(runtime, 1, lineages, rewinds, dense)
    ft = np.flatnonzero(np.array(members.arm) == "fine_tuning")
    tick = np.flatnonzero(np.array(members.arm) == "ticket")
    assert members.hold[ft].tolist() == [T - 1] * 2 and members.hold[tick].tolist() == [-1] * 2
    for sel, rates in ((ft, [1 / T] * 25), (tick, [1 - i / T for i in range(25)])):
        states = runtime.initial_states(
            select(members.params, sel),
            select(members.masks, sel),
            members.seeds[sel],
            0,
            schedule_start=members.schedule_start[sel],
            hold=members.hold[sel],
        )
        opt, grads = states.opt_state, jax.tree.map(jnp.ones_like, states.params)
        seen = []
        for _ in range(25):
            updates, opt = jax.vmap(runtime.tx.update)(grads, opt)
            seen.append(-float(jax.tree.leaves(updates)[0].reshape(-1)[0]))
        np.testing.assert_allclose(seen, rates, rtol=1e-6)


def probe_context(params, parent, key=0):
    ones = prune.ones(params)
    return Context(1, jnp.int32(0), jax.random.key(key), params, params, params, params, ones, parent, params,
                   None, None, None, prune.prunable(params), (6,))  # fmt: skip


@pytest.mark.slow
def test_shuffle_keeps_each_layers_count_and_moves_the_pattern():
    params = net().init(jax.random.key(1), (6,))
    parent = prune.magnitude(params, prune.ones(params), 0.7)
    shuffled = pruners.shuffle().fn(probe_context(params, parent))
    for name in ("dense_0", "dense_2"):
        assert int(shuffled[name]["w"].sum()) == int(parent[name]["w"].sum())
        assert bool(shuffled[name]["b"].all())
    assert not np.array_equal(shuffled["dense_0"]["w"], parent["dense_0"]["w"])


def test_inversion_prunes_the_largest_weights_at_the_parents_counts():
    params = net().init(jax.random.key(2), (6,))
    parent = prune.magnitude(params, prune.ones(params), 0.6)
    inv = pruners.inverted().fn(probe_context(params, parent))
    for name in ("dense_0", "dense_2"):
        w, m = np.abs(np.asarray(params[name]["w"])), np.asarray(inv[name]["w"])
        assert m.sum() == int(parent[name]["w"].sum())
        assert w[m].max() <= w[~m].min()  # every kept weight is smaller than every pruned one
        assert not np.array_equal(m, np.asarray(parent[name]["w"]))


@pytest.mark.slow
def test_each_arm_gets_its_own_key():
    runtime = lottery.Study(spec(arms=("ticket", "random", arms.shuffled("r1"), arms.shuffled("r2"))), progress=False)
    base = jax.random.key(3)
    keys = [jax.random.key_data(plans.arm_key(base, p)).tolist() for p in runtime.plans]
    assert len({str(k) for k in keys}) == 4
    assert keys[1] == jax.random.key_data(base).tolist()  # the built-in 'random' keeps its old key
    lineages, rewinds, dense = fake_round(runtime)
    _, masks = rounds_lib.build(runtime, 1, lineages, rewinds, dense)
    assert not np.array_equal(masks["r1"]["dense_0"]["w"], masks["r2"]["dense_0"]["w"])  # built alike, drawn apart


def test_reinit_is_one_draw_per_seed_and_fresh_draws_every_round():
    runtime = lottery.Study(spec(arms=("ticket", "reinit", arms.reinitialized("fresh", fresh=True))), progress=False)
    lineages, rewinds, dense = fake_round(runtime)
    got = {}
    for r in (1, 2):
        members, _ = rounds_lib.build(runtime, r, lineages, rewinds, dense)
        for a in ("reinit", "fresh"):
            sel = np.flatnonzero(np.array(members.arm) == a)
            got[a, r] = np.asarray(select(members.params, sel)["dense_0"]["w"])
    np.testing.assert_array_equal(got["reinit", 1], got["reinit", 2])
    assert not np.allclose(got["fresh", 1], got["fresh", 2])
    assert not np.allclose(got["fresh", 1], got["reinit", 1])


# ---- lineages and one program ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_lineage_prunes_its_own_trained_weights(tmp_path):
    s = spec(rounds=2, arms=("ticket", arms.lr_rewinding()))
    lottery.run(s, out=tmp_path, **QUIET)
    r1, r2 = tmp_path / "round_01", tmp_path / "round_02"
    pspec = prune.prunable(s.net.init(jax.random.key(0), (6,)))
    like = jax.vmap(lambda k: s.net.init(k, (6,)))(jax.random.split(jax.random.key(0), 2))
    ones = jax.vmap(prune.ones)(like)
    for tag in ("", "_lr_rewinding"):
        trained = io.load_tree(r1 / f"trained{tag}.npz", like)
        masks1 = io.load_tree(r1 / f"masks{tag}.npz", ones)
        masks2 = io.load_tree(r2 / f"masks{tag}.npz", ones)
        expected = jax.vmap(lambda t, m: lottery.prune_round(s, t, m, t, 2, pspec))(trained, masks1)
        jax.tree.map(np.testing.assert_array_equal, masks2, expected)
    a = io.load_tree(r2 / "masks.npz", ones)["dense_0"]["w"]
    b = io.load_tree(r2 / "masks_lr_rewinding.npz", ones)["dense_0"]["w"]
    assert not np.array_equal(a, b)  # each lineage from its own weights


@pytest.mark.slow
def test_one_study_equals_the_separate_studies_it_replaces(tmp_path):
    offshoots = ("reinit", "random", arms.inverted(), arms.at_init("snip"))
    common = dict(rounds=2, population_chunk=1)
    together = lottery.run(
        spec(arms=("ticket", *offshoots, arms.lr_rewinding()), **common), out=tmp_path / "a", **QUIET
    )
    tickets = lottery.run(spec(arms=("ticket", *offshoots), **common), out=tmp_path / "b", **QUIET)
    lrr = lottery.run(spec(arms=(arms.lr_rewinding(),), **common), out=tmp_path / "c", **QUIET)
    keys = ("final_test_accuracy", "early_stop_iteration", "density", "final_val_loss")
    for r in (1, 2):
        joint = together["rounds"][r]
        parts = {**{a: tickets["rounds"][r] for a in ("ticket", "reinit", "random", "inverted", "snip")},
                 "lr_rewinding": lrr["rounds"][r]}  # fmt: skip
        assert set(by_arm(joint, "density")) == set(parts)
        for key in keys:
            for arm, rec in parts.items():
                # The same members, one program or three: float rounding at most (1e-6 relative).
                np.testing.assert_allclose(by_arm(joint, key)[arm], by_arm(rec, key)[arm], rtol=1e-6)
        for arm, folder in (("inverted", "b"), ("snip", "b")):
            np.testing.assert_array_equal(
                load(tmp_path / "a" / f"round_{r:02d}" / f"masks_{arm}.npz")["dense_0/w"],
                load(tmp_path / folder / f"round_{r:02d}" / f"masks_{arm}.npz")["dense_0/w"],
            )
        np.testing.assert_allclose(
            load(tmp_path / "a" / f"round_{r:02d}" / "trained_lr_rewinding.npz")["dense_0/w"],
            load(tmp_path / "c" / f"round_{r:02d}" / "trained.npz")["dense_0/w"],
            rtol=1e-6,
        )


@pytest.mark.slow
def test_lineages_with_different_rewind_steps_share_one_dense_run(tmp_path):
    s = spec(arms=(arms.weight_rewinding("t0", rewind_step=0), arms.weight_rewinding("t20", rewind_step=20)))
    report = lottery.run(s, out=tmp_path, **QUIET)
    r0, r1 = report["rounds"]
    assert set(r0["arms"]) == {"t0"} and len(r0["arms"]) == 2  # one dense run for both lineages
    assert (tmp_path / "round_00" / "rewind_k20.npz").exists()
    curves = lottery.load_curves(tmp_path / "round_01")
    val = by_arm({"arms": r1["arms"], "v": curves["val_loss"].tolist()}, "v")
    assert np.isnan(val["t20"][:, :2]).all() and np.isfinite(val["t20"][:, 2:]).all()  # trains 20..40
    assert np.isfinite(val["t0"]).all()  # trains 0..40
    assert r1["iterations"] == list(range(10, 41, 10))


# ---- studies of criteria alone, the report, identity, extension ------------------------------------


@pytest.mark.slow
def test_criteria_alone_need_no_dense_run_and_hit_absolute_densities(tmp_path):
    s = spec(
        arms=(
            arms.at_init("snip", "snip_10", density=0.1),
            arms.at_init("grasp", "grasp_2", density=0.02),
            arms.at_init("synflow", "synflow_10", density=0.1, iterations=5),
            arms.at_init("random", "random_2", density=0.02),
        )
    )
    report = lottery.run(s, out=tmp_path, **QUIET)
    assert not (tmp_path / "round_00").exists() and report["complete"]
    n = 6 * 12 + 12 * 2
    kept = {a: np.rint(v * n).astype(int).tolist() for a, v in by_arm(report["rounds"][0], "density").items()}
    assert kept == {  # exact counts: round(density x n) weights of the 96 prunable ones
        "snip_10": [round(0.1 * n)] * 2,
        "grasp_2": [round(0.02 * n)] * 2,
        "synflow_10": [round(0.1 * n)] * 2,
        "random_2": [round(0.02 * n)] * 2,
    }
    table = lottery.summary_table(report)
    assert " 9.38 " in table or f"{100 * round(0.1 * n) / n:7.2f}" in table


@pytest.mark.slow
def test_table_lists_each_arm_at_its_own_density_and_aligns_any_name(tmp_path):
    long = "a_rather_long_arm_name_for_a_table"
    s = spec(arms=("ticket", arms.at_init("snip", long, density=0.1)))
    report = lottery.run(s, out=tmp_path, **DRAWN)
    table = lottery.summary_table(report)
    lines = table.splitlines()
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header
    round1 = [line for line in lines[2:] if line.split()[0] == "1"]
    levels = sorted(float(line.split()[1]) for line in round1)
    assert levels == pytest.approx([100 * round(0.1 * 96) / 96, 50.0], abs=0.01)
    assert any(p.endswith(".png") for p in report["figures"])
    assert all((tmp_path / f).exists() for f in ("accuracy_vs_remaining.png", "learning_curves.png"))


@pytest.mark.slow
def test_every_arm_is_saved_and_verified(tmp_path):
    s = spec(arms=("ticket", "reinit", "random", arms.inverted()))
    lottery.run(s, out=tmp_path, **QUIET)
    digests = json.loads((tmp_path / "round_01" / io.COMMIT).read_text())
    for arm in ("reinit", "random", "inverted"):
        assert f"masks_{arm}.npz" in digests and f"trained_{arm}.npz" in digests
    path = tmp_path / "round_01" / "trained_inverted.npz"
    path.write_bytes(path.read_bytes()[:-7])  # truncated: the round must be trained again
    lines = []
    lottery.run(s, out=tmp_path, progress=False, log=lines.append)
    assert any("failed its checksum" in line for line in lines)
    rec = json.loads((tmp_path / "round_01" / "metrics.json").read_text())
    assert rec["mask_seconds"] >= 0 and "masks" in lines[-1]


@pytest.mark.slow
def test_an_arm_whose_function_changed_under_the_same_name_is_not_resumed(tmp_path):
    same = lambda ctx: (ctx.theta_rewind, ctx.parent_masks)
    flipped = lambda ctx: (jax.tree.map(jnp.negative, ctx.theta_rewind), ctx.parent_masks)
    lottery.run(spec(arms=("ticket", lottery.Arm("mine", same))), out=tmp_path, **QUIET)
    with pytest.raises(ValueError, match=r"arm 'mine' \(what it does: its mask and weights\) differs"):
        lottery.run(spec(arms=("ticket", lottery.Arm("mine", flipped))), out=tmp_path, **QUIET)
    with pytest.raises(ValueError, match="loss"):
        doubled = lambda z, y: 2.0 * optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
        lottery.run(spec(arms=("ticket", lottery.Arm("mine", same)), loss=doubled), out=tmp_path, **QUIET)


@pytest.mark.slow
def test_a_finished_study_given_more_rounds_resumes_and_trains_the_new_ones(tmp_path):
    first = lottery.run(spec(rounds=1), out=tmp_path, **QUIET)
    lines = []
    more = lottery.run(spec(rounds=2), out=tmp_path, progress=False, log=lines.append)
    assert lines[0].startswith("round 0: resumed") and lines[1].startswith("round 1: resumed")
    assert lines[2].startswith("round  2") and more["complete"] and len(more["rounds"]) == 3
    assert more["rounds"][:2] == first["rounds"]
    assert lottery.load_report(tmp_path)["rounds_completed"] == 3


# ---- the net contract and the identity's message (issue #29) ----------------------------------------


def plain_pair(hidden=12, takes=()):
    """An (init, apply) pair of plain functions; apply takes only the keywords in `takes`."""

    def init(key, shape):
        k1, k2 = jax.random.split(key)
        return {"l1": {"kernel": 0.3 * jax.random.normal(k1, (shape[0], hidden))},
                "head": {"kernel": 0.3 * jax.random.normal(k2, (hidden, 2))}}  # fmt: skip

    def forward(params, x):
        return jax.nn.relu(x @ params["l1"]["kernel"]) @ params["head"]["kernel"]

    if "train" in takes:
        return init, lambda params, x, *, train=False: forward(params, x)
    return init, forward


@pytest.mark.slow
@pytest.mark.parametrize("takes", [(), ("train",)])
def test_a_plain_init_apply_pair_runs_a_study(tmp_path, takes):
    report = lottery.run(spec(net=plain_pair(takes=takes), arms=("ticket", "random")), out=tmp_path, **QUIET)
    assert report["complete"] and report["rounds"][1]["density"][0] == pytest.approx(0.5)


def test_a_net_that_does_not_fit_the_data_fails_in_validate():
    init, _ = plain_pair()
    with pytest.raises(ValueError, match="probe call"):
        spec(net=(init, lambda params, x: x @ params["head"]["kernel"])).validate()  # (., 6) @ (12, 2)
    with pytest.raises(ValueError, match="spec net"):
        spec(net="mlp").validate()


@pytest.mark.slow
def test_only_a_changed_shape_is_blamed_when_the_param_tree_changes(tmp_path):
    lottery.run(spec(net=plain_pair(12), rounds=0), out=tmp_path, **QUIET)
    with pytest.raises(ValueError) as info:
        lottery.run(spec(net=plain_pair(16), rounds=0), out=tmp_path, **QUIET)
    msg = str(info.value)
    assert "param tree" in msg and "stored" in msg and "now" in msg and "float32[6, 12]" in msg
    assert "optimizer" not in msg and "network" not in msg


@pytest.mark.slow
def test_lottery_ticket_report_only_reads_a_folder_of_any_arms(tmp_path, capsys):
    from experiments import lottery_ticket

    lottery.run(spec(arms=("ticket", arms.shuffled("shuffle"), arms.at_init("snip"))), out=tmp_path, **QUIET)
    report = lottery_ticket.main(["--report-only", "--out", str(tmp_path)])  # was: KeyError 'shuffle'
    assert {r["arm"] for r in report["summary"]} == {"ticket", "shuffle", "snip"}
    assert "shuffle acc %" in capsys.readouterr().out
    assert (tmp_path / "accuracy_vs_remaining.png").stat().st_size > 0
