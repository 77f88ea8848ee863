"""A flax.nnx Module, built by `make(rngs)`, as a funcnn net (a `Layer`).

    net = from_nnx(lambda rngs: CNN(rngs=rngs), input_shape=(28, 28, 1))
    params = net.init(key, (28, 28, 1))      # the nnx.Param state as a plain nested dict
    state = net.init_state((28, 28, 1))      # the rest: BatchNorm's statistics ({} without any)
    y, state = net.apply_with_state(params, state, x, key=key, train=True)

nnx keeps weights and statistics inside the module object; the adapter splits a fresh module into
its `flax.nnx.Param` state (funcnn's params) and every other variable but the RNG streams (funcnn's
model state), and `flax.nnx.merge`s them back at each call, so the net is a pure function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from funcnn.interop._common import check_input_shape, layout
from funcnn.nn.layer import Layer, Params, State, StateError

if TYPE_CHECKING:  # flax is not a dependency: it is imported when the adapter is called
    from flax import nnx

__all__ = ["from_nnx"]


def from_nnx(make: Callable[[nnx.Rngs], nnx.Module], *, input_shape: Sequence[int] | None = None) -> Layer:
    """A flax.nnx Module, built by `make(rngs)`, as a funcnn `Layer` (kind 'nnx').

    init(key, input_shape) = the `flax.nnx.Param` state of make(nnx.Rngs(key)) as a plain nested dict
    (`flax.nnx.to_pure_dict`: {'linear': {'kernel': (in, out), 'bias': (out,)}}, list indices as int
    keys); `input_shape` is not used by init (the module fixes its sizes). init_state(input_shape) =
    every other variable but the RNG state (BatchNorm's `mean` and `var`), {} when there is none.
    apply_with_state(params, state, x, key=, train=) runs the module on x (*batch, *input_shape) in
    `model.train()` mode (BatchNorm normalizes by the batch and updates its running averages, which
    come back as the new state; Dropout active) or `model.eval()` mode (running averages, Dropout off,
    state returned unchanged). Dropout's masks come from `key`: every RNG stream of the module is
    reseeded from it (`flax.nnx.reseed`), so the model state holds arrays only and the same key gives the
    same masks; a module with RNG streams needs a key in training. `apply` is an error for a module
    with state (`StateError`). input_shape: the shape of one example; given, `unit_layout` declares what
    is probed from the module's program: every weight's unit axis (the axis its dot or convolution keeps:
    -1 for nnx's (in, out) and (kh, kw, in, out) kernels, 0 for a custom layer's (out, in)) and the output
    layer (the one whose units are the output features). Without it nothing is declared.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from funcnn.interop import from_nnx
        >>> class MLP(nnx.Module):
        ...     def __init__(self, rngs):
        ...         self.hidden, self.out = nnx.Linear(4, 8, rngs=rngs), nnx.Linear(8, 3, rngs=rngs)
        ...     def __call__(self, x):
        ...         return self.out(nnx.relu(self.hidden(x)))
        >>> net = from_nnx(MLP, input_shape=(4,))  # MLP(rngs) is a make(rngs)
        >>> params = net.init(jax.random.key(0), (4,))
        >>> jax.tree.map(jnp.shape, params)["out"], net.init_state((4,))
        ({'bias': (3,), 'kernel': (8, 3)}, {})
        >>> net.apply(params, jnp.ones((2, 4))).shape, net.unit_layout.output_layer
        ((2, 3), 'out')
    """
    from flax import nnx

    if isinstance(make, nnx.Module):
        raise TypeError(
            f"from_nnx takes a factory make(rngs) -> nnx.Module, so each seed draws its own weights; got a built "
            f"{type(make).__name__}. Pass e.g. `from_nnx(lambda rngs: {type(make).__name__}(..., rngs=rngs))`"
        )
    if not callable(make):
        raise TypeError(f"from_nnx takes a factory make(rngs) -> nnx.Module, got a {type(make).__name__}")
    shape = check_input_shape("from_nnx", input_shape)

    def build(key: jax.Array) -> nnx.Module:
        model = make(nnx.Rngs(key))
        if not isinstance(model, nnx.Module):
            raise TypeError(f"from_nnx: make(rngs) must return an nnx.Module, got a {type(model).__name__}")
        return model

    def split(model: nnx.Module) -> tuple[Any, Params, Any, State]:
        graphdef, *states = nnx.split(model, nnx.Param, nnx.RngState, ...)
        params, rng, rest = states
        return graphdef, nnx.to_pure_dict(params), rng, nnx.to_pure_dict(rest)

    # The graph (structure, static fields) and the RNG state's shapes, from an abstract module.
    graphdef, _, rng_shapes, _ = split(nnx.eval_shape(lambda: build(jax.random.key(0))))
    streams = sorted({v.tag for v in jax.tree.leaves(rng_shapes, is_leaf=lambda v: isinstance(v, nnx.Variable))})

    def rng_state() -> Any:
        # Placeholders the key replaces (nnx.reseed) before any stream is drawn from.
        def fill(s: jax.ShapeDtypeStruct) -> jax.Array:
            if jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key):
                return jax.random.split(jax.random.key(0), s.shape)
            return jnp.zeros(s.shape, s.dtype)

        return jax.tree.map(fill, rng_shapes)

    def init(key: jax.Array, input_shape: Sequence[int] | None) -> Params:
        del input_shape
        return split(build(key))[1]

    def init_state(input_shape: Sequence[int] | None) -> State:
        del input_shape
        # Only the state is returned, so XLA drops the weights' initializers.
        return jax.jit(lambda: split(build(jax.random.key(0)))[3])()

    def apply_with_state(
        params: Params, state: State, x: jax.Array, *, key: jax.Array | None = None, train: bool = False
    ) -> tuple[jax.Array, State]:
        model = nnx.merge(graphdef, params, rng_state(), state)
        if train:
            model.train()
        else:
            model.eval()
        if key is not None and streams:
            keys: dict[str, Any] = {s: jax.random.fold_in(key, i) for i, s in enumerate(streams)}
            nnx.reseed(model, policy="match_shape", **keys)
        elif train and streams:
            raise StateError(
                f"{type(model).__name__} has RNG streams {streams} (Dropout) and needs a key in training mode "
                "(train=True): pass key= to apply, or train it with funcnn's training functions (they pass one)"
            )
        y = model(x)
        return y, (split(model)[3] if train else state)

    stateless = not jax.tree.leaves(jax.eval_shape(lambda: init_state(None)))

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        if not stateless:
            raise StateError(
                "nnx module carries state (BatchNorm statistics) beside its params; call "
                "net.apply_with_state(params, state, x, train=...) with state = net.init_state(input_shape), "
                "or pass the network itself (not net.apply) to funcnn's training functions"
            )
        return apply_with_state(params, {}, x, key=key, train=train)[0]

    def output_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
        x = jax.ShapeDtypeStruct((1, *tuple(input_shape)), jnp.float32)
        y = jax.eval_shape(lambda k, x: apply_with_state(init(k, None), init_state(None), x)[0], jax.random.key(0), x)
        return tuple(y.shape[1:])

    if shape is None:  # nothing to probe with: nothing declared
        unit_layout = layout(None)
    else:
        params0, state0 = init(jax.random.key(0), shape), init_state(shape)
        unit_layout = layout(params0, lambda p, x: apply_with_state(p, state0, x)[0], shape)
    return Layer("nnx", init, apply, output_shape, (), init_state, apply_with_state, unit_layout)
