import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import lottery, prune

SMALL = dataclasses.replace(
    lottery.PRESETS["mnist1d"],
    model="mlp-64-64",
    iterations=200,
    eval_every=100,
    rounds=2,
    seeds=2,
    rate=0.5,
    output_rate=0.25,
)


# Full float32 matmuls: on GPUs JAX defaults to TF32 (~1e-3 relative), and a batched and an unbatched
# matmul then round differently (seen on an H100: losses 5e-5 apart, one eval example flipped). The
# claim tested is that vmapping changes nothing but float rounding; on CPU this context is a no-op.
@pytest.mark.slow
@jax.default_matmul_precision("highest")
def test_population_equals_members_trained_alone():
    study = lottery.Study(dataclasses.replace(SMALL, seeds=4), progress=False)
    masks = jax.vmap(lambda p: prune.magnitude(p, prune.ones(p), 0.5))(study.theta0)
    params = jax.vmap(prune.rewind)(study.theta0, masks)
    seeds = jnp.arange(4)
    pop_params, pop_curves, failed = study.train_population(params, masks, seeds, 0, "pop")
    assert failed == []
    for i in range(4):
        one = lambda t, i=i: jax.tree.map(lambda leaf: leaf[i : i + 1], t)
        alone_params, alone_curves, _ = study.train_population(one(params), one(masks), seeds[i : i + 1], 0, "one")
        np.testing.assert_allclose(pop_curves[i], alone_curves[0], rtol=2e-5, atol=2e-6)
        for a, b in zip(jax.tree.leaves(one(pop_params)), jax.tree.leaves(alone_params), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
        # pruned weights are exactly zero after training
        w = np.asarray(pop_params["dense_1"]["w"][i])
        assert np.all(w[~np.asarray(masks["dense_1"]["w"][i])] == 0.0)


@pytest.mark.slow
@jax.default_matmul_precision("highest")
@pytest.mark.parametrize("model", ["mlp-64-64", "conv"])
def test_population_chunks_of_one_equal_one_vmapped_program(model):
    # chunk 1 runs the members one after another without vmap (conv nets' default on CPU);
    # chunk None vmaps them all at once: the same numbers up to float rounding. Few steps, since a
    # last-bit difference (Eigen's kernels round by alignment) grows with every Adam step: after
    # 100 steps one member's validation accuracy was 0.6 points off, after 20 the curves 2.4e-7.
    spec = dataclasses.replace(SMALL, seeds=3, iterations=20, eval_every=10, rounds=0).to_spec()
    if model == "conv":  # a small conv net on MNIST-1D's 40 samples (one channel)
        from funcnn import nn

        net = nn.serial(nn.Reshape((40, 1)), nn.Conv1D(4, 5), nn.Relu(), nn.Flatten(), nn.Dense(10))
        spec = dataclasses.replace(spec, net=net, layer_rates={})
    results = []
    for chunk in (1, None):
        study = lottery.Study(dataclasses.replace(spec, population_chunk=chunk), progress=False)
        masks = jax.vmap(prune.ones)(study.theta0)
        results.append(study.train_population(study.theta0, masks, jnp.arange(3), 0, "x")[:2])
    (p1, c1), (p2, c2) = results
    np.testing.assert_allclose(c1, c2, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_default_chunk_is_one_for_conv_nets_on_cpu_and_all_on_accelerators():
    from funcnn import models
    from funcnn.lottery.study import default_chunk

    assert default_chunk(models.build("mlp-64-64"), (40,), "cpu") == 4
    assert default_chunk(models.mnist1d_cnn(), (40,), "cpu") == 1
    assert default_chunk(models.resnet(8, 4), (28, 28, 1), "cpu") == 1
    assert default_chunk(models.build("mlp-64-64"), (40,), "gpu") is None


@pytest.mark.slow
def test_run_records_arms_and_resumes_after_a_completed_round(tmp_path):
    report = lottery.run(SMALL, out=tmp_path / "a", progress=False, figures=False, log=lambda s: None)
    # figures=False: no PNG drawn or listed (the default draws them: test_lottery_report, test_experiments)
    assert report["figures"] == [] and not list((tmp_path / "a").glob("*.png"))
    rounds = report["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[1]["arms"] == ["ticket"] * 2 + ["reinit"] * 2 + ["random"] * 2
    dens = np.array(rounds[2]["density"]).reshape(3, 2)
    np.testing.assert_allclose(dens, dens[:1].repeat(3, 0))  # the controls match the ticket's density
    assert dens[0, 0] < np.array(rounds[1]["density"])[0] < 1.0
    layer = rounds[2]["layer_density"]
    np.testing.assert_allclose(np.array(layer["dense_1/w"]).reshape(3, 2), np.array(layer["dense_1/w"])[0], rtol=1e-6)
    for f in ("results.json", "metrics.csv", "config.json", "round_02/COMMIT"):
        assert (tmp_path / "a" / f).is_file()
    assert report["complete"] and report["rounds_completed"] == 3
    assert report["train_seconds_total"] == pytest.approx(sum(r["train_seconds"] for r in rounds))
    loaded = lottery.load_report(tmp_path / "a")  # read back from the round folders, nothing trained
    assert loaded["summary"] == report["summary"] and loaded["complete"]
    # A run killed after round 1: round 2 never committed. Re-running resumes and ends the same.
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "round_02")
    (tmp_path / "b" / "round_01" / "COMMIT").unlink()  # and round 1 had not committed either
    partial = lottery.load_report(tmp_path / "b")
    assert not partial["complete"] and partial["rounds_completed"] == 1
    assert partial["summary"] == lottery.aggregate(report["rounds"][:1])
    with pytest.raises(ValueError, match=r"config\.json"):
        lottery.load_report(tmp_path / "nothing-here")
    lottery._prepare_folder(tmp_path / "c", SMALL)  # started, killed before round 0 committed
    with pytest.raises(ValueError, match="no round completed"):
        lottery.load_report(tmp_path / "c")
    lines = []
    resumed = lottery.run(SMALL, out=tmp_path / "b", progress=False, figures=False, log=lines.append)
    assert lines[0].startswith("round 0: resumed")
    assert not lines[1].startswith("round 1: resumed")
    for a, b in zip(report["rounds"], resumed["rounds"], strict=True):
        assert a["final_test_accuracy"] == b["final_test_accuracy"]
        assert a["density"] == b["density"]
    # Same config in the same folder: every round resumes, nothing retrains.
    lines = []
    lottery.run(SMALL, out=tmp_path / "b", progress=False, figures=False, log=lines.append)
    assert all("resumed" in s for s in lines)


@pytest.mark.slow
def test_late_rewinding_and_oneshot(tmp_path):
    cfg = dataclasses.replace(SMALL, rewind_step=100, rounds=1)
    report = lottery.run(cfg, out=tmp_path / "late", progress=False, figures=False, log=lambda s: None)
    assert (tmp_path / "late" / "round_00" / "rewind.npz").is_file()
    assert report["rounds"][1]["iterations"] == [200]  # trains iterations k..T
    one = dataclasses.replace(SMALL, pruning="oneshot", rounds=2)
    rep = lottery.run(one, out=tmp_path / "one", progress=False, figures=False, log=lambda s: None)
    it = lottery.run(SMALL, out=tmp_path / "it", progress=False, figures=False, log=lambda s: None)
    # one-shot reaches the same density ladder straight from the dense run
    np.testing.assert_allclose(rep["rounds"][2]["density"], it["rounds"][2]["density"], atol=2e-3)


@pytest.mark.slow
def test_config_conflict_and_validation(tmp_path):
    lottery.run(
        dataclasses.replace(SMALL, rounds=0), out=tmp_path / "c", progress=False, figures=False, log=lambda s: None
    )
    with pytest.raises(ValueError, match="different config"):
        lottery.run(dataclasses.replace(SMALL, rounds=0, iterations=300), out=tmp_path / "c", progress=False,
                    figures=False, log=lambda s: None)  # fmt: skip
    # More rounds of the same study is not a different config: it resumes and goes on (issue #28).
    grown = lottery.run(
        dataclasses.replace(SMALL, rounds=1), out=tmp_path / "c", progress=False, figures=False, log=lambda s: None
    )
    assert grown["complete"] and len(grown["rounds"]) == 2
    for kw, match in [
        (dict(rate=1.0), "rate"),
        (dict(iterations=150), "iterations"),
        (dict(rewind_step=50), "rewind_step"),
        (dict(arms=("random",)), "arms"),
        (dict(model="resnet"), "model"),
        (dict(dataset="cifar"), "dataset"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(seeds=0), "seeds"),
    ]:
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(SMALL, **kw).validate()


@pytest.mark.slow
@pytest.mark.optimized
def test_ticket_beats_random_pruning_on_mnist1d(tmp_path):
    """At ~91.5% pruned, the ticket beats the random-pruning control clearly and matches dense."""
    # Only the arms compared (no reinit: arms draw their own keys, the others' numbers are unchanged),
    # one segment per round (nothing here resumes).
    cfg = dataclasses.replace(
        lottery.PRESETS["mnist1d"], rounds=5, seeds=3, arms=("ticket", "random"), checkpoints_per_round=1
    )
    report = lottery.run(cfg, out=tmp_path, progress=False, figures=False, log=lambda s: None)
    rows = {(r["round"], r["arm"]): r for r in report["summary"]}
    ticket, random_, dense = rows[(5, "ticket")], rows[(5, "random")], rows[(0, "ticket")]
    assert ticket["percent_remaining"] < 10
    margin = ticket["final_test_accuracy_mean"] - random_["final_test_accuracy_mean"]
    assert margin > 0.04, margin
    assert ticket["final_test_accuracy_mean"] >= dense["final_test_accuracy_mean"] - 0.02


def _metrics(report):
    drop = {"train_seconds", "mask_seconds"}
    return [{k: v for k, v in r.items() if k not in drop} for r in report["rounds"]]


MID = dataclasses.replace(SMALL, iterations=400, checkpoints_per_round=4, rounds=1)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    return lottery.run(MID, out=out, progress=False, figures=False, log=lambda s: None)


@pytest.mark.slow
@pytest.mark.parametrize("crash_at_call", [1, 2, 4, 5, 7])
def test_crash_mid_round_resumes_bit_identical(tmp_path, monkeypatch, uninterrupted, crash_at_call):
    """A run that dies at its k-th compiled segment resumes from the mid-round checkpoint."""
    real_call = lottery.Study.call_program  # one call per segment, all members
    calls = {"n": 0}

    def call(self, *args):
        calls["n"] += 1
        if calls["n"] == crash_at_call:
            raise KeyboardInterrupt("simulated kill")
        return real_call(self, *args)

    monkeypatch.setattr(lottery.Study, "call_program", call)
    with pytest.raises(KeyboardInterrupt):
        lottery.run(MID, out=tmp_path, progress=False, figures=False, log=lambda s: None)
    monkeypatch.setattr(lottery.Study, "call_program", real_call)
    partial = sorted(p.name for p in tmp_path.glob("*.partial"))
    assert bool(partial) == (crash_at_call not in (1, 5))  # 1 and 5 are the first segments of rounds 0 and 1
    if crash_at_call >= 5:  # round 0 was committed: the report so far is on disk
        so_far = json.loads((tmp_path / "results.json").read_text())
        assert so_far["rounds_completed"] == 1 and not so_far["complete"]
    else:
        assert not (tmp_path / "results.json").exists()
    resumed = lottery.run(MID, out=tmp_path, progress=False, figures=False, log=lambda s: None)
    assert _metrics(resumed) == _metrics(uninterrupted)
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "victim",
    [
        "round_00/masks.npz",
        "round_00/trained.npz",
        "round_00/curves.npz",
        "round_00/metrics.json",
        "round_00/COMMIT",
        "round_01/trained.npz",
    ],
)
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupted_round_files_are_detected_and_redone(tmp_path, uninterrupted, victim, damage):
    import shutil

    shutil.copytree(uninterrupted["folder"], tmp_path / "run")
    f = tmp_path / "run" / victim
    raw = f.read_bytes()
    if damage == "truncate":
        raw = raw[: len(raw) // 3]
    else:
        i = len(raw) - 40 if len(raw) > 80 else len(raw) // 2
        raw = raw[:i] + bytes([raw[i] ^ 0x55]) + raw[i + 1 :]
    f.write_bytes(raw)
    lines = []
    again = lottery.run(MID, out=tmp_path / "run", progress=False, figures=False, log=lines.append)
    broken_round = int(victim[6:8])
    assert not lines[broken_round].startswith(f"round {broken_round}: resumed")
    assert _metrics(again) == _metrics(uninterrupted)


@pytest.mark.slow  # the module's study fixture is shared with the slow resume tests
def test_stale_temp_files_are_removed(tmp_path, uninterrupted):
    import shutil

    shutil.copytree(uninterrupted["folder"], tmp_path / "run")
    (tmp_path / "run" / "round_01" / ".trained.npz.abc123.tmp").write_bytes(b"half a write")
    lottery.run(MID, out=tmp_path / "run", progress=False, figures=False, log=lambda s: None)
    assert not list((tmp_path / "run").rglob("*.tmp"))


@pytest.mark.slow
def test_nonfinite_member_is_reported_or_skipped():
    study = lottery.Study(dataclasses.replace(SMALL, seeds=3), progress=False)
    masks = jax.vmap(prune.ones)(study.theta0)
    poisoned = jax.tree.map(lambda a: a.at[1].set(jnp.nan), study.theta0)
    seeds = jnp.arange(3)
    with pytest.raises(lottery.NonFiniteLoss, match="member 1 by iteration 100"):
        study.train_population(poisoned, masks, seeds, 0, "x")
    _, curves, failed = study.train_population(poisoned, masks, seeds, 0, "x", skip_nonfinite=True)
    assert failed == [1]
    _, clean, _ = study.train_population(study.theta0, masks, seeds, 0, "x")
    np.testing.assert_array_equal(curves[[0, 2]], clean[[0, 2]])  # the others are untouched


@pytest.mark.slow
def test_divergence_names_round_arm_seed_iteration(tmp_path):
    cfg = dataclasses.replace(SMALL, learning_rate=1e30, rounds=0)
    with pytest.raises(FloatingPointError, match=r"round 0, arm 'ticket', seed 0 .*iteration 100"):
        lottery.run(cfg, out=tmp_path, progress=False, figures=False, log=lambda s: None)
    report = lottery.run(cfg, out=tmp_path, progress=False, figures=False, log=lambda s: None, skip_nonfinite=True)
    assert [f["seed"] for f in report["rounds"][0]["failed_members"]] == [0, 1]


KILL_SCRIPT = """
import dataclasses, sys
from funcnn import lottery
cfg = dataclasses.replace(lottery.PRESETS["mnist1d"], model="mlp-64-64", iterations=600, eval_every=100,
                          rounds=2, seeds=2, rate=0.5, output_rate=0.25, checkpoints_per_round=6)
lottery.run(cfg, out=sys.argv[1], progress=False, figures=False)
"""


def _snapshot(folder):
    """The files in folder's subfolders (round_XX.partial/, round_XX/) with their sizes and modification
    times: changes when a run writes a checkpoint or commits a round (not when it starts)."""
    seen = set()
    for f in folder.glob("*/*"):
        try:
            st = f.stat()
        except FileNotFoundError:  # renamed or removed by the run meanwhile
            continue
        seen.add((str(f), st.st_size, st.st_mtime_ns))
    return seen


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path):
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "study.py"
    script.write_text(KILL_SCRIPT)
    # Every program into the persistent cache (not only those compiling for > 0.3 s): the restarts
    # load them instead of compiling again.
    env = dict(os.environ, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    clean = tmp_path / "clean"
    subprocess.run([sys.executable, str(script), str(clean)], check=True, capture_output=True, timeout=600, env=env)
    run_dir = tmp_path / "killed"
    run_dir.mkdir()
    rng = random.Random(0)
    kills = 0
    for attempt in range(6):  # five SIGKILLs at random moments, then a run left to finish
        before = _snapshot(run_dir)
        proc = subprocess.Popen(
            [sys.executable, str(script), str(run_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        if attempt == 5:
            proc.wait(timeout=600)
            break
        # Each killed run makes progress first (it writes something: a checkpoint, a committed round),
        # then dies at a random moment after that: mid-segment, or in the middle of its next write.
        deadline = time.monotonic() + 600
        while proc.poll() is None and _snapshot(run_dir) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            proc.wait(timeout=rng.uniform(0.0, 0.3))
            continue  # it finished before this kill; the next start finds everything done
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
    assert proc.returncode == 0
    assert kills >= 3, kills
    a = json.loads((clean / "results.json").read_text())
    b = json.loads((run_dir / "results.json").read_text())
    assert _metrics(a) == _metrics(b)
    assert not list(run_dir.rglob("*.tmp")) and not list(run_dir.glob("*.partial"))
    assert all((run_dir / f"round_{r:02d}" / "COMMIT").is_file() for r in range(3))


@pytest.mark.slow
def test_convolutional_preset_prunes_kernels_at_their_own_rate(tmp_path):
    assert lottery.PRESETS["conv2-fashion"].validate().model == "conv2"
    from tests.conftest import require_fashion_mnist

    require_fashion_mnist()
    cfg = dataclasses.replace(
        lottery.PRESETS["conv2-fashion"],
        model="lenet5",
        iterations=100,
        eval_every=100,
        rounds=1,
        seeds=1,
        n_val=500,
        rate=0.2,
        conv_rate=0.1,
        output_rate=0.1,
    )
    # What round 1 prunes is the preset's Spec's (its layer_rates by layer kind): no training needed to see it.
    spec = cfg.to_spec()
    params = spec.net.init(jax.random.key(0), spec.input_shape)
    masks = lottery.prune_round(spec, params, prune.ones(params), params, 1, prune.prunable(params, spec.prunable))
    layer = {k: float(v) for k, v in prune.density(masks).items()}
    assert layer["conv2d_0/w"] == pytest.approx(0.9, abs=0.01) and layer["conv2d_3/w"] == pytest.approx(0.9, abs=0.01)
    assert layer["dense_7/w"] == pytest.approx(0.8, abs=0.01) and layer["dense_11/w"] == pytest.approx(0.9, abs=0.01)


def test_old_presets_keep_their_digests_and_configs():
    # Config fields added later are left out of to_json at their defaults. The digest (the run folder's
    # name) holds the identity version too: identity v2 gave every preset a new folder once (v1's digests
    # were mnist1d 73d2935e6a, lenet-fashion 5f635ec04a), so a v1 folder is never met by a v2 run.
    assert lottery.PRESETS["mnist1d"].digest() == "c6331a37f7"
    assert lottery.PRESETS["lenet-fashion"].digest() == "33fba03e3e"
    assert "optimizer" not in lottery.PRESETS["mnist1d"].to_json()
    assert lottery.PRESETS["resnet20-fashion"].to_json()["lr_drops"] == [0.5, 0.75]


def test_config_optimizer_default_is_plain_adam_and_sgd_follows_openlth():
    import optax

    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    grads = {"w": jnp.array([0.5, 0.25, -1.0])}
    default = lottery.PRESETS["mnist1d"].make_optimizer()
    u, _ = default.update(grads, default.init(params), params)
    ref, _ = optax.adam(2e-3).update(grads, optax.adam(2e-3).init(params), params)
    np.testing.assert_array_equal(u["w"], ref["w"])

    # SGD's learning rate, read off the update of a zero gradient (momentum 0): -lr(t) * wd * w.
    def lrs(cfg, at):
        tx, p = cfg.make_optimizer(), {"w": jnp.ones(1)}
        state, out = tx.init(p), []
        for t in range(max(at) + 1):
            u, state = tx.update({"w": jnp.zeros(1)}, state, p)
            if t in at:
                out.append(-float(u["w"][0]) / cfg.weight_decay)
        return out

    cfg = dataclasses.replace(lottery.PRESETS["resnet20-fashion"], iterations=1000, momentum=0.0)
    np.testing.assert_allclose(lrs(cfg, [0, 499, 500, 749, 750, 999]), [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-5)
    warm = dataclasses.replace(cfg, warmup=100)  # linear from 0 over 100 steps, drops still at 500 and 750
    np.testing.assert_allclose(
        lrs(warm, [0, 50, 100, 499, 500, 750]), [0.0, 0.05, 0.1, 0.1, 0.01, 0.001], rtol=1e-5, atol=1e-9
    )
    for bad, match in [
        ({"optimizer": "rmsprop"}, "optimizer must be 'adam' or 'sgd'"),
        ({"lr_drops": (0.75, 0.5)}, "lr_drops must be increasing fractions"),
        ({"warmup": 1000}, r"warmup must be an int in \[0, iterations\)"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
    ]:
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(cfg, **bad).validate()


@pytest.mark.slow
def test_global_scope_with_output_rate_zero_leaves_the_output_layer_unpruned():
    cfg = dataclasses.replace(lottery.PRESETS["vgg16-fashion-cpu"], model="vgg11-8")
    spec = cfg.to_spec()
    params = spec.net.init(jax.random.key(0), (28, 28, 1))
    pspec = prune.prunable(params, spec.prunable)
    flags = {prune.path_name(p): f for p, f in jax.tree_util.tree_leaves_with_path(pspec)}
    out = max((n.split("/")[0] for n in flags if n.startswith("dense")), key=lambda n: int(n.rsplit("_", 1)[1]))
    assert flags[out + "/w"] is False and flags[out + "/b"] is False
    convs = [n for n in flags if n.endswith("/w") and n.startswith("conv2d")]
    assert convs and all(flags[n] for n in convs)
    assert not any(f for n, f in flags.items() if n.startswith("batchnorm"))  # BatchNorm never pruned
    assert spec.scope == "global" and dict(spec.layer_rates) == {}
    ladder = lottery.density_ladder(spec, params)
    assert ladder[1] == pytest.approx(80.0, abs=0.01)  # 20% of the prunable weights, one threshold


@pytest.mark.parametrize("name", ["resnet20-fashion", "resnet8-fashion", "vgg16-fashion", "vgg16-fashion-cpu"])
def test_new_presets_validate(name):
    cfg = lottery.PRESETS[name].validate()
    assert cfg.optimizer == "sgd" and cfg.scope == "global" and cfg.weight_decay == 1e-4


@pytest.mark.slow
def test_sgd_global_resnet_study_runs_with_late_rewinding(tmp_path):
    # The mechanics of the ResNet presets on a tiny ResNet: SGD + schedule + weight decay, global
    # pruning, BatchNorm state, late rewinding; the schedule of rewound rounds resumes at k.
    cfg = dataclasses.replace(
        lottery.PRESETS["resnet8-fashion"],
        model="resnet-8-4",
        iterations=100,
        eval_every=50,
        rounds=1,
        seeds=1,
        n_val=250,
        batch_size=32,
        rewind_step=50,
        checkpoints_per_round=1,
    )
    # The preset's Spec (its SGD schedule, global prunable rule, BatchNorm state), on 4,000 training and
    # 500 test images: the mechanics do not need the whole set evaluated, nor 200 iterations (two
    # evaluation chunks, the rewound round resuming at the second, are the same programs at half the steps).
    spec = cfg.to_spec()
    (x, y), (xt, yt) = spec.train, spec.test
    spec = dataclasses.replace(spec, train=(x[:4000], y[:4000]), test=(xt[:500], yt[:500]))
    report = lottery.run(spec, out=tmp_path, progress=False, figures=False, log=lambda s: None)
    r1 = report["rounds"][1]
    assert r1["iterations"][0] == 100 and len(r1["arms"]) == 3
    assert np.allclose(r1["density"], 0.8, atol=1e-3)
    assert all(0.05 < a <= 1 for a in r1["final_test_accuracy"])


def _whole_units(m):
    """Every unit (slice along the last axis) all True or all False."""
    u = np.asarray(m).reshape(-1, np.shape(m)[-1])
    return bool(np.all(u.all(0) | ~u.any(0)))


@pytest.mark.slow
def test_structured_study_prunes_whole_units_and_never_the_output_layer(tmp_path):
    from funcnn import io
    from funcnn.lottery.spec import output_layer

    cfg = dataclasses.replace(SMALL, structure="unit")
    report = lottery.run(cfg, out=tmp_path / "s", progress=False, figures=False, log=lambda s: None)
    assert [r["round"] for r in report["rounds"]] == [0, 1, 2]
    study = lottery.Study(cfg, progress=False)
    member0 = jax.tree.map(lambda a: a[0], study.theta0)
    out, hidden = "dense_5", ["dense_1", "dense_3"]  # Flatten -> 64 -> 64 -> 10
    assert output_layer(member0) == out
    masks = io.load_tree(tmp_path / "s" / "round_02" / "masks.npz", jax.vmap(prune.ones)(study.theta0))
    for i in range(cfg.seeds):
        for n in hidden:
            w = masks[n]["w"][i]
            assert _whole_units(w) and int(w.any(axis=0).sum()) == 16  # 64 units, half, then half again
        assert bool(masks[out]["w"][i].all())
    layer = report["rounds"][2]["layer_density"]
    for n in hidden:  # every arm (ticket, reinit, random) at the ticket's density: 16 of 64 whole units
        np.testing.assert_allclose(layer[f"{n}/w"], 0.25, rtol=1e-6)
    np.testing.assert_allclose(layer[f"{out}/w"], 1.0)
    # The random arm draws whole units, as many per layer as the ticket keeps.
    random_arm = {a.name: a for a in study.arms}["random"]
    ticket = jax.tree.map(lambda a: jnp.asarray(a[0]), masks)
    _, rm = random_arm.fn(member0, member0, ticket, jax.random.key(0))
    for n in hidden:
        assert _whole_units(rm[n]["w"]) and int(rm[n]["w"].any(axis=0).sum()) == 16
        assert not np.array_equal(rm[n]["w"], ticket[n]["w"])
    assert bool(rm[out]["w"].all())


def test_structure_field_defaults_leave_identities_unchanged_and_validate():
    import optax

    from funcnn import nn

    net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))
    data = (jnp.zeros((8, 4)), jnp.zeros(8, "int32"))
    spec = lottery.Spec(net, optax.sgd(0.1), train=data, rate=0.5, rounds=3, n_val=2)
    # describe() of a default Spec: the same fields as before `structure` existed
    assert set(spec.describe()) == {
        "n_val", "input_shape", "loss", "metric", "metric_name", "iterations", "batch_size", "eval_every",
        "rounds", "rate", "layer_rates", "scope", "pruning", "sparsities", "rewind_step", "rewind_optimizer",
        "arms", "seeds", "sweep", "seed", "checkpoints_per_round", "population_chunk", "test_curve", "unroll",
        "label",
    }  # fmt: skip
    assert dataclasses.replace(spec, structure="channel").describe()["structure"] == "unit"  # synonyms
    assert "structure" not in SMALL.to_json()
    assert dataclasses.replace(SMALL, structure="unit").digest() != SMALL.digest()
    assert dataclasses.replace(SMALL, structure="unit").to_spec().structure == "unit"
    # P_m: dense_0 (4x8) loses half its units a round, dense_2 (8x2, the output layer) never
    ladder = lottery.density_ladder(dataclasses.replace(spec, structure="unit"))
    np.testing.assert_allclose(ladder, [100.0, 100 * 32 / 48, 100 * 24 / 48, 100 * 20 / 48], rtol=1e-6)
    for kw, match in [
        (dict(structure="filter"), "structure"),
        (dict(structure="unit", scope="layer_joint"), "scope"),
    ]:
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(spec, **kw).validate()
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(SMALL, **kw).validate()
    one_layer = lottery.Spec(nn.serial(nn.Dense(2)), optax.sgd(0.1), train=(jnp.zeros((40, 4)), jnp.zeros(40, "int32")),
                             n_val=8, batch_size=8, structure="unit")  # fmt: skip
    with pytest.raises(ValueError, match="output layer"):
        lottery.Study(one_layer, progress=False)
