"""A flax.linen Module as a funcnn net (a `Layer`): 'params' are the params, 'batch_stats' the model state.

net = from_flax(CNN(), train_arg="train", input_shape=(28, 28, 1))   # CNN.__call__(x, train)
params, state = net.init(key, (28, 28, 1)), net.init_state((28, 28, 1))
y, state = net.apply_with_state(params, state, x, key=key, train=True)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from funcnn.interop._common import check_input_shape, layout
from funcnn.nn.layer import Layer, Params, State, StateError

if TYPE_CHECKING:  # flax is not a dependency: it is imported when the adapter is called
    import flax.linen

__all__ = ["from_flax"]

# train_arg="auto" looks for these keyword arguments of the module's __call__, in this order:
# the first two take `train`, the others `not train`.
_AUTO = (("train", False), ("training", False), ("deterministic", True), ("use_running_average", True))
TrainArg = str | Callable[[bool], dict[str, Any]] | None


def _train_kwargs(module: Any, train_arg: TrainArg) -> Callable[[bool], dict[str, Any]]:
    """kwargs(train) -> the keyword arguments that put `module` in training (True) or eval (False) mode."""
    if callable(train_arg):
        return train_arg
    if train_arg is None:
        return lambda train: {}
    if not isinstance(train_arg, str):
        raise TypeError(
            "from_flax: train_arg must be 'auto', None, a keyword name or a function train -> kwargs, "
            f"got {train_arg!r}"
        )
    if train_arg != "auto":
        return lambda train: {train_arg: train}
    params = inspect.signature(type(module).__call__).parameters
    found = next(((name, negated) for name, negated in _AUTO if name in params), None)
    if found is None:
        return lambda train: {}
    name, negated = found
    return lambda train: {name: (not train) if negated else train}


def _refuse_nnx(module: Any) -> None:
    """A TypeError pointing an nnx Module (or class) to `from_nnx`, if it is one."""
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover - flax without nnx
        return
    cls = module if isinstance(module, type) else type(module)
    if issubclass(cls, nnx.Module):
        raise TypeError(
            f"from_flax takes a flax.linen Module; {cls.__name__} is a flax.nnx Module: use "
            f"funcnn.interop.from_nnx(lambda rngs: {cls.__name__}(..., rngs=rngs))"
        )


def from_flax(
    module: flax.linen.Module, *, train_arg: TrainArg = "auto", input_shape: Sequence[int] | None = None
) -> Layer:
    """A flax.linen Module as a funcnn `Layer` whose params are its 'params' and whose state its 'batch_stats'.

    init(key, input_shape) = module.init(key, zeros((1, *input_shape)), eval mode)["params"];
    init_state(input_shape) = the same init's 'batch_stats' ({} when there are none);
    apply_with_state(params, state, x, key=, train=) = module.apply({"params", "batch_stats"}, x,
    rngs={"dropout": key}), with mutable=['batch_stats'] in training (the updated statistics are the
    new state) and the running averages used, unchanged, in eval. x: (*batch, *input_shape) as the
    module takes. `apply` serves stateless modules (a `StateError` for one with batch_stats).
    train_arg: how the module is told train or eval. 'auto' (default): the first of its __call__'s
    keyword arguments `train` / `training` (given train) or `deterministic` / `use_running_average`
    (given not train); nothing if it has none. A name: that keyword gets train. A function
    train -> kwargs for anything else; None: the module takes no such argument. A module with
    batch_stats and no such argument is refused (its mode could not be switched).
    input_shape: the shape of one example; given, `unit_layout` declares what is probed from the
    module's program: every kernel's unit axis (the axis its dot or convolution keeps: -1 for flax's
    (in, out) and (kh, kw, in, out) kernels) and the output layer (the layer whose units map one-to-one
    onto the output features); None without it.

    Example:
        >>> import flax.linen as nn
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.interop import from_flax
        >>> net = from_flax(nn.Dense(3), input_shape=(4,))
        >>> params = net.init(jax.random.key(0), (4,))
        >>> jax.tree.map(jnp.shape, params)  # flax's own names
        {'bias': (3,), 'kernel': (4, 3)}
        >>> net.apply(params, jnp.ones((2, 4))).shape, net.output_shape((4,))
        ((2, 3), (3,))
        >>> net.unit_layout.unit_axes  # probed: the kernel's axis 1 is the one its dot keeps (the units)
        {'kernel': 1}
    """
    import flax.core
    import flax.linen

    _refuse_nnx(module)
    if not isinstance(module, flax.linen.Module):
        if isinstance(module, type) and issubclass(module, flax.linen.Module):
            raise TypeError(f"from_flax takes a flax.linen Module (e.g. {module.__name__}(), not {module.__name__})")
        raise TypeError(f"from_flax takes a flax.linen Module (e.g. MLP(), not MLP), got a {type(module).__name__}")
    kwargs = _train_kwargs(module, train_arg)
    shape = check_input_shape("from_flax", input_shape)
    name = type(module).__name__

    def variables(key: jax.Array, input_shape: Sequence[int]) -> dict[str, Any]:
        out = flax.core.unfreeze(module.init(key, jnp.zeros((1, *tuple(input_shape))), **kwargs(False)))
        extra = sorted(set(out) - {"params", "batch_stats"})
        if extra:
            raise ValueError(
                f"from_flax: {name} has variable collections {extra} besides 'params' and 'batch_stats'; "
                "only those two are supported"
            )
        if "batch_stats" in out and train_arg == "auto" and not kwargs(True):
            raise ValueError(
                f"from_flax: {name} has batch_stats but its __call__ takes none of the arguments "
                f"{[n for n, _ in _AUTO]}, so training and eval mode cannot be told apart; say how with "
                "train_arg='<keyword>' or train_arg=lambda train: {...}, or train_arg=None to run it as it is"
            )
        return out

    def init(key: jax.Array, input_shape: Sequence[int]) -> Params:
        return variables(key, input_shape).get("params", {})

    def init_state(input_shape: Sequence[int]) -> State:
        # Only the statistics are returned, so XLA drops the weights' initializers.
        return jax.jit(lambda: variables(jax.random.key(0), input_shape).get("batch_stats", {}))()

    def apply_with_state(
        params: Params, state: State, x: jax.Array, *, key: jax.Array | None = None, train: bool = False
    ) -> tuple[jax.Array, State]:
        v = {"params": params, **({"batch_stats": state} if state else {})}
        rngs = {} if key is None else {"dropout": key}
        try:
            if train and state:
                y, updated = module.apply(v, x, rngs=rngs, mutable=["batch_stats"], **kwargs(True))
                return y, flax.core.unfreeze(updated)["batch_stats"]
            # flax types apply's result as out | (out, mutated variables); without `mutable=` it is out
            return module.apply(v, x, rngs=rngs, **kwargs(train)), state  # type: ignore[return-value]
        except flax.errors.ScopeCollectionNotFound as e:
            raise StateError(
                f"{name} carries state (batch_stats) beside its params; call net.apply_with_state(params, "
                "state, x, train=...) with state = net.init_state(input_shape), or pass the network itself "
                "(not net.apply) to funcnn's training functions"
            ) from e

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        return apply_with_state(params, {}, x, key=key, train=train)[0]

    def output_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
        x = jax.ShapeDtypeStruct((1, *tuple(input_shape)), jnp.float32)
        y = jax.eval_shape(
            lambda k, x: apply_with_state(init(k, x.shape[1:]), init_state(x.shape[1:]), x)[0], jax.random.key(0), x
        )
        return tuple(y.shape[1:])

    unit_layout = None
    if shape is not None:
        params0, state0 = init(jax.random.key(0), shape), init_state(shape)
        unit_layout = layout(params0, lambda p, x: apply_with_state(p, state0, x)[0], shape)
    return Layer("flax", init, apply, output_shape, (), init_state, apply_with_state, unit_layout)
