"""Multi-layer perceptrons: `mlp` (any hidden widths) and LeNet-300-100."""

from __future__ import annotations

from collections.abc import Sequence

import jax

from funcnn import nn

__all__ = ["lenet_300_100", "mlp"]


def mlp(hidden: Sequence[int], n_classes: int = 10, flatten: bool = False) -> nn.Layer:
    """Dense-ReLU stack: [Flatten] -> (Dense(h) -> Relu) for h in hidden -> Dense(n_classes).

    Dense weights use the Gaussian Glorot init (Frankle & Carbin's choice), biases zero.
    flatten: a leading Flatten, for image inputs (H, W, C).

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.mlp((8,), n_classes=3)
        >>> params = jax.eval_shape(lambda k: net.init(k, (4,)), jax.random.key(0))  # shapes only
        >>> params["dense_0"]["w"].shape, params["dense_2"]["w"].shape  # 4 -> 8 hidden -> 3
        ((4, 8), (8, 3))
        >>> nn.count_params(params), net.output_shape((4,))  # (4 + 1) * 8 + (8 + 1) * 3
        (67, (3,))
    """
    layers = [nn.Flatten()] if flatten else []
    for h in hidden:
        layers += [nn.Dense(h, w_init=jax.nn.initializers.glorot_normal()), nn.Relu()]
    layers.append(nn.Dense(n_classes, w_init=jax.nn.initializers.glorot_normal()))
    return nn.serial(*layers)


def lenet_300_100(n_classes: int = 10) -> nn.Layer:
    """784-300-100-10 ReLU MLP on (28, 28, 1) images (266,200 weights, 266,610 params).

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.lenet_300_100()
        >>> params = jax.eval_shape(lambda k: net.init(k, (28, 28, 1)), jax.random.key(0))  # shapes only
        >>> nn.count_params(params), net.output_shape((28, 28, 1))
        (266610, (10,))
    """
    return mlp((300, 100), n_classes, flatten=True)
