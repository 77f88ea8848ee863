"""Residual streams: the Dense / Conv layers whose channels are summed with another branch's."""

from __future__ import annotations

from funcnn import nn as nn_lib
from funcnn.compaction.trace import PRODUCERS

__all__ = ["stream_convs"]

Layer = nn_lib.Layer


def stream_convs(net: Layer) -> tuple[str, ...]:
    """The layers that write a residual stream: every Dense / Conv but those inside a `Residual`'s main
    branch before its last producer; paths as `prune.path_name` spells them.

    Their channels are summed with other branches', so one leaves only where every branch drops it.
    Structured pruning of a ResNet leaves them whole (e.g. `prune.structured(..., layer_rates=
    dict.fromkeys(stream_convs(net), 0))`) and prunes the inner convs (Li et al. 2017: the first layers
    of each residual block), whose channels `compact` removes.

    Example:
        >>> from funcnn import compaction, models
        >>> compaction.stream_convs(models.resnet(depth=8, width=4))[:4]  # the stem, then each block's last
        ('conv2d_0', 'residual_3/main/conv2d_3', 'residual_5/main/conv2d_3', 'residual_5/shortcut/conv2d_0')
    """
    out: list[str] = []

    def walk(layer: Layer, path: tuple[str, ...], inner: bool) -> None:
        if layer.kind == "serial":
            names = nn_lib.layer_names(layer.layers)
            producers = [i for i, sub in enumerate(layer.layers) if sub.kind in PRODUCERS]
            for i, (name, sub) in enumerate(zip(names, layer.layers, strict=True)):
                walk(sub, (*path, name), inner and bool(producers) and i != producers[-1])
        elif layer.kind == "residual":
            for name, sub in zip(("main", "shortcut"), layer.layers, strict=True):
                walk(sub, (*path, name), name == "main")
        elif layer.kind in PRODUCERS and not inner:
            out.append("/".join(path))

    walk(net, (), False)
    return tuple(out)
