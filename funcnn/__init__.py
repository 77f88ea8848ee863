"""funcnn: neural networks as pure functions over parameter pytrees, in JAX.

The whole public API, by module: nn (layers, serial), activations, losses, conv, kernels, models,
train (TrainState, steps, fit), schedules, data, prune (masks), lottery (IMP studies), io
(verified checkpoints), distributed (sharding over devices and hosts).
"""
from funcnn import activations, conv, data, distributed, io, kernels, losses, lottery, models, nn, prune, schedules, train
from funcnn.nn import (
    ELU, Arctan, AvgPool, BinaryStep, Conv2D, Dense, Flatten, Layer, MaxPool, PReLU, Relu, Sigmoid, Softplus, Tanh,
    serial, summary,
)
from funcnn.schedules import Plateau, constant, exponential_decay, step_decay
from funcnn.train import TrainState, fit, init_state, lr_sweep, make_epoch, make_evaluate, make_train_step

__version__ = "0.1.0"

__all__ = [
    "activations", "conv", "data", "distributed", "io", "kernels", "losses", "lottery", "models", "nn", "prune",
    "schedules", "train",
    "Layer", "serial", "summary", "Dense", "Conv2D", "MaxPool", "AvgPool", "Flatten",
    "Sigmoid", "Tanh", "Arctan", "BinaryStep", "Relu", "PReLU", "ELU", "Softplus",
    "Plateau", "constant", "exponential_decay", "step_decay",
    "TrainState", "fit", "init_state", "lr_sweep", "make_epoch", "make_evaluate", "make_train_step",
]
