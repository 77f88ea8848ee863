"""experiments/supermask.py at its CI-sized preset: the mechanics (every method, weights, k and width as one
population each), not the science; its IMP ladder, and the baselines' cache shared with experiments/one_shot.py."""

import itertools
import json

import jax
import numpy as np
import pytest

from experiments import supermask
from experiments.subnetwork_parts import baselines
from tests.test_experiments import check_pngs


def test_the_imp_ladder_steps_by_the_rate_and_stops_on_every_target():
    steps = baselines.ladder(baselines.IMP_TARGETS, 0.2)
    assert steps[0] == 1.0 and all(a > b for a, b in itertools.pairwise(steps))
    assert all(1 - b / a <= 0.2 + 1e-9 for a, b in itertools.pairwise(steps))  # never more than the rate
    assert all(any(abs(s - t) < 1e-9 for s in steps) for t in baselines.IMP_TARGETS)
    assert [round(s, 3) for s in baselines.ladder([0.9, 0.5], 0.2)] == [1.0, 0.9, 0.72, 0.576, 0.5]


@pytest.mark.slow
def test_baselines_are_cached_by_configuration(tmp_path):
    rng = np.random.default_rng(0)
    d = baselines.Data(*(rng.normal(size=(n, 6)).astype(np.float32) if i % 2 == 0 else rng.integers(0, 3, n)
                         for i, n in enumerate((32, 32, 16, 16))))  # fmt: skip
    net = baselines.mlp((8,), False)
    kw = {"targets": (0.5,), "rate": 0.5, "epochs": 1, "batch_size": 8, "learning_rate": 1e-2, "log": lambda s: None}
    first = baselines.cached_dense_and_imp(tmp_path, {"data": "toy"}, net, [0, 1], d, **kw)
    again = baselines.cached_dense_and_imp(tmp_path, {"data": "toy"}, net, [0, 1], d, **kw)
    assert "cached" not in first and again["cached"].startswith(str(tmp_path))
    assert np.array_equal(first["dense"], again["dense"]) and first["imp_densities"] == again["imp_densities"]
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(first["dense_params"]),
                                                    jax.tree.leaves(again["dense_params"]), strict=True))  # fmt: skip
    where = baselines.cache_folder(tmp_path, {"data": "toy"}, [0, 1], kw)[0]
    assert again["cached"] == str(where) and len(list(tmp_path.iterdir())) == 1
    for other in (([0], kw), ([0, 1], {**kw, "epochs": 2}), ([0, 1], {**kw, "targets": (0.4,)})):
        assert baselines.cache_folder(tmp_path, {"data": "toy"}, *other)[0] != where


@pytest.mark.slow
def test_supermask_ci_preset(tmp_path_factory, tmp_path):
    # the baselines' folder is shared with the one-shot experiment's test, whose ci preset has the same dense nets
    cache = tmp_path_factory.getbasetemp() / "subnetwork-baselines"
    out = tmp_path / "run"
    res = supermask.main(["--preset", "ci", "--out", str(out), "--baselines", str(cache)])
    p = supermask.PRESETS["ci"]
    width_one = [r for r in res["rows"] if r["width"] == 1]
    assert {(r["method"], r["weights"], r["k"]) for r in width_one} == {
        (m, w, k) for m in supermask.METHODS for w in supermask.WEIGHTS for k in p.densities
    }
    assert {(r["width"], r["k"]) for r in res["rows"] if r["width"] > 1} == {(2, 0.5)}
    for r in res["rows"]:
        assert len(r["accuracy"]["all"]) == p.seeds and all(0 <= a <= 1 for a in r["accuracy"]["all"])
        assert r["accuracy"]["mean"] == pytest.approx(np.mean(r["accuracy"]["all"]))
        if r["method"] == "bernoulli":  # the density its masks ended at
            assert 0 < r["final_density"]["mean"] < 1
    assert set(res["imp"]) == {"0.3", "0.7"}
    assert all(abs(v["density"] - float(k)) < 0.02 for k, v in res["imp"].items())
    assert len(res["dense"]["all"]) == p.seeds
    check_pngs(res, out)
    assert json.loads((out / "results.json").read_text())["rows"] == res["rows"]
