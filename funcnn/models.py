"""Named networks: MLPs, LeNet-300-100, LeNet-5, the lottery-ticket paper's Conv-2/4/6, OpenLTH's
CIFAR ResNets and VGGs (with BatchNorm), and the MNIST-1D lottery notebook's residual MLP and CNN.

Each factory returns a `Layer`; its `init(key, input_shape)` takes the input shape without the batch
axes: (H, W, C) for the image nets, (40,) for the MNIST-1D nets. The ResNets and VGGs carry
BatchNorm state: use `net.init_state(input_shape)` and `net.apply_with_state`, or pass the net
itself to `funcnn.fit` / `funcnn.train.make_train_step`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from funcnn import nn

__all__ = [
    "MODELS",
    "VGG11_PLAN",
    "VGG16_PLAN",
    "build",
    "cnn",
    "conv2",
    "conv4",
    "conv6",
    "lenet5",
    "lenet_300_100",
    "mlp",
    "mnist1d_cnn",
    "resmlp",
    "resnet",
    "resnet20",
    "vgg",
    "vgg11",
    "vgg16",
]

# PyTorch's kaiming_normal_ (fan_in, gain sqrt(2), untruncated normal): OpenLTH's conv/linear init.
# jax.nn.initializers.he_normal() has the same variance but draws from a truncated normal.
KAIMING_NORMAL = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")
# OpenLTH's BatchNorm init: scale (gamma) ~ U[0, 1), offset (beta) = 0.
BN_SCALE_INIT = jax.nn.initializers.uniform(1.0)
# PyTorch's default nn.Linear / nn.Conv weight init, kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
TORCH_W_INIT = jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int) -> Callable[..., jax.Array]:
    """PyTorch's default bias init for a layer with `fan_in` inputs: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


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


def _bn() -> nn.Layer:
    return nn.BatchNorm(momentum=0.1, eps=1e-5, scale_init=BN_SCALE_INIT)


def _conv3x3(width: int, stride: int = 1, use_bias: bool = False, impl: str = "auto") -> nn.Layer:
    # padding 1 on each side, as PyTorch's conv3x3: with stride 2 it keeps the 3x3 window centred on
    # the pixels the 1x1 projection shortcut samples (XLA's "SAME" would pad (0, 1) instead).
    return nn.Conv2D(width, 3, stride=stride, padding=1, w_init=KAIMING_NORMAL, use_bias=use_bias, impl=impl)


def _resnet_block(width: int, stride: int, project: bool, impl: str) -> list[nn.Layer]:
    main = nn.serial(_conv3x3(width, stride, impl=impl), _bn(), nn.Relu(), _conv3x3(width, impl=impl), _bn())
    shortcut = (
        nn.serial(nn.Conv2D(width, 1, stride=stride, w_init=KAIMING_NORMAL, use_bias=False, impl=impl), _bn())
        if project
        else None
    )
    return [nn.Residual(main, shortcut), nn.Relu()]


def resnet(depth: int = 20, width: int = 16, n_classes: int = 10, *, impl: str = "auto") -> nn.Layer:
    """OpenLTH's CIFAR ResNet-`depth` (He et al. 2016, section 4.2), with BatchNorm state.

    depth = 6n + 2: a stem conv3x3(width) -> BN -> ReLU; three stages of n residual blocks of widths
    width, 2*width, 4*width (stride 2 at the first block of stages 2 and 3); global average pool ->
    Dense(n_classes). Block: x -> relu(main(x) + shortcut(x)), main = conv3x3 (stride s, no bias) ->
    BN -> ReLU -> conv3x3 (no bias) -> BN; shortcut = identity, or conv1x1 (stride 2, no bias) -> BN
    where the shape changes (the first block of stages 2 and 3).

    x: (*batch, H, W, C) -> (*batch, n_classes), any H, W >= 1 (28x28x1 -> 28, 14, 7 -> 4; 32x32x3 ->
    32, 16, 8). Conv and dense weights: Kaiming normal (PyTorch's kaiming_normal_); BN scale ~ U[0, 1),
    offset 0; dense bias 0; BN momentum 0.1, eps 1e-5.

    Param paths: stem "conv2d_0", "batchnorm_1"; block b (0-based) is "residual_{3 + 2b}" (its ReLU
    "relu_{4 + 2b}") with "main/conv2d_0", "main/batchnorm_1", "main/conv2d_3", "main/batchnorm_4" and,
    for projections, "shortcut/conv2d_0", "shortcut/batchnorm_1"; then "globalavgpool_{6n + 3}" and
    "dense_{6n + 4}" ("dense_22" for ResNet-20).

    ResNet-20 (depth 20, width 16, 10 classes): 270,896 conv/dense weights on 32x32x3 (OpenLTH's
    ~271K), 270,608 on 28x28x1; 272,186 params in all on 28x28x1 (with 1,568 BN params over 784
    channels and 10 dense biases); 1,568 state entries (BN running mean and var).
    impl: the convolutions' implementation (`nn.Conv2D`'s; "auto" is mixed on CPU).

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.resnet(depth=8, width=4)  # one block per stage
        >>> params = jax.eval_shape(lambda k: net.init(k, (8, 8, 3)), jax.random.key(0))  # shapes only
        >>> nn.count_params(params), net.output_shape((8, 8, 3))
        (5214, (10,))
        >>> sorted(params["residual_5"])  # the first block of stage 2 projects its shortcut
        ['main', 'shortcut']
        >>> nn.count_params(net.init_state((8, 8, 3)))  # BN running means and variances
        168
    """
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"resnet: depth must be 6n + 2 for an integer n >= 1 (8, 14, 20, 32, 44, 56, 110), got depth={depth!r}"
        )
    for name, v in (("width", width), ("n_classes", n_classes)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"resnet: {name} must be a positive int, got {name}={v!r}")
    n = (depth - 2) // 6
    layers = [nn.Conv2D(width, 3, padding=1, w_init=KAIMING_NORMAL, use_bias=False, impl=impl), _bn(), nn.Relu()]
    for stage, w in enumerate((width, 2 * width, 4 * width)):
        for b in range(n):
            down = stage > 0 and b == 0
            layers += _resnet_block(w, 2 if down else 1, project=down, impl=impl)
    layers += [nn.GlobalAvgPool(), nn.Dense(n_classes, w_init=KAIMING_NORMAL)]
    return nn.serial(*layers)


def resnet20(n_classes: int = 10, *, impl: str = "auto") -> nn.Layer:
    """ResNet-20: `resnet(20, 16, n_classes)` (270,608 conv/dense weights on 28x28x1).

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.resnet20()
        >>> params = jax.eval_shape(lambda k: net.init(k, (28, 28, 1)), jax.random.key(0))  # shapes only
        >>> nn.count_params(params), net.output_shape((28, 28, 1))
        (272186, (10,))
    """
    return resnet(20, 16, n_classes, impl=impl)


VGG11_PLAN = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512)
VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


def vgg(plan: Sequence[int | str], n_classes: int = 10, *, impl: str = "auto") -> nn.Layer:
    """OpenLTH's CIFAR VGG with BatchNorm: for each entry of `plan`, an int w is conv3x3(w, padding 1,
    with bias) -> BN -> ReLU and 'M' is a 2x2 max-pool; then global average pool -> Dense(n_classes).

    x: (*batch, H, W, C) -> (*batch, n_classes); each 'M' halves H and W (floor), so 28x28 inputs go
    28 -> 14 -> 7 -> 3 -> 1 through VGG-16's four pools (32x32: 32 -> 16 -> 8 -> 4 -> 2).
    Init as in `resnet`: Kaiming normal weights, BN scale ~ U[0, 1) and offset 0. Conv and dense
    biases start at 0 (PyTorch's default draws them small and uniform; a bias before BN cancels anyway).
    impl: the convolutions' implementation (`nn.Conv2D`'s; "auto" is mixed on CPU).

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.vgg([4, "M", 8], n_classes=3)  # conv-BN-ReLU, pool, conv-BN-ReLU, avg pool, dense
        >>> params = jax.eval_shape(lambda k: net.init(k, (8, 8, 3)), jax.random.key(0))  # shapes only
        >>> sorted(name for name in params if params[name])  # the layers that hold params
        ['batchnorm_1', 'batchnorm_5', 'conv2d_0', 'conv2d_4', 'dense_8']
        >>> nn.count_params(params), net.output_shape((8, 8, 3))
        (459, (3,))
    """
    plan = list(plan)
    if (
        not plan
        or plan[0] == "M"
        or any(not (p == "M" or (isinstance(p, int) and not isinstance(p, bool) and p > 0)) for p in plan)
    ):
        raise ValueError(
            f"vgg: plan must be a list of positive ints (conv widths) and 'M' (max-pool), starting "
            f"with a width, got plan={plan!r}"
        )
    layers = []
    for p in plan:
        # plan holds only 'M' and ints (checked above)
        layers += [nn.MaxPool(2)] if isinstance(p, str) else [_conv3x3(p, use_bias=True, impl=impl), _bn(), nn.Relu()]
    layers += [nn.GlobalAvgPool(), nn.Dense(n_classes, w_init=KAIMING_NORMAL)]
    return nn.serial(*layers)


def vgg11(n_classes: int = 10, *, impl: str = "auto") -> nn.Layer:
    """VGG-11 with BN, OpenLTH's plan [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512].

    28x28x1: 9,229,962 params (9,221,696 conv/dense weights); 5,504 state entries.

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.vgg11()
        >>> params = jax.eval_shape(lambda k: net.init(k, (28, 28, 1)), jax.random.key(0))  # shapes only
        >>> nn.count_params(params), net.output_shape((28, 28, 1))
        (9229962, (10,))
    """
    return vgg(VGG11_PLAN, n_classes, impl=impl)


def vgg16(n_classes: int = 10, *, impl: str = "auto") -> nn.Layer:
    """VGG-16 with BN, OpenLTH's plan [64, 64, M, 128, 128, M, 256 x3, M, 512 x3, M, 512 x3].

    32x32x3: 14,728,266 params (14,715,584 conv/dense weights, of which the 5,120 of the final dense
    layer OpenLTH never prunes); 28x28x1: 14,727,114 params; 8,448 state entries.

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.vgg16()
        >>> params = jax.eval_shape(lambda k: net.init(k, (32, 32, 3)), jax.random.key(0))  # shapes only
        >>> nn.count_params(params), net.output_shape((32, 32, 3))
        (14728266, (10,))
    """
    return vgg(VGG16_PLAN, n_classes, impl=impl)


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


# The networks `build` knows by name, each a factory called with its defaults.
MODELS: dict[str, Callable[..., nn.Layer]] = {
    "lenet_300_100": lenet_300_100,
    "lenet5": lenet5,
    "cnn": cnn,
    "conv2": conv2,
    "conv4": conv4,
    "conv6": conv6,
    "resnet20": resnet20,
    "vgg11": vgg11,
    "vgg16": vgg16,
    "resmlp": resmlp,
    "mnist1d_cnn": mnist1d_cnn,
}


def build(name: str) -> nn.Layer:
    """A network by name: a key of MODELS, 'mlp-H1-H2-...' for an MLP with those hidden widths,
    'resnet-D-W' for `resnet(depth=D, width=W)` (e.g. 'resnet-56-16'), or 'vgg16-W' / 'vgg11-W' for
    that plan with its widths scaled so that the first is W (e.g. 'vgg16-16': 16 ... 128).

    Example:
        >>> import jax
        >>> from funcnn import models, nn
        >>> net = models.build("mlp-32-16")  # Flatten -> 32 -> 16 -> 10
        >>> params = jax.eval_shape(lambda k: net.init(k, (28, 28, 1)), jax.random.key(0))  # shapes only
        >>> nn.count_params(params)  # (784 + 1) * 32 + (32 + 1) * 16 + (16 + 1) * 10
        25818
        >>> models.build("resnet-14-8").output_shape((32, 32, 3))
        (10,)
    """
    if name in MODELS:
        return MODELS[name]()
    if name.startswith("mlp-"):
        try:
            hidden = tuple(int(h) for h in name[4:].split("-"))
        except ValueError:
            hidden = ()
        if hidden and all(h > 0 for h in hidden):
            return mlp(hidden, flatten=True)
    if name.startswith("resnet-"):
        parts = name.split("-")[1:]
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return resnet(int(parts[0]), int(parts[1]))  # its ValueError names a bad depth
    for plan_name, plan in (("vgg16-", VGG16_PLAN), ("vgg11-", VGG11_PLAN)):
        w = name[len(plan_name) :]
        if name.startswith(plan_name) and w.isdigit() and int(w) > 0:
            return vgg([p if isinstance(p, str) else max(1, p * int(w) // 64) for p in plan])
    raise ValueError(
        f"unknown model name={name!r}; expected one of {sorted(MODELS)}, 'mlp-H1-H2-...', 'resnet-D-W' "
        "(depth D = 6n + 2, width W) or 'vgg16-W' / 'vgg11-W' (first width W)"
    )
