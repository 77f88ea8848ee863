"""An equinox Module, built by `make(key)`, as a funcnn net (a `Layer`); its `eqx.nn.State` is the model state.

net = from_equinox(lambda key: eqx.nn.MLP(40, 10, 32, 2, key=key))                 # stateless
net = from_equinox(lambda key: eqx.nn.make_with_state(Net)(key), input_shape=(40,))  # BatchNorm
params = net.init(key, (40,))        # the model's arrays: prune, train, lottery.run take them
y, state = net.apply_with_state(params, net.init_state((40,)), x, key=key, train=True)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from funcnn.interop._common import check_input_shape, layout
from funcnn.nn.layer import Layer, Params, State, StateError

if TYPE_CHECKING:  # equinox is not a dependency: it is imported when the adapter is called
    import equinox as eqx

__all__ = ["from_equinox"]


def _takes_key(model: Any) -> bool:
    """Whether the model's __call__ has a `key` parameter (or **kwargs): Dropout keys go there."""
    try:
        params = inspect.signature(model).parameters
    except (TypeError, ValueError):  # pragma: no cover - a __call__ without a signature
        return True
    return "key" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def from_equinox(
    make: Callable[[jax.Array], Any], *, input_shape: Sequence[int] | None = None, axis_name: Hashable = "batch"
) -> Layer:
    """An equinox Module, built by `make(key)`, as a funcnn `Layer` whose params are its arrays.

    make(key) returns a model, or (model, state) for a stateful one (`eqx.nn.make_with_state(Net)(...,
    key=key)`: BatchNorm). init(key, input_shape) = eqx.partition(model, eqx.is_array)[0]: the model's
    arrays, its non-array leaves (activations, Python numbers) left out as None; `input_shape` is not
    used (the model fixes its own sizes). init_state(input_shape) = the `eqx.nn.State` ({} for a
    stateless model), its bool and int leaves (BatchNorm's step flag or counter) as float32 so that
    states average and interpolate like params; each call casts them back.
    apply_with_state(params, state, x, key=, train=) puts the static leaves back (`eqx.combine`) and
    maps the model over x's leading axis (equinox layers take one example): x (batch, *input_shape)
    -> (batch, *output_shape), under `jax.vmap(axis_name=axis_name)` with the state shared, so
    BatchNorm(..., axis_name="batch") reduces over the batch. train=False runs
    `eqx.nn.inference_mode(model)` (running statistics, Dropout off; state returned unchanged);
    train=True the model as built, and the state comes back updated. Dropout: example i gets
    split(key, batch)[i] (models whose __call__ takes a `key`). `apply` is an error for a stateful
    model. input_shape: the shape of one example; given, `unit_layout` declares what is probed from the
    model's program: every weight's unit axis (the axis its dot or convolution keeps: 0 for equinox's
    Linear (out, in) and Conv (out, in, kh, kw), whatever a custom layer does) and the output layer
    (the layer whose units map one-to-one onto the outputs). Without it nothing is declared.

    Example:
        >>> import equinox as eqx
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.interop import from_equinox
        >>> net = from_equinox(lambda key: eqx.nn.MLP(4, 3, 8, 1, key=key), input_shape=(4,))
        >>> params = net.init(jax.random.key(0), (4,))
        >>> params.layers[0].weight.shape, params.layers[1].bias.shape  # the model's own structure, arrays only
        ((8, 4), (3,))
        >>> net.apply(params, jnp.ones((2, 4))).shape  # mapped over the batch axis
        (2, 3)
        >>> net.unit_layout.output_layer, net.unit_layout.unit_axes["layers/0/weight"]
        ('layers/1', 0)
    """
    import equinox as eqx

    if isinstance(make, eqx.Module):
        raise TypeError(
            f"from_equinox takes a factory make(key) -> model, so each seed draws its own weights; got a built "
            f"{type(make).__name__}. Pass e.g. `from_equinox(lambda key: eqx.nn.MLP(40, 10, 32, 2, key=key))`"
        )
    if not callable(make):
        raise TypeError(f"from_equinox takes a factory make(key) -> eqx.Module, got {make!r}")
    shape = check_input_shape("from_equinox", input_shape)

    def build(key: jax.Array) -> tuple[eqx.Module, Any]:
        out = make(key)
        model, state = out if isinstance(out, tuple) and len(out) == 2 else (out, None)
        if not isinstance(model, eqx.Module) or not (state is None or isinstance(state, eqx.nn.State)):
            raise TypeError(
                "from_equinox: make(key) must return an eqx.Module, or (model, state) as "
                f"eqx.nn.make_with_state gives, got {type(out).__name__}"
            )
        return model, state

    # The static part (structure, activations) from an abstract model: no weights drawn.
    abstract, abstract_state = eqx.filter_eval_shape(build, jax.random.key(0))
    _, static = eqx.partition(abstract, lambda a: isinstance(a, jax.ShapeDtypeStruct))
    stateful = abstract_state is not None
    dtypes = jax.tree.map(lambda a: a.dtype, abstract_state)

    # The state's bool and int leaves (BatchNorm's first-step flag, its step counter) are carried as
    # float32, so that the model state averages and interpolates like params (`stability`,
    # `interpolation`); each call casts them back.
    def as_float(state: Any) -> Any:
        return jax.tree.map(lambda a: a if jnp.issubdtype(a.dtype, jnp.inexact) else a.astype(jnp.float32), state)

    def as_model_state(state: Any) -> Any:
        def back(a: jax.Array, dtype: Any) -> jax.Array:
            if jnp.issubdtype(dtype, jnp.inexact):
                return a
            return a > 0.5 if dtype == jnp.bool_ else jnp.round(a).astype(dtype)

        return jax.tree.map(back, state, dtypes)

    takes_key = _takes_key(abstract)

    def init(key: jax.Array, input_shape: Sequence[int] | None) -> Params:
        del input_shape
        return eqx.partition(build(key)[0], eqx.is_array)[0]

    def init_state(input_shape: Sequence[int] | None) -> State:
        del input_shape
        # Only the state is returned, so XLA drops the weights' initializers.
        return jax.jit(lambda: as_float(build(jax.random.key(0))[1]))() if stateful else {}

    def apply_with_state(
        params: Params, state: State, x: jax.Array, *, key: jax.Array | None = None, train: bool = False
    ) -> tuple[jax.Array, State]:
        model = eqx.combine(params, static)
        if not train:
            model = eqx.nn.inference_mode(model)
        keys = None if key is None or not takes_key else jax.random.split(key, x.shape[0])

        def one(xi: jax.Array, k: jax.Array | None, s: Any) -> Any:
            kw = {} if k is None else {"key": k}
            return model(xi, s, **kw) if stateful else (model(xi, **kw), s)

        if stateful and not isinstance(state, eqx.nn.State):
            raise StateError(
                f"{type(abstract).__name__} carries state (eqx.nn.State) beside its params; pass "
                f"state = net.init_state(input_shape) to apply_with_state, got a {type(state).__name__}"
            )
        y, new = jax.vmap(
            one, in_axes=(0, 0 if keys is not None else None, None), out_axes=(0, None), axis_name=axis_name
        )(x, keys, as_model_state(state) if stateful else None)
        return y, (as_float(new) if stateful and train else state)

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        if stateful:
            raise StateError(
                f"{type(abstract).__name__} carries state (eqx.nn.State) beside its params; call "
                "net.apply_with_state(params, state, x, train=...) with state = net.init_state(input_shape), "
                "or pass the network itself (not net.apply) to funcnn's training functions"
            )
        return apply_with_state(params, {}, x, key=key, train=train)[0]

    def output_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
        x = jax.ShapeDtypeStruct((1, *tuple(input_shape)), jnp.float32)
        y = jax.eval_shape(lambda k, x: apply_with_state(init(k, None), init_state(None), x)[0], jax.random.key(0), x)
        return tuple(y.shape[1:])

    def statistics(params: Params, state: State, x: jax.Array, idx: jax.Array) -> State:
        # Each batch from the model's initial flags and counters with its statistics at 0, in training
        # mode: equinox's BatchNorm then holds exactly what its inference reads as that batch's
        # statistics ("ema": the batch mean and variance, its first-step flag cleared; "batch":
        # (1 - momentum) x those, its counter at 1, which inference divides by 1 - momentum^1). The
        # average of those states reads as the average of the batches' statistics. (A momentum read-off
        # from a zero state would take the first-step branch and come back x (1 - momentum).)
        del state
        flags = lambda a, dtype: a if not jnp.issubdtype(dtype, jnp.inexact) else jnp.zeros_like(a)
        reset = jax.tree.map(flags, init_state(None), dtypes)
        key = jax.random.key(0)
        step = lambda i: apply_with_state(params, reset, x[i], key=key, train=True)[1]
        zero = jax.tree.map(jnp.zeros_like, reset)
        total = jax.lax.scan(lambda acc, i: (jax.tree.map(jnp.add, acc, step(i)), None), zero, idx)[0]
        return jax.tree.map(lambda t: t / idx.shape[0], total)

    if shape is None:  # nothing to probe with: nothing declared
        unit_layout = layout(None)
    else:
        params0, state0 = init(jax.random.key(0), shape), init_state(shape)
        unit_layout = layout(params0, lambda p, x: apply_with_state(p, state0, x)[0], shape)
    return Layer(
        "equinox", init, apply, output_shape, (), init_state, apply_with_state, unit_layout,
        statistics if stateful else None,
    )  # fmt: skip
