"""experiments/late_rewinding.py: the mechanics of θ0 against θk rewinding (a tiny MNIST-1D study)."""

import json

import pytest

from experiments import late_rewinding
from funcnn import lottery

SMALL = ["--preset", "mnist1d", "--rounds", "1", "--seeds", "1", "--iterations", "200", "--n-val", "200"]


@pytest.mark.slow
def test_two_studies_side_by_side(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "cmp"
    r = late_rewinding.main(
        [*SMALL, "--rewind-step", "100", "--runs-root", str(runs), "--out", str(out), "--no-progress"]
    )
    assert r["rewind_step"] == 100 and [row["round"] for row in r["rows"]] == [0, 1]
    dense, pruned = r["rows"]
    # The dense round is the same training in both studies; the pruned round has every arm of both.
    assert r["dense_rounds_identical"] and dense["ticket_k0"] == dense["ticket_k100"]
    assert {f"{a}_k{k}" for a in late_rewinding.ARMS for k in (0, 100)} <= set(pruned)
    assert pruned["percent_remaining"] < dense["percent_remaining"] == 100.0
    # The studies are where `lottery_ticket.py --preset mnist1d --rewind-step k` keeps them.
    for k in (0, 100):
        config = lottery.Config(rounds=1, seeds=1, iterations=200, n_val=200, rewind_step=k).validate()
        folder = lottery.run_dir(config, root=runs, name="mnist1d")
        assert r["folders"][f"k{k}"] == str(folder)
        assert json.loads((folder / "config.json").read_text()).get("rewind_step", 0) == k
    assert (out / "accuracy_vs_remaining.png").stat().st_size > 1000
    assert "ticket θk" in capsys.readouterr().out
    # k from a stability sweep's results; --report-only trains nothing and finds the same rows.
    (tmp_path / "stability.json").write_text(json.dumps({"smallest_stable_k": 100}))
    again = late_rewinding.main(
        [
            *SMALL,
            "--stability",
            str(tmp_path / "stability.json"),
            "--runs-root",
            str(runs),
            "--out",
            str(out),
            "--report-only",
        ]
    )
    assert again["rows"] == r["rows"]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--rewind-step", "150"], "rewind_step"),  # not a multiple of eval_every
        (["--rewind-step", "0"], "--rewind-step"),
        (["--rewind-step", "100", "--stability", "x.json"], "--stability"),
        (["--stability", "missing.json"], "--stability"),
        (["--stability", "{zero}"], "smallest stable k is 0"),
    ],
)
def test_bad_input(args, needle, tmp_path, capsys):
    zero = tmp_path / "zero.json"
    zero.write_text(json.dumps({"smallest_stable_k": 0}))
    args = [str(zero) if a == "{zero}" else a for a in args]
    with pytest.raises(SystemExit) as e:
        late_rewinding.main(
            [*SMALL, *args, "--runs-root", str(tmp_path), "--out", str(tmp_path / "o"), "--report-only"]
        )
    assert e.value.code == 2 and needle in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or needle == "rewind_step"
