"""Layers as `init`/`apply` pairs of pure functions (plus state for BatchNorm), and combinators."""
from funcnn.nn.activation_layers import (
    ELU,
    Arctan,
    BinaryStep,
    Flatten,
    PReLU,
    Relu,
    Sigmoid,
    Softplus,
    Tanh,
)
from funcnn.nn.combinators import FanInConcat, FanInSum, FanOut, Identity, Parallel, Residual
from funcnn.nn.activation_layers import Reshape
from funcnn.nn.conv import AvgPool, Conv2D, MaxPool
from funcnn.nn.conv import Conv1D, GlobalAvgPool
from funcnn.nn.dense import Dense
from funcnn.nn.dropout import Dropout
from funcnn.nn.norm import BatchNorm, LayerNorm
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

__all__ = [
    "Layer", "LayerError", "ShapeError", "StateError", "serial", "stateful", "has_state", "summary",
    "count_params", "layer_names",
    "Dense", "Flatten", "Conv2D", "MaxPool", "AvgPool",
    "Dropout", "BatchNorm", "LayerNorm", "GlobalAvgPool", "Conv1D", "Reshape",
    "Identity", "FanOut", "FanInSum", "FanInConcat", "Parallel", "Residual",
    "Sigmoid", "Tanh", "Arctan", "BinaryStep", "Relu", "PReLU", "ELU", "Softplus",
]
