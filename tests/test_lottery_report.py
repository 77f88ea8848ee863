"""A study's printed table in both layouts, exact percentages and the figures' log axis (issue #43; a
whole study run without any DeprecationWarning is `test_lottery_engine`'s bring-your-own study)."""

import numpy as np

from funcnn import lottery
from funcnn.lottery import figures, report

KEYS = ("final_test_accuracy", "best_test_accuracy", "early_stop_test_accuracy")


def _report(arm_names, rounds=2, seeds=2):
    """A report as `run` returns it, for the given arms: round 0 the first arm's dense run, then every arm
    at 80% per round; each arm's early stop its own (100 x its position, + 10 x the round)."""
    recs = []
    for r in range(rounds + 1):
        arms = [a for a in (arm_names if r else arm_names[:1]) for _ in range(seeds)]
        rec = {"round": r, "arms": arms, "density": [0.8**r] * len(arms)}
        rec["early_stop_iteration"] = [100 * (arm_names.index(a) + 1) + 10 * r for a in arms]
        rec |= {k: [0.9 - 0.01 * arm_names.index(a) for a in arms] for k in KEYS}
        recs.append(rec)
    return {"summary": report.aggregate(recs), "rounds": recs}


DEFAULT_TABLE = """\
round   P_m %     ticket acc %     reinit acc %     random acc % ticket stop it
-------------------------------------------------------------------------------
    0  100.00     90.00 ± 0.00                -                -            100
    1   80.00     90.00 ± 0.00     89.00 ± 0.00     88.00 ± 0.00            110
    2   64.00     90.00 ± 0.00     89.00 ± 0.00     88.00 ± 0.00            120"""


def test_the_default_study_keeps_its_table_line_for_line():
    assert lottery.summary_table(_report(["ticket", "reinit", "random"])) == DEFAULT_TABLE


def test_many_arms_print_as_rows_within_120_columns_each_with_its_early_stop():
    names = ["ticket", "reinit", "random"] + [f"arm_{i:02d}_with_a_longish_name" for i in range(15)]  # 18 arms
    table = lottery.summary_table(_report(names))
    lines = table.splitlines()
    assert max(map(len, lines)) <= 120 and len({len(line) for line in lines}) == 1
    assert lines[0].split() == ["round", "P_m", "%", "arm", "acc", "%", "stop", "it"]
    rows = [line.split() for line in lines[2:]]
    assert len(rows) == 1 + 2 * 18  # the dense run, then every arm of every round
    stops = {(int(r[0]), r[2]): int(r[-1]) for r in rows}
    assert stops[(0, "ticket")] == 100 and stops[(2, "random")] == 320
    assert stops[(1, "arm_14_with_a_longish_name")] == 100 * 18 + 10  # each arm's own early stop
    # the columns that still fit stay columns: the same study with four arms
    assert "ticket stop it" in lottery.summary_table(_report(names[:4])).splitlines()[0]


def test_rows_layout_cuts_names_too_long_for_the_width():
    names = ["ticket", "x" * 200]
    lines = lottery.summary_table(_report(names, rounds=1)).splitlines()
    assert max(map(len, lines)) == 120 and any(line.split()[2].endswith("…") for line in lines[2:])


def test_percent_remaining_is_exact():
    # float64 densities from the host: the dense net is 100.0 (it was 99.99999403953552), a mean of
    # equal densities the density itself
    masks = {"w": np.ones((4, 3, 5), bool), "b": np.ones((4, 5), bool)}
    dens = report.densities(masks, {"w": True, "b": False})["total"]
    assert dens.dtype == np.float64 and (dens == 1.0).all()
    recs = [
        {"round": 0, "arms": ["ticket"] * 4, "density": dens.tolist(), "early_stop_iteration": [1] * 4},
        {"round": 1, "arms": ["ticket"] * 4, "density": [7 / 100] * 4, "early_stop_iteration": [1] * 4},
    ]
    for rec in recs:
        rec |= {k: [0.5] * 4 for k in KEYS}
    rows = report.aggregate(recs)
    assert [r["percent_remaining"] for r in rows] == [100.0, 7.0]  # not 7.000000000000001


def test_the_log_axis_is_labelled_at_every_1_2_5():
    assert figures._log_ticks(1.7, 115.0) == [100, 50, 20, 10, 5, 2]
    assert figures._log_ticks(0.09, 105.0)[-4:] == [1, 0.5, 0.2, 0.1]
    assert figures._log_ticks(90.0, 110.0) == [100]
