"""Dropout: zero each unit with probability `rate` in training, scale the kept ones by 1 / (1 - rate)."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from funcnn import checks
from funcnn.nn.layer import Layer, LayerError, Params, Shape, as_shape

__all__ = ["Dropout"]


def Dropout(rate: float) -> Layer:
    """Inverted dropout; `rate` is the probability of DROPPING a unit (stax's `Dropout(rate)` meant
    the probability of keeping one, jax-ml/jax#849; ours follows PyTorch and Keras).

    x: (*batch, *features) -> y of the same shape. In training (`train=True`),
    y = x * mask / (1 - rate) with mask ~ Bernoulli(1 - rate) drawn from `key`, so E[y] = x; in
    evaluation (`train=False`) y = x and the key is ignored. rate=0 is the identity. Params are {}.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn.nn import Dropout
        >>> layer = Dropout(0.5)
        >>> params = layer.init(jax.random.key(0), (8,))
        >>> x = jnp.ones(8)
        >>> layer.apply(params, x, key=jax.random.key(0), train=True).tolist()  # kept units scaled by 2
        [0.0, 0.0, 2.0, 2.0, 0.0, 2.0, 2.0, 0.0]
        >>> layer.apply(params, x).tolist()  # evaluation: the identity
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    if not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= rate < 1:
        raise ValueError(f"Dropout: rate must be in [0, 1) (the probability of dropping a unit), got rate={rate!r}")
    keep = 1.0 - float(rate)
    scale = 1.0 / keep  # x * (1 / keep), as XLA rewrites x / keep anyway: the same bits eager or jitted

    def init(key: jax.Array, input_shape: Shape) -> Params:
        del key
        as_shape(input_shape)
        return {}

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        del params
        if not train or rate == 0:
            return x
        if key is None:
            raise LayerError(
                f"Dropout(rate={rate}) needs a key in training mode (train=True): pass key= to apply, or "
                "train with funcnn.fit / make_train_step with a TrainState key"
            )
        checks.prng_key(key, who=f"Dropout(rate={rate}).apply(params, x, key=key, train=True)")
        mask = jax.random.bernoulli(key, keep, x.shape)
        return jnp.where(mask, x * scale, jnp.zeros_like(x))

    return Layer("dropout", init, apply, as_shape)
