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
from funcnn.nn.conv import AvgPool, Conv2D, MaxPool
from funcnn.nn.dense import Dense
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
    "Sigmoid", "Tanh", "Arctan", "BinaryStep", "Relu", "PReLU", "ELU", "Softplus",
]
