"""Iterative magnitude pruning (Frankle & Carbin 2019) with controls, many seeds in one program.

Round 0 trains the dense nets. Each later round prunes the previous round's trained ticket, rewinds
the survivors to θ0 (or to θk, the weights k iterations into the dense run), and trains, side by side
in one compiled program (members vmapped a few at a time), for every seed, each arm:
  ticket  - the magnitude-pruned mask with the rewound weights;
  reinit  - the same mask with a fresh θ0 drawn from the same initializer with another key;
  random  - a random mask with the ticket's per-layer density and the rewound weights;
and any `Arm` of the user's. A study is a `Spec` (objects: a net, an optax optimizer, a loss,
arrays) or a `Config` (names, for the command line); `run` commits each round to a run folder and
resumes only the very same study.

    spec.py     Spec (a study of objects), round_rates, prune_round, density_ladder
    config.py   Config (a study by names, for the command line), PRESETS
    arms.py     Arm and the built-in arms
    program.py  make_round_program: one compiled program for all members
    study.py    Study: data, keys, θ0 and the segmented, checkpointed training of a population
    driver.py   run: rounds, commits, resume, lock; the time of each part (ledger.py)
    folder.py   load_report, run_dir: the run folder
    loading.py  load_round: a committed round's masks, trained weights and statistics, by arm
    identity.py identity, check_identity: what a run folder's study is (its compiled programs' digests)
    programs.py the start program, the group calls, the digest of a lowered program
    members.py  a round's masks for every arm and seed, as one program
    report.py   summaries, aggregate, summary_table, CSV
    notebook.py mnist1d_notebook: the MNIST-1D lottery notebook's protocol as a Spec
    context.py  Context: what a pruner and an arm see of one member's round
    pruners.py  Pruner and the built-in pruners: SNIP, GraSP, SynFlow, random at init; shuffle, inverted
    rounds.py   a pruning round's members from the lineages, trained together
    dense.py    round 0: the dense run, cut at every rewind step
    commits.py  a round's files, committed and verified
    schedule.py advance_schedule, hold_schedule (fine-tuning at the final rate)
    figures.py  accuracy, early stop and learning curves for any arms
"""

from funcnn.lottery import arms, pruners
from funcnn.lottery.arms import (
    Arm,
    at_init,
    fine_tuning,
    inverted,
    lr_rewinding,
    reinit_same_sign,
    reinitialized,
    shuffled,
    weight_rewinding,
)

# Deprecated arm functions (calling one warns, naming its replacement; they go in funcnn 0.4).
from funcnn.lottery.arms import random_pruning as random_pruning  # use shuffled()
from funcnn.lottery.arms import reinit as reinit  # use reinitialized()
from funcnn.lottery.arms import ticket as ticket  # use weight_rewinding()
from funcnn.lottery.config import PRESETS, Config
from funcnn.lottery.context import Context
from funcnn.lottery.driver import (
    CheckpointWriteError,
    RunFolderBusy,
    load_report,
    run,
    run_dir,
)
from funcnn.lottery.driver import _prepare_folder as _prepare_folder  # the tests' (an explicit re-export)
from funcnn.lottery.figures import plot
from funcnn.lottery.identity import identity
from funcnn.lottery.loading import RoundArrays, load_round
from funcnn.lottery.notebook import mnist1d_notebook
from funcnn.lottery.program import make_round_program, metric_names
from funcnn.lottery.pruners import Pruner
from funcnn.lottery.report import aggregate, load_curves, summary_table
from funcnn.lottery.schedule import advance_schedule
from funcnn.lottery.spec import ARMS, Spec, density_ladder, prune_round, round_rates
from funcnn.lottery.study import NonFiniteLoss, Study

METRICS = metric_names()

__all__ = [
    "ARMS",
    "METRICS",
    "PRESETS",
    "Arm",
    "CheckpointWriteError",
    "Config",
    "Context",
    "NonFiniteLoss",
    "Pruner",
    "RoundArrays",
    "RunFolderBusy",
    "Spec",
    "Study",
    "advance_schedule",
    "aggregate",
    "arms",
    "at_init",
    "density_ladder",
    "fine_tuning",
    "identity",
    "inverted",
    "load_curves",
    "load_report",
    "load_round",
    "lr_rewinding",
    "make_round_program",
    "metric_names",
    "mnist1d_notebook",
    "plot",
    "prune_round",
    "pruners",
    "reinit_same_sign",
    "reinitialized",
    "round_rates",
    "run",
    "run_dir",
    "shuffled",
    "summary_table",
    "weight_rewinding",
]
