"""What a lottery-ticket study is: `Spec`, made of objects, and `Config`, made of names.

    spec = Spec(net, optax.sgd(schedule, momentum=0.9), train=(x, y), test=(xt, yt), rate=0.2)
    report = lottery.run(spec, out="runs/mine")

`Config` and `PRESETS` (in `config.py`) are one way to build a `Spec` from the command line's
names (`lottery.Config.to_spec()`); both give bit-identical results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import jax
import numpy as np
import optax

from funcnn import losses, prune, train
from funcnn.lottery import arms as arms_lib
from funcnn.lottery import plans as plans_lib

__all__ = ["ARMS", "Spec", "density_ladder", "output_layer", "prune_round", "round_rates", "units_prunable"]

ARMS = arms_lib.BUILT_IN
"""The built-in arms, by name: 'ticket' (always first), 'reinit', 'random' (see `arms`)."""

Params = Any  # a pytree of arrays
Masks = Any  # bool arrays, like params


# Fields added after run folders were first written: describe() leaves them out at these values,
# so a folder written before they existed still resumes (identity.json holds the old field set).
NEW_FIELD_DEFAULTS = {
    "rounding": "nearest",
    "batch_order": "shuffled",
    "score_step": None,
    "structure": None,
    "augment": None,
    "recompute_statistics": None,
}


@dataclasses.dataclass(frozen=True)
class Spec:
    """One lottery-ticket study, made of objects.

    net: a funcnn Layer, any object with `init(key, input_shape) -> params` and `apply(params, x) -> y`
      over a pytree of arrays, or an `(init, apply)` pair (`funcnn.train.as_net`): apply is given
      `train=` and `key=` only if its signature takes them. `validate()` makes a probe call (abstract,
      `jax.eval_shape`) of init and apply in both modes, so a net that does not fit fails there.
    optimizer: any optax GradientTransformation (schedules, momentum, weight decay, chains). Its
      state is fresh at every round; the schedule resumes at the rewind step (see `run`).
    train, val, test: (x, y) arrays. Without `val`, `n_val` examples of train are held out (a
      seeded split); without `test`, the validation set stands in for it.
    loss(logits, labels) -> scalar; metric(logits, labels) -> scalar, recorded as `metric_name`.
    rate: fraction of the surviving prunable weights pruned per round; `layer_rates` maps a layer
      or leaf path at any depth ('residual_2/main/dense_0', 'dense_5/w') to its own rate;
      `scope` 'layer' (each leaf), 'layer_joint' (each layer's prunable leaves pooled, e.g. w and b
      with a `prunable` that takes biases) or 'global'; `rounding` 'nearest' or 'floor' (the count
      pruned: round or floor of rate x survivors); `pruning` 'iterative' (prune the last ticket) or 'oneshot'
      (prune the dense run straight to round r's density); `sparsities`: absolute target
      sparsities per round (len == rounds) instead of `rate`, each leaf pruned to that fraction.
    structure: None (prune single weights by magnitude) or 'unit' (structured pruning, `prune.structured`
      with L1 norms: whole hidden units of Dense layers and output channels of convolutions, the
      slices along each prunable leaf's unit axis: the last for funcnn's own layers (w (in, out),
      kernels (kh, kw, in, out)), and for other nets the axis the net's `unit_layout` declares or,
      where none does, the one probed from its program (the axis a dot or convolution keeps as its
      output); 'channel' is a synonym). `rate`, `layer_rates`,
      `sparsities` and `pruning` then count units, `scope` is 'layer' or 'global', the output layer
      (`output_layer`) is never pruned (its units are the classes; a `layer_rates` entry for it is
      ignored), and the 'random' arm keeps as many random whole units per leaf
      (`prune.structured_random_like`).
    prunable(path_name, leaf) -> bool picks the prunable leaves (default `prune.prunable`'s: weight
      matrices and kernels, not biases). score_step: score the next round's mask on the ticket's
      weights at this iteration (the MNIST-1D notebook's step-1000 checkpoint) instead of its final
      ones. batch_order
      'shuffled' (a seeded shuffle per seed and epoch) or 'sequential' (step t takes examples
      t*B mod n onwards, the same for every seed). rewind_step: k for late rewinding;
      rewind_optimizer: also restore the optimizer state saved at k (default: a fresh one).
      arms: names or `arms.Arm`s, 'ticket' first.
    sweep: per-member hyperparameters, {name: values} with lists of one length V (zipped: setting v
      takes the v-th value of each); every seed trains under every setting, all in one program, and
      the report groups by setting. The optimizer must expose each name as a constant through
      `optax.inject_hyperparams` (e.g. `optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)`).
    checkpoints_per_round: at most this many equal segments per round, each ending in a verified save
      and a test evaluation (final and best-validation params). test_curve: also evaluate the test set
      after every `eval_every` steps (a figure of the whole curve; ~30% slower on CPU for LeNet).
    population_chunk: members vmapped together (None: `study.default_chunk`: all on a GPU/TPU; on
      CPU 4, or 1 for nets with convolutions); unroll: scan unroll
      of the steps (execution only: neither changes results beyond float rounding).
    label: a free text that becomes part of the run's identity.
    augment(key, x) -> x': a keyed transform of every training batch inside the program (e.g.
      `funcnn.data.cifar10.augment`: random crops and flips), drawn from each member's step key, so a
      resumed run sees the same augmentations; validation and test data are never augmented.
    recompute_statistics: for a net with running statistics (BatchNorm), how many of the chunk's
      training batches they are recomputed from (`interpolation.recompute_statistics`, train mode)
      before every evaluation, so the statistics always follow the weights: after pruning and
      rewinding, and where a running average lags (flax's over a few hundred steps); the recomputed
      statistics then go on as the running ones and are saved with each arm's trained weights.
      None: 10 for a net with model state; 0: the running averages as training left them.

    Example:
        >>> import dataclasses
        >>> import jax
        >>> import optax
        >>> from funcnn import nn
        >>> from funcnn.lottery import Spec
        >>> x = jax.random.normal(jax.random.key(0), (64, 4))
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))  # a 4-8-2 MLP
        >>> spec = Spec(net, optax.adam(1e-2), train=(x, y), n_val=16, iterations=20, batch_size=8, eval_every=10)
        >>> spec.validate().arm_names(), spec.rounds, spec.seeds
        (['ticket', 'reinit', 'random'], 8, 4)
        >>> dataclasses.replace(spec, iterations=25).validate()
        Traceback (most recent call last):
        ...
        ValueError: spec iterations must be a multiple of eval_every=10, got iterations=25
    """

    net: Any
    optimizer: optax.GradientTransformation
    train: tuple
    val: tuple | None = None
    test: tuple | None = None
    n_val: int = 500
    input_shape: tuple | None = None
    loss: Callable = losses.softmax_cross_entropy
    metric: Callable = losses.accuracy
    metric_name: str = "accuracy"
    iterations: int = 1500
    batch_size: int = 100
    eval_every: int = 100
    rounds: int = 8
    rate: float = 0.2
    layer_rates: Mapping[str, float] = dataclasses.field(default_factory=dict)
    scope: str = "layer"
    rounding: str = "nearest"
    score_step: int | None = None
    batch_order: str = "shuffled"
    pruning: str = "iterative"
    sparsities: tuple | None = None
    prunable: Callable[[str, Any], bool] | None = None
    rewind_step: int = 0
    rewind_optimizer: bool = False
    arms: tuple = ARMS
    seeds: int = 4
    sweep: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0
    checkpoints_per_round: int = 10
    population_chunk: int | None = None
    test_curve: bool = False
    unroll: int = 1
    label: str = ""
    structure: str | None = None
    augment: Callable[[Any, Any], Any] | None = None
    recompute_statistics: int | None = None

    def validate(self) -> Spec:
        """Check every field; a ValueError names the field, its value and what was expected."""
        self._check()
        return self

    def _check(self) -> tuple:
        """`validate`'s checks; returns the arms resolved (`plans.resolve`), so `checked` resolves once."""

        def bad(name: str, expected: str, value: Any = None) -> NoReturn:
            value = getattr(self, name) if value is None else value
            raise ValueError(f"spec {name} must be {expected}, got {name}={value!r}")

        try:
            net = train.as_net(self.net, name="spec net")
        except TypeError as e:
            raise ValueError(str(e)) from None
        if not isinstance(self.optimizer, optax.GradientTransformation):
            bad("optimizer", "an optax.GradientTransformation (e.g. optax.adam(1e-3), not optax.adam)")
        if self.val is None and isinstance(self.train, (tuple, list)) and len(self.train) == 2:
            n = len(self.train[0])
            if isinstance(self.n_val, (int, np.integer)) and not 0 < self.n_val < n:
                bad("n_val", f"in (0, {n}) (examples of train held out for validation; or pass val=)")
        for name in ("train", "val", "test"):
            v = getattr(self, name)
            if v is None and name != "train":
                continue
            if not (isinstance(v, (tuple, list)) and len(v) == 2):
                bad(name, "an (x, y) pair of arrays", type(v).__name__)
            x, y = map(np.asarray, v)
            if not np.issubdtype(x.dtype, np.floating) or len(x) != len(y):
                bad(
                    name,
                    "float features and labels of the same length",
                    f"x {x.dtype}{list(x.shape)}, y {y.dtype}{list(y.shape)}",
                )
        for name in ("batch_size", "iterations", "eval_every", "seeds", "n_val", "checkpoints_per_round", "unroll") + (
            ("population_chunk",) if self.population_chunk is not None else ()
        ):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                bad(name, "a positive int")
        if not isinstance(self.rounds, int) or self.rounds < 0:
            bad("rounds", "an int >= 0")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool):
            bad("seed", "an int")
        if not isinstance(self.rewind_optimizer, bool):
            bad("rewind_optimizer", "True or False")
        if not isinstance(self.label, str):
            bad("label", "a str")
        if not (isinstance(self.rate, (int, float)) and 0 <= self.rate < 1):
            bad("rate", "in [0, 1)")
        for k, r in dict(self.layer_rates).items():
            if not (isinstance(r, (int, float)) and 0 <= r < 1):
                raise ValueError(f"spec layer_rates[{k!r}] must be in [0, 1), got {r!r}")
        if self.scope not in prune.SCOPES:
            bad("scope", "'layer', 'layer_joint' or 'global'")
        if self.rounding not in prune.ROUNDINGS:
            bad("rounding", "'nearest' or 'floor'")
        if self.batch_order not in ("shuffled", "sequential"):
            bad("batch_order", "'shuffled' or 'sequential'")
        if self.score_step is not None and (
            not isinstance(self.score_step, (int, np.integer))
            or isinstance(self.score_step, bool)
            or not self.rewind_step < self.score_step <= self.iterations
            or self.score_step % self.eval_every
        ):
            bad("score_step", f"None or a multiple of eval_every={self.eval_every} in (rewind_step, iterations]")
        if self.structure is not None:
            if self.structure not in prune.STRUCTURES:
                bad("structure", "None, 'unit' or 'channel' (the same: a unit or output channel)")
            if self.scope not in ("layer", "global"):
                bad("scope", "'layer' or 'global' with a structure (units are pruned one leaf at a time)")
        if self.scope == "global" and self.layer_rates:
            bad("layer_rates", "empty with scope='global' (one threshold for all layers)")
        if self.pruning not in ("iterative", "oneshot"):
            bad("pruning", "'iterative' or 'oneshot'")
        if self.sparsities is not None:
            s = np.asarray(self.sparsities, float)
            if s.shape != (self.rounds,) or not np.all((s >= 0) & (s < 1)):
                bad("sparsities", f"{self.rounds} values (one per round) in [0, 1)")
            if self.pruning == "iterative" and np.any(np.diff(s) < 0):
                bad(
                    "sparsities",
                    "non-decreasing with iterative pruning (each round prunes the last ticket, whose pruned "
                    "weights would come back at a lower sparsity)",
                )
        if self.iterations % self.eval_every:
            bad("iterations", f"a multiple of eval_every={self.eval_every}")
        if not 0 <= self.rewind_step < self.iterations or self.rewind_step % self.eval_every:
            bad("rewind_step", f"a multiple of eval_every={self.eval_every} in [0, iterations)")
        if self.prunable is not None and not callable(self.prunable):
            bad("prunable", "a function (path_name, leaf) -> bool")
        for name in ("loss", "metric"):
            if not callable(getattr(self, name)):
                bad(name, "a function (logits, labels) -> scalar")
        if self.augment is not None and not callable(self.augment):
            bad("augment", "None or a function augment(key, x) -> x")
        n_stat = self.recompute_statistics
        stat_ok = isinstance(n_stat, (int, np.integer)) and not isinstance(n_stat, bool)
        stat_ok = stat_ok and 0 <= n_stat <= self.eval_every  # type: ignore[operator]
        if n_stat is not None and not stat_ok:
            bad("recompute_statistics", f"None or an int in [0, eval_every={self.eval_every}] (training batches)")
        sweep = dict(self.sweep)
        lengths = {k: len(v) if isinstance(v, (list, tuple, np.ndarray)) else -1 for k, v in sweep.items()}
        if sweep and (min(lengths.values()) < 1 or len(set(lengths.values())) != 1):
            bad("sweep", "{name: values} with non-empty lists of one length", lengths)
        for k, v in sweep.items():
            if not all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) for x in v):
                raise ValueError(f"spec sweep[{k!r}] must hold numbers, got {list(v)!r}")
        plans = plans_lib.resolve(self.arms, self.rewind_step)
        params = _probe_net(net, self.input_shape or tuple(np.shape(self.train[0])[1:]), self.train[0])
        # Before any folder is made: names in layer_rates that are no prunable layer of this net.
        plans_lib._check_prunable(self, prune.prunable(params, self.prunable))
        return plans

    def arm_names(self) -> list[str]:
        """The arms' names, in order ('ticket' first)."""
        return [a.name if isinstance(a, arms_lib.Arm) else a for a in self.arms]

    def describe(self) -> dict:
        """The JSON-able fields (objects by name): part of the run's identity."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("train", "val", "test", "net", "optimizer", "prunable"):
                continue  # identified by fingerprints of what they do (see driver.identity)
            if f.name in NEW_FIELD_DEFAULTS and v == NEW_FIELD_DEFAULTS[f.name]:
                continue  # at its default, a field added later leaves older run folders resumable
            if f.name == "arms":
                v = self.arm_names()
            elif f.name in ("loss", "metric"):
                v = f"{getattr(v, '__module__', '?')}.{getattr(v, '__qualname__', repr(v))}"
            elif f.name == "augment":  # by name here; what it does is fingerprinted (identity)
                v = f"{getattr(v, '__module__', '?')}.{getattr(v, '__qualname__', type(v).__name__)}"
            elif f.name == "layer_rates":
                v = dict(sorted(dict(v).items()))
            elif f.name == "sweep":
                v = {k: [float(x) for x in vals] for k, vals in sorted(dict(v).items())}
            elif f.name == "sparsities" and v is not None:
                v = [float(s) for s in v]
            elif f.name == "input_shape" and v is not None:
                v = list(v)
            elif f.name == "structure":
                v = "unit"  # 'channel' is the same structure
            out[f.name] = v
        return out


def checked(study: Any) -> tuple[Spec, Any, tuple]:
    """A study checked once: (its Spec, its Config or None, its arms resolved as `plans.Plan`s).

    study: a `Spec`, or a `Config` (validated, then its Spec built and checked).
    """
    config = None
    if hasattr(study, "to_spec") and not isinstance(study, Spec):  # a Config
        config = study
        study = config.to_spec()  # which validates the Config
    if not isinstance(study, Spec):
        raise TypeError(f"study must be a lottery.Spec or lottery.Config, got study={type(study).__name__}")
    return study, config, study._check()


KEY_DTYPE = jax.eval_shape(lambda: jax.random.key(0)).dtype
"""The dtype of a default PRNG key (for abstract keys: `jax.ShapeDtypeStruct((), KEY_DTYPE)`)."""


def _probe_net(net: Any, input_shape: tuple, x: Any) -> Any:
    """init and apply on two examples, abstractly (`jax.eval_shape`: nothing computed), in training
    and eval mode with a key: a net that does not fit the data fails here, naming the call."""
    # two examples: BatchNorm in training mode needs more than one value per feature
    x1 = jax.ShapeDtypeStruct((min(2, len(x)), *np.shape(x)[1:]), np.asarray(x[:1]).dtype)
    key = jax.ShapeDtypeStruct((), KEY_DTYPE)  # abstract: making a real key would compile a program
    try:
        params = jax.eval_shape(lambda k: net.init(k, input_shape), key)
        state = jax.eval_shape(lambda: net.init_state(input_shape))
        for mode in (True, False):
            jax.eval_shape(
                lambda p, s, v, k, m=mode: net.apply_with_state(p, s, v, key=k, train=m), params, state, x1, key
            )
    except Exception as e:  # any failure of the user's net: say which call, keep the cause
        raise ValueError(
            f"spec net: the probe call init(key, {input_shape}) then apply(params, x[:2], key=..., train=True/False) "
            f"failed with {type(e).__name__}: {e}"
        ) from e
    return params


# The pruning of a round lives in ladder.py (it needs only a Spec's fields); its names stay here too.
from funcnn.lottery.ladder import density_ladder as density_ladder  # noqa: E402
from funcnn.lottery.ladder import output_layer as output_layer  # noqa: E402
from funcnn.lottery.ladder import prune_round as prune_round  # noqa: E402
from funcnn.lottery.ladder import round_rates as round_rates  # noqa: E402
from funcnn.lottery.ladder import units_prunable as units_prunable  # noqa: E402
