"""Named networks: MLPs, LeNet-300-100, LeNet-5 and the lottery-ticket paper's Conv-2/4/6.

Each factory returns a `Layer`; its `init(key, input_shape)` takes the input shape (H, W, C).
"""
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


def lenet5(n_classes: int = 10) -> nn.Layer:
    """LeNet-5 with ReLU and max-pooling: conv 6@5x5 (SAME) -> pool -> conv 16@5x5 -> pool ->
    120 -> 84 -> n_classes. Any (H, W, C) input large enough (28x28x1: 61,706 params)."""
    return nn.serial(
        nn.Conv2D(6, 5, padding="SAME"), nn.Relu(), nn.MaxPool(2),
        nn.Conv2D(16, 5), nn.Relu(), nn.MaxPool(2),
        nn.Flatten(ndim=3), nn.Dense(120), nn.Relu(), nn.Dense(84), nn.Relu(), nn.Dense(n_classes),
    )


def cnn(widths: Sequence[int] = (16, 32), dense: int = 128, n_classes: int = 10) -> nn.Layer:
    """A small CNN: for each width, conv w@3x3 (SAME) -> ReLU -> 2x2 max-pool; then dense -> n_classes.

    On (28, 28, 1) with the defaults: 206,922 params; ~90% on Fashion-MNIST in 3-4 epochs.
    """
    layers = []
    for w in widths:
        layers += [nn.Conv2D(w, 3, padding="SAME"), nn.Relu(), nn.MaxPool(2)]
    layers += [nn.Flatten(ndim=3), nn.Dense(dense), nn.Relu(), nn.Dense(n_classes)]
    return nn.serial(*layers)


def _vgg(widths: Sequence[int], n_classes: int) -> nn.Layer:
    layers = []
    for w in widths:
        layers += [nn.Conv2D(w, 3, padding="SAME"), nn.Relu(), nn.Conv2D(w, 3, padding="SAME"), nn.Relu(), nn.MaxPool(2)]
    layers += [nn.Flatten(ndim=3), nn.Dense(256), nn.Relu(), nn.Dense(256), nn.Relu(), nn.Dense(n_classes)]
    return nn.serial(*layers)


def conv2(n_classes: int = 10) -> nn.Layer:
    """Frankle & Carbin's Conv-2: 64-64 3x3 convs, 2x2 max-pool, then dense 256-256-n_classes."""
    return _vgg((64,), n_classes)


def conv4(n_classes: int = 10) -> nn.Layer:
    """Conv-4: 64-64, pool, 128-128, pool, dense 256-256-n_classes."""
    return _vgg((64, 128), n_classes)


def conv6(n_classes: int = 10) -> nn.Layer:
    """Conv-6: 64-64, pool, 128-128, pool, 256-256, pool, dense 256-256-n_classes."""
    return _vgg((64, 128, 256), n_classes)


MODELS = {
    "lenet_300_100": lenet_300_100,
    "lenet5": lenet5,
    "cnn": cnn,
    "conv2": conv2,
    "conv4": conv4,
    "conv6": conv6,
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
