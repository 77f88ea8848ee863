"""The probe pass: run the network once in inference mode and record how its channels flow.

Channels are numbered slots; a sum joins the slots it adds (union-find), and inputs, outputs and whatever a
barrier reads are fixed. `_removable` then names the slots that are dead out or dead in.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import nn as nn_lib

__all__ = ["CHANNELWISE", "PRODUCERS"]

Array = jax.Array
Params = Any
Layer = nn_lib.Layer


PRODUCERS = ("dense", "conv1d", "conv2d")
"""Layer kinds whose params {"w": (..., c_in, c_out), "b": (c_out,)} make new channels."""
CHANNELWISE = (
    *("sigmoid", "tanh", "arctan", "binary_step", "relu", "softplus", "elu", "prelu"),
    *("dropout", "identity", "maxpool", "avgpool", "globalavgpool", "batchnorm"),
)
"""Layer kinds that act on each channel alone (in inference mode), so they keep channels apart."""


class _Trace(NamedTuple):
    """What one probe pass through a network saw; channels are numbered "slots"."""

    parent: list[int]  # union-find over slots: a sum joins the slots it adds
    fixed: set[int]  # slots that must stay (inputs, outputs, read by a barrier)
    producers: dict[tuple[str, ...], np.ndarray]  # path -> the slot of each output channel
    channelwise: dict[tuple[str, ...], np.ndarray]  # path -> the slot of each channel it acts on
    consumers: dict[tuple[str, ...], tuple[Layer, Any, np.ndarray]]  # path -> (layer, its input x, slots)


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _new_slots(t: _Trace, n: int, fixed: bool = False) -> np.ndarray:
    start = len(t.parent)
    t.parent.extend(range(start, start + n))
    if fixed:
        t.fixed.update(range(start, start + n))
    return np.arange(start, start + n)


def _join(t: _Trace, a: np.ndarray, b: np.ndarray) -> None:
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        ri, rj = _find(t.parent, i), _find(t.parent, j)
        if ri != rj:
            t.parent[rj] = ri


def _fix(t: _Trace, sig: Any) -> None:
    for s in jax.tree.leaves(sig):
        t.fixed.update(np.asarray(s).tolist())


def _opaque(t: _Trace, y: Any) -> Any:
    return jax.tree.map(lambda a: _new_slots(t, a.shape[-1], fixed=True), y)


def _trace(t: _Trace, layer: Layer, p: Params, s: Params, x: Any, sig: Any, path: tuple[str, ...]) -> tuple[Any, Any]:
    """Run `layer` on the probe x (inference mode), recording how channels flow; returns (y, slots)."""
    kind = layer.kind
    if kind == "serial":
        for name, sub in zip(nn_lib.layer_names(layer.layers), layer.layers, strict=True):
            x, sig = _trace(t, sub, p[name], s[name], x, sig, (*path, name))
        return x, sig
    if kind == "residual":
        (ym, sm), (ys, ss) = (
            _trace(t, sub, p[n], s[n], x, sig, (*path, n))
            for n, sub in zip(("main", "shortcut"), layer.layers, strict=True)
        )
        _join(t, sm, ss)
        return ym + ys, sm
    if kind == "parallel":
        outs = [
            _trace(t, sub, p[n], s[n], xi, si, (*path, n))
            for n, sub, xi, si in zip(nn_lib.layer_names(layer.layers), layer.layers, x, sig, strict=True)
        ]
        return tuple(o[0] for o in outs), tuple(o[1] for o in outs)
    y, _ = layer.apply_with_state(p, s, x, train=False)
    if kind == "fanout":
        return y, (sig,) * len(y)
    if kind == "faninsum":
        for other in sig[1:]:
            _join(t, sig[0], other)
        return y, sig[0]
    if kind == "faninconcat":
        if y.shape[-1] == sum(xi.shape[-1] for xi in x) and len(x) > 1:
            return y, np.concatenate(sig)
        for other in sig[1:]:  # joined along another axis: channel c of every input is one channel
            _join(t, sig[0], other)
        return y, sig[0]
    if kind in PRODUCERS and isinstance(p, dict) and "w" in p and p["w"].shape[-1] == y.shape[-1]:
        t.consumers[path] = (layer, x, sig)
        out = _new_slots(t, y.shape[-1])
        t.producers[path] = out
        return y, out
    if kind in CHANNELWISE and y.shape[-1] == x.shape[-1]:
        t.channelwise[path] = sig
        return y, sig
    if kind == "flatten" and x.shape[-1] and y.shape[-1] % x.shape[-1] == 0:
        # row-major flattening keeps the channel axis fastest: feature f is channel f % C
        return y, np.tile(sig, y.shape[-1] // x.shape[-1])
    _fix(t, sig)  # LayerNorm, Reshape, a foreign layer: it reads every channel, and what it makes stays
    return y, _opaque(t, y)


def _at(tree: Params, path: tuple[str, ...]) -> Any:
    for k in path:
        tree = tree[k]
    return tree


def _unit_axis(w: Array, axis: int) -> np.ndarray:
    """For each index along `axis` of w: whether any of its weights is nonzero."""
    nonzero = np.asarray(w) != 0
    return np.moveaxis(nonzero, axis, 0).reshape(nonzero.shape[axis], -1).any(axis=1)


def _contributions(layer: Layer, p: Params, x: np.ndarray) -> np.ndarray:
    """y_i = layer(one-hot channel i everywhere, bias 0) for each input channel i: (c_in, *out)."""
    c = x.shape[-1]
    eye = np.broadcast_to(np.eye(c, dtype=np.float32).reshape((c,) + (1,) * (x.ndim - 2) + (c,)), (c, *x.shape[1:]))
    p0 = dict(p)
    if "b" in p0:
        p0["b"] = jnp.zeros_like(p0["b"])
    return np.asarray(layer.apply(p0, jnp.asarray(eye)), np.float64)


def _removable(t: _Trace, p: Params) -> set[int]:
    """The slots (by their root) that can leave the network exactly."""
    roots = lambda sig: np.array([_find(t.parent, i) for i in sig.tolist()], dtype=np.int64)
    all_roots = {_find(t.parent, i) for i in range(len(t.parent))}
    fixed = {_find(t.parent, i) for i in t.fixed}
    dead_in = {r: True for r in all_roots}
    produced = set()
    for path, out in t.producers.items():
        alive = _unit_axis(_at(p, path)["w"], -1)
        for r, a in zip(roots(out).tolist(), alive.tolist(), strict=True):
            produced.add(r)
            dead_in[r] = dead_in[r] and not a
    ok = {r: r not in fixed for r in all_roots}
    for path, (layer, x, sig) in t.consumers.items():
        q = _at(p, path)
        reads = _unit_axis(q["w"], -2)  # whether input channel i has any surviving weight
        value = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
        spread = np.ptp(value, axis=0)  # a constant input channel has one value everywhere
        response = None
        for i, r in enumerate(roots(sig).tolist()):
            if not ok[r] or not reads[i]:
                continue
            if not (dead_in[r] and r in produced) or spread[i] > 1e-6 * (1 + abs(value[0, i])):
                ok[r] = False
            elif value[0, i] != 0:
                if "b" not in q:
                    ok[r] = False  # a nonzero constant with no bias to fold it into
                    continue
                if response is None:
                    response = _contributions(layer, q, np.asarray(x))
                ri = response[i].reshape(-1, response.shape[-1])
                if np.ptp(ri, axis=0).max(initial=0.0) > 1e-6 * (1 + np.abs(ri).max(initial=0.0)):
                    ok[r] = False  # padding makes its contribution differ across positions
    return {r for r, v in ok.items() if v and r in produced}
