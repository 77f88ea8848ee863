"""The layer protocol: a `NamedTuple` of pure functions, and `serial` to compose layers.

    params = layer.init(key, input_shape)                # input_shape excludes the batch axes
    y = layer.apply(params, x, key=None, train=False)    # x: (*batch, *input_shape)
    out = layer.output_shape(input_shape)                 # data-free shape arithmetic

A layer may also carry *state* beside its params (BatchNorm's running statistics), named like the
params and never touched by gradients, optimizers or masks:

    state = layer.init_state(input_shape)                            # {} for a stateless layer
    y, state = layer.apply_with_state(params, state, x, key=None, train=False)

Every layer has both; a stateless layer's `init_state` returns `{}` and its `apply_with_state`
calls `apply` and returns the state unchanged. A stateful layer's plain `apply` is an error.
Where several inputs or outputs flow (`Parallel`, `FanOut`), a shape is a tuple of shapes. The errors a
layer raises (`LayerError`, `ShapeError`, `StateError`) are `funcnn.nn.errors`, importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnn import checks
from funcnn.nn.compiled import compiled_init
from funcnn.nn.errors import LayerError, ShapeError, StateError, key_checked, named, through

Array = jax.Array
Shape = tuple  # tuple[int, ...], or a tuple of such shapes where several arrays flow
Params = Any  # a dict (possibly nested, possibly empty) of arrays
State = Any  # like Params: a dict of arrays named like the params ({} for stateless layers)

__all__ = [
    "Layer",
    "LayerError",
    "ShapeError",
    "StateError",
    "count_params",
    "has_state",
    "layer_names",
    "serial",
    "stateful",
    "summary",
]


class _LayerFields(NamedTuple):
    kind: str
    init: Callable[..., Params]
    apply: Callable[..., Array]
    output_shape: Callable[[Shape], Shape]
    layers: tuple[Layer, ...]
    init_state: Callable[[Shape], State]
    apply_with_state: Callable[..., tuple[Any, State]]
    unit_layout: Any = None
    statistics: Any = None


def _no_state(input_shape: Shape) -> State:
    del input_shape
    return {}


def _stateless_apply_with_state(apply: Callable[..., Any]) -> Callable[..., tuple[Any, State]]:
    def apply_with_state(
        params: Params, state: State, x: Any, *, key: Array | None = None, train: bool = False
    ) -> tuple[Any, State]:
        return apply(params, x, key=key, train=train), state

    return apply_with_state


class Layer(_LayerFields):
    """A layer or a network.

    kind: the lower-case name used for param keys in `serial` (`dense`, `sigmoid`, ...).
    init(key, input_shape) -> params.
    apply(params, x, *, key=None, train=False) -> y; x may carry any number of leading batch axes.
    output_shape(input_shape) -> output shape, without touching data.
    layers: the sub-layers of a `serial` network (empty for a single layer).
    init_state(input_shape) -> state ({} unless the layer keeps running statistics).
    apply_with_state(params, state, x, *, key=None, train=False) -> (y, new_state).
    unit_layout: None for funcnn's own layers (units on the last axis, layers named `<kind>_<n>`),
      or a `funcnn.prune.layout.UnitLayout` an adapter declares for a foreign tree's names.
    statistics: None, or `statistics(params, state, x, idx) -> state`: running statistics recomputed for
      params from the batches x[idx[b]], where a library's state needs its own rule (equinox's BatchNorm
      flags and counters; `funcnn.interpolation.recompute_statistics` uses it).

    `Layer(kind, init, apply, output_shape)` builds a stateless layer. Its init checks its key (`checks.prng_key`).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Layer
        >>> def apply(params, x, *, key=None, train=False):
        ...     return x * params["scale"]
        >>> scale = Layer("scale", lambda key, shape: {"scale": jnp.full(shape, 2.0)}, apply, lambda shape: shape)
        >>> params = scale.init(jax.random.key(0), (3,))
        >>> scale.apply(params, jnp.array([1.0, 2.0, 3.0])).tolist()
        [2.0, 4.0, 6.0]
        >>> scale.output_shape((3,)), scale.init_state((3,))
        ((3,), {})
    """

    __slots__ = ()

    def __new__(
        cls,
        kind: str,
        init: Callable[..., Params],
        apply: Callable[..., Any],
        output_shape: Callable[[Shape], Shape],
        layers: Sequence[Layer] = (),
        init_state: Callable[[Shape], State] | None = None,
        apply_with_state: Callable[..., tuple[Any, State]] | None = None,
        unit_layout: Any = None,
        statistics: Any = None,
    ) -> Layer:
        init_state = _no_state if init_state is None else init_state
        apply_with_state = _stateless_apply_with_state(apply) if apply_with_state is None else apply_with_state
        init = key_checked(kind, init)
        return super().__new__(
            cls, kind, init, apply, output_shape, tuple(layers), init_state, apply_with_state, unit_layout, statistics
        )


def stateful(
    kind: str,
    init: Callable[..., Params],
    init_state: Callable[[Shape], State],
    apply_with_state: Callable[..., tuple[Any, State]],
    output_shape: Callable[[Shape], Shape],
    layers: tuple[Layer, ...] = (),
) -> Layer:
    """A layer with state: its plain `apply` raises `StateError` saying what to call instead.

    Example: a layer that counts the batches it has seen in training.

        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import stateful
        >>> def apply_with_state(params, state, x, *, key=None, train=False):
        ...     return x, ({"seen": state["seen"] + 1} if train else state)
        >>> counter = stateful(
        ...     "counter",
        ...     init=lambda key, shape: {},
        ...     init_state=lambda shape: {"seen": jnp.zeros((), jnp.int32)},
        ...     apply_with_state=apply_with_state,
        ...     output_shape=lambda shape: shape,
        ... )
        >>> params, state = counter.init(jax.random.key(0), (2,)), counter.init_state((2,))
        >>> y, state = counter.apply_with_state(params, state, jnp.ones((4, 2)), train=True)
        >>> y.shape, int(state["seen"])
        ((4, 2), 1)
        >>> counter.apply(params, jnp.ones((4, 2)))
        Traceback (most recent call last):
        ...
        funcnn.nn.errors.StateError: counter carries state (running statistics) beside its params; ...
    """

    def apply(params: Params, x: Any, *, key: Array | None = None, train: bool = False) -> Any:
        del params, x, key, train
        raise StateError(
            f"{kind} carries state (running statistics) beside its params; call "
            "net.apply_with_state(params, state, x, train=...) with state = net.init_state(input_shape), "
            "or pass the network itself (not net.apply) to funcnn's training functions"
        )

    return Layer(kind, init, apply, output_shape, layers, init_state, apply_with_state)


def has_state(layer: Layer, input_shape: Shape) -> bool:
    """True when the layer's `init_state(input_shape)` holds any array (the layer keeps statistics).

    Example:
        >>> from funcnn.nn import BatchNorm, Dense, has_state, serial
        >>> has_state(serial(Dense(4), BatchNorm()), (3,)), has_state(Dense(4), (3,))
        (True, False)
    """
    return bool(jax.tree.leaves(layer.init_state(input_shape)))


def as_shape(input_shape: Sequence[Any], *, name: str = "input_shape") -> Shape:
    """Validate a shape (a sequence of positive ints, or a tuple of such shapes) and return it as a tuple."""
    if (
        isinstance(input_shape, (tuple, list))
        and input_shape
        and all(isinstance(s, (tuple, list)) for s in input_shape)
    ):
        return tuple(as_shape(s, name=name) for s in input_shape)
    try:
        shape = tuple(int(d) for d in input_shape)
    except TypeError:
        raise ShapeError(f"{name} must be a tuple of positive ints, got {input_shape!r}") from None
    if any(d <= 0 for d in shape):
        raise ShapeError(f"{name} must be a tuple of positive ints, got {input_shape!r}")
    return shape


def check_input(kind: str, x: Array, feature_shape: Shape, hint: str = "") -> None:
    """Raise `ShapeError` unless x's trailing axes equal `feature_shape` (batch axes are free)."""
    n = len(feature_shape)
    if x.ndim < n or tuple(x.shape[x.ndim - n :]) != tuple(feature_shape):
        raise ShapeError(
            f"{kind}: expected input of shape (*batch, {', '.join(map(str, feature_shape))}), "
            f"got {tuple(x.shape)}" + (f"; {hint}" if hint else "")
        )


def add_bias(y: Array, b: Array) -> Array:
    """y + b with b broadcast over y's leading axes explicitly (no implicit rank promotion)."""
    return y + b.reshape((1,) * (y.ndim - b.ndim) + b.shape)


def no_params(output_shape: Callable[[Shape], Shape]) -> Callable[..., Params]:
    """The `init` of a layer without params: it checks the input shape (through `output_shape`,
    which raises ShapeError for one that does not fit) and returns {}."""

    def init(key: Array, input_shape: Shape) -> Params:
        del key
        output_shape(input_shape)
        return {}

    return init


def stateless(kind: str, fn: Callable[[Array], Array]) -> Layer:
    """A parameterless elementwise layer applying `fn`."""
    init = no_params(as_shape)

    def apply(params: Params, x: Array, *, key: Array | None = None, train: bool = False) -> Array:
        del params, key, train
        return fn(x)

    return Layer(kind, init, apply, as_shape)


def child_keys(key: Array | None, n: int) -> list[Array | None]:
    """n keys for n sub-layers, or n Nones when no key was given."""
    checks.prng_key(key, who="apply(params, x, key=key)", optional=True)
    return [None] * n if key is None else list(jax.random.split(key, n))


def check_entries(tree: Any, names: Sequence[str], what: str) -> None:
    """ValueError unless the dict `tree` has every name (params or state made by another network?)."""
    if not isinstance(tree, dict) or any(n not in tree for n in names):
        have = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        missing = [n for n in names if not isinstance(tree, dict) or n not in tree]
        raise ValueError(
            f"{what} has no entry {missing[0]!r} (has {have}); were these {what} made by this network's "
            f"{'init' if what == 'params' else 'init_state'}?"
        )


def serial(*layers: Layer) -> Layer:
    """Compose layers left to right; params (and state) are `{f"{kind}_{i}": params_i}`.

    Shape errors are re-raised naming the layer (`layer 'dense_2' ...`). The key given to `apply` is
    split into one key per layer. `init` is one compiled program per input shape (`nn.compiled`).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Dense, Relu, serial
        >>> net = serial(Dense(2, w_init=jax.nn.initializers.ones), Relu())
        >>> params = net.init(jax.random.key(0), (3,))
        >>> list(params), params["dense_0"]["w"].shape
        (['dense_0', 'relu_1'], (3, 2))
        >>> net.apply(params, jnp.array([[1.0, -2.0, 3.0]])).tolist()  # relu(1 - 2 + 3) in both units
        [[2.0, 2.0]]
        >>> net.output_shape((3,))
        (2,)
    """
    if not layers:
        raise ValueError("serial needs at least one layer, got none")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(
                f"serial: argument {i} must be a Layer (e.g. Dense(10) or Relu()), got {layer!r}; "
                "did you pass the class instead of calling it?"
            )
    names = layer_names(layers)

    def output_shape(input_shape: Shape) -> Shape:
        shape = as_shape(input_shape)
        for name, layer in zip(names, layers, strict=True):
            shape = named(name, layer.output_shape, shape)
        return shape

    def init_all(key: Array, shape: Shape) -> Params:
        keys = jax.random.split(key, len(layers))
        params = {}
        for k, name, layer in zip(keys, names, layers, strict=True):
            params[name] = named(name, layer.init, k, shape)
            shape = named(name, layer.output_shape, shape)
        return params

    compiled = compiled_init(init_all)  # one program per input shape (funcnn.nn.compiled)

    def init(key: Array, input_shape: Shape) -> Params:
        return compiled(key, as_shape(input_shape))

    def init_state(input_shape: Shape) -> State:
        shape = as_shape(input_shape)
        state = {}
        for name, layer in zip(names, layers, strict=True):
            state[name] = named(name, layer.init_state, shape)
            shape = named(name, layer.output_shape, shape)
        return state

    def apply(params: Params, x: Any, *, key: Array | None = None, train: bool = False) -> Any:
        check_entries(params, names, "params")
        keys = child_keys(key, len(layers))
        step = lambda i, x: named(names[i], layers[i].apply, params[names[i]], x, key=keys[i], train=train)
        return through(names, layers, x, step)

    def apply_with_state(
        params: Params, state: State, x: Any, *, key: Array | None = None, train: bool = False
    ) -> tuple[Any, State]:
        check_entries(params, names, "params")
        check_entries(state, names, "state")
        keys = child_keys(key, len(layers))
        step = lambda i, x: named(
            names[i], layers[i].apply_with_state, params[names[i]], state[names[i]], x, key=keys[i], train=train
        )
        return through(names, layers, x, step, with_state=True)

    return Layer("serial", init, apply, output_shape, tuple(layers), init_state, apply_with_state)


def layer_names(net_layers: Sequence[Layer]) -> list[str]:
    """The param keys `serial(*net_layers)` uses.

    Example:
        >>> from funcnn.nn import Dense, Relu, layer_names
        >>> layer_names([Dense(4), Relu(), Dense(2)])
        ['dense_0', 'relu_1', 'dense_2']
    """
    return [f"{layer.kind}_{i}" for i, layer in enumerate(net_layers)]


def count_params(params: Params) -> int:
    """Total number of scalars in a params pytree.

    Example:
        >>> import jax
        >>> from funcnn.nn import Dense, Relu, count_params, serial
        >>> params = serial(Dense(4), Relu(), Dense(2)).init(jax.random.key(0), (3,))
        >>> count_params(params)  # (3 * 4 + 4) + (4 * 2 + 2)
        26
    """
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))


def summary(net: Layer, input_shape: Sequence[int]) -> str:
    """A table of each layer's name, output shape and parameter count, and the total.

    Works on shapes alone (`jax.eval_shape`): no arrays are allocated. State (running statistics)
    is not counted as params; a stateful network gets a last line with its state's size.

    Example:
        >>> from funcnn.nn import BatchNorm, Dense, Relu, serial, summary
        >>> print(summary(serial(Dense(4), BatchNorm(), Relu(), Dense(2)), (3,)))
        layer               output shape  params
        ----------------------------------------
        input               (3,)
        dense_0             (4,)              16
        batchnorm_1         (4,)               8
        relu_2              (4,)               0
        dense_3             (2,)              10
        total                                 34
        state (not params)                     8
    """
    shape = as_shape(input_shape)
    params = jax.eval_shape(lambda k: net.init(k, shape), jax.random.key(0))
    rows = [("input", str(shape), "")]
    if net.layers and net.kind == "serial":
        for name, layer in zip(layer_names(net.layers), net.layers, strict=True):
            shape = layer.output_shape(shape)
            rows.append((name, str(shape), f"{count_params(params[name]):,}"))
    else:
        rows.append((net.kind, str(net.output_shape(shape)), f"{count_params(params):,}"))
    rows.append(("total", "", f"{count_params(params):,}"))
    n_state = count_params(jax.eval_shape(lambda: net.init_state(as_shape(input_shape))))
    if n_state:
        rows.append(("state (not params)", "", f"{n_state:,}"))
    header = ("layer", "output shape", "params")
    widths = [max(len(r[c]) for r in rows + [header]) for c in range(3)]
    fmt = lambda r: f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}"
    return "\n".join([fmt(header), "-" * (sum(widths) + 4)] + [fmt(r) for r in rows])
