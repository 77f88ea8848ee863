"""experiments/one_shot.py at its CI-sized preset: every method at every target, tested one shot and after
fine-tuning, the densities it reports measured from the masks; the mechanics, not the science."""

import jax
import numpy as np
import pytest

from experiments import one_shot, supermask
from experiments.subnetwork_parts import baselines
from funcnn import prune
from tests.test_experiments import check_pngs


@pytest.mark.slow
def test_one_shot_ci_preset(tmp_path_factory, tmp_path):
    # shared with the supermask experiment's test: the same ci dense nets and IMP tickets, trained once
    p = one_shot.PRESETS["ci"]
    assert baselines.describe(p) == baselines.describe(supermask.PRESETS["ci"])
    cache = tmp_path_factory.getbasetemp() / "subnetwork-baselines"
    out = tmp_path / "run"
    res = one_shot.main(["--preset", "ci", "--out", str(out), "--baselines", str(cache)])
    targets = ["30% sparse", "70% sparse", "2:4"]
    assert [(r["method"], r["target"]) for r in res["rows"]] == [(m, t) for m in one_shot.METHODS for t in targets]
    for r in res["rows"]:
        want = {"30% sparse": 0.7, "70% sparse": 0.3, "2:4": 0.5}[r["target"]]
        assert abs(r["density"] - want) < 0.02, r
        for kind in ("one_shot", "finetuned"):
            assert len(r[kind]["all"]) == p.seeds and all(0 <= a <= 1 for a in r[kind]["all"])
    assert set(res["imp"]) == {"0.3", "0.7"}
    assert np.isfinite(res["dense"]["mean"])
    check_pngs(res, out)
    # the pruned nets themselves: each method's masks at the target, pruned weights exactly 0, and only
    # SparseGPT moves the weights it keeps
    net = baselines.mlp(p.hidden, p.flatten)
    params = net.init(jax.random.key(0), (40,))
    x = jax.random.normal(jax.random.key(1), (64, 40))
    for method in one_shot.METHODS:
        pruned, masks = one_shot.prune_one(method, (2, 4), net, params, x)
        assert float(prune.density(masks)["total"]) == 0.5
        w, kept = np.asarray(pruned["dense_0"]["w"]), np.asarray(masks["dense_0"]["w"])
        assert (w[~kept] == 0).all() and bool(masks["dense_0"]["b"].all())
        assert np.array_equal(w[kept], np.asarray(params["dense_0"]["w"])[kept]) == (method != "sparsegpt")


def test_an_n_of_m_that_does_not_divide_a_fan_in_is_refused_before_training():
    """Conv-2's first conv has fan-in 3 · 3 · 1 = 9: 2:4 cannot prune it, so the preset asks for none, and
    asking for it anyway is refused before the dense net trains (it used to fail after 11 minutes)."""
    import dataclasses

    conv2 = one_shot.PRESETS["conv2-fashion"]
    assert conv2.n_of_m is None
    one_shot.check_n_of_m(one_shot.build(conv2), conv2, (28, 28, 1))  # nothing to check: fine
    with pytest.raises(ValueError, match=r"leaf 'conv2d_0/w' has fan_in 9 .*not a multiple of m=4"):
        one_shot.check_n_of_m(one_shot.build(conv2), dataclasses.replace(conv2, n_of_m=(2, 4)), (28, 28, 1))
    lenet = one_shot.PRESETS["lenet-fashion"]
    one_shot.check_n_of_m(one_shot.build(lenet), lenet, (28, 28, 1))  # 784, 300, 100: all multiples of 4
