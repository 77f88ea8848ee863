"""Which weights a round prunes, from a Spec's fields: the rates of round r (`round_rates`), one
member's mask (`prune_round`), the densities of every round (`density_ladder`), and the output
layer that structured pruning keeps (`output_layer`, `units_prunable`, from `funcnn.prune`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from funcnn import prune

__all__ = ["density_ladder", "output_layer", "prune_round", "round_rates", "units_prunable"]

# `spec` below is a `lottery.Spec` (typed Any: that module builds on this one).
Params = Any  # a pytree of arrays
Masks = Any  # bool arrays, like params


def round_rates(spec: Any, r: int) -> tuple[float, dict]:
    """(rate, layer_rates) that round r prunes with: one-shot rounds compound the per-round rates.

    Iterative pruning removes `rate` of the survivors every round; one-shot round r prunes the dense
    weights at once to the same density, 1 - (1 - rate)^r (and likewise each of `layer_rates`).

    Example:
        >>> import dataclasses
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import nn
        >>> from funcnn.lottery.spec import Spec, round_rates
        >>> data = (jnp.zeros((8, 4)), jnp.zeros(8, "int32"))
        >>> spec = Spec(nn.serial(nn.Dense(2)), optax.sgd(0.1), train=data, rate=0.2, layer_rates={"dense_0": 0.5})
        >>> round_rates(spec, 2)  # iterative: the same rates every round
        (0.2, {'dense_0': 0.5})
        >>> rate, layer_rates = round_rates(dataclasses.replace(spec, pruning="oneshot"), 2)
        >>> round(rate, 6), layer_rates  # 1 - 0.8^2 and 1 - 0.5^2
        (0.36, {'dense_0': 0.75})
    """
    rate, layer_rates = spec.rate, dict(spec.layer_rates)
    if spec.pruning == "oneshot":
        rate = 1 - (1 - rate) ** r
        layer_rates = {k: 1 - (1 - v) ** r for k, v in layer_rates.items()}
    return rate, layer_rates


def prune_round(
    spec: Any,
    trained: Params,
    masks: Masks,
    dense_trained: Params,
    r: int,
    prunable_spec: Any,
    layout: Any = None,
) -> Masks:
    """Round r's mask for one member, from the last ticket's trained weights (or the dense run's).

    trained, masks: the last round's trained ticket and its mask; dense_trained: round 0's trained
    weights (what one-shot pruning scores); prunable_spec: `prune.prunable(params, spec.prunable)`;
    layout: the net's `unit_layout` (a foreign tree's unit axes and output layer, for a structure).
    With `Spec.sparsities` set, each prunable leaf is pruned to round r's absolute sparsity.

    Example:
        >>> import dataclasses
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import nn, prune
        >>> from funcnn.lottery.spec import Spec, prune_round
        >>> net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))
        >>> trained = net.init(jax.random.key(0), (4,))
        >>> spec = Spec(net, optax.sgd(0.1), train=(jnp.zeros((8, 4)), jnp.zeros(8, "int32")), rate=0.5)
        >>> masks = prune_round(spec, trained, prune.ones(trained), trained, 1, prune.prunable(trained))
        >>> {name: float(d) for name, d in prune.density(masks).items()}  # half of each weight matrix
        {'dense_0/w': 0.5, 'dense_2/w': 0.5, 'total': 0.5}
        >>> unit_spec = dataclasses.replace(spec, structure="unit")  # whole hidden units; the output layer never
        >>> masks = prune_round(unit_spec, trained, prune.ones(trained), trained, 1, prune.prunable(trained))
        >>> masks["dense_0"]["w"].any(axis=0).sum().item(), masks["dense_2"]["w"].all().item()
        (4, True)
    """
    method: Callable[..., Masks] = prune.magnitude
    if spec.structure is not None:
        # Whole units (L1 norms), the output layer's never: its units are the classes.
        if layout is None:
            prunable_spec = units_prunable(prunable_spec, trained)
            method = prune.structured
        else:
            prunable_spec = units_prunable(prunable_spec, trained, layout=layout)
            method = functools.partial(prune.structured, unit_axis=layout)
    if spec.sparsities is not None:
        # Absolute targets: every prunable leaf pruned to that fraction of its size (of its units
        # with a structure), scored by the magnitudes of the last trained (masked) weights; pruned
        # weights are 0, so masks nest.
        scores = prune.apply(trained, masks)
        return method(
            scores,
            prune.ones(trained),
            float(spec.sparsities[r - 1]),
            scope=spec.scope,
            spec=prunable_spec,
            rounding=spec.rounding,
        )
    rate, layer_rates = round_rates(spec, r)
    if spec.structure is not None:
        names = [prune.path_name(p) for p, f in jax.tree_util.tree_leaves_with_path(prunable_spec) if f]
        layer_rates = {k: v for k, v in layer_rates.items() if any(n == k or n.startswith(k + "/") for n in names)}
    if spec.pruning == "oneshot":
        return method(
            dense_trained,
            prune.ones(dense_trained),
            rate,
            scope=spec.scope,
            layer_rates=layer_rates,
            spec=prunable_spec,
            rounding=spec.rounding,
        )
    return method(
        trained, masks, rate, scope=spec.scope, layer_rates=layer_rates, spec=prunable_spec, rounding=spec.rounding
    )


def output_layer(params: Params, layout: prune.UnitLayout | None = None) -> str:
    """`prune.output_layer`: the output layer's name, from `layout` (a `prune.UnitLayout`, e.g. the
    net's `unit_layout`) or funcnn's own names ('<kind>_<n>': the highest n); else a ValueError.

    Example:
        >>> import numpy as np
        >>> from funcnn.lottery.spec import output_layer
        >>> w, b = np.zeros((2, 2)), np.zeros(2)
        >>> output_layer({"dense_0": {"w": w, "b": b}, "dense_10": {"w": w}, "dense_2": {"w": w}, "prelu_11": {"a": b}})
        'dense_10'
    """
    return prune.output_layer(params, layout)


def units_prunable(prunable_spec: Any, params: Params, layout: prune.UnitLayout | None = None) -> Any:
    """`prune.units_prunable`: `prunable_spec` less the leaves of `params`' `output_layer` (whose
    units are the classes), that layer known from `layout` (the net's `unit_layout`) or funcnn's names.

    Example:
        >>> import numpy as np
        >>> from funcnn.lottery.spec import units_prunable
        >>> params = {"dense_0": {"w": np.zeros((4, 3)), "b": np.zeros(3)}, "dense_1": {"w": np.zeros((3, 2))}}
        >>> units_prunable({"dense_0": {"w": True, "b": False}, "dense_1": {"w": True}}, params)
        {'dense_0': {'b': False, 'w': True}, 'dense_1': {'w': False}}
    """
    return prune.units_prunable(prunable_spec, params, layout)


def density_ladder(spec: Any, params_template: Params | None = None) -> list[float]:
    """P_m (percent of prunable weights remaining) at each round 0..rounds of a `Spec` (or a
    `Config`), without training.

    params_template: params of the net (default: the net's `init` at the data's input shape); only
    their shapes and structure matter.

    Example:
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import nn
        >>> from funcnn.lottery.spec import Spec, density_ladder
        >>> net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))  # 4x8 + 8x2 prunable weights
        >>> data = (jnp.zeros((8, 4)), jnp.zeros(8, "int32"))
        >>> density_ladder(Spec(net, optax.sgd(0.1), train=data, rate=0.5, rounds=3))
        [100.0, 50.0, 25.0, 12.5]
    """
    if hasattr(spec, "to_spec"):  # a Config: the Spec it names
        spec = spec.to_spec()
    if params_template is None:
        shape = spec.input_shape or tuple(np.shape(spec.train[0])[1:])
        params_template = spec.net.init(jax.random.key(0), shape)
    pspec = prune.prunable(params_template, spec.prunable)
    masks = prune.ones(params_template)
    out = [100.0]
    for r in range(1, spec.rounds + 1):
        masks = prune_round(spec, params_template, masks, params_template, r, pspec)
        out.append(float(prune.density(masks, pspec)["total"]) * 100)
    return out
