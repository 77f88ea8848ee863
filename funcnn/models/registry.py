"""Every named network: `MODELS` (name -> factory) and `build(name)`, which also parses 'mlp-H1-H2-...',
'resnet-D-W' and 'vgg16-W' / 'vgg11-W'.
"""

from __future__ import annotations

from collections.abc import Callable

from funcnn import nn
from funcnn.models.convnets import cnn, conv2, conv4, conv6, lenet5
from funcnn.models.mlps import lenet_300_100, mlp
from funcnn.models.mnist1d_nets import mnist1d_cnn, resmlp
from funcnn.models.openlth import VGG11_PLAN, VGG16_PLAN, resnet, resnet20, vgg, vgg11, vgg16

__all__ = ["MODELS", "build"]

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
