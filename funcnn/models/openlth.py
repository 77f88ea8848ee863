"""OpenLTH's CIFAR networks with BatchNorm state: ResNet-`depth` (ResNet-20) and VGG (VGG-11, VGG-16)."""

from __future__ import annotations

from collections.abc import Sequence

from funcnn import nn
from funcnn.models.inits import BN_SCALE_INIT, KAIMING_NORMAL

__all__ = ["VGG11_PLAN", "VGG16_PLAN", "resnet", "resnet20", "vgg", "vgg11", "vgg16"]


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
