"""The MNIST-1D nets, in PyTorch's default init: the lottery notebook's residual MLP and the paper's CNN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from funcnn import nn
from funcnn.models.inits import TORCH_W_INIT, torch_bias_init

__all__ = ["mnist1d_cnn", "resmlp"]


def _torch_dense(features: int) -> nn.Layer:
    """Dense(features) with PyTorch's nn.Linear default init: w and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    base = nn.Dense(features, w_init=TORCH_W_INIT)

    def init(key: jax.Array, input_shape: tuple[int, ...]) -> Any:
        base.output_shape(input_shape)  # validates the rank
        (fan_in,) = tuple(input_shape)
        return nn.Dense(features, w_init=TORCH_W_INIT, b_init=torch_bias_init(fan_in)).init(key, input_shape)

    return nn.Layer("dense", init, base.apply, base.output_shape)


def resmlp(n_classes: int = 10, width: int = 500, torch_init: bool = True) -> nn.Layer:
    """The MNIST-1D lottery notebook's SparseMLP: h = relu(l1(x)); h = h + relu(l2(h)); out = l3(h).

    serial(Dense(width), Relu(), Residual(serial(Dense(width), Relu())), Dense(n_classes)); params
    "dense_0", "residual_2/main/dense_0", "dense_3" (each {"w", "b"}). x: (*batch, d) -> (*batch, n_classes);
    on MNIST-1D's (40,) inputs with the defaults: 20,500 + 250,500 + 5,010 = 276,010 params.
    torch_init: PyTorch's nn.Linear default (the notebook's), w and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in));
    False: Glorot normal weights and zero biases.

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.resmlp()
        >>> params = jax.eval_shape(lambda k: net.init(k, (40,)), jax.random.key(0))  # shapes only
        >>> nn.count_params(params), net.output_shape((40,))
        (276010, (10,))
    """
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"resmlp: width must be a positive int, got width={width!r}")
    dense: Callable[[int], nn.Layer]
    if torch_init:
        dense = _torch_dense
    else:
        dense = lambda f: nn.Dense(f, w_init=jax.nn.initializers.glorot_normal())
    return nn.serial(dense(width), nn.Relu(), nn.Residual(nn.serial(dense(width), nn.Relu())), dense(n_classes))


def mnist1d_cnn(n_classes: int = 10, channels: int = 25, length: int = 40, *, impl: str = "auto") -> nn.Layer:
    """The MNIST-1D paper's CNN (greydanus/mnist1d ConvBase): three Conv1D(channels) with ReLU, then Dense.

    x: (*batch, length) -> Reshape (length, 1) -> Conv1D(channels, 5, stride 2, padding 1) -> ReLU ->
    Conv1D(channels, 3, stride 2, padding 1) -> ReLU -> Conv1D(channels, 3, stride 2, padding 1) -> ReLU
    -> Flatten -> Dense(n_classes). Lengths 40 -> 19 -> 10 -> 5. PyTorch's default init (w and b ~
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))), as the paper's. Defaults on (40,): 5,210 params
    (150 + 1,900 + 1,900 + 1,260); about 94% test accuracy on MNIST-1D (the paper's figure; see
    experiments/mnist1d_cnn.py). impl: the convolutions' implementation (`nn.Conv1D`'s).

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.mnist1d_cnn()
        >>> params = jax.eval_shape(lambda k: net.init(k, (40,)), jax.random.key(0))  # shapes only
        >>> nn.count_params(params), net.output_shape((40,))
        (5210, (10,))
    """
    for name, v in (("n_classes", n_classes), ("channels", channels), ("length", length)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"mnist1d_cnn: {name} must be a positive int, got {name}={v!r}")

    def conv(k: int, c_in: int) -> nn.Layer:
        return nn.Conv1D(
            channels, k, stride=2, padding=1, w_init=TORCH_W_INIT, b_init=torch_bias_init(k * c_in), impl=impl
        )

    n1 = (length + 2 - 5) // 2 + 1
    n3 = ((n1 + 2 - 3) // 2 + 1 + 2 - 3) // 2 + 1
    if n1 < 1 or n3 < 1:
        raise ValueError(f"mnist1d_cnn: length must be at least 3, got length={length!r}")
    return nn.serial(
        nn.Reshape((length, 1), ndim=1),
        conv(5, 1),
        nn.Relu(),
        conv(3, channels),
        nn.Relu(),
        conv(3, channels),
        nn.Relu(),
        nn.Flatten(ndim=2),
        nn.Dense(n_classes, w_init=TORCH_W_INIT, b_init=torch_bias_init(n3 * channels)),
    )
