"""Normalization layers: BatchNorm (batch statistics in training, running statistics kept as state)
and LayerNorm (statistics over each example's features)."""

from __future__ import annotations

import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp

from funcnn.nn.layer import Layer, Params, Shape, ShapeError, State, StateError, as_shape, check_entries, stateful

__all__ = ["BatchNorm", "LayerNorm"]

Initializer = Callable[..., jax.Array]


def _features(kind: str, input_shape: Shape) -> int:
    shape = as_shape(input_shape)
    if len(shape) < 1:
        raise ShapeError(f"{kind}: expected an input shape with a features axis (..., C), got {shape}")
    return shape[-1]


def _per_feature(v: jax.Array, ndim: int) -> jax.Array:
    """A (C,) vector shaped (1, ..., 1, C) to broadcast against an array of rank ndim explicitly."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def _scale_offset(key: jax.Array, c: int, scale_init: Initializer, offset_init: Initializer) -> dict[str, jax.Array]:
    """The learnable affine part of a normalization: {"scale": (C,), "offset": (C,)}."""
    ks, ko = jax.random.split(key)
    return {"scale": scale_init(ks, (c,), jnp.float32), "offset": offset_init(ko, (c,), jnp.float32)}


def BatchNorm(
    momentum: float = 0.1,
    eps: float = 1e-5,
    scale_init: Initializer = jax.nn.initializers.ones,
    offset_init: Initializer = jax.nn.initializers.zeros,
) -> Layer:
    """Batch normalization over the last (features) axis, PyTorch's convention (as OpenLTH uses).

    params {"scale": (C,), "offset": (C,)}; state {"mean": (C,) zeros, "var": (C,) ones}.
    x: (*batch, ..., C) -> y of the same shape, y = (x - mean) / sqrt(var + eps) * scale + offset.

    train=True: mean and var are the batch statistics over every axis but the last (var biased, / n),
    and the running statistics are updated with the UNBIASED variance (n / (n - 1)), n = number of
    elements reduced per feature:
        running = (1 - momentum) * running + momentum * batch_stat.
    train=False: mean and var are the running statistics; the state comes back unchanged.
    No cross-device axis: under `jax.vmap` over a population each member keeps its own statistics.

    Example: two examples of one feature, 1 and 3 (batch mean 2, biased var 1, unbiased var 2).

        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import BatchNorm
        >>> layer = BatchNorm()
        >>> params, state = layer.init(jax.random.key(0), (1,)), layer.init_state((1,))
        >>> sorted(params), sorted(state)
        (['offset', 'scale'], ['mean', 'var'])
        >>> x = jnp.array([[1.0], [3.0]])
        >>> y, state = layer.apply_with_state(params, state, x, train=True)
        >>> y.shape, [round(v, 4) for v in y[:, 0].tolist()]
        ((2, 1), [-1.0, 1.0])
        >>> round(float(state["mean"][0]), 4), round(float(state["var"][0]), 4)  # 0.9 * (0, 1) + 0.1 * (2, 2)
        (0.2, 1.1)
    """
    if not isinstance(momentum, numbers.Real) or isinstance(momentum, bool) or not 0 <= momentum <= 1:
        raise ValueError(f"BatchNorm: momentum must be in [0, 1], got momentum={momentum!r}")
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not eps > 0:
        raise ValueError(f"BatchNorm: eps must be > 0, got eps={eps!r}")

    def output_shape(input_shape: Shape) -> Shape:
        _features("BatchNorm", input_shape)
        return as_shape(input_shape)

    def init(key: jax.Array, input_shape: Shape) -> Params:
        return _scale_offset(key, _features("BatchNorm", input_shape), scale_init, offset_init)

    def init_state(input_shape: Shape) -> State:
        c = _features("BatchNorm", input_shape)
        return {"mean": jnp.zeros((c,), jnp.float32), "var": jnp.ones((c,), jnp.float32)}

    def apply_with_state(
        params: Params, state: State, x: jax.Array, *, key: jax.Array | None = None, train: bool = False
    ) -> tuple[jax.Array, State]:
        del key
        try:
            check_entries(state, ["mean", "var"], "state")
        except ValueError as e:
            raise StateError(f"BatchNorm: {e}") from None
        c = state["mean"].shape[-1]
        if x.ndim < 1 or x.shape[-1] != c:
            raise ShapeError(
                f"BatchNorm: expected input of shape (*batch, ..., {c}) ({c} features, as its state "
                f"was made for), got {tuple(x.shape)}"
            )
        if train:
            axes = tuple(range(x.ndim - 1))
            n = x.size // c
            if x.ndim < 2 or n < 2:
                raise ShapeError(
                    f"BatchNorm: training mode needs more than one value per feature over the batch "
                    f"(an input (*batch, ..., {c}) with a batch axis), got {tuple(x.shape)}"
                )
            mean = jnp.mean(x, axis=axes)
            var = jnp.mean(jnp.square(x - _per_feature(mean, x.ndim)), axis=axes)
            batch_mean, batch_var = jax.lax.stop_gradient((mean, var * (n / (n - 1))))
            new_state = {
                "mean": ((1 - momentum) * state["mean"] + momentum * batch_mean).astype(state["mean"].dtype),
                "var": ((1 - momentum) * state["var"] + momentum * batch_var).astype(state["var"].dtype),
            }
        else:
            mean, var, new_state = state["mean"], state["var"], state
        inv = jax.lax.rsqrt(var + eps) * params["scale"]
        y = (x - _per_feature(mean, x.ndim)) * _per_feature(inv, x.ndim) + _per_feature(params["offset"], x.ndim)
        return y, new_state

    return stateful("batchnorm", init, init_state, apply_with_state, output_shape)


def LayerNorm(
    eps: float = 1e-5,
    scale_init: Initializer = jax.nn.initializers.ones,
    offset_init: Initializer = jax.nn.initializers.zeros,
) -> Layer:
    """Layer normalization over the last axis, params {"scale": (C,), "offset": (C,)}; stateless.

    x: (*batch, ..., C) -> y of the same shape,
    y = (x - mean) / sqrt(var + eps) * scale + offset, mean and (biased) var over x's last axis.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import LayerNorm
        >>> layer = LayerNorm()
        >>> params = layer.init(jax.random.key(0), (2,))
        >>> params["scale"].tolist(), params["offset"].tolist()
        ([1.0, 1.0], [0.0, 0.0])
        >>> y = layer.apply(params, jnp.array([[1.0, 3.0]]))  # mean 2, var 1
        >>> y.shape, [round(v, 4) for v in y[0].tolist()]
        ((1, 2), [-1.0, 1.0])
    """
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not eps > 0:
        raise ValueError(f"LayerNorm: eps must be > 0, got eps={eps!r}")

    def output_shape(input_shape: Shape) -> Shape:
        _features("LayerNorm", input_shape)
        return as_shape(input_shape)

    def init(key: jax.Array, input_shape: Shape) -> Params:
        return _scale_offset(key, _features("LayerNorm", input_shape), scale_init, offset_init)

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        del key, train
        c = params["scale"].shape[-1]
        if x.ndim < 1 or x.shape[-1] != c:
            raise ShapeError(f"LayerNorm: expected input of shape (*batch, ..., {c}), got {tuple(x.shape)}")
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        y = (x - mean) * jax.lax.rsqrt(var + eps)
        return y * _per_feature(params["scale"], x.ndim) + _per_feature(params["offset"], x.ndim)

    return Layer("layernorm", init, apply, output_shape)
