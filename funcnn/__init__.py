"""funcnn: neural networks as pure functions over parameter pytrees, in JAX.

The whole public API, by module: nn (layers, combinators, serial), activations, losses, conv,
pool, windows (padding and output sizes for both), kernels, models, train (TrainState, steps, fit),
schedules, data, prune (masks), compaction (pruned nets made smaller), sparse (sparse inference),
lottery (IMP studies: Spec, run), stability (linear mode connectivity), interpolation (the path
between two nets and its error barrier), io (verified checkpoints), distributed (sharding over
devices and hosts), cpu (opt-in XLA:CPU flags for populations), cifar10 (also data.cifar10),
timing (seconds per call of jitted functions).

The API reference (`make docs`) opens with docs/guide.md:

.. include:: ../docs/guide.md
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from funcnn import (
    activations,
    cifar10,
    compaction,
    conv,
    cpu,
    data,
    distributed,
    interpolation,
    io,
    kernels,
    losses,
    lottery,
    models,
    nn,
    pool,
    prune,
    schedules,
    sparse,
    stability,
    timing,
    train,
    windows,
)
from funcnn.nn import (
    ELU,
    Arctan,
    AvgPool,
    BatchNorm,
    BinaryStep,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    FanInConcat,
    FanInSum,
    FanOut,
    Flatten,
    GlobalAvgPool,
    Identity,
    Layer,
    LayerNorm,
    MaxPool,
    Parallel,
    PReLU,
    Relu,
    Reshape,
    Residual,
    Sigmoid,
    Softplus,
    Tanh,
    serial,
    summary,
)
from funcnn.schedules import Plateau, constant, exponential_decay, step_decay
from funcnn.train import TrainState, fit, init_state, lr_sweep, make_epoch, make_evaluate, make_train_step

# The old name `prune.compact`: bound here, where both modules are imported, because compaction builds
# on prune and prune must not import it back.
prune.compact = compaction.compact  # type: ignore[attr-defined]

try:
    __version__ = _version("funcnn")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ELU",
    "Arctan",
    "AvgPool",
    "BatchNorm",
    "BinaryStep",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "FanInConcat",
    "FanInSum",
    "FanOut",
    "Flatten",
    "GlobalAvgPool",
    "Identity",
    "Layer",
    "LayerNorm",
    "MaxPool",
    "PReLU",
    "Parallel",
    "Plateau",
    "Relu",
    "Reshape",
    "Residual",
    "Sigmoid",
    "Softplus",
    "Tanh",
    "TrainState",
    "activations",
    "cifar10",
    "compaction",
    "constant",
    "conv",
    "cpu",
    "data",
    "distributed",
    "exponential_decay",
    "fit",
    "init_state",
    "interpolation",
    "io",
    "kernels",
    "losses",
    "lottery",
    "lr_sweep",
    "make_epoch",
    "make_evaluate",
    "make_train_step",
    "models",
    "nn",
    "pool",
    "prune",
    "schedules",
    "serial",
    "sparse",
    "stability",
    "step_decay",
    "summary",
    "timing",
    "train",
    "windows",
]
