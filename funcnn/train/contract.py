"""What a net is to the training functions: one contract, `as_net`, and `as_forward` built on it.

A net comes in one of three forms, and `as_net` makes each a funcnn `Layer`:

    a funcnn Layer                    returned as it is (bit-identical behaviour)
    an object with init and apply     init(key, input_shape) -> params; apply(params, x, ...) -> y;
                                      optional init_state, apply_with_state, unit_layout, output_shape
    a pair (init, apply)              the same two functions in a tuple

The Layer's `apply(params, x, *, key=None, train=False)` passes `key=` and `train=` on only to an
inner apply that accepts them (a parameter of that name, or **kwargs), so `apply(params, x)`,
`apply(params, x, *, train)` and `apply(params, x, *, key, train)` all train the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from funcnn.nn import Layer
from funcnn.train.train_state import Array, Params

__all__ = ["as_forward", "as_net"]

# a funcnn Layer, an object with init/apply, a pair (init, apply), or (where params come from the
# caller) a plain apply(params, x, ...) function
Net = Any
# (params, model_state, x, *, key, train) -> (y, model_state)
Forward = Callable[..., tuple[Array, Params | None]]

FORMS = (
    "a funcnn Layer, an object with init(key, input_shape) and apply(params, x) methods, "
    "or a pair (init, apply) of those two functions"
)


def as_net(net: Net, *, name: str = "net", needs_init: bool = True) -> Layer:
    """`net` as a funcnn `Layer` whose apply takes `key=` and `train=`, whatever the inner apply takes.

    net: a funcnn `Layer` (returned as is); any object with `init(key, input_shape) -> params` and
    `apply(params, x, ...) -> y` (its `init_state`, `apply_with_state`, `unit_layout`, `output_shape`
    are used when present; `output_shape` is otherwise worked out with `jax.eval_shape`); or a pair
    `(init, apply)`. The Layer's `apply(params, x, *, key=None, train=False)` (and
    `apply_with_state`) passes `key` and `train` on to the inner function only if its signature
    (`inspect.signature`) has a parameter of that name or **kwargs; a function whose signature
    cannot be read (some builtins and C extensions) gets neither. needs_init=False also takes a bare
    apply function (the training functions, given params, need no init); its Layer's init raises.
    A flax.linen Module (whose init takes an example input, not a shape) is refused: see
    `funcnn.interop.from_flax`. Anything else: TypeError naming `name` and the accepted forms.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import train
        >>> init = lambda key, shape: {"w": jax.random.normal(key, shape + (2,))}
        >>> apply = lambda params, x: x @ params["w"]  # takes neither key nor train
        >>> net = train.as_net((init, apply))
        >>> params = net.init(jax.random.key(0), (3,))
        >>> net.apply(params, jnp.ones((4, 3)), key=jax.random.key(1), train=True).shape, net.output_shape((3,))
        ((4, 2), (2,))
        >>> train.as_net("mlp")
        Traceback (most recent call last):
        ...
        TypeError: net must be a funcnn Layer, an object with init(key, input_shape) and apply(params, x) ...
    """
    if isinstance(net, Layer):
        return net
    if any((getattr(c, "__module__", None) or "").split(".")[0] == "flax" for c in type(net).__mro__):
        raise TypeError(
            f"{name} is a flax Module ({type(net).__name__}), whose init takes an example input, not a shape: "
            f"wrap it as funcnn.interop.from_flax({name})"
        )
    init, apply = getattr(net, "init", None), getattr(net, "apply", None)
    if callable(init) and callable(apply):
        extras = {}
        for field in ("init_state", "apply_with_state", "output_shape"):
            fn = getattr(net, field, None)
            if fn is not None and not callable(fn):
                raise TypeError(f"{name}.{field} must be a function when present, got {fn!r}")
            extras[field] = fn
        kind = getattr(net, "kind", None)
        return _layer(
            kind if isinstance(kind, str) else "net",
            init,
            apply,
            extras["init_state"],
            extras["apply_with_state"],
            extras["output_shape"],
            getattr(net, "unit_layout", None),
            getattr(net, "statistics", None),
        )
    if isinstance(net, tuple):
        if len(net) != 2 or not all(callable(f) for f in net):
            kinds = ", ".join(type(f).__name__ for f in net)
            raise TypeError(f"{name} as a tuple must be a pair (init, apply) of functions, got ({kinds})")
        return _layer("net", net[0], net[1])
    if callable(net) and not needs_init:
        return _layer("net", _no_init(name), net)
    hint = "; a bare apply function has no init: pass (init, apply)" if callable(net) else ""
    raise TypeError(f"{name} must be {FORMS}; got {net!r}{hint}")


def accepts(fn: Callable[..., Any]) -> tuple[bool, bool]:
    """(takes key=, takes train=) for `fn`, from its signature; (False, False) when unreadable."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins, some C extensions: pass them nothing
        return False, False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return True, True
    names = {p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    return "key" in names, "train" in names


# Names that other libraries give the training flag and the key: an apply that takes one of these but
# not `train=` / `key=` would never be run in training mode (or without its Dropout key), silently.
_OTHER_FLAGS = {
    "training": "train",
    "is_training": "train",
    "deterministic": "train",
    "use_running_average": "train",
    "inference": "train",
    "rng": "key",
    "rngs": "key",
    "dropout_rng": "key",
    "prng_key": "key",
    "rng_key": "key",
}
_NEGATED = ("deterministic", "use_running_average", "inference")


def _check_flag_names(fn: Callable[..., Any]) -> None:
    """Refuse an apply whose training flag or key has another library's name (it would never see ours)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return
    names = [p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY]
    ours = {"train", "key"} & set(names)
    for n in names:
        want = _OTHER_FLAGS.get(n)
        if want is None or want in ours:
            continue
        if want == "train":
            arg, never = (f"{n}=not train" if n in _NEGATED else f"{n}=train"), "never run in training mode"
        else:
            arg, never = f"{n}=key", "never get its key"
        raise TypeError(
            f"{getattr(fn, '__qualname__', repr(fn))} takes `{n}=`, which funcnn never passes (it calls "
            f"apply(params, x, key=..., train=...)), so it would {never}. Wrap it: "
            f"lambda params, x, key=None, train=False: apply(params, x, {arg})"
        )


def _keywords(fn: Callable[..., Any]) -> Callable[[Array | None, bool], dict[str, Any]]:
    """kwargs(key, train): the key= and train= that `fn` takes (its signature read once, not per trace)."""
    _check_flag_names(fn)
    takes_key, takes_train = accepts(fn)

    def kwargs(key: Array | None, train: bool) -> dict[str, Any]:
        return {**({"key": key} if takes_key else {}), **({"train": train} if takes_train else {})}

    return kwargs


def _layer(
    kind: str,
    init: Callable[..., Params],
    inner_apply: Callable[..., Any],
    init_state: Callable[..., Any] | None = None,
    inner_apply_with_state: Callable[..., Any] | None = None,
    output_shape: Callable[..., Any] | None = None,
    unit_layout: Any = None,
    statistics: Any = None,
) -> Layer:
    """A Layer around foreign functions: key/train filtered for each, output_shape by eval_shape."""
    apply_keywords = _keywords(inner_apply)

    def apply(params: Params, x: Any, *, key: Array | None = None, train: bool = False) -> Any:
        return inner_apply(params, x, **apply_keywords(key, train))

    apply_with_state = None
    if inner_apply_with_state is not None:
        stateful_apply, stateful_keywords = inner_apply_with_state, _keywords(inner_apply_with_state)

        def apply_with_state(
            params: Params, state: Any, x: Any, *, key: Array | None = None, train: bool = False
        ) -> tuple[Any, Any]:
            return stateful_apply(params, state, x, **stateful_keywords(key, train))

    def traced_output_shape(input_shape: tuple) -> tuple:
        def run(k: Array, x: Array) -> Any:
            params = init(k, tuple(input_shape))
            if init_state is not None and apply_with_state is not None:
                return apply_with_state(params, init_state(tuple(input_shape)), x)[0]
            return apply(params, x)

        x = jax.ShapeDtypeStruct((1,) + tuple(input_shape), jnp.float32)
        return tuple(jax.eval_shape(lambda x: run(jax.random.key(0), x), x).shape[1:])

    return Layer(
        kind,
        init,
        apply,
        traced_output_shape if output_shape is None else output_shape,
        init_state=init_state,
        apply_with_state=apply_with_state,
        unit_layout=unit_layout,
        statistics=statistics,
    )


def _no_init(name: str) -> Callable[..., Params]:
    def init(key: Array, input_shape: tuple) -> Params:
        del key, input_shape
        raise TypeError(f"{name} is an apply function alone, with no init: pass (init, apply) to make params")

    return init


def as_forward(net: Net) -> Forward:
    """`forward(params, model_state, x, *, key=None, train=False) -> (y, model_state)` for a net.

    net: any form `as_net` takes, or a plain apply function. With model_state None, the net's plain
    `apply` (an error for a stateful net); else its `apply_with_state` (a net without one returns
    model_state unchanged). `key` and `train` reach the net's functions only where they take them.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import nn, train
        >>> net = nn.serial(nn.Dense(3))
        >>> params = net.init(jax.random.key(0), (2,))
        >>> y, model_state = train.as_forward(net)(params, None, jnp.ones((5, 2)))
        >>> y.shape, model_state  # (batch, features); a stateless net has no model state
        ((5, 3), None)
    """
    layer = as_net(net, needs_init=False)

    def forward(
        params: Params, model_state: Params | None, x: Array, *, key: Array | None = None, train: bool = False
    ) -> tuple[Array, Params | None]:
        if model_state is not None:
            return layer.apply_with_state(params, model_state, x, key=key, train=train)
        return layer.apply(params, x, key=key, train=train), model_state

    return forward
