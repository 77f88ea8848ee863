"""The lottery engine through its public API: Spec vs Config, bring-your-own studies, rewinding
(schedule, optimizer and model state), the run folder's identity, lineage of retrained rounds,
write faults and the lock. Tiny studies only (2 seeds, 100-400 iterations, 1 round)."""

import dataclasses
import errno
import json
import os
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcnn
from funcnn import data, io, lottery, models, nn, prune, train
from funcnn.lottery import driver as driver_lib
from funcnn.lottery import segments as segments_lib
from funcnn.lottery import study as study_lib

QUIET = dict(progress=False, log=lambda s: None, figures=False)  # no test here looks at the PNGs
SMALL = dataclasses.replace(
    lottery.PRESETS["mnist1d"],
    model="mlp-64-64",
    iterations=200,
    eval_every=100,
    rounds=1,
    seeds=2,
    rate=0.5,
    output_rate=0.25,
)
D = data.load("mnist1d")
TRAIN, TEST = (D.x_train[:1000], D.y_train[:1000]), (D.x_test[:300], D.y_test[:300])


def mlp(act=nn.Relu):
    return nn.serial(nn.Dense(16), act(), nn.Dense(10))


def small_spec(**kw):
    base = dict(
        net=mlp(),
        optimizer=optax.adam(1e-3),
        train=TRAIN,
        test=TEST,
        n_val=200,
        iterations=200,
        eval_every=100,
        rounds=1,
        seeds=2,
        rate=0.5,
    )
    return lottery.Spec(**(base | kw))


def metrics(report):
    return [{k: v for k, v in r.items() if k not in ("train_seconds", "mask_seconds")} for r in report["rounds"]]


def leaves(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ---- 1. Config and Spec are one path --------------------------------------------------------------


@pytest.mark.slow
def test_preset_path_equals_open_path_bit_for_bit(tmp_path):
    cfg = dataclasses.replace(SMALL, model="mlp-32-32", arms=("ticket", "random"))
    by_name = lottery.run(cfg, out=tmp_path / "config", **QUIET)
    by_objects = lottery.run(cfg.to_spec(), out=tmp_path / "spec", **QUIET)
    assert len(by_name["rounds"]) == 2
    assert metrics(by_name) == metrics(by_objects)
    for r in ("round_00", "round_01"):
        a, b = leaves(tmp_path / "config" / r / "trained.npz"), leaves(tmp_path / "spec" / r / "trained.npz")
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


# ---- 2. bring your own study ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.filterwarnings("error::DeprecationWarning")  # the engine uses no deprecated name (issue #43)
def test_bring_your_own_study_in_a_few_lines(tmp_path):
    # --- the user's code (13 lines) ---
    d = funcnn.data.load("mnist1d")
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, 0.05, 50), optax.piecewise_constant_schedule(0.05, {150: 0.1})], [50]
    )
    net = nn.serial(nn.Dense(64), nn.Relu(), nn.Residual(nn.serial(nn.Dense(64), nn.Relu())), nn.Dense(10))
    spec = lottery.Spec(
        net,
        optax.sgd(schedule, momentum=0.9),
        train=(d.x_train, d.y_train),
        test=(d.x_test, d.y_test),
        iterations=200,
        eval_every=100,
        rounds=1,
        seeds=2,
        rate=0.2,
        rewind_step=100,
        layer_rates={"residual_2/main/dense_0": 0.1},
        arms=("ticket", "reinit", "random", lottery.Arm("same_sign", lottery.reinit_same_sign)),
    )
    report = lottery.run(spec, out=tmp_path, progress=False, figures=False)
    print(lottery.summary_table(report))
    # --- checks ---
    assert {r["arm"] for r in report["summary"] if r["round"] == 1} == {"ticket", "reinit", "random", "same_sign"}
    assert [r["percent_remaining"] for r in report["summary"] if r["round"] == 0] == [100.0]  # exact, float64
    rec = report["rounds"][1]
    layer = {k: np.array(v) for k, v in rec["layer_density"].items()}
    # The deep name's own rate (0.1), for every arm and seed; the other layers at the default 0.2.
    np.testing.assert_allclose(layer["residual_2/main/dense_0/w"], 0.9, atol=1e-3)
    np.testing.assert_allclose(layer["dense_0/w"], 0.8, atol=1e-3)
    np.testing.assert_allclose(layer["dense_3/w"], 0.8, atol=1e-3)
    assert rec["iterations"] == [200]  # late rewinding: rounds train k..T
    assert np.all(np.isfinite(rec["final_test_accuracy"]))
    assert (tmp_path / "round_00" / "rewind.npz").is_file()


def test_same_sign_arm_keeps_the_rewound_signs():
    k1, k2 = jax.random.split(jax.random.key(0))
    rewound, fresh = {"w": jax.random.normal(k1, (50,))}, {"w": jax.random.normal(k2, (50,))}
    mask = {"w": jnp.ones(50, bool)}
    ctx = lottery.Context(
        round=1, seed=jnp.int32(0), key=jax.random.key(1), theta0=rewound, theta_rewind=rewound,
        theta_reinit=fresh, trained=rewound, masks=mask, parent_masks=mask, dense_trained=rewound,
        batch=None, forward=None, loss=None, spec_prunable={"w": True}, input_shape=(50,),
    )  # fmt: skip
    params, m = lottery.reinit_same_sign(ctx)
    np.testing.assert_array_equal(jnp.sign(params["w"]), jnp.sign(rewound["w"]))
    np.testing.assert_allclose(jnp.abs(params["w"]), jnp.abs(fresh["w"]))
    assert m is mask
    with pytest.warns(DeprecationWarning, match=r"reinit_same_sign\(ctx\)"):  # yesterday's call, for a release
        old, m = lottery.reinit_same_sign(rewound, fresh, mask, jax.random.key(1))
    np.testing.assert_array_equal(old["w"], params["w"])


# ---- 3. rewinding ---------------------------------------------------------------------------------

SCHEDULE = optax.linear_schedule(0.1, 0.01, 1000)


@pytest.mark.parametrize("k", [0, 1, 100, 700])
def test_advance_schedule_first_update_uses_the_rate_at_k(k):
    params = {"w": jnp.ones(3)}
    g = {"w": jnp.array([1.0, -2.0, 3.0])}
    want = -float(SCHEDULE(k)) * np.asarray(g["w"])
    for tx in (
        optax.sgd(SCHEDULE),
        optax.inject_hyperparams(optax.sgd)(learning_rate=SCHEDULE),
        optax.chain(optax.add_decayed_weights(0.0), optax.sgd(SCHEDULE)),
        optax.chain(optax.clip_by_global_norm(100.0), optax.inject_hyperparams(optax.sgd)(learning_rate=SCHEDULE)),
    ):
        state = lottery.advance_schedule(tx.init(params), k)
        updates, _ = tx.update(g, state, params)
        np.testing.assert_allclose(updates["w"], want, rtol=1e-6)
    # Adam: the schedule resumes at k, its own step count (bias correction) stays fresh at 0, so
    # the first step is -lr(k) * sign(g), as for a fresh Adam.
    tx = optax.adam(SCHEDULE)
    state = lottery.advance_schedule(tx.init(params), k)
    assert int(state[0].count) == 0
    updates, _ = tx.update(g, state, params)
    np.testing.assert_allclose(updates["w"], -float(SCHEDULE(k)) * np.sign(g["w"]), rtol=1e-4)


@pytest.mark.slow
def test_study_initial_states_start_the_schedule_at_k():
    study = lottery.Study(small_spec(optimizer=optax.sgd(SCHEDULE), rewind_step=100), progress=False)
    masks = jax.vmap(lambda p: jax.tree.map(lambda a: jnp.ones(a.shape, bool), p))(study.theta0)
    states = study.initial_states(study.theta0, masks, jnp.arange(2), 100)
    counts = [
        s.count
        for s in jax.tree.leaves(states.opt_state, is_leaf=lambda s: isinstance(s, optax.ScaleByScheduleState))
        if isinstance(s, optax.ScaleByScheduleState)
    ]
    assert counts and all(np.all(np.asarray(c) == 100) for c in counts)
    np.testing.assert_array_equal(states.step, [100, 100])


@pytest.mark.slow
def test_dense_run_is_continuous_across_the_rewind_step(tmp_path):
    """Round 0 with rewind_step=k is the very run with k=0 (θk saved on the way), not a restart of
    Adam and its schedule at k."""
    tx = optax.adam(optax.linear_schedule(3e-3, 1e-4, 200))
    late = lottery.run(small_spec(optimizer=tx, rewind_step=100, rounds=0), out=tmp_path / "late", **QUIET)
    plain = lottery.run(small_spec(optimizer=tx, rewind_step=0, rounds=0), out=tmp_path / "plain", **QUIET)
    assert metrics(late) == metrics(plain)
    a, b = leaves(tmp_path / "late/round_00/trained.npz"), leaves(tmp_path / "plain/round_00/trained.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert (tmp_path / "late/round_00/rewind.npz").is_file()
    assert not (tmp_path / "plain/round_00/rewind.npz").exists()
    saved_opt = leaves(tmp_path / "late/round_00/rewind_opt.npz")
    counts = [v for k, v in saved_opt.items() if k.endswith("count")]
    assert counts and all(np.all(c == 100) for c in counts)  # Adam's and the schedule's state at step k


BN_NET = nn.serial(nn.Dense(32), nn.BatchNorm(), nn.Relu(), nn.Dense(10))


def _capture_round_inputs(monkeypatch):
    seen = {}
    real = lottery.Study.train_round

    def spy(self, params, masks, seed_of_member, start, desc, **kw):
        seen[desc] = dict(kw, start=start, params=params)
        return real(self, params, masks, seed_of_member, start, desc, **kw)

    monkeypatch.setattr(lottery.Study, "train_round", spy)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("rewind_optimizer", [False, True])
def test_rewound_rounds_start_from_the_saved_model_and_optimizer_state(tmp_path, monkeypatch, rewind_optimizer):
    spec = small_spec(net=BN_NET, rewind_step=100, rewind_optimizer=rewind_optimizer, arms=("ticket", "reinit"))
    seen = _capture_round_inputs(monkeypatch)
    lottery.run(spec, out=tmp_path, **QUIET)
    saved_state = leaves(tmp_path / "round_00/rewind_state.npz")
    mean, var = saved_state["batchnorm_1/mean"], saved_state["batchnorm_1/var"]
    assert mean.shape == (2, 32)
    assert np.abs(mean).max() > 1e-3 and np.abs(var - 1).max() > 1e-3  # trained statistics, not (0, 1)

    def check_round_1(inputs):
        assert inputs["start"] == 100
        got = inputs["model_state"]
        assert got is not None
        np.testing.assert_array_equal(got["batchnorm_1"]["mean"], np.tile(mean, (2, 1)))  # both arms, both seeds
        np.testing.assert_array_equal(got["batchnorm_1"]["var"], np.tile(var, (2, 1)))
        if not rewind_optimizer:
            assert inputs["opt_state"] is None  # fresh, with its schedule advanced to k
            return
        saved_opt = leaves(tmp_path / "round_00/rewind_opt.npz")
        like = jax.tree.map(lambda a: a[:2], inputs["opt_state"])
        names = [funcnn.prune.path_name(p) or "_" for p, _ in jax.tree_util.tree_leaves_with_path(like)]
        assert sorted(names) == sorted(saved_opt)
        for name, leaf in zip(names, jax.tree.leaves(inputs["opt_state"]), strict=True):
            np.testing.assert_array_equal(leaf, np.concatenate([saved_opt[name]] * 2))
        assert any(name.endswith("count") and np.all(saved_opt[name] == 100) for name in saved_opt)
        assert any(np.abs(v).max() > 0 for name, v in saved_opt.items() if name.endswith("mu/dense_0/w"))

    check_round_1(seen["round 1"])
    if not rewind_optimizer:
        return
    # Resumed from disk: round 0 loaded from its files, round 1 trained again from the same state.
    import shutil

    shutil.rmtree(tmp_path / "round_01")
    seen.clear()
    lottery.run(spec, out=tmp_path, **QUIET)
    assert "round 0" not in seen
    check_round_1(seen["round 1"])


# ---- 4. identity ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_different_study_in_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    base = small_spec(iterations=100, rounds=0)
    lottery.run(base, out=out, **QUIET)
    lines = []
    lottery.run(base, out=out, progress=False, figures=False, log=lines.append)
    assert lines and all("resumed" in s for s in lines)
    x = TRAIN[0].copy()
    x[-1, 3] += 0.5
    changes = [
        (dict(net=mlp(nn.Tanh)), "the net in training mode differs"),
        (dict(train=(x, TRAIN[1])), "data"),
        (dict(seed=1), "θ0"),
        (dict(seed=1), "seed (stored 0, now 1)"),
        (dict(optimizer=optax.adam(2e-3)), "optimizer"),
        (dict(prunable=lambda name, leaf: True), "prunable"),
        (dict(label="other"), "label"),
    ]
    for kw, needle in changes:
        with pytest.raises(ValueError) as info:
            lottery.run(dataclasses.replace(base, **kw), out=out, **QUIET)
        assert needle in str(info.value), (kw, str(info.value))
        assert "will not be resumed" in str(info.value)
    # Each refusal left the folder as it was: the same study still resumes.
    lines = []
    lottery.run(base, out=out, progress=False, figures=False, log=lines.append)
    assert all("resumed" in s for s in lines)


@pytest.mark.slow
def test_same_data_in_another_array_type_resumes(tmp_path):
    base = small_spec(iterations=100, rounds=0, seeds=1)
    lottery.run(base, out=tmp_path, **QUIET)
    lines = []
    as_jax = dataclasses.replace(base, train=tuple(map(jnp.asarray, TRAIN)), test=[TEST[0], TEST[1]])
    lottery.run(as_jax, out=tmp_path, progress=False, figures=False, log=lines.append)
    assert all("resumed" in s for s in lines)


@pytest.mark.slow
def test_config_with_a_changed_model_under_the_same_name_is_refused(tmp_path, monkeypatch):
    cfg = dataclasses.replace(SMALL, model="mlp-16", iterations=100, rounds=0, seeds=1)
    lottery.run(cfg, out=tmp_path, **QUIET)
    real = models.build

    def build(name):
        if name != "mlp-16":
            return real(name)
        glorot = jax.nn.initializers.glorot_normal()
        return nn.serial(nn.Flatten(), nn.Dense(16, w_init=glorot), nn.Tanh(), nn.Dense(10, w_init=glorot))

    monkeypatch.setattr(models, "build", build)
    with pytest.raises(ValueError, match="the net in training mode differs"):
        lottery.run(cfg, out=tmp_path, **QUIET)
    monkeypatch.setattr(models, "build", real)
    lines = []
    lottery.run(cfg, out=tmp_path, progress=False, figures=False, log=lines.append)
    assert all("resumed" in s for s in lines)


# ---- 5. lineage of a retrained round --------------------------------------------------------------


def _flip_byte(path):
    raw = path.read_bytes()
    i = len(raw) // 2
    path.write_bytes(raw[:i] + bytes([raw[i] ^ 0x55]) + raw[i + 1 :])


@pytest.mark.slow
def test_retrained_round_keeps_its_successors_only_if_identical(tmp_path, monkeypatch):
    spec = small_spec(arms=("ticket", "random"))
    out = tmp_path / "run"
    clean = lottery.run(spec, out=out, **QUIET)
    _flip_byte(out / "round_00" / "trained.npz")
    lines = []
    again = lottery.run(spec, out=out, progress=False, figures=False, log=lines.append)
    assert "failed its checksum" in lines[0]
    assert not any(s.startswith("round 0: resumed") for s in lines)
    assert lines[-1].startswith("round 1: resumed")  # round 0 came out bit-identical
    assert metrics(again) == metrics(clean)

    # A retrain that comes out different (as a GPU may): round 1 was built on the old round 0.
    _flip_byte(out / "round_00" / "trained.npz")
    real = lottery.Study.train_round

    def different(self, *a, **kw):
        result = real(self, *a, **kw)
        if a[4] == "round 0":
            state = result.carry.state
            state = state._replace(params=jax.tree.map(lambda p: p * (1 + 1e-6), state.params))
            result = result._replace(carry=result.carry._replace(state=state))
        return result

    monkeypatch.setattr(lottery.Study, "train_round", different)
    lines = []
    lottery.run(spec, out=out, progress=False, figures=False, log=lines.append)
    assert not any("resumed" in s for s in lines)
    assert any(s.startswith("round 1:") and "trained again with a different result" in s for s in lines), lines
    monkeypatch.setattr(lottery.Study, "train_round", real)
    # And now everything resumes, the new round 1 built on the new round 0.
    lines = []
    lottery.run(spec, out=out, progress=False, figures=False, log=lines.append)
    assert len(lines) == 2 and all("resumed" in s for s in lines)
    r1 = json.loads((out / "round_01" / "metrics.json").read_text())
    assert r1["parent"] == driver_lib.lineage(out / "round_00")


@pytest.mark.slow
def test_stale_parent_digest_is_detected(tmp_path):
    spec = small_spec(arms=("ticket",))
    lottery.run(spec, out=tmp_path, **QUIET)
    folder = tmp_path / "round_01"
    rec = json.loads((folder / "metrics.json").read_text())
    rec["parent"] = "0" * 64
    io.atomic_write_json(folder / "metrics.json", rec)
    io.commit(folder, list(json.loads((folder / io.COMMIT).read_text())))  # a valid commit of the stale round
    lines = []
    lottery.run(spec, out=tmp_path, progress=False, figures=False, log=lines.append)
    assert lines[0].startswith("round 0: resumed")
    assert "round 1: it was built on a round 0 that has since been trained again" in lines[1]


# ---- 6. faults ------------------------------------------------------------------------------------

MID = small_spec(iterations=400, checkpoints_per_round=4, arms=("ticket", "reinit"))


@pytest.mark.slow
def test_disk_full_mid_round_keeps_what_was_committed_and_resumes(tmp_path, monkeypatch):
    clean = lottery.run(MID, out=tmp_path / "clean", **QUIET)
    out = tmp_path / "run"
    real_write = io.atomic_write_bytes
    real_fsync = os.fsync
    writes = []

    def failing_write(path, payload):
        if "round_01.partial" in str(path):
            writes.append(str(path))
            # the 2nd mid-round checkpoint of round 1: its curves.npz (after its state.npz)
            if len(writes) == 6:

                def no_space(fd):
                    raise OSError(errno.ENOSPC, "No space left on device")

                monkeypatch.setattr(os, "fsync", no_space)
                try:
                    return real_write(path, payload)
                finally:
                    monkeypatch.setattr(os, "fsync", real_fsync)
        return real_write(path, payload)

    monkeypatch.setattr(io, "atomic_write_bytes", failing_write)
    with pytest.raises(lottery.CheckpointWriteError) as info:
        lottery.run(MID, out=out, **QUIET)
    monkeypatch.setattr(io, "atomic_write_bytes", real_write)
    e = info.value
    assert e.errno == errno.ENOSPC
    assert "No space left on device" in str(e)
    assert "round_01.partial/seg_00002/curves.npz" in str(e)
    assert "seg_00002/curves.npz" in writes[-1]
    assert io.verify_commit(out / "round_00")
    assert io.verify_commit(out / "round_01.partial" / "seg_00001")
    assert not io.verify_commit(out / "round_01.partial" / "seg_00002")
    assert not (out / "round_01").exists()
    assert not list(out.rglob(".*.tmp"))
    assert lottery.load_report(out)["rounds_completed"] == 1

    real_load = segments_lib._load_progress
    loaded = []

    def spy(folder, like):
        got = real_load(folder, like)
        loaded.append(None if got is None else got[3])  # (carry, curves, ends, done, failed)
        return got

    monkeypatch.setattr(segments_lib, "_load_progress", spy)
    lines = []
    resumed = lottery.run(MID, out=out, progress=False, figures=False, log=lines.append)
    assert lines[0].startswith("round 0: resumed")
    assert loaded == [1]  # round 1 went on from its first mid-round checkpoint
    assert metrics(resumed) == metrics(clean)
    assert not list(out.glob("*.partial"))


LOCK_HOLDER = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, f"process {os.getpid()} on testhost since now".encode())
    print("locked", flush=True)
    time.sleep(60)
""")


def test_a_busy_run_folder_names_the_process_holding_it(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out / "LOCK")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(lottery.RunFolderBusy) as info:
            lottery.run(small_spec(rounds=0), out=out, **QUIET)
        assert f"process {holder.pid}" in str(info.value)
        assert not (out / "identity.json").exists()  # refused before touching anything
    finally:
        holder.kill()
        holder.wait()
    with driver_lib._lock(out):  # released by the OS when its holder died
        assert f"process {os.getpid()}" in (out / "LOCK").read_text()


def test_lock_is_exclusive_within_one_process(tmp_path):
    with driver_lib._lock(tmp_path):
        with pytest.raises(lottery.RunFolderBusy, match=f"process {os.getpid()}"):
            lottery.run(small_spec(rounds=0), out=tmp_path, **QUIET)
    with driver_lib._lock(tmp_path):
        pass


# ---- 7. stateful nets and Dropout -----------------------------------------------------------------


@pytest.mark.slow
def test_dropout_and_batchnorm_net_through_a_whole_study(tmp_path):
    net = nn.serial(nn.Dense(32), nn.BatchNorm(), nn.Relu(), nn.Dropout(0.3), nn.Dense(10))
    spec = small_spec(net=net, rewind_step=100, arms=("ticket", "random"))
    report = lottery.run(spec, out=tmp_path, **QUIET)
    assert report["complete"]
    for rec in report["rounds"]:
        for k in ("final_test_accuracy", "final_val_loss"):
            assert np.all(np.isfinite(rec[k])), (rec["round"], k)
    assert report["rounds"][1]["arms"] == ["ticket"] * 2 + ["random"] * 2
    # Dropout keys: one per seed (the same for a seed's arms), so seeds draw different masks.
    study = lottery.Study(spec, progress=False)
    p0 = jax.tree.map(lambda a: jnp.stack([a[0]] * 3), study.theta0)  # one θ0 for all three members
    masks = jax.tree.map(lambda a: jnp.ones(a.shape, bool), p0)
    states = study.initial_states(p0, masks, jnp.array([0, 0, 1]), 0)
    forward = train.as_forward(net)
    x = study.data[0][:8]
    outs = [
        forward(
            jax.tree.map(lambda a, i=i: a[i], states.params),
            jax.tree.map(lambda a, i=i: a[i], states.model_state),
            x,
            key=train.step_key(jax.tree.map(lambda a, i=i: a[i], states)),
            train=True,
        )[0]
        for i in range(3)
    ]
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.allclose(outs[0], outs[2])


@pytest.mark.slow
@jax.default_matmul_precision("highest")  # TF32 on a GPU rounds differently in a larger population (H200)
def test_sweep_trains_every_seed_under_every_setting_in_one_program_and_equals_separate_studies(tmp_path):
    """Per-member hyperparameters ride in the population: a seeds x learning-rates sweep is one study,
    and each setting's members equal a study run at that rate alone."""
    d = data.load("mnist1d")
    net = nn.serial(nn.Dense(32), nn.Relu(), nn.Dense(10))
    common = dict(
        train=(d.x_train, d.y_train),
        test=(d.x_test, d.y_test),
        iterations=200,
        eval_every=100,
        rounds=1,
        seeds=2,
        rate=0.5,
    )
    tx = lambda lr: optax.inject_hyperparams(optax.adam)(learning_rate=lr)
    swept = lottery.run(
        lottery.Spec(net, tx(1e-3), sweep={"learning_rate": [1e-3, 1e-2]}, **common),
        out=tmp_path / "sweep",
        **QUIET,
    )
    rec = swept["rounds"][1]
    assert rec["settings"][:4] == ["learning_rate=0.001"] * 2 + ["learning_rate=0.01"] * 2
    assert len(rec["arms"]) == 3 * 4
    for i, lr in enumerate((1e-3, 1e-2)):
        alone = lottery.run(lottery.Spec(net, tx(lr), **common), out=tmp_path / f"lr{i}", **QUIET)
        for r_s, r_a in zip(swept["rounds"], alone["rounds"], strict=True):
            arms = np.array(r_s["arms"])
            sel = np.array(r_s["settings"]) == f"learning_rate={lr:g}"
            for arm in dict.fromkeys(r_a["arms"]):
                got = np.array(r_s["final_test_accuracy"])[sel & (arms == arm)]
                want = np.array(r_a["final_test_accuracy"])[np.array(r_a["arms"]) == arm]
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    table = lottery.summary_table(swept)
    assert "ticket [learning_rate=0.01]" in table
    with pytest.raises(ValueError, match="sweep names 'lr'"):
        lottery.Study(lottery.Spec(net, tx(1e-3), sweep={"lr": [1e-3]}, **common), progress=False)


@pytest.mark.slow
def test_layer_joint_floor_pruning_of_weights_and_biases(tmp_path):
    # The MNIST-1D notebook's pruning: each layer's w and b pooled, int(p * n) of them dropped at the
    # absolute sparsity p of each round; the random arm keeps each layer's count (a fresh mask).
    net = models.resmlp(width=16)
    spec = small_spec(
        net=net,
        rounds=2,
        sparsities=(0.37, 0.61),
        scope="layer_joint",
        rounding="floor",
        prunable=lambda name, leaf: True,
        arms=("ticket", "random"),
    )
    assert spec.describe()["rounding"] == "floor" and "rounding" not in small_spec().describe()
    lottery.run(spec, out=tmp_path, **QUIET)
    sizes = {
        prune.path_name(p): int(np.size(v))
        for p, v in jax.tree_util.tree_leaves_with_path(net.init(jax.random.key(0), (40,)))
    }
    for r, p in ((1, 0.37), (2, 0.61)):
        rec = json.loads((tmp_path / f"round_{r:02d}" / "metrics.json").read_text())
        assert rec["arms"] == ["ticket", "ticket", "random", "random"]
        for layer in ("dense_0", "residual_2/main/dense_0", "dense_3"):
            n = sizes[layer + "/w"] + sizes[layer + "/b"]
            kept = [
                round(
                    rec["layer_density"][layer + "/w"][m] * sizes[layer + "/w"]
                    + rec["layer_density"][layer + "/b"][m] * sizes[layer + "/b"]
                )
                for m in range(4)
            ]
            assert kept == [n - int(np.floor(p * n))] * 4, (r, layer, kept)
        ticket = np.load(tmp_path / f"round_{r:02d}" / "masks.npz")
        assert len(ticket.files) == 6  # w and b of three layers, all prunable


def test_sequential_batch_order_is_the_notebooks():
    study = study_lib.Study(
        small_spec(batch_order="sequential", batch_size=100, iterations=1500, seeds=2, val=TEST), progress=False
    )
    t = np.arange(1500)
    expected = (t[:, None] * 100) % 1000 + np.arange(100)[None]  # bix = (step * 100) % n, n = 1000
    for s in range(2):
        np.testing.assert_array_equal(np.asarray(study.idx[s]), expected)
    with pytest.raises(
        ValueError,
        match=r"batch_order='sequential' needs the training set size \(1000\) to be a "
        r"multiple of batch_size, got batch_size=300",
    ):
        study_lib.Study(small_spec(batch_order="sequential", batch_size=300, val=TEST), progress=False)
    with pytest.raises(ValueError, match=r"spec batch_order must be 'shuffled' or 'sequential', got batch_order='x'"):
        small_spec(batch_order="x").validate()


@pytest.mark.slow
def test_score_step_prunes_the_weights_at_that_iteration(tmp_path):
    # The MNIST-1D notebook scores its step-1000 checkpoint, not the final weights: round 0's
    # trained.npz (what round 1 prunes) must equal the weights of a run stopped at score_step.
    spec = small_spec(iterations=400, score_step=100, checkpoints_per_round=2)
    assert spec.describe()["score_step"] == 100 and "score_step" not in small_spec().describe()
    lottery.run(spec, out=tmp_path / "scored", **QUIET)
    lottery.run(small_spec(iterations=100, rounds=0), out=tmp_path / "short", **QUIET)
    like = jax.vmap(lambda k: mlp().init(k, (40,)))(jax.random.split(jax.random.key(0), 2))
    scored = io.load_tree(tmp_path / "scored" / "round_00" / "trained.npz", like)
    short = io.load_tree(tmp_path / "short" / "round_00" / "trained.npz", like)
    chex.assert_trees_all_close(scored, short, rtol=1e-6, atol=1e-7)
    masks = io.load_tree(tmp_path / "scored" / "round_01" / "masks.npz", jax.tree.map(lambda a: a.astype(bool), like))
    expected = jax.vmap(lambda p: prune.magnitude(p, prune.ones(p), 0.5))(short)
    chex.assert_trees_all_equal(masks, expected)
    with pytest.raises(
        ValueError,
        match=r"spec score_step must be None or a multiple of eval_every=100 in "
        r"\(rewind_step, iterations\], got score_step=150",
    ):
        small_spec(iterations=400, score_step=150).validate()


def _killed_at_call_then_resumed(study, masks, n_call, folder, monkeypatch):
    """Train a round of 2 members with checkpoints in `folder`, killed (KeyboardInterrupt) at the
    n-th call of the round program, then resume it; returns the resumed RoundResult."""
    calls = {"n": 0}
    program = study.call_program  # one call per segment, all members

    def dying(*args):
        calls["n"] += 1
        if calls["n"] == n_call:
            raise KeyboardInterrupt
        return program(*args)

    monkeypatch.setattr(study, "call_program", dying)
    with pytest.raises(KeyboardInterrupt):
        study.train_round(study.theta0, masks, jnp.arange(2), 0, "killed", checkpoint=folder)
    monkeypatch.setattr(study, "call_program", program)
    return study.train_round(study.theta0, masks, jnp.arange(2), 0, "resumed", checkpoint=folder)


@pytest.mark.slow
def test_score_step_snapshot_survives_a_kill_mid_round(tmp_path, monkeypatch):
    spec = small_spec(iterations=400, score_step=100, checkpoints_per_round=2, rounds=0)
    study = study_lib.Study(spec, progress=False)
    masks = jax.vmap(prune.ones)(study.theta0)
    clean = study.train_round(study.theta0, masks, jnp.arange(2), 0, "clean")
    # segments [0, 1) (the snapshot), [1, 3), then killed in [3, 4)
    resumed = _killed_at_call_then_resumed(study, masks, 3, tmp_path, monkeypatch)
    chex.assert_trees_all_equal(resumed.snapshot, clean.snapshot)
    chex.assert_trees_all_equal(resumed.carry.state.params, clean.carry.state.params)
    assert not jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), clean.snapshot, clean.carry.state.params))


def _noisy(key, x):
    """A keyed augmentation for MNIST-1D vectors: Gaussian noise of scale 0.5."""
    return x + 0.5 * jax.random.normal(key, x.shape, x.dtype)


@pytest.mark.slow
def test_augmented_round_resumes_exactly_after_a_kill_and_is_part_of_the_identity(tmp_path, monkeypatch):
    spec = small_spec(iterations=400, checkpoints_per_round=2, rounds=0, augment=_noisy)
    study = study_lib.Study(spec, progress=False)
    masks = jax.vmap(prune.ones)(study.theta0)
    clean = study.train_round(study.theta0, masks, jnp.arange(2), 0, "clean")
    plain = study_lib.Study(dataclasses.replace(spec, augment=None), progress=False)
    unaugmented = plain.train_round(plain.theta0, masks, jnp.arange(2), 0, "plain")
    assert not np.allclose(clean.curves[..., 0], unaugmented.curves[..., 0])  # the noise changed training
    resumed = _killed_at_call_then_resumed(study, masks, 2, tmp_path, monkeypatch)  # the second segment dies
    chex.assert_trees_all_equal(resumed.carry.state.params, clean.carry.state.params)
    np.testing.assert_array_equal(resumed.curves, clean.curves)
    # the run folder knows the augmentation: by name in the fields, by what it does in a probe
    described = spec.describe()
    assert described["augment"].endswith("_noisy") and "augment" not in plain.spec.describe()
    lottery.run(dataclasses.replace(spec, iterations=200), out=tmp_path / "run", **QUIET)
    stored = json.loads((tmp_path / "run" / "identity.json").read_text())
    assert isinstance(stored["programs"]["augment"], str) and len(stored["programs"]["augment"]) == 64
    with pytest.raises(ValueError, match="the augmentation is gone"):
        lottery.run(dataclasses.replace(spec, iterations=200, augment=None), out=tmp_path / "run", **QUIET)
    with pytest.raises(ValueError, match="spec augment must be None or a function"):
        small_spec(augment="crop-flip").validate()
