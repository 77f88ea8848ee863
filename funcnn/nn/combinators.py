"""Combinators: networks that are not a single chain (branches, fan-out/fan-in, residual blocks).

Where several arrays flow, x is a tuple of arrays and a shape is a tuple of shapes:

    FanOut(2)                  x -> (x, x)                       (3,) -> ((3,), (3,))
    Parallel(f, g)             (x1, x2) -> (f(x1), g(x2))        params {"dense_0": .., "relu_1": ..}
    FanInSum()                 (x1, x2) -> x1 + x2               shapes must agree
    FanInConcat(axis=-1)       (x1, x2) -> concat along axis     axis counts from the end of the features
    Residual(main, shortcut)   x -> main(x) + shortcut(x)        params {"main": .., "shortcut": ..}

Combinators thread state under the same names as params, split the key once per branch, and
prefix errors inside a branch with its name (`layer 'residual_3/main/conv2d_0': ...`).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from funcnn.nn.layer import (
    Layer,
    Params,
    Shape,
    ShapeError,
    State,
    as_shape,
    check_entries,
    child_keys,
    layer_names,
    named,
    no_params,
    stateless,
)

__all__ = ["FanInConcat", "FanInSum", "FanOut", "Identity", "Parallel", "Residual"]

Array = jax.Array


def _check_layers(kind: str, layers: Sequence[Layer], first: int = 0) -> None:
    for i, layer in enumerate(layers, start=first):
        if not isinstance(layer, Layer):
            raise TypeError(
                f"{kind}: argument {i} must be a Layer (e.g. Dense(10) or Relu()), got {layer!r}; "
                "did you pass the class instead of calling it?"
            )


def _is_multi(shape: Any) -> bool:
    return isinstance(shape, tuple) and len(shape) > 0 and all(isinstance(s, tuple) for s in shape)


def _shapes(kind: str, input_shape: Shape, n: int | None = None, hint: str = "") -> tuple[Shape, ...]:
    """input_shape as a tuple of shapes (of length n when given), else ShapeError."""
    shape = as_shape(input_shape)
    if not _is_multi(shape) or (n is not None and len(shape) != n):
        want = "a tuple of input shapes" if n is None else f"a tuple of {n} input shapes (one per branch)"
        raise ShapeError(f"{kind}: expected {want}, got {shape}" + (f"; {hint}" if hint else ""))
    return shape


def _arrays(kind: str, x: Any, n: int | None = None, hint: str = "") -> tuple[Array, ...]:
    """x as a tuple of arrays (of length n when given), else ShapeError."""
    if not isinstance(x, (tuple, list)) or not x or (n is not None and len(x) != n):
        got = f"{len(x)} inputs" if isinstance(x, (tuple, list)) else f"one array of shape {jnp.shape(x)}"
        want = "a tuple of arrays" if n is None else f"a tuple of {n} arrays (one per branch)"
        raise ShapeError(f"{kind}: expected {want}, got {got}" + (f"; {hint}" if hint else ""))
    return tuple(x)


def Identity() -> Layer:
    """x -> x, no params. The default shortcut of `Residual`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Identity
        >>> layer = Identity()
        >>> params = layer.init(jax.random.key(0), (2,))
        >>> params, layer.apply(params, jnp.array([1.0, -2.0])).tolist()
        ({}, [1.0, -2.0])
    """
    return stateless("identity", lambda x: x)


def FanOut(n: int) -> Layer:
    """x -> (x,) * n, no params: feed one input to the n branches of a following `Parallel`.

    shape -> (shape,) * n.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import FanOut
        >>> layer = FanOut(2)
        >>> params = layer.init(jax.random.key(0), (3,))
        >>> layer.output_shape((3,))
        ((3,), (3,))
        >>> [y.tolist() for y in layer.apply(params, jnp.array([1.0, 2.0, 3.0]))]
        [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"FanOut: n must be a positive int, got n={n!r}")

    def output_shape(input_shape: Shape) -> Shape:
        return (as_shape(input_shape),) * n

    init = no_params(output_shape)

    def apply(params: Params, x: Any, *, key: Array | None = None, train: bool = False) -> Any:
        del params, key, train
        return (x,) * n

    return Layer("fanout", init, apply, output_shape)


def FanInSum() -> Layer:
    """(x1, ..., xn) -> x1 + ... + xn, no params; all shapes must be equal.

    (shape, ..., shape) -> shape.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import FanInSum
        >>> layer = FanInSum()
        >>> params = layer.init(jax.random.key(0), ((2,), (2,)))
        >>> layer.output_shape(((2,), (2,)))
        (2,)
        >>> layer.apply(params, (jnp.array([1.0, 2.0]), jnp.array([10.0, 20.0]))).tolist()
        [11.0, 22.0]
    """

    def output_shape(input_shape: Shape) -> Shape:
        shapes = _shapes("FanInSum", input_shape, hint="put it after FanOut/Parallel")
        if any(s != shapes[0] for s in shapes):
            raise ShapeError(f"FanInSum: all inputs must have the same shape, got {', '.join(map(str, shapes))}")
        return shapes[0]

    init = no_params(output_shape)

    def apply(params: Params, x: Any, *, key: Array | None = None, train: bool = False) -> Any:
        del params, key, train
        xs = _arrays("FanInSum", x, hint="put it after FanOut/Parallel")
        shapes = [tuple(jnp.shape(a)) for a in xs]
        if any(s != shapes[0] for s in shapes):
            raise ShapeError(f"FanInSum: all inputs must have the same shape, got {', '.join(map(str, shapes))}")
        return functools.reduce(operator.add, xs)

    return Layer("faninsum", init, apply, output_shape)


def FanInConcat(axis: int = -1) -> Layer:
    """(x1, ..., xn) -> jnp.concatenate(xs, axis), no params.

    axis: a feature axis counted from the end (-1: the last, e.g. channels of (H, W, C) images), so
    any number of batch axes may lead. The other axes must agree:
    ((..., c1), ..., (..., cn)) -> (..., c1 + ... + cn) for axis=-1.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import FanInConcat
        >>> layer = FanInConcat()
        >>> params = layer.init(jax.random.key(0), ((2,), (1,)))
        >>> layer.output_shape(((2,), (1,)))
        (3,)
        >>> y = layer.apply(params, (jnp.ones((4, 2)), jnp.zeros((4, 1))))  # batch axes lead freely
        >>> y.shape, y[0].tolist()
        ((4, 3), [1.0, 1.0, 0.0])
    """
    if not isinstance(axis, int) or isinstance(axis, bool) or axis >= 0:
        raise ValueError(
            f"FanInConcat: axis must be a negative int counting from the end of the feature shape "
            f"(-1 for the last axis, e.g. channels), got axis={axis!r}; inputs may carry any number of "
            "batch axes, so a non-negative axis would be ambiguous"
        )

    def _check(shapes: Sequence[Shape], what: str) -> None:
        ranks = {len(s) for s in shapes}
        if len(ranks) != 1 or -axis > min(ranks):
            raise ShapeError(
                f"FanInConcat: {what} must have equal rank of at least {-axis} for axis={axis}, "
                f"got {', '.join(map(str, shapes))}"
            )
        drop = lambda s: s[: len(s) + axis] + s[len(s) + axis + 1 :]
        if any(drop(s) != drop(shapes[0]) for s in shapes):
            raise ShapeError(
                f"FanInConcat: inputs must agree on every axis but axis={axis}, got {', '.join(map(str, shapes))}"
            )

    def output_shape(input_shape: Shape) -> Shape:
        shapes = _shapes("FanInConcat", input_shape, hint="put it after FanOut/Parallel")
        _check(shapes, "input shapes")
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        return tuple(out)

    init = no_params(output_shape)

    def apply(params: Params, x: Any, *, key: Array | None = None, train: bool = False) -> Any:
        del params, key, train
        xs = _arrays("FanInConcat", x, hint="put it after FanOut/Parallel")
        _check([tuple(jnp.shape(a)) for a in xs], "inputs")
        return jnp.concatenate(xs, axis=axis)

    return Layer("faninconcat", init, apply, output_shape)


def Parallel(*layers: Layer) -> Layer:
    """(x1, ..., xn) -> (layer_1(x1), ..., layer_n(xn)); params (and state) `{f"{kind}_{i}": params_i}`.

    Input and output shapes are tuples of n shapes; the key given to `apply` is split per branch.

    Example: two branches on one input, concatenated (an inception-style block).

        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Dense, FanInConcat, FanOut, Parallel, Relu, serial
        >>> branches = Parallel(Dense(2, w_init=jax.nn.initializers.ones), Relu())
        >>> params = branches.init(jax.random.key(0), ((3,), (3,)))
        >>> list(params), branches.output_shape(((3,), (3,)))
        (['dense_0', 'relu_1'], ((2,), (3,)))
        >>> x = jnp.array([1.0, -2.0, 3.0])
        >>> [y.tolist() for y in branches.apply(params, (x, x))]
        [[2.0, 2.0], [1.0, 0.0, 3.0]]
        >>> net = serial(FanOut(2), branches, FanInConcat())
        >>> net.apply(net.init(jax.random.key(0), (3,)), x).tolist()
        [2.0, 2.0, 1.0, 0.0, 3.0]
    """
    if not layers:
        raise ValueError("Parallel needs at least one layer, got none")
    _check_layers("Parallel", layers)
    names = layer_names(layers)
    n = len(layers)
    hint = f"put FanOut({n}) before it?"

    def output_shape(input_shape: Shape) -> Shape:
        shapes = _shapes("Parallel", input_shape, n, hint)
        return tuple(named(name, layer.output_shape, s) for name, layer, s in zip(names, layers, shapes, strict=True))

    def init(key: Array, input_shape: Shape) -> Params:
        shapes = _shapes("Parallel", input_shape, n, hint)
        keys = jax.random.split(key, n)
        return {
            name: named(name, layer.init, k, s) for k, name, layer, s in zip(keys, names, layers, shapes, strict=True)
        }

    def init_state(input_shape: Shape) -> State:
        shapes = _shapes("Parallel", input_shape, n, hint)
        return {name: named(name, layer.init_state, s) for name, layer, s in zip(names, layers, shapes, strict=True)}

    def apply(params: Params, x: Any, *, key: Array | None = None, train: bool = False) -> Any:
        xs = _arrays("Parallel", x, n, hint)
        check_entries(params, names, "params")
        return tuple(
            named(name, layer.apply, params[name], xi, key=k, train=train)
            for k, name, layer, xi in zip(child_keys(key, n), names, layers, xs, strict=True)
        )

    def apply_with_state(
        params: Params, state: State, x: Any, *, key: Array | None = None, train: bool = False
    ) -> tuple[Any, State]:
        xs = _arrays("Parallel", x, n, hint)
        check_entries(params, names, "params")
        check_entries(state, names, "state")
        ys, new_state = [], {}
        for k, name, layer, xi in zip(child_keys(key, n), names, layers, xs, strict=True):
            y, new_state[name] = named(name, layer.apply_with_state, params[name], state[name], xi, key=k, train=train)
            ys.append(y)
        return tuple(ys), new_state

    return Layer("parallel", init, apply, output_shape, tuple(layers), init_state, apply_with_state)


def Residual(main: Layer, shortcut: Layer | None = None) -> Layer:
    """x -> main(x) + shortcut(x); params (and state) `{"main": ..., "shortcut": ...}`.

    shortcut: None (default) for the identity, whose params are `{}` (the key stays, so param paths
    such as "residual_1/main/dense_0/w" do not depend on the shortcut). Both branches must give the
    same shape; where main changes it (a strided conv, more channels), give a projection shortcut.
    The key given to `apply` is split between main and shortcut.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Dense, Residual
        >>> block = Residual(Dense(2, w_init=jax.nn.initializers.ones))
        >>> params = block.init(jax.random.key(0), (2,))
        >>> list(params), params["shortcut"]
        (['main', 'shortcut'], {})
        >>> block.apply(params, jnp.array([[1.0, 2.0]])).tolist()  # main: 1 + 2 in each unit; plus x
        [[4.0, 5.0]]
    """
    _check_layers("Residual", (main,) if shortcut is None else (main, shortcut))
    branches = (main, Identity() if shortcut is None else shortcut)
    names = ("main", "shortcut")

    def mismatch(m: Any, s: Any) -> ShapeError:
        return ShapeError(
            f"Residual: main branch gives {m}, shortcut gives {s}; give a projection shortcut "
            "(e.g. serial(Conv2D(..., stride=2), BatchNorm()))"
        )

    def output_shape(input_shape: Shape) -> Shape:
        shape = as_shape(input_shape)
        m, s = (named(name, b.output_shape, shape) for name, b in zip(names, branches, strict=True))
        if m != s:
            raise mismatch(m, s)
        return m

    def init(key: Array, input_shape: Shape) -> Params:
        shape = as_shape(input_shape)
        output_shape(shape)
        keys = jax.random.split(key, 2)
        return {name: named(name, b.init, k, shape) for k, name, b in zip(keys, names, branches, strict=True)}

    def init_state(input_shape: Shape) -> State:
        shape = as_shape(input_shape)
        output_shape(shape)
        return {name: named(name, b.init_state, shape) for name, b in zip(names, branches, strict=True)}

    def add(m: Any, s: Any) -> Any:
        # jaxlib ships no stubs for PyTreeDef (mypy sees an unresolved type), whose != is defined
        if jax.tree.structure(m) != jax.tree.structure(s):  # type: ignore[operator]
            raise mismatch(jax.tree.structure(m), jax.tree.structure(s))
        shapes = lambda t: jax.tree.map(jnp.shape, t)
        if shapes(m) != shapes(s):
            raise mismatch(shapes(m), shapes(s))
        return jax.tree.map(operator.add, m, s)

    def apply(params: Params, x: Any, *, key: Array | None = None, train: bool = False) -> Any:
        check_entries(params, names, "params")
        m, s = (
            named(name, b.apply, params[name], x, key=k, train=train)
            for k, name, b in zip(child_keys(key, 2), names, branches, strict=True)
        )
        return add(m, s)

    def apply_with_state(
        params: Params, state: State, x: Any, *, key: Array | None = None, train: bool = False
    ) -> tuple[Any, State]:
        check_entries(params, names, "params")
        check_entries(state, names, "state")
        (m, state_m), (s, state_s) = (
            named(name, b.apply_with_state, params[name], state[name], x, key=k, train=train)
            for k, name, b in zip(child_keys(key, 2), names, branches, strict=True)
        )
        return add(m, s), {"main": state_m, "shortcut": state_s}

    return Layer("residual", init, apply, output_shape, branches, init_state, apply_with_state)
