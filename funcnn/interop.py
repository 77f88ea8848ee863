"""Adapters: a flax.linen Module or an equinox Module as a funcnn net (a `Layer`).

    net = from_flax(MLP())                                           # a flax.linen Module
    net = from_equinox(lambda key: eqx.nn.MLP(40, 10, 32, 2, key=key))  # a factory make(key)
    params = net.init(key, (40,))        # a pytree of arrays only: prune, train, lottery.run take it
    y = net.apply(params, x)             # x: (batch, 40)

Both return a stateless `Layer` (kind 'flax' or 'equinox'), so they work wherever a funcnn net does,
`serial` included. Neither library is a dependency of funcnn: each is imported when its adapter is
called. Not supported: flax variables other than 'params' (batch_stats) and equinox state
(`eqx.nn.State`); `key` and `train` are accepted and ignored (no dropout inside the module).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from funcnn.nn import Layer
from funcnn.nn.layer import Params

if TYPE_CHECKING:  # neither is a dependency: each is imported when its adapter is called
    import equinox as eqx
    import flax.linen

__all__ = ["from_equinox", "from_flax"]


def from_flax(module: flax.linen.Module) -> Layer:
    """A flax.linen Module as a funcnn `Layer` whose params are its 'params' collection.

    init(key, input_shape) = module.init(key, zeros((1, *input_shape)))["params"];
    apply(params, x) = module.apply({"params": params}, x), x: (*batch, *input_shape) as the module takes.

    Example:
        >>> import flax.linen as nn
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.interop import from_flax
        >>> net = from_flax(nn.Dense(3))
        >>> params = net.init(jax.random.key(0), (4,))
        >>> jax.tree.map(jnp.shape, params)  # flax's own names
        {'bias': (3,), 'kernel': (4, 3)}
        >>> net.apply(params, jnp.ones((2, 4))).shape, net.output_shape((4,))
        ((2, 3), (3,))
    """
    import flax.core
    import flax.linen

    if not isinstance(module, flax.linen.Module):
        raise TypeError(f"from_flax takes a flax.linen Module (e.g. MLP(), not MLP), got {module!r}")

    def init(key: jax.Array, input_shape: Sequence[int]) -> Params:
        variables = flax.core.unfreeze(module.init(key, jnp.zeros((1,) + tuple(input_shape))))
        extra = sorted(set(variables) - {"params"})
        if extra:
            raise ValueError(
                f"from_flax: {type(module).__name__} has variable collections {extra} besides 'params'; "
                "only modules whose variables are all params are supported (use funcnn's BatchNorm for "
                "running statistics)"
            )
        return variables.get("params", {})

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        del key, train
        # flax types apply's result as out | (out, mutated variables); without `mutable=` it is out
        return module.apply({"params": params}, x)  # type: ignore[return-value]

    def output_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
        x = jax.ShapeDtypeStruct((1,) + tuple(input_shape), jnp.float32)
        y = jax.eval_shape(lambda k, x: apply(init(k, x.shape[1:]), x), jax.random.key(0), x)
        return tuple(y.shape[1:])

    return Layer("flax", init, apply, output_shape)


def from_equinox(make: Callable[[jax.Array], Any]) -> Layer:
    """An equinox Module, built by `make(key)`, as a funcnn `Layer` whose params are its arrays.

    init(key, input_shape) = eqx.partition(make(key), eqx.is_array)[0]: the model's arrays, with its
    non-array leaves (activation functions, Python numbers) left out as None; apply(params, x) puts
    them back (`eqx.combine`) and maps the model over x's leading axis (equinox layers take one
    example): x (batch, *input_shape) -> (batch, *output_shape). `input_shape` is not used by init:
    the model fixes its own sizes.

    Example:
        >>> import equinox as eqx
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.interop import from_equinox
        >>> net = from_equinox(lambda key: eqx.nn.Linear(4, 3, key=key))
        >>> params = net.init(jax.random.key(0), (4,))
        >>> params.weight.shape, params.bias.shape  # the model's own structure, arrays only
        ((3, 4), (3,))
        >>> net.apply(params, jnp.ones((2, 4))).shape  # mapped over the batch axis
        (2, 3)
    """
    import equinox as eqx

    if isinstance(make, eqx.Module):
        raise TypeError(
            f"from_equinox takes a factory make(key) -> model, so each seed draws its own weights; got a built "
            f"{type(make).__name__}. Pass e.g. `from_equinox(lambda key: eqx.nn.MLP(40, 10, 32, 2, key=key))`"
        )
    if not callable(make):
        raise TypeError(f"from_equinox takes a factory make(key) -> eqx.Module, got {make!r}")

    def build(key: jax.Array) -> eqx.Module:
        model = make(key)
        if not isinstance(model, eqx.Module):
            raise TypeError(
                f"from_equinox: make(key) must return an eqx.Module, got {type(model).__name__}; stateful "
                "models (eqx.nn.make_with_state) are not supported"
            )
        return model

    # The static part (structure, activations) from an abstract model: no weights drawn.
    abstract = eqx.filter_eval_shape(build, jax.random.key(0))
    _, static = eqx.partition(abstract, lambda a: isinstance(a, jax.ShapeDtypeStruct))

    def init(key: jax.Array, input_shape: Sequence[int] | None) -> Params:
        del input_shape
        return eqx.partition(build(key), eqx.is_array)[0]

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        del key, train
        return jax.vmap(eqx.combine(params, static))(x)

    def output_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
        x = jax.ShapeDtypeStruct((1,) + tuple(input_shape), jnp.float32)
        y = jax.eval_shape(lambda k, x: apply(init(k, None), x), jax.random.key(0), x)
        return tuple(y.shape[1:])

    return Layer("equinox", init, apply, output_shape)
