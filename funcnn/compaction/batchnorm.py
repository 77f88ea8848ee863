"""BatchNorm and compaction: fold a BatchNorm into the Dense / Conv before it, or mask it with that layer."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import nn as nn_lib
from funcnn.compaction.shrink import _rebuild, _resized
from funcnn.compaction.trace import PRODUCERS

__all__ = ["fold_batchnorm", "mask_batchnorms"]

Array = jax.Array
Params = Any
Layer = nn_lib.Layer


def _affine(layer: Layer, p: Params, s: Params) -> tuple[Array, Array]:
    """A channelwise layer in inference mode as y = a * x + c, measured: c = f(0), a = f(1) - f(0)."""
    c_in = jnp.shape(jax.tree.leaves(s)[0])[-1]
    f = lambda v: layer.apply_with_state(p, s, jnp.full((1, c_in), v, jnp.float32), train=False)[0][0]
    return f(1.0) - f(0.0), f(0.0)


def fold_batchnorm(net: Layer, params: Params, state: Params) -> tuple[Layer, Params, Params]:
    """Fold each BatchNorm that directly follows a Dense or Conv layer into it, for inference.

    In inference mode BatchNorm is y = a * x + c per channel (a = scale / sqrt(var + eps),
    c = offset - mean * a), so conv-then-BN is one conv with w' = w * a, b' = b * a + c (b = 0 for
    a conv without bias). The BatchNorm becomes an `nn.Identity` (its params and state `{}`, its
    name `identity_<i>`), which keeps every other layer's name. Populations fold member by member.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn import compaction, nn
        >>> net = nn.serial(nn.Conv2D(3, 3, use_bias=False), nn.BatchNorm(), nn.Relu())
        >>> params, state = net.init(jax.random.key(0), (6, 6, 2)), net.init_state((6, 6, 2))
        >>> state["batchnorm_1"] = {"mean": jnp.array([0.1, -0.2, 0.3]), "var": jnp.array([2.0, 0.5, 1.0])}
        >>> folded_net, folded, folded_state = compaction.fold_batchnorm(net, params, state)
        >>> sorted(folded), sorted(folded["conv2d_0"])
        (['conv2d_0', 'identity_1', 'relu_2'], ['b', 'w'])
        >>> x = jax.random.normal(jax.random.key(1), (2, 6, 6, 2))
        >>> y, _ = net.apply_with_state(params, state, x)
        >>> bool(jnp.allclose(folded_net.apply(folded, x), y, atol=1e-5))
        True
    """
    changes: dict[tuple[str, ...], Layer] = {}

    def walk(layer: Layer, p: Params, s: Params, path: tuple[str, ...]) -> tuple[Params, Params]:
        if layer.kind in ("serial", "parallel", "residual"):
            names = ("main", "shortcut") if layer.kind == "residual" else nn_lib.layer_names(layer.layers)
            p, s = dict(p), dict(s)
            for i, (name, sub) in enumerate(zip(names, layer.layers, strict=True)):
                p[name], s[name] = walk(sub, p[name], s[name], (*path, name))
                if layer.kind != "serial" or i == 0 or sub.kind != "batchnorm":
                    continue
                prev, before = layer.layers[i - 1], names[i - 1]
                if prev.kind not in PRODUCERS or path + (before,) in changes:
                    continue
                lead = np.ndim(s[name]["mean"]) - 1  # 1 for a population
                measure = jax.vmap(functools.partial(_affine, sub)) if lead else functools.partial(_affine, sub)
                a, c = measure(p[name], s[name])
                q = dict(p[before])
                b = q.get("b", jnp.zeros_like(c))
                q["w"] = q["w"] * a.reshape(a.shape[:lead] + (1,) * (q["w"].ndim - 1 - lead) + a.shape[lead:])
                q["b"] = b * a + c
                changes[path + (before,)] = _resized(prev, int(a.shape[-1]), biased=True)
                changes[path + (name,)] = nn_lib.Identity()
                p[before] = q
                new = f"identity_{i}"
                p = {new if k == name else k: ({} if k == name else v) for k, v in p.items()}
                s = {new if k == name else k: ({} if k == name else v) for k, v in s.items()}
            return p, s
        return p, s

    new_params, new_state = walk(net, params, state, ())
    return _rebuild(net, lambda path, layer: changes.get(path, layer)), new_params, new_state


def mask_batchnorms(net: Layer, masks: Params) -> Params:
    """Masks whose BatchNorm right after a Dense / Conv loses its scale and offset on the channels
    that layer lost whole: such a channel's BatchNorm then outputs exactly 0 (0 * x + 0, in training
    and in inference), ReLU(0) = 0, and `compact` can remove it. The BatchNorm counterpart of
    `mask_dead_biases`, for convolutions without bias. Walks `serial` and `Residual`; one network's
    masks (no member axis).

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn import compaction, nn, prune
        >>> net = nn.serial(nn.Conv2D(2, 1, use_bias=False), nn.BatchNorm(), nn.Relu())
        >>> masks = prune.ones(net.init(jax.random.key(0), (4, 4, 1)))
        >>> masks["conv2d_0"]["w"] = np.array([[[[True, False]]]])  # output channel 1 pruned whole
        >>> compaction.mask_batchnorms(net, masks)["batchnorm_1"]["scale"].tolist()
        [True, False]
    """

    def walk(layer: Layer, m: Params) -> Params:
        if layer.kind == "serial":
            names = nn_lib.layer_names(layer.layers)
            m = {k: walk(sub, m[k]) for k, sub in zip(names, layer.layers, strict=True)} | {
                k: v for k, v in m.items() if k not in names
            }
            for i in range(1, len(names)):
                prev, cur = layer.layers[i - 1], layer.layers[i]
                if cur.kind != "batchnorm" or prev.kind not in PRODUCERS or "w" not in m[names[i - 1]]:
                    continue
                w = np.asarray(m[names[i - 1]]["w"])
                alive = np.any(w.reshape(-1, w.shape[-1]), axis=0)
                m[names[i]] = {k: np.asarray(v) & alive for k, v in m[names[i]].items()}
            return m
        if layer.kind == "residual":
            return {k: walk(sub, m[k]) for k, sub in zip(("main", "shortcut"), layer.layers, strict=True)}
        return m

    return walk(net, masks)
