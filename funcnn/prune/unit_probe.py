"""Where a foreign net's units are, read from its program: `probe_unit_axes`.

A weight's units are the axis that its layer keeps as an output: the free axis of the `dot_general` that
consumes it (a Dense layer, in any layout: (in, out), PyTorch's (out, in), an einsum of the user's), or
the output-feature axis of the `conv_general_dilated` it is the kernel of. The net's forward is traced
to a jaxpr (nothing computed) and each param leaf followed through the operations that keep its axes
(transposes, casts, scalings, nested jit calls) to the first one that decides. A leaf that reaches no
such operation, or two that disagree, has no probed axis (None): structured pruning then asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np

from funcnn.prune.masks import layer_of, path_name

__all__ = ["FrozenAxes", "probe_output_layer", "probe_unit_axes", "probe_weights"]

Params = Any  # a pytree of arrays

# Units probed per candidate layer (the first, the last and one between): enough to tell the output
# layer from a hidden layer of the same width, whose every unit reaches every output.
_PROBED_UNITS = 3

# Operations that keep each axis of their operand where it is (elementwise, one operand tracked).
_SAME_AXES = {
    "convert_element_type", "copy", "copy_p", "neg", "abs", "sign", "stop_gradient", "reduce_precision",
    "mul", "div", "add", "sub", "max", "min", "select_n", "optimization_barrier",
}  # fmt: skip
# Operations whose axes follow from the shapes: a reshape keeps the leading and trailing axes it leaves
# alone (an im2col kernel (kh, kw, in, out) -> (kh * kw * in, out) keeps `out`).
_RESHAPES = {"reshape", "squeeze", "expand_dims", "broadcast_in_dim"}
_CALLS = {"pjit", "jit", "closed_call", "core_call", "remat", "checkpoint", "custom_jvp_call", "custom_vjp_call"}


def _reshaped(axes: tuple[int | None, ...], before: tuple, after: tuple) -> tuple[int | None, ...]:
    """The leaf axes of a reshape's output axes: those of the dims it keeps at the front and at the back."""
    out: list[int | None] = [None] * len(after)
    i = 0
    while i < min(len(before), len(after)) and before[i] == after[i]:
        out[i] = axes[i]
        i += 1
    j = 1
    while j <= min(len(before), len(after)) - i and before[-j] == after[-j]:
        out[len(after) - j] = axes[len(before) - j]
        j += 1
    return tuple(out)


def _inner(eqn: Any) -> Any:
    for name in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        j = eqn.params.get(name)
        if j is not None:
            return getattr(j, "jaxpr", j)
    return None


Tracked = tuple[int, tuple[int | None, ...]]  # (leaf index, the leaf axis of each of a var's axes)


def _walk(jaxpr: Any, tracked: dict[Any, Tracked], found: dict[int, set], weights: set[int]) -> None:
    """Follow tracked vars {var: (leaf index, leaf axis of each var axis)} through jaxpr's equations;
    record in found[leaf] the leaf axes that a dot or a convolution keeps as its output, and in
    weights the leaves that a dot or a convolution consumes."""
    for eqn in jaxpr.eqns:
        ins: list[tuple[int, Tracked]] = []
        for i, v in enumerate(eqn.invars):
            t = None if isinstance(v, jex.core.Literal) else tracked.get(v)
            if t is not None:
                ins.append((i, t))
        if not ins:
            continue
        prim = eqn.primitive.name
        if prim == "dot_general":
            (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
            for i, (leaf, axes) in ins:
                contract, batch = (lc, lb) if i == 0 else (rc, rb)
                free = [d for d in range(len(axes)) if d not in contract and d not in batch]
                found.setdefault(leaf, set()).add(axes[free[0]] if len(free) == 1 else None)
                weights.add(leaf)
        elif prim == "conv_general_dilated":
            dn = eqn.params["dimension_numbers"]
            for i, (leaf, axes) in ins:
                found.setdefault(leaf, set()).add(axes[dn.rhs_spec[0]] if i == 1 else None)
                weights.add(leaf)
        elif prim == "transpose":
            (_, (leaf, axes)), out = ins[0], eqn.outvars[0]
            tracked[out] = (leaf, tuple(axes[p] for p in eqn.params["permutation"]))
        elif prim in _RESHAPES and len(ins) == 1:
            (i, (leaf, axes)), out = ins[0], eqn.outvars[0]
            tracked[out] = (leaf, _reshaped(axes, np.shape(eqn.invars[i].aval), np.shape(out.aval)))
        elif prim in _SAME_AXES and len(ins) == 1:
            (_, (leaf, axes)), out = ins[0], eqn.outvars[0]
            if tuple(np.shape(out.aval)) == tuple(np.shape(eqn.invars[ins[0][0]].aval)):
                tracked[out] = (leaf, axes)
        elif prim in _CALLS or (_inner(eqn) is not None and prim not in ("scan", "while", "cond")):
            inner = _inner(eqn)
            if inner is None:
                continue
            sub = {inner.invars[i]: t for i, t in ins if i < len(inner.invars)}
            _walk(inner, sub, found, weights)
        else:  # used some other way (reshaped, reduced, in a loop): no axis read from this use
            for _, (leaf, _) in ins:
                found.setdefault(leaf, set())


def _probe(forward: Callable[[Any, Any], Any], params: Any, x: Any) -> tuple[list, dict[int, set], set[int]]:
    leaves = jax.tree_util.tree_leaves_with_path(params)
    jaxpr = jax.make_jaxpr(forward)(params, x).jaxpr
    tracked: dict[Any, Tracked] = {
        v: (i, tuple(range(len(np.shape(leaf)))))
        for i, (v, (_, leaf)) in enumerate(zip(jaxpr.invars[: len(leaves)], leaves, strict=True))
        if len(np.shape(leaf)) > 1
    }
    found: dict[int, set] = {}
    weights: set[int] = set()
    _walk(jaxpr, tracked, found, weights)
    return leaves, found, weights


def probe_weights(forward: Callable[[Any, Any], Any], params: Any, x: Any) -> set[str]:
    """The path names of the param leaves (ndim > 1) that a dot or a convolution of `forward(params, x)`
    consumes: the weights, told from leaves of the same shape that the net uses otherwise (a (1, n)
    learned temperature, a scale), which pruning would silently zero.

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn.prune.unit_probe import probe_weights
        >>> params = {"w": jnp.zeros((40, 10)), "temperature": jnp.ones((1, 10))}
        >>> sorted(probe_weights(lambda p, x: (x @ p["w"]) / p["temperature"], params, jnp.zeros((4, 40))))
        ['w']
    """
    leaves, _, weights = _probe(forward, params, x)
    return {path_name(leaves[i][0]) for i in weights}


def probe_unit_axes(forward: Callable[[Any, Any], Any], params: Any, x: Any) -> dict[str, int | None]:
    """{leaf path name: its unit axis, or None} for every param leaf with ndim > 1, from the jaxpr of
    `forward(params, x)` (traced, nothing computed): the axis of the leaf that the dot or convolution
    consuming it keeps as its output (see the module docstring); None where no operation decides or
    two disagree.

    forward(params, x) -> y: the net (eval mode is enough); params: a tree of arrays or
    `jax.ShapeDtypeStruct`s; x: an input batch (an array or a `jax.ShapeDtypeStruct`).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn.prune.unit_probe import probe_unit_axes
        >>> params = {"fc": {"weight": jnp.zeros((32, 40))}, "head": {"w": jnp.zeros((32, 10))}}  # (out, in), (in, out)
        >>> forward = lambda p, x: (x @ p["fc"]["weight"].T) @ p["head"]["w"]
        >>> probe_unit_axes(forward, params, jnp.zeros((4, 40)))
        {'fc/weight': 0, 'head/w': 1}
    """
    leaves, found, _ = _probe(forward, params, x)
    out: dict[str, int | None] = {}
    for i, (path, leaf) in enumerate(leaves):
        if len(np.shape(leaf)) <= 1:
            continue
        axes = found.get(i, set())
        out[path_name(path)] = next(iter(axes)) if len(axes) == 1 else None
    return out


def undecided(axes: dict[str, int | None], names: Sequence[str]) -> list[str]:
    """The names among `names` whose unit axis `probe_unit_axes` could not decide."""
    return [n for n in names if axes.get(n) is None]


class FrozenAxes(Mapping[str, int]):
    """{leaf name: unit axis}, immutable and hashable: a `Layer` is a static argument of jitted
    programs (`stability`), so everything it holds, its `unit_layout` included, must hash.

    Example:
        >>> from funcnn.prune.unit_probe import FrozenAxes
        >>> axes = FrozenAxes({"l1/kernel": 1})
        >>> axes["l1/kernel"], hash(axes) == hash(FrozenAxes({"l1/kernel": 1}))
        (1, True)
    """

    __slots__ = ("_axes",)

    def __init__(self, axes: Mapping[str, int]) -> None:
        self._axes = dict(axes)

    def __getitem__(self, name: str) -> int:
        return self._axes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._axes)

    def __len__(self) -> int:
        return len(self._axes)

    def __hash__(self) -> int:
        return hash(tuple(self._axes.items()))

    def __repr__(self) -> str:
        return repr(self._axes)


def _perturbed(params: Params, layer: str, axes: dict[str, int], n_units: int, unit: int) -> Params:
    """params with unit `unit` of `layer`'s leaves (weights along their unit axis, 1-D biases) moved."""

    def move(path: Any, leaf: Any) -> Any:
        name = path_name(path)
        if layer_of(name) != layer or jnp.ndim(leaf) == 0:
            return leaf
        axis = axes.get(name, 0) % jnp.ndim(leaf)
        if leaf.shape[axis] != n_units or not jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf
        index = (slice(None),) * axis + (unit,)
        # A shift of the size of the leaf's largest entry, plus 1: far above float rounding. On the host:
        # the probe compiles only the net.
        moved = np.array(leaf)
        moved[index] += 1.0 + np.max(np.abs(moved))
        return moved

    return jax.tree_util.tree_map_with_path(move, params)


def probe_output_layer(
    forward: Callable[[Params, jax.Array], jax.Array], params: Params, axes: dict[str, int], x: jax.Array
) -> str | None:
    """The layer whose units map one-to-one onto the net's output features, found by probing; or None.

    forward(params, x) -> y (batch, ..., C): the net in eval mode. A layer qualifies when its weights
    have C units and moving unit j (its weight slice and bias entry) changes output column j and no
    other, for j = 0, C - 1 and one between. Exactly one layer must qualify; otherwise None (ambiguous:
    structured pruning then asks for the output layer).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.prune.unit_probe import probe_output_layer
        >>> params = {"head": {"w": jnp.ones((4, 3))}, "body": {"w": jnp.ones((5, 4))}}  # named out of order
        >>> forward = lambda p, x: jnp.tanh(x @ p["body"]["w"]) @ p["head"]["w"]
        >>> x = jax.random.normal(jax.random.key(0), (2, 5))
        >>> probe_output_layer(forward, params, {"head/w": 1, "body/w": 1}, x)
        'head'
    """
    run = jax.jit(forward)
    y = np.asarray(run(params, x))
    if y.ndim < 2:
        return None
    n_out = y.shape[-1]
    tol = 1e-4 * (1.0 + float(np.max(np.abs(y))))
    layers = dict.fromkeys(layer_of(n) for n in axes)  # tree order, no duplicates
    found = []
    for layer in layers:
        sizes = {params_shape[axes[n] % len(params_shape)] for n, params_shape in _shapes(params, axes, layer)}
        if sizes != {n_out}:
            continue
        probes = sorted({0, n_out // 2, n_out - 1})[:_PROBED_UNITS]
        ok = True
        for j in probes:
            moved = np.asarray(run(_perturbed(params, layer, axes, n_out, j), x))
            changed = np.abs(moved - y).reshape(-1, n_out).max(axis=0) > tol
            if not changed[j] or changed.sum() != 1:
                ok = False
                break
        if ok:
            found.append(layer)
    return found[0] if len(found) == 1 else None


def _shapes(params: Params, axes: dict[str, int], layer: str) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (path_name(p), tuple(leaf.shape))
        for p, leaf in jax.tree_util.tree_leaves_with_path(params)
        if path_name(p) in axes and layer_of(path_name(p)) == layer
    ]
