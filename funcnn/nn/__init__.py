"""Layers as `init`/`apply` pairs of pure functions, and `serial` to compose them."""
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
from funcnn.nn.layer import Layer, ShapeError, count_params, layer_names, serial, summary

__all__ = [
    "Layer", "ShapeError", "serial", "summary", "count_params", "layer_names",
    "Dense", "Flatten", "Conv2D", "MaxPool", "AvgPool",
    "Sigmoid", "Tanh", "Arctan", "BinaryStep", "Relu", "PReLU", "ELU", "Softplus",
]
