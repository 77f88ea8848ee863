"""Cost functions and metrics, in the course's words.

The *error* of one prediction is y_hat - y; the *loss* is what one example costs; the *cost* J is the
loss reduced over the m examples of a batch. Predictions and targets are (m, *outputs) arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "accuracy",
    "asymmetric_mse",
    "binary_accuracy",
    "binary_cross_entropy",
    "error",
    "mse",
    "softmax_cross_entropy",
    "sse",
    "weighted_binary_cross_entropy",
]

Array = jax.Array


def _per_example_sum(x: Array) -> Array:
    """Sum over every axis but the first: (m, ...) -> (m,)."""
    return x.reshape(x.shape[0], -1).sum(axis=1) if x.ndim > 1 else x


def _check_same_shape(y_hat: Array, y: Array) -> None:
    if y_hat.shape != y.shape:
        raise ValueError(f"predictions and targets must have the same shape, got y_hat {y_hat.shape} and y {y.shape}")


def error(y_hat: Array, y: Array) -> Array:
    """The signed error y_hat - y of each output (same shape as the inputs).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import losses
        >>> losses.error(jnp.array([1.0, 2.0]), jnp.array([1.5, 0.0])).tolist()
        [-0.5, 2.0]
    """
    _check_same_shape(y_hat, y)
    return y_hat - y


def mse(y_hat: Array, y: Array) -> Array:
    """J = 1/(2m) * sum_i sum_k (y_hat_ik - y_ik)^2: squared error summed over outputs, mean over m.

    Example:
        >>> # two examples of two outputs, squared errors summing to 5 and 1: J = (5 + 1) / (2 * 2).
        >>> import jax.numpy as jnp
        >>> from funcnn import losses
        >>> float(losses.mse(jnp.array([[1.0, 2.0], [0.0, 1.0]]), jnp.zeros((2, 2))))
        1.5
    """
    _check_same_shape(y_hat, y)
    return 0.5 * jnp.mean(_per_example_sum((y_hat - y) ** 2))


def sse(y_hat: Array, y: Array) -> Array:
    """J = 1/2 * sum of all squared errors (no averaging).

    Example:
        >>> # the batch of `mse`'s example, not divided by m = 2: (1 + 4 + 0 + 1) / 2.
        >>> import jax.numpy as jnp
        >>> from funcnn import losses
        >>> float(losses.sse(jnp.array([[1.0, 2.0], [0.0, 1.0]]), jnp.zeros((2, 2))))
        3.0
    """
    _check_same_shape(y_hat, y)
    return 0.5 * jnp.sum((y_hat - y) ** 2)


def asymmetric_mse(y_hat: Array, y: Array, under_weight: float = 2.0, over_weight: float = 1.0) -> Array:
    """Squared error weighted by direction: J = 1/(2m) sum w(e) e^2 with e = y_hat - y.

    w = under_weight where the model under-predicts (e < 0), over_weight where it over-predicts.
    under_weight > over_weight punishes under-prediction more and pulls the fit upward.

    Example:
        >>> # one prediction 1 too low (weight 2), one 1 too high (weight 1): J = (2 + 1) / (2 * 2).
        >>> import jax.numpy as jnp
        >>> from funcnn import losses
        >>> float(losses.asymmetric_mse(jnp.array([-1.0, 1.0]), jnp.array([0.0, 0.0])))
        0.75
    """
    _check_same_shape(y_hat, y)
    if under_weight <= 0 or over_weight <= 0:
        raise ValueError(f"weights must be > 0, got under_weight={under_weight!r}, over_weight={over_weight!r}")
    e = y_hat - y
    w = jnp.where(e < 0, under_weight, over_weight)
    return 0.5 * jnp.mean(_per_example_sum(w * e**2))


def softmax_cross_entropy(logits: Array, labels: Array) -> Array:
    """Mean over m of -log softmax(logits)[label]; logits (m, classes), integer labels (m,).

    Example:
        >>> # all-zero logits over 4 classes give every class 1/4, so J = log 4.
        >>> import math
        >>> import jax.numpy as jnp
        >>> from funcnn import losses
        >>> J = losses.softmax_cross_entropy(jnp.zeros((2, 4)), jnp.array([0, 3]))
        >>> round(float(J), 6), round(math.log(4), 6)
        (1.386294, 1.386294)
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"labels must have shape logits.shape[:-1]={logits.shape[:-1]}, got labels {labels.shape}")
    return jnp.mean(optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels))


def binary_cross_entropy(logits: Array, labels: Array) -> Array:
    """Mean of -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))] over all entries; labels in {0, 1}.

    Example:
        >>> # logits 0 say p = 1/2 for every entry, so J = log 2 whatever the labels.
        >>> import jax.numpy as jnp
        >>> from funcnn import losses
        >>> round(float(losses.binary_cross_entropy(jnp.zeros(3), jnp.array([0, 1, 1]))), 6)
        0.693147
    """
    _check_same_shape(logits, labels)
    return jnp.mean(optax.losses.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype)))


def weighted_binary_cross_entropy(
    logits: Array, labels: Array, fn_weight: float = 1.0, fp_weight: float = 1.0
) -> Array:
    """Binary cross-entropy weighting false negatives (y=1 terms) and false positives (y=0 terms).

    J = mean(-fn_weight * y log p - fp_weight * (1 - y) log(1 - p)), p = sigmoid(logits).

    Example:
        >>> # at p = 1/2 a positive costs 3 log 2 (fn_weight 3), a negative log 2: J = 2 log 2.
        >>> import jax.numpy as jnp
        >>> from funcnn import losses
        >>> J = losses.weighted_binary_cross_entropy(jnp.zeros(2), jnp.array([1, 0]), fn_weight=3.0)
        >>> round(float(J), 6)
        1.386294
    """
    _check_same_shape(logits, labels)
    y = labels.astype(logits.dtype)
    log_p, log_not_p = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
    return jnp.mean(-fn_weight * y * log_p - fp_weight * (1 - y) * log_not_p)


def accuracy(logits: Array, labels: Array) -> Array:
    """Fraction of examples whose arg-max class equals the integer label; logits (m, classes).

    Example:
        >>> # the arg-max classes are 0, 1, 0 against labels 0, 1, 1: two right of three.
        >>> import jax.numpy as jnp
        >>> from funcnn import losses
        >>> logits = jnp.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
        >>> round(float(losses.accuracy(logits, jnp.array([0, 1, 1]))), 4)
        0.6667
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"labels must have shape logits.shape[:-1]={logits.shape[:-1]}, got labels {labels.shape}")
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def binary_accuracy(logits: Array, labels: Array) -> Array:
    """Fraction of entries where (logits > 0) equals the 0/1 label.

    Example:
        >>> # predictions 1, 0, 1, 0 against labels 1, 0, 0, 0: three right of four.
        >>> import jax.numpy as jnp
        >>> from funcnn import losses
        >>> float(losses.binary_accuracy(jnp.array([2.0, -1.0, 0.5, -3.0]), jnp.array([1, 0, 0, 0])))
        0.75
    """
    _check_same_shape(logits, labels)
    return jnp.mean((logits > 0) == (labels > 0.5))
