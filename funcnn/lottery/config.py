"""A lottery-ticket study by names (the command line's view): `Config`, and the `PRESETS`.

`Config.to_spec()` loads the data set, builds the model and the optimizer the names say, and
returns the `Spec` that `lottery.run` trains (bit-identical to passing the Config itself).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, NoReturn

import jax
import numpy as np
import optax

from funcnn import data as data_lib
from funcnn import models, prune
from funcnn.data import cifar10
from funcnn.lottery.spec import ARMS, Spec

__all__ = ["PRESETS", "Config"]


@dataclasses.dataclass(frozen=True)
class Config:
    """One lottery-ticket study by names (the command line's view; `to_spec()` builds the `Spec`).

    `rate`: fraction of surviving weights pruned per round in each hidden layer; `output_rate`: the
    same for the output layer (the paper: 0.2 and 0.1); `conv_rate`: for convolution kernels. With
    scope 'global', one threshold over all prunable weights, and output_rate=0 leaves the output
    layer out of pruning (OpenLTH's VGG); other output_rate values are then not used.
    `optimizer`: 'adam' (Adam at `learning_rate`) or 'sgd' (SGD with `momentum`); `weight_decay` is
    added to the gradient (PyTorch's SGD weight_decay, OpenLTH's); `lr_drops`: fractions of
    `iterations` where the learning rate is multiplied by 0.1; `warmup`: steps of linear warmup from 0.
    `structure`: None, or 'unit' ('channel' is a synonym) to prune whole hidden units and conv
    output channels by their L1 norm (`prune.structured`; `Spec.structure`): `rate` and
    `conv_rate` then count units, and the output layer is never pruned (`output_rate` is unused).
    `augment`: None, or 'crop-flip' for the standard CIFAR augmentation of every training batch
    (`funcnn.data.cifar10.augment`: a random crop of the image padded by 4, a random horizontal flip).

    Example:
        >>> from funcnn.lottery import PRESETS, Config
        >>> cfg = Config(model="mlp-64-64", rounds=3, seeds=2)
        >>> cfg.validate().dataset, cfg.iterations, cfg.arms
        ('mnist1d', 1500, ('ticket', 'reinit', 'random'))
        >>> PRESETS["lenet-fashion"].model, PRESETS["lenet-fashion"].rate
        ('lenet_300_100', 0.2)
        >>> Config(iterations=150).validate()
        Traceback (most recent call last):
        ...
        ValueError: config iterations must be a multiple of eval_every=100, got iterations=150
    """

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
    conv_rate: float | None = None  # rate for convolution kernels (None: the same as `rate`)
    scope: str = "layer"
    pruning: str = "iterative"  # or "oneshot": round r prunes the dense run straight to its density
    rewind_step: int = 0
    seeds: int = 4
    arms: tuple = ARMS
    seed: int = 0
    checkpoints_per_round: int = 10  # at most this many segments per round, each ending in a save
    population_chunk: int | None = None  # members vmapped together (None: study.default_chunk)
    test_curve: bool = False  # evaluate the test set every eval_every steps, not once per segment
    unroll: int = 1  # lax.scan unroll of the training steps (execution only)
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_drops: tuple = ()
    warmup: int = 0
    structure: str | None = None  # 'unit' (or 'channel'): prune whole units / output channels
    augment: str | None = None  # 'crop-flip': random crops (padding 4) and flips of training batches
    recompute_statistics: int | None = None  # Spec.recompute_statistics: None = 10 batches for BatchNorm nets

    def validate(self) -> Config:
        """Check every field (and that `model` names a model); returns self, or raises a ValueError
        naming the field, its value and what was expected."""

        def bad(name: str, expected: str) -> NoReturn:
            raise ValueError(f"config {name} must be {expected}, got {name}={getattr(self, name)!r}")

        for name in ("batch_size", "iterations", "eval_every", "seeds", "n_val", "checkpoints_per_round", "unroll") + (
            ("population_chunk",) if self.population_chunk is not None else ()
        ):
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
        if self.structure is not None:
            if self.structure not in prune.STRUCTURES:
                bad("structure", "None, 'unit' or 'channel' (the same: a unit or output channel)")
            if self.scope not in ("layer", "global"):
                bad("scope", "'layer' or 'global' with a structure")
        if self.iterations % self.eval_every:
            bad("iterations", f"a multiple of eval_every={self.eval_every}")
        if not 0 <= self.rewind_step < self.iterations or self.rewind_step % self.eval_every:
            bad("rewind_step", f"a multiple of eval_every={self.eval_every} in [0, iterations)")
        if (
            not self.arms
            or self.arms[0] != "ticket"
            or any(a not in ARMS for a in self.arms)
            or len(set(self.arms)) != len(self.arms)
        ):
            bad("arms", f"'ticket' first, then any of {ARMS[1:]}")
        if self.augment not in AUGMENTATIONS:
            bad("augment", f"one of {tuple(AUGMENTATIONS)}")
        if self.dataset not in data_lib.DATASETS:
            bad("dataset", f"one of {data_lib.DATASETS}")
        if self.optimizer not in ("adam", "sgd"):
            bad("optimizer", "'adam' or 'sgd'")
        if not 0 <= self.momentum < 1:
            bad("momentum", "in [0, 1)")
        if not self.weight_decay >= 0:
            bad("weight_decay", ">= 0")
        if not all(isinstance(f, (int, float)) and 0 < f < 1 for f in self.lr_drops) or list(self.lr_drops) != sorted(
            set(self.lr_drops)
        ):
            bad("lr_drops", "increasing fractions of iterations in (0, 1)")
        if not isinstance(self.warmup, int) or isinstance(self.warmup, bool) or not 0 <= self.warmup < self.iterations:
            bad("warmup", "an int in [0, iterations)")
        models.build(self.model)
        return self

    def to_json(self) -> dict:
        """The fields as JSON (a run folder's config.json); fields added later are left out at their defaults."""
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
            drops = {round(f * self.iterations) - self.warmup: 0.1 for f in self.lr_drops}
            lr = optax.piecewise_constant_schedule(self.learning_rate, {k: v for k, v in drops.items() if k > 0})
            if self.warmup:
                lr = optax.join_schedules(
                    [optax.linear_schedule(0.0, self.learning_rate, self.warmup), lr], [self.warmup]
                )
        tx = optax.adam(lr) if self.optimizer == "adam" else optax.sgd(lr, momentum=self.momentum or None)
        return optax.chain(optax.add_decayed_weights(self.weight_decay), tx) if self.weight_decay else tx

    def digest(self) -> str:
        """10 hex digits of the SHA-256 of `to_json()` and the identity version (`lottery.identity.VERSION`,
        2): names the run folder (`driver.run_dir`), so a study identified anew gets a folder of its own."""
        fields = {**self.to_json(), "identity": 2}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]

    def to_spec(self) -> Spec:
        """The `Spec` this config names: the data set loaded, the model built, Adam at `learning_rate`,
        the output layer at `output_rate` and convolutions at `conv_rate` (layer scope)."""
        c = self.validate()
        d = data_lib.load(c.dataset)
        net = models.build(c.model)
        input_shape = tuple(d.x_train.shape[1:])
        layer_rates, prunable = {}, None
        if c.scope == "global" and c.output_rate == 0:
            params = jax.eval_shape(lambda: net.init(jax.random.key(0), input_shape))
            output = _output_layer(params)
            prunable = lambda name, leaf: np.ndim(leaf) > 1 and not name.startswith(output + "/")
        if c.scope == "layer":
            params = jax.eval_shape(lambda: net.init(jax.random.key(0), input_shape))
            pspec = prune.prunable(params)
            names = [n for n in params if any(jax.tree.leaves(pspec[n]))]
            conv_rate = c.rate if c.conv_rate is None else c.conv_rate
            layer_rates = {n: conv_rate for n in names if n.startswith("conv")}
            if c.structure is None:  # with a structure the output layer is never pruned
                layer_rates[_output_layer(params)] = c.output_rate
        return Spec(
            net=net,
            optimizer=c.make_optimizer(),
            train=(d.x_train, d.y_train),
            test=(d.x_test, d.y_test),
            prunable=prunable,
            n_val=c.n_val,
            input_shape=input_shape,
            iterations=c.iterations,
            batch_size=c.batch_size,
            eval_every=c.eval_every,
            rounds=c.rounds,
            rate=c.rate,
            layer_rates=layer_rates,
            scope=c.scope,
            pruning=c.pruning,
            rewind_step=c.rewind_step,
            arms=tuple(c.arms),
            seeds=c.seeds,
            seed=c.seed,
            checkpoints_per_round=c.checkpoints_per_round,
            population_chunk=c.population_chunk,
            test_curve=c.test_curve,
            unroll=c.unroll,
            label=f"config:{c.dataset}/{c.model}",
            structure=c.structure,
            augment=AUGMENTATIONS[c.augment],
            recompute_statistics=c.recompute_statistics,
        )


NEW_CONFIG_DEFAULTS = {
    "optimizer": "adam",
    "momentum": 0.9,
    "weight_decay": 0.0,
    "lr_drops": [],
    "warmup": 0,
    "structure": None,
    "augment": None,
    "recompute_statistics": None,
}

AUGMENTATIONS: dict[str | None, Any] = {None: None, "crop-flip": cifar10.augment}
"""`Config.augment` names: the transform of each training batch (`Spec.augment`)."""


def _output_layer(params: Any) -> str:
    """The top-level layer with prunable weights and the highest index: the output layer."""
    pspec = prune.prunable(params)
    names = [n for n in params if any(jax.tree.leaves(pspec[n]))]
    return max(names, key=lambda n: int(n.rsplit("_", 1)[1]))


# OpenLTH's CIFAR recipe (SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128, x0.1 at 50% and 75%),
# with global pruning of 20% of the weights per round, shared by the ResNet and VGG presets.
_OPENLTH_SGD: dict[str, Any] = dict(
    dataset="fashion-mnist",
    optimizer="sgd",
    learning_rate=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    lr_drops=(0.5, 0.75),
    batch_size=128,
    eval_every=100,
    rate=0.2,
    scope="global",
    seeds=2,
)

# Frankle & Carbin's LeNet-300-100 protocol (Adam 1.2e-3, batch 60, 50,000 iterations, 20% of the
# hidden layers and 10% of the output layer per round), for Fashion-MNIST and MNIST alike.
_LENET_300_100 = Config(
    dataset="fashion-mnist",
    model="lenet_300_100",
    n_val=5000,
    learning_rate=1.2e-3,
    batch_size=60,
    iterations=50_000,
    eval_every=100,
    rounds=15,
    rate=0.2,
    output_rate=0.1,
    seeds=5,
)

PRESETS: dict[str, Config] = {
    # MNIST-1D MLP: a few minutes on 2 CPU cores, down to ~2% of the weights in 8 rounds.
    "mnist1d": Config(),
    # Frankle & Carbin's LeNet-300-100 protocol, on Fashion-MNIST (offline) or MNIST.
    "lenet-fashion": _LENET_300_100,
    # Conv-2 (64-64 convs, pool, 256-256-10): convs pruned 10%, dense 20%, output 10% per round.
    # On CPU the convolutions run as im2col + one matmul inside the compiled round (XLA's own are slow
    # inside loops there, jax-ml/jax#12868); ~0.24 s a member-step on one core, so the full run is GPU work.
    "conv2-fashion": Config(
        dataset="fashion-mnist",
        model="conv2",
        n_val=5000,
        learning_rate=2e-4,
        batch_size=60,
        iterations=20_000,
        eval_every=100,
        rounds=15,
        rate=0.2,
        output_rate=0.1,
        conv_rate=0.1,
        seeds=5,
    ),
    # OpenLTH's CIFAR ResNet-20 recipe on Fashion-MNIST (SGD 0.1, momentum 0.9, weight decay 1e-4,
    # batch 128, x0.1 at 50% and 75%; 30 epochs), global pruning of 20% of the conv and dense weights
    # per round (BatchNorm never). Tickets at θ0 are expected to fail at this learning rate; late
    # rewinding (--rewind-step k, k from experiments/stability.py) to rescue them. GPU work.
    "resnet20-fashion": Config(**_OPENLTH_SGD, model="resnet20", n_val=5000, iterations=12_800, rounds=10),
    # CPU-sized: ResNet-8 of width 4, 1,500 iterations, 5 rounds (~9 min a round on 2 cores): the net
    # and recipe whose stability docs/stability-resnet8 measured (unstable at θ0, stable from k = 100).
    "resnet8-fashion": Config(**_OPENLTH_SGD, model="resnet-8-4", n_val=2000, iterations=1500, rounds=5),
    # OpenLTH's VGG-16 (BatchNorm) recipe, its output layer never pruned. GPU work.
    "vgg16-fashion": Config(**_OPENLTH_SGD, model="vgg16", n_val=5000, iterations=12_800, rounds=10, output_rate=0.0),
    # CPU-sized: VGG-16's plan at 1/8 of its widths (8 ... 64), 2,000 iterations, 5 rounds.
    "vgg16-fashion-cpu": Config(
        **_OPENLTH_SGD, model="vgg16-8", n_val=2000, iterations=2000, rounds=5, output_rate=0.0
    ),
    "lenet-mnist": dataclasses.replace(_LENET_300_100, dataset="mnist"),
}
"""Named studies (`experiments/lottery_ticket.py --preset NAME`): CPU-sized ones, the papers' protocols
(GPU work), and the same on CIFAR-10 (`-cifar10`, the data from `$FUNCNN_DATA`)."""


# The CIFAR-10 protocols the papers ran (the data from the binary release, in $FUNCNN_DATA: `funcnn.data.cifar10`).
# Frankle & Carbin's Conv-2/4/6 (their Fig. 2: Adam, batch 60; no augmentation), 5,000 training images
# held out for validation. OpenLTH's ResNet-20 and VGG-16: 160 epochs of batch 128 (62,560 steps there,
# 62,500 here), x0.1 at 50% and 75%, random crops and flips; plus the CPU-sized ResNet-8 and VGG-16/8.
def _cifar10(fashion: Config, iterations: int | None = None) -> Config:
    """A Fashion-MNIST preset on CIFAR-10 with crops and flips (OpenLTH's), at `iterations` if given."""
    cfg = dataclasses.replace(fashion, dataset="cifar10", augment="crop-flip")
    return cfg if iterations is None else dataclasses.replace(cfg, iterations=iterations)


_FC_CIFAR: dict[str, Any] = dict(
    dataset="cifar10", n_val=5000, batch_size=60, eval_every=100, rounds=15, rate=0.2, output_rate=0.1
)
PRESETS.update(
    {
        "conv2-cifar10": Config(**_FC_CIFAR, model="conv2", learning_rate=2e-4, iterations=20_000, conv_rate=0.1),
        "conv4-cifar10": Config(**_FC_CIFAR, model="conv4", learning_rate=3e-4, iterations=25_000, conv_rate=0.1),
        "conv6-cifar10": Config(**_FC_CIFAR, model="conv6", learning_rate=3e-4, iterations=30_000, conv_rate=0.15),
        "resnet20-cifar10": _cifar10(PRESETS["resnet20-fashion"], iterations=62_500),
        "vgg16-cifar10": _cifar10(PRESETS["vgg16-fashion"], iterations=62_500),
        "resnet8-cifar10": _cifar10(PRESETS["resnet8-fashion"]),
        "vgg16-cifar10-cpu": _cifar10(PRESETS["vgg16-fashion-cpu"]),
    }
)
