"""Training: a pure, jitted train step; an epoch as one `lax.scan`; `fit` at the Python level.

    state = init_state(params, optimizer)            # TrainState(params, opt_state, step, masks, ...)
    step = make_train_step(net, loss, optimizer)     # net: a Layer, init/apply, (init, apply) or apply
    state, metrics = step(state, (x, y))            # pure: works under jit, vmap and scan

A population is the same state with a leading axis on every leaf: `jax.vmap(step)` trains N nets.
Model state (BatchNorm's running statistics) rides in `TrainState.model_state`, beside the params
and never seen by gradients, optimizers or masks; the key for Dropout at step t is
`fold_in(TrainState.key, t)`, so a run gives the same dropout masks every time.

    train_state.py TrainState, init_state, apply_masks
    contract.py    as_net (the one net contract: a Layer, init/apply, or (init, apply)), as_forward
    step.py        make_train_step, make_epoch, batch_indices, step_key, population_size
    evaluate.py    make_evaluate, validate_data
    fitting.py     History, fit
    sweep.py       lr_sweep
    population.py  fit_population (N seeds of a net or of your own step, one program), PopulationFit

Each module imports only those above it in this list.
"""

from __future__ import annotations

from funcnn.train.contract import FORMS as FORMS
from funcnn.train.contract import Forward as Forward
from funcnn.train.contract import Net as Net
from funcnn.train.contract import accepts as accepts
from funcnn.train.contract import as_forward, as_net
from funcnn.train.evaluate import Data as Data
from funcnn.train.evaluate import make_evaluate
from funcnn.train.evaluate import validate_data as validate_data
from funcnn.train.fitting import History, fit
from funcnn.train.fitting import LearningRate as LearningRate
from funcnn.train.fitting import Optimizer as Optimizer
from funcnn.train.fitting import _current_lr as _current_lr
from funcnn.train.fitting import _progress as _progress
from funcnn.train.population import PopulationFit, fit_population
from funcnn.train.step import _STEP_KEY_FOLD as _STEP_KEY_FOLD
from funcnn.train.step import LossFn as LossFn
from funcnn.train.step import batch_indices, make_epoch, make_train_step
from funcnn.train.step import check_batch_size as check_batch_size
from funcnn.train.step import population_size as population_size
from funcnn.train.step import step_key as step_key
from funcnn.train.sweep import lr_sweep
from funcnn.train.train_state import Array as Array
from funcnn.train.train_state import Batch as Batch
from funcnn.train.train_state import Params as Params
from funcnn.train.train_state import Step as Step
from funcnn.train.train_state import TrainState, apply_masks, init_state

__all__ = [
    "History",
    "PopulationFit",
    "TrainState",
    "apply_masks",
    "as_forward",
    "as_net",
    "batch_indices",
    "fit",
    "fit_population",
    "init_state",
    "lr_sweep",
    "make_epoch",
    "make_evaluate",
    "make_train_step",
]
