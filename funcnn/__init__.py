"""funcnn: neural networks as pure functions over parameter pytrees, in JAX."""
from funcnn import activations, data, losses, nn, schedules, train
from funcnn.nn import (
    ELU, Arctan, BinaryStep, Dense, Flatten, Layer, PReLU, Relu, Sigmoid, Softplus, Tanh, serial, summary,
)
from funcnn.schedules import Plateau, exponential_decay, step_decay
from funcnn.train import TrainState, fit, init_state, make_evaluate, make_train_step

__version__ = "0.1.0"
