"""Evaluation on a held-out set (`make_evaluate`, in chunks, eval mode) and the data checks the
training functions share (`validate_data`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import losses as losses_lib
from funcnn.train.contract import Net, as_forward
from funcnn.train.step import LossFn
from funcnn.train.train_state import Array, Params

__all__ = ["make_evaluate"]

# a data set's features or labels: host (numpy) or device (jax) arrays
Data = np.ndarray | jax.Array


def make_evaluate(
    net: Net, loss: LossFn, metric: LossFn = losses_lib.accuracy, chunk: int = 1000
) -> Callable[..., dict[str, Array]]:
    """Build `evaluate(params, x, y, model_state=None) -> {"loss", "accuracy"}` over a held-out set.

    Eval mode (train=False): Dropout is the identity, BatchNorm uses the running statistics in
    `model_state` (required for a stateful net). The set is processed in chunks of `chunk` examples
    (`lax.map`) to bound memory; the loss and the metric are means over examples (the chunks are
    weighted by their sizes).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import losses, nn, train
        >>> net = nn.serial(nn.Dense(2))
        >>> params = jax.tree.map(jnp.zeros_like, net.init(jax.random.key(0), (3,)))  # every logit 0
        >>> evaluate = jax.jit(train.make_evaluate(net, losses.softmax_cross_entropy, chunk=3))  # chunks 3, 3, 2
        >>> scores = evaluate(params, jnp.ones((8, 3)), jnp.array([0, 1] * 4))
        >>> round(float(scores["loss"]), 4), float(scores["accuracy"])  # log 2; argmax ties pick class 0
        (0.6931, 0.5)
    """
    forward = as_forward(net)

    def evaluate(params: Params, x: Array, y: Array, model_state: Params | None = None) -> dict[str, Array]:
        n = x.shape[0]
        size = min(chunk, n)
        full = (n // size) * size

        def one(xy: tuple[Array, Array]) -> tuple[Array, Array]:
            logits = forward(params, model_state, xy[0], train=False)[0]
            return loss(logits, xy[1]), metric(logits, xy[1])

        xs = x[:full].reshape((-1, size) + x.shape[1:])
        ys = y[:full].reshape((-1, size) + y.shape[1:])
        chunk_loss, chunk_metric = jax.lax.map(one, (xs, ys))
        l_sum, m_sum = jnp.sum(chunk_loss) * size, jnp.sum(chunk_metric) * size
        if full < n:
            l_rest, m_rest = one((x[full:], y[full:]))
            l_sum, m_sum = l_sum + l_rest * (n - full), m_sum + m_rest * (n - full)
        return {"loss": l_sum / n, "accuracy": m_sum / n}

    return evaluate


def validate_data(x: Data, y: Data, *, n_classes: int | None = None, name: str = "train") -> None:
    """Raise ValueError for non-float features, mismatched lengths or labels outside [0, n_classes)."""
    x, y = np.asarray(x), np.asarray(y)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"{name} features must be floating point, got dtype {x.dtype}; convert with x.astype(np.float32)"
        )
    if len(x) != len(y):
        raise ValueError(f"{name} features and labels differ in length: {len(x)} vs {len(y)}")
    if n_classes is not None and np.issubdtype(y.dtype, np.integer) and len(y):
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= n_classes:
            raise ValueError(f"{name} labels must lie in [0, {n_classes}), got values in [{lo}, {hi}]")
