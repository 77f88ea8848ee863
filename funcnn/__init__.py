"""funcnn: neural networks as pure functions over parameter pytrees, in JAX.

The public modules (each `from funcnn import <name>`; the documentation site's API reference groups
them by topic):

- layers and nets: nn (layers as init/apply pairs, combinators, serial), activations, models (MLPs,
  LeNet, Conv-2/4/6, ResNet, VGG), conv (convolution as functions), pool (max and average pooling),
  windows (padding, strides and output sizes for both), kernels (the course's image kernels);
- training: train (TrainState, steps, epochs, fit, populations), schedules (learning-rate decay),
  losses, checks (argument checks that hold inside compiled code too);
- pruning: prune (masks, scores, pruning at init, one-shot reconstruction), compaction (pruned nets
  made smaller), sparse (sparse inference);
- studies: lottery (IMP studies: Spec, run, arms), sparsity (sparse training and supermasks),
  stability (linear mode connectivity), interpolation (the path between two nets, its error barrier);
- models from elsewhere: interop (flax.nnx, flax.linen and equinox models as funcnn layers);
- data and io: data (data sets with checksums; CIFAR-10 is `funcnn.data.cifar10`), io (verified
  checkpoints), compile_cache (JAX's persistent compilation cache, a clock of compiles);
- scale-out: distributed (sharding over devices and hosts), cpu (opt-in XLA:CPU flags for
  populations), timing (seconds per call of jitted functions).

`import funcnn` imports them all except interop and sparsity, which load on their own import
(`from funcnn import sparsity`). Deprecated modules, kept for one release (importing one warns, naming
its replacement): funcnn.cifar10 (now funcnn.data.cifar10), funcnn.nn.conv (funcnn.nn.conv_layers) and
funcnn.io_leaves (funcnn.io).
"""

import importlib as _importlib
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from typing import Any as _Any

from funcnn import (
    activations,
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


def __getattr__(name: str) -> _Any:
    """`funcnn.cifar10`, the old home of `funcnn.data.cifar10`, for one release: importing it warns."""
    if name == "cifar10":
        return _importlib.import_module("funcnn.cifar10")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
