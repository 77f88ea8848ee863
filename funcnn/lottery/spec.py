"""What a lottery-ticket study is: `Spec`, made of objects, and `Config`, made of names.

    spec = Spec(net, optax.sgd(schedule, momentum=0.9), train=(x, y), test=(xt, yt), rate=0.2)
    report = lottery.run(spec, out="runs/mine")

`Config` (and `PRESETS`) are one way to build a `Spec` from the command line's names
(`config.to_spec()`); both give bit-identical results.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Callable, Mapping, Optional

import jax
import numpy as np
import optax

from funcnn import data as data_lib
from funcnn import losses, models, prune
from funcnn.lottery import arms as arms_lib

ARMS = arms_lib.BUILT_IN


# Fields added after run folders were first written: describe() leaves them out at these values,
# so a folder written before they existed still resumes (identity.json holds the old field set).
NEW_FIELD_DEFAULTS = {"rounding": "nearest", "batch_order": "shuffled", "score_step": None}


@dataclasses.dataclass(frozen=True)
class Spec:
    """One lottery-ticket study, made of objects.

    net: a funcnn Layer, or any object with `init(key, input_shape) -> params` and
      `apply(params, x, *, train=False) -> y` over a pytree of arrays.
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
    prunable(path_name, leaf) -> bool picks the prunable leaves (default ndim > 1: weights, not
      biases). score_step: score the next round's mask on the ticket's weights at this iteration
      (the MNIST-1D notebook's step-1000 checkpoint) instead of its final ones. batch_order
      'shuffled' (a seeded shuffle per seed and epoch) or 'sequential' (step t takes examples
      t*B mod n onwards, the same for every seed). rewind_step: k for late rewinding; rewind_optimizer: also restore the optimizer
      state saved at k (default: a fresh one). arms: names or `arms.Arm`s, 'ticket' first.
    sweep: per-member hyperparameters, {name: values} with lists of one length V (zipped: setting v
      takes the v-th value of each); every seed trains under every setting, all in one program, and
      the report groups by setting. The optimizer must expose each name as a constant through
      `optax.inject_hyperparams` (e.g. `optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)`).
    checkpoints_per_round: at most this many equal segments per round, each ending in a verified save
      and a test evaluation (final and best-validation params). test_curve: also evaluate the test set
      after every `eval_every` steps (a figure of the whole curve; ~30% slower on CPU for LeNet).
    population_chunk: members vmapped together (None: 4 on CPU, all on a GPU/TPU); unroll: scan unroll
      of the steps (execution only: neither changes results beyond float rounding).
    label: a free text that becomes part of the run's identity.
    """

    net: Any
    optimizer: optax.GradientTransformation
    train: tuple
    val: Optional[tuple] = None
    test: Optional[tuple] = None
    n_val: int = 500
    input_shape: Optional[tuple] = None
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
    score_step: Optional[int] = None
    batch_order: str = "shuffled"
    pruning: str = "iterative"
    sparsities: Optional[tuple] = None
    prunable: Optional[Callable[[str, Any], bool]] = None
    rewind_step: int = 0
    rewind_optimizer: bool = False
    arms: tuple = ARMS
    seeds: int = 4
    sweep: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0
    checkpoints_per_round: int = 10
    population_chunk: Optional[int] = None
    test_curve: bool = False
    unroll: int = 1
    label: str = ""

    def validate(self) -> "Spec":
        """Check every field; a ValueError names the field, its value and what was expected."""
        def bad(name, expected, value=None):
            value = getattr(self, name) if value is None else value
            raise ValueError(f"spec {name} must be {expected}, got {name}={value!r}")

        if not (callable(getattr(self.net, "init", None)) and callable(getattr(self.net, "apply", None))):
            bad("net", "a funcnn Layer or an object with init(key, input_shape) and apply(params, x)")
        if not isinstance(self.optimizer, optax.GradientTransformation):
            bad("optimizer", "an optax.GradientTransformation (e.g. optax.adam(1e-3), not optax.adam)")
        for name in ("train", "val", "test"):
            v = getattr(self, name)
            if v is None and name != "train":
                continue
            if not (isinstance(v, (tuple, list)) and len(v) == 2):
                bad(name, "an (x, y) pair of arrays", type(v).__name__)
            x, y = map(np.asarray, v)
            if not np.issubdtype(x.dtype, np.floating) or len(x) != len(y):
                bad(name, "float features and labels of the same length",
                    f"x {x.dtype}{list(x.shape)}, y {y.dtype}{list(y.shape)}")
        for name in ("batch_size", "iterations", "eval_every", "seeds", "n_val", "checkpoints_per_round", "unroll") + (
                ("population_chunk",) if self.population_chunk is not None else ()):
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
                not isinstance(self.score_step, (int, np.integer)) or isinstance(self.score_step, bool)
                or not self.rewind_step < self.score_step <= self.iterations or self.score_step % self.eval_every):
            bad("score_step", f"None or a multiple of eval_every={self.eval_every} in (rewind_step, iterations]")
        if self.scope == "global" and self.layer_rates:
            bad("layer_rates", "empty with scope='global' (one threshold for all layers)")
        if self.pruning not in ("iterative", "oneshot"):
            bad("pruning", "'iterative' or 'oneshot'")
        if self.sparsities is not None:
            s = np.asarray(self.sparsities, float)
            if s.shape != (self.rounds,) or not np.all((s >= 0) & (s < 1)):
                bad("sparsities", f"{self.rounds} values (one per round) in [0, 1)")
        if self.iterations % self.eval_every:
            bad("iterations", f"a multiple of eval_every={self.eval_every}")
        if not 0 <= self.rewind_step < self.iterations or self.rewind_step % self.eval_every:
            bad("rewind_step", f"a multiple of eval_every={self.eval_every} in [0, iterations)")
        if self.prunable is not None and not callable(self.prunable):
            bad("prunable", "a function (path_name, leaf) -> bool")
        for name in ("loss", "metric"):
            if not callable(getattr(self, name)):
                bad(name, "a function (logits, labels) -> scalar")
        sweep = dict(self.sweep)
        lengths = {k: len(v) if isinstance(v, (list, tuple, np.ndarray)) else -1 for k, v in sweep.items()}
        if sweep and (min(lengths.values()) < 1 or len(set(lengths.values())) != 1):
            bad("sweep", "{name: values} with non-empty lists of one length", lengths)
        for k, v in sweep.items():
            if not all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) for x in v):
                raise ValueError(f"spec sweep[{k!r}] must hold numbers, got {list(v)!r}")
        arms_lib.resolve(self.arms, None)
        return self

    def arm_names(self) -> list[str]:
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
            elif f.name == "layer_rates":
                v = dict(sorted(dict(v).items()))
            elif f.name == "sweep":
                v = {k: [float(x) for x in vals] for k, vals in sorted(dict(v).items())}
            elif f.name == "sparsities" and v is not None:
                v = [float(s) for s in v]
            elif f.name == "input_shape" and v is not None:
                v = list(v)
            out[f.name] = v
        return out


def round_rates(spec: Spec, r: int) -> tuple[float, dict]:
    """(rate, layer_rates) that round r prunes with: one-shot rounds compound the per-round rates."""
    rate, layer_rates = spec.rate, dict(spec.layer_rates)
    if spec.pruning == "oneshot":
        rate = 1 - (1 - rate) ** r
        layer_rates = {k: 1 - (1 - v) ** r for k, v in layer_rates.items()}
    return rate, layer_rates


def prune_round(spec: Spec, trained, masks, dense_trained, r: int, prunable_spec):
    """Round r's mask for one member, from the last ticket's trained weights (or the dense run's)."""
    if spec.sparsities is not None:
        # Absolute targets: every prunable leaf pruned to that fraction of its size, scored by the
        # magnitudes of the last trained (masked) weights; pruned weights are 0, so masks nest.
        scores = prune.apply(trained, masks)
        return prune.magnitude(scores, prune.ones(trained), float(spec.sparsities[r - 1]), scope=spec.scope,
                               spec=prunable_spec, rounding=spec.rounding)
    rate, layer_rates = round_rates(spec, r)
    if spec.pruning == "oneshot":
        return prune.magnitude(dense_trained, prune.ones(dense_trained), rate, scope=spec.scope,
                               layer_rates=layer_rates, spec=prunable_spec, rounding=spec.rounding)
    return prune.magnitude(trained, masks, rate, scope=spec.scope, layer_rates=layer_rates, spec=prunable_spec,
                           rounding=spec.rounding)


def density_ladder(spec: "Spec | Config", params_template=None) -> list[float]:
    """P_m (percent of prunable weights remaining) at each round 0..rounds, without training."""
    if isinstance(spec, Config):
        spec = spec.to_spec()
    if params_template is None:
        shape = spec.input_shape or tuple(np.shape(spec.train[0])[1:])
        params_template = spec.net.init(jax.random.key(0), shape)
    pspec = prune.prunable(params_template, spec.prunable)
    masks = prune.ones(params_template)
    out = [100.0]
    for r in range(1, spec.rounds + 1):
        masks = prune_round(spec, params_template, masks, params_template, r, pspec)
        out.append(float(prune.density(masks, pspec)["total"]) * 100)
    return out


@dataclasses.dataclass(frozen=True)
class Config:
    """One lottery-ticket study by names (the command line's view; `to_spec()` builds the `Spec`).

    `rate`: fraction of surviving weights pruned per round in each hidden layer; `output_rate`: the
    same for the output layer (the paper: 0.2 and 0.1); `conv_rate`: for convolution kernels. With
    scope 'global', one threshold over all prunable weights, and output_rate=0 leaves the output
    layer out of pruning (OpenLTH's VGG); other output_rate values are then not used.
    `optimizer`: 'adam' (Adam at `learning_rate`) or 'sgd' (SGD with `momentum`); `weight_decay` is
    added to the gradient (PyTorch's SGD weight_decay, OpenLTH's); `lr_drops`: fractions of
    `iterations` where the learning rate is multiplied by 0.1; `warmup`: steps of linear warmup from 0."""

    dataset: str = "mnist1d"
    model: str = "mlp-300-300"
    n_val: int = 500
    learning_rate: float = 2e-3
    batch_size: int = 100
    iterations: int = 1500
    eval_every: int = 100
    rounds: int = 8
    rate: float = 0.4
    output_rate: float = 0.2
    conv_rate: Optional[float] = None  # rate for convolution kernels (None: the same as `rate`)
    scope: str = "layer"
    pruning: str = "iterative"  # or "oneshot": round r prunes the dense run straight to its density
    rewind_step: int = 0
    seeds: int = 4
    arms: tuple = ARMS
    seed: int = 0
    checkpoints_per_round: int = 10  # at most this many segments per round, each ending in a save
    population_chunk: Optional[int] = None  # members vmapped together (None: 4 on CPU, all on GPU)
    test_curve: bool = False  # evaluate the test set every eval_every steps, not once per segment
    unroll: int = 1  # lax.scan unroll of the training steps (execution only)
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_drops: tuple = ()
    warmup: int = 0

    def validate(self) -> "Config":
        def bad(name, expected):
            raise ValueError(f"config {name} must be {expected}, got {name}={getattr(self, name)!r}")

        for name in ("batch_size", "iterations", "eval_every", "seeds", "n_val", "checkpoints_per_round", "unroll") + (
                ("population_chunk",) if self.population_chunk is not None else ()):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                bad(name, "a positive int")
        if not isinstance(self.rounds, int) or self.rounds < 0:
            bad("rounds", "an int >= 0")
        if not self.learning_rate > 0:
            bad("learning_rate", "> 0")
        for name in ("rate", "output_rate") + (("conv_rate",) if self.conv_rate is not None else ()):
            if not 0 <= getattr(self, name) < 1:
                bad(name, "in [0, 1)")
        if self.scope not in prune.SCOPES:
            bad("scope", "'layer', 'layer_joint' or 'global'")
        if self.pruning not in ("iterative", "oneshot"):
            bad("pruning", "'iterative' or 'oneshot'")
        if self.iterations % self.eval_every:
            bad("iterations", f"a multiple of eval_every={self.eval_every}")
        if not 0 <= self.rewind_step < self.iterations or self.rewind_step % self.eval_every:
            bad("rewind_step", f"a multiple of eval_every={self.eval_every} in [0, iterations)")
        if not self.arms or self.arms[0] != "ticket" or any(a not in ARMS for a in self.arms) or len(set(self.arms)) != len(self.arms):
            bad("arms", f"'ticket' first, then any of {ARMS[1:]}")
        if self.dataset not in data_lib.DATASETS:
            bad("dataset", f"one of {data_lib.DATASETS}")
        if self.optimizer not in ("adam", "sgd"):
            bad("optimizer", "'adam' or 'sgd'")
        if not 0 <= self.momentum < 1:
            bad("momentum", "in [0, 1)")
        if not self.weight_decay >= 0:
            bad("weight_decay", ">= 0")
        if not all(isinstance(f, (int, float)) and 0 < f < 1 for f in self.lr_drops) or list(self.lr_drops) != sorted(
                set(self.lr_drops)):
            bad("lr_drops", "increasing fractions of iterations in (0, 1)")
        if not isinstance(self.warmup, int) or isinstance(self.warmup, bool) or not 0 <= self.warmup < self.iterations:
            bad("warmup", "an int in [0, iterations)")
        models.build(self.model)
        return self

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["arms"] = list(self.arms)
        d["lr_drops"] = list(self.lr_drops)
        for name, default in NEW_CONFIG_DEFAULTS.items():  # older run folders' config.json lack them
            if d[name] == default:
                del d[name]
        return d

    def make_optimizer(self) -> optax.GradientTransformation:
        """The optimizer these fields name (plain `optax.adam(learning_rate)` for the defaults)."""
        lr = self.learning_rate
        if self.lr_drops or self.warmup:
            drops = {int(round(f * self.iterations)) - self.warmup: 0.1 for f in self.lr_drops}
            lr = optax.piecewise_constant_schedule(self.learning_rate, {k: v for k, v in drops.items() if k > 0})
            if self.warmup:
                lr = optax.join_schedules([optax.linear_schedule(0.0, self.learning_rate, self.warmup), lr], [self.warmup])
        tx = optax.adam(lr) if self.optimizer == "adam" else optax.sgd(lr, momentum=self.momentum or None)
        return optax.chain(optax.add_decayed_weights(self.weight_decay), tx) if self.weight_decay else tx

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:10]

    def to_spec(self) -> Spec:
        """The `Spec` this config names: the data set loaded, the model built, Adam at `learning_rate`,
        the output layer at `output_rate` and convolutions at `conv_rate` (layer scope)."""
        c = self.validate()
        d = data_lib.load(c.dataset)
        net = models.build(c.model)
        input_shape = tuple(d.x_train.shape[1:])
        layer_rates, prunable = {}, None
        if c.scope == "global" and c.output_rate == 0:
            params = jax.eval_shape(lambda k: net.init(k, input_shape), jax.random.key(0))
            output = _output_layer(params)
            prunable = lambda name, leaf: np.ndim(leaf) > 1 and not name.startswith(output + "/")  # noqa: E731
        if c.scope == "layer":
            params = jax.eval_shape(lambda k: net.init(k, input_shape), jax.random.key(0))
            pspec = prune.prunable(params)
            names = [n for n in params if any(jax.tree.leaves(pspec[n]))]
            conv_rate = c.rate if c.conv_rate is None else c.conv_rate
            layer_rates = {n: conv_rate for n in names if n.startswith("conv")}
            layer_rates[_output_layer(params)] = c.output_rate
        return Spec(
            net=net, optimizer=c.make_optimizer(), train=(d.x_train, d.y_train), test=(d.x_test, d.y_test), prunable=prunable,
            n_val=c.n_val, input_shape=input_shape, iterations=c.iterations, batch_size=c.batch_size,
            eval_every=c.eval_every, rounds=c.rounds, rate=c.rate, layer_rates=layer_rates, scope=c.scope,
            pruning=c.pruning, rewind_step=c.rewind_step, arms=tuple(c.arms), seeds=c.seeds, seed=c.seed,
            checkpoints_per_round=c.checkpoints_per_round, population_chunk=c.population_chunk, test_curve=c.test_curve,
            unroll=c.unroll,
            label=f"config:{c.dataset}/{c.model}",
        )


NEW_CONFIG_DEFAULTS = {"optimizer": "adam", "momentum": 0.9, "weight_decay": 0.0, "lr_drops": [], "warmup": 0}


def _output_layer(params) -> str:
    """The top-level layer with prunable weights and the highest index: the output layer."""
    pspec = prune.prunable(params)
    names = [n for n in params if any(jax.tree.leaves(pspec[n]))]
    return max(names, key=lambda n: int(n.rsplit("_", 1)[1]))


PRESETS: dict[str, Config] = {
    # MNIST-1D MLP: a few minutes on 2 CPU cores, down to ~2% of the weights in 8 rounds.
    "mnist1d": Config(),
    # Frankle & Carbin's LeNet-300-100 protocol, on Fashion-MNIST (offline) or MNIST.
    "lenet-fashion": Config(
        dataset="fashion-mnist", model="lenet_300_100", n_val=5000, learning_rate=1.2e-3, batch_size=60,
        iterations=50_000, eval_every=100, rounds=15, rate=0.2, output_rate=0.1, seeds=5,
    ),
    # Conv-2 (64-64 convs, pool, 256-256-10): convs pruned 10%, dense 20%, output 10% per round.
    # On CPU the convolutions run as im2col + one matmul inside the compiled round (XLA's own are slow
    # inside loops there, jax-ml/jax#12868); ~0.24 s a member-step on one core, so the full run is GPU work.
    "conv2-fashion": Config(
        dataset="fashion-mnist", model="conv2", n_val=5000, learning_rate=2e-4, batch_size=60,
        iterations=20_000, eval_every=100, rounds=15, rate=0.2, output_rate=0.1, conv_rate=0.1, seeds=5,
    ),
    # OpenLTH's CIFAR ResNet-20 recipe on Fashion-MNIST (SGD 0.1, momentum 0.9, weight decay 1e-4,
    # batch 128, x0.1 at 50% and 75%; 30 epochs), global pruning of 20% of the conv and dense weights
    # per round (BatchNorm never). Tickets at θ0 are expected to fail at this learning rate; late
    # rewinding (--rewind-step k, k from experiments/stability.py) to rescue them. GPU work.
    "resnet20-fashion": Config(
        dataset="fashion-mnist", model="resnet20", n_val=5000, optimizer="sgd", learning_rate=0.1, momentum=0.9,
        weight_decay=1e-4, lr_drops=(0.5, 0.75), batch_size=128, iterations=12_800, eval_every=100, rounds=10,
        rate=0.2, scope="global", seeds=2,
    ),
    # CPU-sized: ResNet-8 of width 8, 2,000 iterations, 5 rounds (minutes a round on 2 cores).
    "resnet8-fashion": Config(
        dataset="fashion-mnist", model="resnet-8-8", n_val=2000, optimizer="sgd", learning_rate=0.1, momentum=0.9,
        weight_decay=1e-4, lr_drops=(0.5, 0.75), batch_size=128, iterations=2000, eval_every=100, rounds=5,
        rate=0.2, scope="global", seeds=2,
    ),
    # OpenLTH's VGG-16 (BatchNorm) recipe, its output layer never pruned. GPU work.
    "vgg16-fashion": Config(
        dataset="fashion-mnist", model="vgg16", n_val=5000, optimizer="sgd", learning_rate=0.1, momentum=0.9,
        weight_decay=1e-4, lr_drops=(0.5, 0.75), batch_size=128, iterations=12_800, eval_every=100, rounds=10,
        rate=0.2, scope="global", output_rate=0.0, seeds=2,
    ),
    # CPU-sized: VGG-16's plan at 1/8 of its widths (8 ... 64), 2,000 iterations, 5 rounds.
    "vgg16-fashion-cpu": Config(
        dataset="fashion-mnist", model="vgg16-8", n_val=2000, optimizer="sgd", learning_rate=0.1, momentum=0.9,
        weight_decay=1e-4, lr_drops=(0.5, 0.75), batch_size=128, iterations=2000, eval_every=100, rounds=5,
        rate=0.2, scope="global", output_rate=0.0, seeds=2,
    ),
    "lenet-mnist": Config(
        dataset="mnist", model="lenet_300_100", n_val=5000, learning_rate=1.2e-3, batch_size=60,
        iterations=50_000, eval_every=100, rounds=15, rate=0.2, output_rate=0.1, seeds=5,
    ),
}
