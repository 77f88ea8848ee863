"""Layers as `init`/`apply` pairs of pure functions (plus state for BatchNorm), and combinators."""

from funcnn.nn.activation_layers import (
    ELU,
    Arctan,
    BinaryStep,
    Flatten,
    PReLU,
    Relu,
    Reshape,
    Sigmoid,
    Softplus,
    Tanh,
)
from funcnn.nn.combinators import FanInConcat, FanInSum, FanOut, Identity, Parallel, Residual
from funcnn.nn.conv_layers import AvgPool, Conv1D, Conv2D, GlobalAvgPool, MaxPool
from funcnn.nn.dense import Dense
from funcnn.nn.dropout import Dropout
from funcnn.nn.layer import (
    Layer,
    LayerError,
    ShapeError,
    StateError,
    count_params,
    has_state,
    layer_names,
    serial,
    stateful,
    summary,
)
from funcnn.nn.norm import BatchNorm, LayerNorm

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
    "LayerError",
    "LayerNorm",
    "MaxPool",
    "PReLU",
    "Parallel",
    "Relu",
    "Reshape",
    "Residual",
    "ShapeError",
    "Sigmoid",
    "Softplus",
    "StateError",
    "Tanh",
    "count_params",
    "has_state",
    "layer_names",
    "serial",
    "stateful",
    "summary",
]
