"""Learning-rate schedules in epochs, as the course speaks, on optax underneath.

optax counts optimizer updates t = 0, 1, 2, ...; update t runs in epoch floor(t / steps_per_epoch)
(0-based). A step-decay boundary at epoch e therefore takes effect at update t = e * steps_per_epoch:
the first update of epoch e uses the new rate.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

__all__ = ["Plateau", "PlateauState", "constant", "exponential_decay", "step_decay"]


def _positive(name: str, value: object) -> None:
    if not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{name} must be > 0, got {name}={value!r}")


def _positive_int(name: str, value: object) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{name} must be a positive int, got {name}={value!r}")


def constant(init_lr: float) -> optax.Schedule:
    """lr(t) = init_lr.

    Example:
        >>> from funcnn import schedules
        >>> lr = schedules.constant(0.1)
        >>> float(lr(0)), float(lr(1000))
        (0.1, 0.1)
    """
    _positive("init_lr", init_lr)
    return optax.constant_schedule(init_lr)


def step_decay(init_lr: float, factor: float, every_epochs: int, steps_per_epoch: int) -> optax.Schedule:
    """lr(t) = init_lr * factor ** floor(t / (every_epochs * steps_per_epoch)).

    "Halve every 5 epochs": step_decay(lr, 0.5, 5, S); "divide by 10 every 20": step_decay(lr, 0.1, 20, S).
    The rate changes at update t = k * every_epochs * steps_per_epoch, the first update of epoch
    k * every_epochs (0-based).

    Example:
        >>> from funcnn import schedules
        >>> lr = schedules.step_decay(0.1, 0.5, every_epochs=5, steps_per_epoch=10)  # halve every 5 epochs
        >>> [round(float(lr(t)), 6) for t in (0, 49, 50, 100)]  # updates 50 and 100 start epochs 5 and 10
        [0.1, 0.1, 0.05, 0.025]
    """
    _positive("init_lr", init_lr)
    if not 0 < factor < 1:
        raise ValueError(f"factor must be in (0, 1), got factor={factor!r}")
    _positive_int("every_epochs", every_epochs)
    _positive_int("steps_per_epoch", steps_per_epoch)
    return optax.exponential_decay(init_lr, every_epochs * steps_per_epoch, factor, staircase=True)


def exponential_decay(
    init_lr: float, decay_rate: float, steps_per_epoch: int, decay_epochs: int = 1, staircase: bool = False
) -> optax.Schedule:
    """lr(t) = init_lr * decay_rate ** (t / T) with T = decay_epochs * steps_per_epoch.

    With staircase=True the exponent is floor(t / T): the rate drops once per T updates.

    Example:
        >>> from funcnn import schedules
        >>> lr = schedules.exponential_decay(1.0, 0.5, steps_per_epoch=10)  # halves every epoch, smoothly
        >>> [round(float(lr(t)), 4) for t in (0, 5, 10, 20)]  # 0.5 ** 0.5 half-way through epoch 0
        [1.0, 0.7071, 0.5, 0.25]
        >>> stairs = schedules.exponential_decay(1.0, 0.5, steps_per_epoch=10, staircase=True)
        >>> [round(float(stairs(t)), 4) for t in (0, 5, 10, 20)]
        [1.0, 1.0, 0.5, 0.25]
    """
    _positive("init_lr", init_lr)
    if not 0 < decay_rate <= 1:
        raise ValueError(f"decay_rate must be in (0, 1], got decay_rate={decay_rate!r}")
    _positive_int("steps_per_epoch", steps_per_epoch)
    _positive_int("decay_epochs", decay_epochs)
    return optax.exponential_decay(init_lr, decay_epochs * steps_per_epoch, decay_rate, staircase=staircase)


class PlateauState(NamedTuple):
    """lr: the rate in force; best: best monitored value so far; wait: epochs without improvement;
    cooldown: epochs of cooldown left.

    Example:
        >>> from funcnn import schedules
        >>> state = schedules.Plateau(init_lr=0.1).init()  # nothing seen yet: best is the worst value
        >>> float(state.lr), float(state.best), int(state.wait), int(state.cooldown)
        (0.1, inf, 0, 0)
    """

    lr: jax.Array
    best: jax.Array
    wait: jax.Array
    cooldown: jax.Array


class Plateau(NamedTuple):
    """Reduce the learning rate when a monitored value (validation loss) stops improving.

    The rules of Keras' ReduceLROnPlateau, applied once per epoch by `update(state, value)`:
    1. in cooldown (cooldown > 0): cooldown -= 1 and wait = 0;
    2. if value improves on best: best = value, wait = 0;
       else, if not in cooldown (after step 1): wait += 1, and when wait >= patience and
       lr > min_lr: lr = max(lr * factor, min_lr), cooldown = `cooldown`, wait = 0.
    Improvement in mode "min": value < best - min_delta - min_delta_rel * |best| (mode "max":
    value > best + ...). Using |best| keeps the relative test right for negative values, where
    optax's `reduce_on_plateau` (best * (1 - rtol)) never reduces.
    Defaults follow the course: factor 0.1, patience 10, min_lr 1e-6.

    Example:
        >>> from funcnn import schedules
        >>> import jax
        >>> plateau = schedules.Plateau(init_lr=0.1, patience=2)
        >>> update = jax.jit(plateau.update)  # pure: jit it, or call it inside a jitted epoch
        >>> state = plateau.init()
        >>> for val_loss in [1.0, 1.0, 1.0]:  # improves once, then stalls for 2 epochs
        ...     state = update(state, val_loss)
        ...     print(round(float(state.lr), 6), int(state.wait))
        0.1 0
        0.1 1
        0.01 0
    """

    init_lr: float
    factor: float = 0.1
    patience: int = 10
    cooldown: int = 0
    min_lr: float = 1e-6
    min_delta: float = 0.0
    min_delta_rel: float = 0.0
    mode: str = "min"

    def validate(self) -> Plateau:
        """This Plateau if its settings are valid; raises ValueError naming the first bad one.

        Example:
            >>> from funcnn import schedules
            >>> schedules.Plateau(init_lr=0.1, factor=2.0).validate()
            Traceback (most recent call last):
            ValueError: factor must be in (0, 1), got factor=2.0
        """
        _positive("init_lr", self.init_lr)
        if not 0 < self.factor < 1:
            raise ValueError(f"factor must be in (0, 1), got factor={self.factor!r}")
        for name in ("patience", "cooldown"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {name}={v!r}")
        if not 0 <= self.min_lr <= self.init_lr:
            raise ValueError(f"min_lr must be in [0, init_lr={self.init_lr}], got min_lr={self.min_lr!r}")
        if self.min_delta < 0 or self.min_delta_rel < 0:
            raise ValueError(
                f"min_delta and min_delta_rel must be >= 0, got min_delta={self.min_delta!r}, "
                f"min_delta_rel={self.min_delta_rel!r}"
            )
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got mode={self.mode!r}")
        return self

    def init(self) -> PlateauState:
        """The state before the first epoch: lr = init_lr, best = +inf (mode "min") or -inf (mode "max").

        Validates the settings first (see `Plateau.validate`).
        """
        self.validate()
        worst = jnp.inf if self.mode == "min" else -jnp.inf
        zero = jnp.zeros((), jnp.int32)
        return PlateauState(jnp.asarray(self.init_lr, jnp.float32), jnp.asarray(worst, jnp.float32), zero, zero)

    def update(self, state: PlateauState, value: ArrayLike) -> PlateauState:
        """One epoch's step of the rules above; pure and jittable."""
        value = jnp.asarray(value, jnp.float32)
        in_cooldown = state.cooldown > 0
        cooldown = jnp.where(in_cooldown, state.cooldown - 1, state.cooldown)
        wait = jnp.where(in_cooldown, 0, state.wait)
        margin = self.min_delta + self.min_delta_rel * jnp.abs(state.best)
        if self.mode == "min":
            improved = jnp.where(jnp.isinf(state.best), value < state.best, value < state.best - margin)
        else:
            improved = jnp.where(jnp.isinf(state.best), value > state.best, value > state.best + margin)
        best = jnp.where(improved, value, state.best)
        wait = jnp.where(improved, 0, jnp.where(cooldown > 0, wait, wait + 1))
        reduce = (~improved) & (cooldown == 0) & (wait >= self.patience) & (state.lr > self.min_lr)
        lr = jnp.where(reduce, jnp.maximum(state.lr * self.factor, self.min_lr), state.lr)
        cooldown = jnp.where(reduce, self.cooldown, cooldown)
        wait = jnp.where(reduce, 0, wait)
        return PlateauState(lr.astype(jnp.float32), best, wait.astype(jnp.int32), cooldown.astype(jnp.int32))
