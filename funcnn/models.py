"""Named networks: MLPs, LeNet-300-100, LeNet-5 and the lottery-ticket paper's Conv-2/4/6."""
from __future__ import annotations

from typing import Sequence

import jax

from funcnn import nn


def mlp(hidden: Sequence[int], n_classes: int = 10, flatten: bool = False) -> nn.Layer:
    """Dense-ReLU stack: [Flatten] -> (Dense(h) -> Relu) for h in hidden -> Dense(n_classes).

    Dense weights use the Gaussian Glorot init (Frankle & Carbin's choice), biases zero.
    """
    layers = [nn.Flatten()] if flatten else []
    for h in hidden:
        layers += [nn.Dense(h, w_init=jax.nn.initializers.glorot_normal()), nn.Relu()]
    layers.append(nn.Dense(n_classes, w_init=jax.nn.initializers.glorot_normal()))
    return nn.serial(*layers)


def lenet_300_100(n_classes: int = 10) -> nn.Layer:
    """784-300-100-10 ReLU MLP on (28, 28, 1) images (266,200 weights, 266,610 params)."""
    return mlp((300, 100), n_classes, flatten=True)


MODELS = {
    "lenet_300_100": lenet_300_100,
}


def build(name: str) -> nn.Layer:
    """A network by name: a key of MODELS, or 'mlp-H1-H2-...' for an MLP with those hidden widths."""
    if name in MODELS:
        return MODELS[name]()
    if name.startswith("mlp-"):
        try:
            hidden = tuple(int(h) for h in name[4:].split("-"))
        except ValueError:
            hidden = ()
        if hidden and all(h > 0 for h in hidden):
            return mlp(hidden, flatten=True)
    raise ValueError(f"unknown model name={name!r}; expected one of {sorted(MODELS)} or 'mlp-H1-H2-...'")
