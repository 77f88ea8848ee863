"""Where a member's learning-rate schedule stands: set every schedule counter of an optax state
(`advance_schedule`, OpenLTH's rewinding), or hold it at one step for good (`hold_schedule`,
fine-tuning at the final rate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["HoldState", "advance_schedule", "hold_schedule"]


def _kinds() -> tuple[tuple[type, ...], tuple[type, ...]]:
    # optax >= 0.2 builds inject_hyperparams' state as InjectStatefulHyperparamsState, whose rate
    # comes from the counters in `hyperparams_states` (one per scheduled hyperparameter).
    injected = tuple(
        t
        for t in (
            getattr(optax, "InjectHyperparamsState", None),
            getattr(optax, "InjectStatefulHyperparamsState", None),
        )
        if t is not None
    )
    return (optax.ScaleByScheduleState,) + injected, injected


def _set_counts(opt_state: Any, at: Callable[[jax.Array], jax.Array]) -> Any:
    """opt_state with every schedule counter c replaced by at(c), nothing else touched."""
    kinds, injected = _kinds()

    def fix(s: Any) -> Any:  # optax states are NamedTuples: _replace and count
        if isinstance(s, optax.ScaleByScheduleState):
            return s._replace(count=at(s.count))
        if isinstance(s, injected):
            s = s._replace(count=at(s.count), inner_state=_set_counts(s.inner_state, at))  # type: ignore[attr-defined]
            if hasattr(s, "hyperparams_states"):
                s = s._replace(
                    hyperparams_states={
                        k: v._replace(count=at(v.count)) if hasattr(v, "_replace") and hasattr(v, "count") else v
                        for k, v in s.hyperparams_states.items()
                    }
                )
            return s
        return s

    return jax.tree.map(fix, opt_state, is_leaf=lambda s: isinstance(s, kinds))


def advance_schedule(opt_state: Any, count: int | jax.Array) -> Any:
    """opt_state with every schedule counter (optax's `scale_by_schedule` and `inject_hyperparams`
    states) set to `count`, and nothing else touched: a fresh optimizer whose learning-rate schedule
    resumes at step `count` (OpenLTH's rewinding). Adam's own step count stays at 0.

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn.lottery import advance_schedule
        >>> tx = optax.sgd(optax.piecewise_constant_schedule(1.0, {100: 0.1}))  # x0.1 at step 100
        >>> params = {"w": jnp.ones(1)}
        >>> state = advance_schedule(tx.init(params), 150)  # a fresh state, its schedule at step 150
        >>> updates, _ = tx.update({"w": jnp.ones(1)}, state)
        >>> round(float(updates["w"][0]), 6)  # -lr x grad, at the rate of step 150
        -0.1
    """
    return _set_counts(opt_state, lambda c: jnp.full_like(c, count))


class HoldState(NamedTuple):
    """`hold_schedule`'s state: the inner optimizer's, and the step its schedule is held at (-1: not held).

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn.lottery.schedule import hold_schedule
        >>> state = hold_schedule(optax.sgd(0.1)).init({"w": jnp.ones(2)})
        >>> int(state.hold)  # not held until a member's state says so
        -1
    """

    inner: Any
    hold: jax.Array


def hold_schedule(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """tx whose schedule counters are set back to `state.hold` after every update when hold >= 0, so
    each update uses the rate of that one step (fine-tuning at the final rate); with hold = -1
    (what `init` gives) it is tx, update for update. Set hold per member: `state._replace(hold=...)`.

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn.lottery.schedule import advance_schedule, hold_schedule
        >>> tx = hold_schedule(optax.sgd(optax.linear_schedule(1.0, 0.0, 10)))  # 1.0 down to 0 at step 10
        >>> params, grads = {"w": jnp.ones(1)}, {"w": jnp.ones(1)}
        >>> state = advance_schedule(tx.init(params), 9)._replace(hold=jnp.int32(9))  # held at step 9
        >>> steps = []
        >>> for _ in range(3):
        ...     updates, state = tx.update(grads, state, params)
        ...     steps.append(round(float(updates["w"][0]), 6))
        >>> steps  # the rate of step 9 every time, never that of step 10, 11
        [-0.1, -0.1, -0.1]
    """

    def init(params: Any) -> HoldState:
        return HoldState(tx.init(params), jnp.asarray(-1, jnp.int32))

    def update(updates: Any, state: HoldState, params: Any = None) -> tuple[Any, HoldState]:
        new, inner = tx.update(updates, state.inner, params)
        held = _set_counts(inner, lambda c: jnp.where(state.hold >= 0, state.hold.astype(c.dtype), c))
        return new, HoldState(held, state.hold)

    return optax.GradientTransformation(init, update)
