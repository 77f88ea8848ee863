"""Convolutional nets for images: LeNet-5, a small CNN, and the lottery-ticket paper's Conv-2/4/6."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from funcnn import nn

__all__ = ["cnn", "conv2", "conv4", "conv6", "lenet5"]


def lenet5(n_classes: int = 10, *, impl: str = "auto") -> nn.Layer:
    """LeNet-5 with ReLU and max-pooling: conv 6@5x5 (SAME) -> pool -> conv 16@5x5 -> pool ->
    120 -> 84 -> n_classes. Any (H, W, C) input large enough (28x28x1: 61,706 params).
    impl: the convolutions' implementation (`nn.Conv2D`'s; "auto" is mixed on CPU).

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.lenet5()
        >>> params = jax.eval_shape(lambda k: net.init(k, (28, 28, 1)), jax.random.key(0))  # shapes only
        >>> nn.count_params(params), net.output_shape((28, 28, 1))
        (61706, (10,))
    """
    return nn.serial(
        nn.Conv2D(6, 5, padding="SAME", impl=impl),
        nn.Relu(),
        nn.MaxPool(2),
        nn.Conv2D(16, 5, impl=impl),
        nn.Relu(),
        nn.MaxPool(2),
        nn.Flatten(ndim=3),
        nn.Dense(120),
        nn.Relu(),
        nn.Dense(84),
        nn.Relu(),
        nn.Dense(n_classes),
    )


def cnn(widths: Sequence[int] = (16, 32), dense: int = 128, n_classes: int = 10, *, impl: str = "auto") -> nn.Layer:
    """A small CNN: for each width, conv w@3x3 (SAME) -> ReLU -> 2x2 max-pool; then dense -> n_classes.

    On (28, 28, 1) with the defaults: 206,922 params; ~90% on Fashion-MNIST in 3-4 epochs.
    impl: the convolutions' implementation (`nn.Conv2D`'s; "auto" is mixed on CPU).

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.cnn()
        >>> params = jax.eval_shape(lambda k: net.init(k, (28, 28, 1)), jax.random.key(0))  # shapes only
        >>> nn.count_params(params), net.output_shape((28, 28, 1))
        (206922, (10,))
    """
    layers = []
    for w in widths:
        layers += [nn.Conv2D(w, 3, padding="SAME", impl=impl), nn.Relu(), nn.MaxPool(2)]
    layers += [nn.Flatten(ndim=3), nn.Dense(dense), nn.Relu(), nn.Dense(n_classes)]
    return nn.serial(*layers)


def _check_dropout(dropout: float, name: str) -> float:
    if not isinstance(dropout, numbers.Real) or isinstance(dropout, bool) or not 0 <= float(dropout) < 1:
        raise ValueError(
            f"{name}: dropout must be in [0, 1) (the probability of dropping a unit), got dropout={dropout!r}"
        )
    return float(dropout)


def _conv_n(widths: Sequence[int], n_classes: int, dropout: float, name: str, impl: str) -> nn.Layer:
    dropout = _check_dropout(dropout, name)
    # dropout=0 adds no layer, so the param names stay those of the nets without dropout.
    drop = [nn.Dropout(dropout)] if dropout > 0 else []
    layers = []
    for w in widths:
        layers += [
            nn.Conv2D(w, 3, padding="SAME", impl=impl),
            nn.Relu(),
            nn.Conv2D(w, 3, padding="SAME", impl=impl),
            nn.Relu(),
            nn.MaxPool(2),
        ]
    layers += [
        nn.Flatten(ndim=3),
        nn.Dense(256),
        nn.Relu(),
        *drop,
        nn.Dense(256),
        nn.Relu(),
        *drop,
        nn.Dense(n_classes),
    ]
    return nn.serial(*layers)


def conv2(n_classes: int = 10, dropout: float = 0.0, *, impl: str = "auto") -> nn.Layer:
    """Frankle & Carbin's Conv-2: 64-64 3x3 convs, 2x2 max-pool, then dense 256-256-n_classes.

    dropout: Dropout(dropout) after each hidden dense ReLU (their dropout experiments use 0.5); 0
    (default) adds no layer. On (28, 28, 1): 3,317,450 params. impl: the convolutions'
    implementation (`nn.Conv2D`'s; "auto" is mixed on CPU, fast inside compiled loops).

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.conv2(dropout=0.5)
        >>> params = jax.eval_shape(lambda k: net.init(k, (28, 28, 1)), jax.random.key(0))  # shapes only
        >>> nn.count_params(params), net.output_shape((28, 28, 1))
        (3317450, (10,))
    """
    return _conv_n((64,), n_classes, dropout, "conv2", impl)


def conv4(n_classes: int = 10, dropout: float = 0.0, *, impl: str = "auto") -> nn.Layer:
    """Conv-4: 64-64, pool, 128-128, pool, dense 256-256-n_classes; dropout and impl as in `conv2`.

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.conv4()
        >>> params = jax.eval_shape(lambda k: net.init(k, (28, 28, 1)), jax.random.key(0))  # shapes only
        >>> nn.count_params(params), net.output_shape((28, 28, 1))
        (1933258, (10,))
    """
    return _conv_n((64, 128), n_classes, dropout, "conv4", impl)


def conv6(n_classes: int = 10, dropout: float = 0.0, *, impl: str = "auto") -> nn.Layer:
    """Conv-6: 64-64, pool, 128-128, pool, 256-256, pool, dense 256-256-n_classes; dropout and impl as in `conv2`.

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.conv6()
        >>> params = jax.eval_shape(lambda k: net.init(k, (28, 28, 1)), jax.random.key(0))  # shapes only
        >>> nn.count_params(params), net.output_shape((28, 28, 1))
        (1802698, (10,))
    """
    return _conv_n((64, 128, 256), n_classes, dropout, "conv6", impl)
