"""Supermask nets: a frozen random net whose only trainable params are one score (or logit) per weight.

    sm = sparsity.supermask(net, density=0.5, key=jax.random.key(0))     # a funcnn net, stateful
    scores = sm.init(k, input_shape)                 # params: one score per weight, nothing else
    state = sm.init_state(input_shape)               # {"weights": frozen, drawn from key; "net": net's state}
    y, state = sm.apply_with_state(scores, state, x, key=k, train=True)

`train.fit(sm, scores, ..., model_state=state)` and `train.fit_population(keys, ..., net=sm, ...)` train it
as they train any stateful net: gradients, optimizers and masks touch the scores only; the weights ride in
the model state, which `apply_with_state` hands back unchanged (bit for bit).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp

from funcnn import prune
from funcnn.nn import Layer, stateful
from funcnn.sparsity.straight_through import _check_density, bernoulli_mask, topk_mask
from funcnn.train import as_net

__all__ = ["SUPERMASK_METHODS", "SUPERMASK_WEIGHTS", "subnetwork", "supermask"]

Array = jax.Array
Params = Any

SUPERMASK_METHODS = ("edge_popup", "bernoulli")
SUPERMASK_WEIGHTS = ("signed_constant", "kaiming_normal", "init")
EVAL_MASKS = ("sample", "round")
_DROP = object()


def _fan_in(shape: tuple[int, ...]) -> int:
    """Inputs per output unit of a weight with outputs on the last axis: Dense (in, out), Conv (kh, kw, in, out)."""
    return math.prod(shape[:-1])


def _restricted(tree: Params, spec: Params, make: Any) -> Params:
    """The tree with each prunable leaf replaced by make(name, leaf) and the others left out (dropped from
    dicts, None in lists and tuples), so that the scores carry the params' names."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    flags = {prune.path_name(p): f for (p, _), f in zip(leaves, jax.tree.leaves(spec), strict=True)}

    def walk(node: Any, path: tuple) -> Any:
        if isinstance(node, dict):
            out = {k: walk(v, (*path, jax.tree_util.DictKey(k))) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not _DROP}
        if isinstance(node, (list, tuple)):
            items = [walk(v, (*path, jax.tree_util.SequenceKey(i))) for i, v in enumerate(node)]
            return type(node)(None if v is _DROP else v for v in items)
        name = prune.path_name(path)
        if name not in flags:
            raise ValueError(
                f"sparsity.supermask: params hold a {type(node).__name__} at '{name}'; supermask nets take params made "
                "of dicts, lists and tuples of arrays (funcnn's nets, or interop's adapters)"
            )
        return make(name, node) if flags[name] else _DROP

    out = walk(tree, ())
    return {} if out is _DROP else out


def _hashable(shape: Any) -> tuple:
    """A shape (or a tuple of shapes) as nested tuples of ints: a static argument of `jax.jit`."""
    return tuple(_hashable(d) if isinstance(d, (tuple, list)) else int(d) for d in shape)


def _by_name(tree: Params) -> dict[str, Array]:
    return {prune.path_name(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _merge(weights: Params, masks: Params) -> Params:
    """weights with each leaf that `masks` names multiplied by its mask (matched by path name)."""
    table = _by_name(masks)
    return jax.tree_util.tree_map_with_path(
        lambda p, w: w * table[n].astype(w.dtype) if (n := prune.path_name(p)) in table else w, weights
    )


def _check(method: str, weights: str, density: float | Array, eval_mask: str) -> None:
    if method not in SUPERMASK_METHODS:
        raise ValueError(f"sparsity.supermask: method must be one of {SUPERMASK_METHODS}, got method={method!r}")
    if weights not in SUPERMASK_WEIGHTS:
        raise ValueError(f"sparsity.supermask: weights must be one of {SUPERMASK_WEIGHTS}, got weights={weights!r}")
    if eval_mask not in EVAL_MASKS:
        raise ValueError(f"sparsity.supermask: eval_mask must be one of {EVAL_MASKS}, got eval_mask={eval_mask!r}")
    _check_density("sparsity.supermask", density, upper_open=method == "bernoulli")


def _check_state(state: Any) -> None:
    if not isinstance(state, dict) or any(k not in state for k in ("weights", "net", "density")):
        raise ValueError(
            "sparsity.supermask: model state must be {'weights': ..., 'net': ..., 'density': ...} as "
            "init_state(input_shape) makes it, got "
            f"{type(state).__name__} with {sorted(state) if isinstance(state, dict) else '-'}"
        )


def _masks(scores: Params, density: float | Array, method: str, key: Array | None, eval_mask: str) -> Params:
    """The float masks of the scores: edge-popup's top-k, or a Bernoulli sample (rounded, with eval_mask='round')."""
    if method == "edge_popup":
        # edge-popup's GetSubnet(scores.abs()): the gradient reaches s as sign(s) · ∂L/∂m
        return topk_mask(jax.tree.map(jnp.abs, scores), density)
    if key is None and eval_mask == "round":
        return jax.tree.map(lambda s: (s > 0).astype(s.dtype), scores)
    return bernoulli_mask(scores, jax.random.key(0) if key is None else key)


def supermask(
    net: Any,
    *,
    density: float,
    key: Array,
    method: str = "edge_popup",
    weights: str = "signed_constant",
    scale_fan: bool = False,
    gain: float = math.sqrt(2.0),
    eval_mask: str = "sample",
) -> Layer:
    """A funcnn net whose params are one score per weight of `net`, over weights frozen in its model state.

    net: any form `train.as_net` takes (a funcnn Layer, an object with init/apply, a pair (init, apply));
    its weights are the leaves `prune.prunable` marks (matrices, kernels: Dense (in, out), Conv (kh, kw, in, out)),
    fan_in = the product of all axes but the last. Forward: y = net(W ⊙ m(s), x), with
    - method="edge_popup" (Ramanujan et al. 2020): m = `topk_mask`(|s|, density), the round(density · n)
      largest |s| of each weight, the gradient straight through to |s| (∂L/∂s = sign(s) ∂L/∂m); scores
      initialised Kaiming-uniform with a = √5 as edge-popup (PyTorch's default), s ~ U(−1/√fan_in, 1/√fan_in);
    - method="bernoulli" (Zhou et al. 2019): m = `bernoulli_mask`(s, k) ~ Bernoulli(σ(s)) in training (a key
      is needed: `fit` and `fit_population` pass one), logits initialised to log(d / (1 − d)) with d = density
      (their 0 for 0.5), so density is the starting keep probability, not a constraint. In evaluation
      (train=False) eval_mask="sample" draws a mask too, as their code does, from the key given or, with
      none (funcnn's evaluation passes none), from the fixed `jax.random.key(0)`; "round" keeps σ(s) > 0.5.
    Frozen weights (model state "weights", drawn from `key` in `init_state`): each weight leaf is
    weights="signed_constant": sign(z) · gain / √fan_in (edge-popup's signed Kaiming constant), or
    "kaiming_normal": z · gain / √fan_in, for z ~ N(0, 1); or "init": net's own init (Zhou et al.'s Glorot
    normal for funcnn's MLPs). scale_fan=True uses fan_in · density instead of fan_in (edge-popup's
    `--scale-fan`). Every other leaf is frozen at net's init, biases (leaves named "b") at 0: biases
    are off, and a BatchNorm's scale and offset stay 1 and 0 (edge-popup's non-affine BatchNorm).
    The model state is {"weights": net's params, "net": net's own state (BatchNorm's running statistics),
    "density": density as a float32 scalar, which the forward pass reads}: `init_state(input_shape)` draws the
    same weights for a given key every time, and a population may hold one density per member (one compiled
    program for all densities; density may also be a traced array).

    Params: the scores, named as net's params, the other leaves left out (a dense_0's "b"), float32.

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> from funcnn import nn, sparsity, train
        >>> net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))
        >>> sm = sparsity.supermask(net, density=0.5, key=jax.random.key(0))
        >>> scores, state = sm.init(jax.random.key(1), (4,)), sm.init_state((4,))
        >>> jax.tree.map(jnp.shape, scores)  # one score per weight; no bias
        {'dense_0': {'w': (4, 8)}, 'dense_2': {'w': (8, 2)}, 'relu_1': {}}
        >>> sorted({round(abs(float(v)), 4) for v in state["weights"]["dense_0"]["w"].ravel()})  # √2 / √4
        [0.7071]
        >>> y, state = sm.apply_with_state(scores, state, jnp.ones((3, 4)))
        >>> y.shape
        (3, 2)
        >>> x, labels = jnp.ones((8, 4)), jnp.zeros(8, jnp.int32)
        >>> fitted, _ = train.fit(sm, scores, (x, labels), (x, labels), model_state=state, optimizer=optax.sgd,
        ...                       learning_rate=0.1, epochs=2, batch_size=4, key=jax.random.key(2), progress=False)
        >>> bool((fitted.model_state["weights"]["dense_0"]["w"] == state["weights"]["dense_0"]["w"]).all())
        True
    """
    _check(method, weights, density, eval_mask)
    if not isinstance(key, jax.Array) or not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) or key.ndim:
        raise ValueError(f"sparsity.supermask: key must be one typed PRNG key (jax.random.key(seed)), got key={key!r}")
    if not isinstance(scale_fan, bool):
        raise ValueError(f"sparsity.supermask: scale_fan must be True or False, got scale_fan={scale_fan!r}")
    if not isinstance(gain, numbers.Real) or isinstance(gain, bool) or not gain > 0:
        raise ValueError(f"sparsity.supermask: gain must be > 0, got gain={gain!r}")
    inner = as_net(net, name="sparsity.supermask: net")

    def shapes(input_shape: tuple) -> Params:
        return jax.eval_shape(lambda k: inner.init(k, tuple(input_shape)), jax.random.key(0))

    def init(k: Array, d: Array, input_shape: tuple) -> Params:
        like = shapes(input_shape)
        names = [prune.path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(like)]
        keys = dict(zip(names, jax.random.split(k, max(len(names), 1)), strict=False))

        def score(name: str, leaf: Any) -> Array:
            if method == "bernoulli":
                return jnp.full(leaf.shape, jnp.log(d / (1 - d)), jnp.float32)
            bound = 1.0 / math.sqrt(_fan_in(leaf.shape))
            return jax.random.uniform(keys[name], leaf.shape, jnp.float32, -bound, bound)

        return _restricted(like, prune.prunable(like), score)

    def init_state(input_shape: tuple, key: Array, d: Array) -> Params:
        k_init, k_draw = jax.random.split(key)
        params = inner.init(k_init, tuple(input_shape))
        spec = prune.prunable(params)
        leaves = jax.tree_util.tree_leaves_with_path(params)
        keys = jax.random.split(k_draw, max(len(leaves), 1))

        def draw(i: int, path: Any, w: Array, flag: bool) -> Array:
            if not flag:
                return jnp.zeros_like(w) if prune.path_name(path).rsplit("/", 1)[-1] == "b" else w
            if weights == "init":
                return w
            fan = _fan_in(w.shape) * (d if scale_fan else 1.0)
            z = jax.random.normal(keys[i], w.shape, w.dtype)
            std = gain / jnp.sqrt(jnp.asarray(fan, w.dtype))
            return (jnp.where(z >= 0, 1.0, -1.0).astype(w.dtype) if weights == "signed_constant" else z) * std

        drawn = [draw(i, p, w, f) for i, ((p, w), f) in enumerate(zip(leaves, jax.tree.leaves(spec), strict=True))]
        frozen = jax.tree.unflatten(jax.tree.structure(params), drawn)
        return {"weights": frozen, "net": inner.init_state(tuple(input_shape)), "density": d}

    def apply_with_state(
        params: Params, state: Params, x: Any, *, key: Array | None = None, train: bool = False
    ) -> tuple[Any, Params]:
        _check_state(state)
        k_mask = k_net = None
        if key is not None:
            k_mask, k_net = jax.random.split(key)
        elif method == "bernoulli" and train:
            raise ValueError(
                "sparsity.supermask(method='bernoulli'): training samples a mask per step and needs a key; "
                "train.fit and fit_population pass one, a hand-written loop must pass key= to apply_with_state"
            )
        masks = _masks(params, state["density"], method, k_mask, eval_mask)
        w = _merge(state["weights"], masks)
        y, net_state = inner.apply_with_state(w, state["net"], x, key=k_net, train=train)
        return y, {**state, "net": net_state}

    def output_shape(input_shape: tuple) -> tuple:
        return inner.output_shape(input_shape)

    # one compiled program per input shape, not dozens of small eager ones (key and density are arguments, not
    # constants, so that a supermask built inside a trace, with a traced key or density, still works)
    jit_init = jax.jit(init, static_argnums=2)
    jit_state = jax.jit(lambda k, d, shape: init_state(shape, k, d), static_argnums=2)
    d32 = jnp.asarray(density, jnp.float32)

    def init_scores(k: Array, input_shape: tuple) -> Params:
        return jit_init(k, d32, _hashable(input_shape))

    def init_weights(input_shape: tuple) -> Params:
        return jit_state(key, d32, _hashable(input_shape))

    return stateful("supermask", init_scores, init_weights, apply_with_state, output_shape)


def subnetwork(
    scores: Params,
    state: Params,
    *,
    method: str = "edge_popup",
    key: Array | None = None,
    eval_mask: str = "sample",
) -> tuple[Params, Params]:
    """The subnetwork a supermask net found, as net's own (params, masks): params = W ⊙ m, masks = m > 0.

    scores, state: the supermask net's params and model state (`supermask`; the density is state["density"]);
    method and eval_mask as given to it. The masks are those its evaluation uses: edge-popup's top-k, or a
    Bernoulli sample from `key` (default the fixed `jax.random.key(0)`, as its evaluation) or σ(s) > 0.5 with
    eval_mask="round". masks have net's params' tree, bool, all True on the leaves that have no scores
    (biases, BatchNorm's). The params then run in net itself, with state["net"] as its model state.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from funcnn import nn, prune, sparsity
        >>> net = nn.serial(nn.Dense(10), nn.Relu(), nn.Dense(2))
        >>> sm = sparsity.supermask(net, density=0.3, key=jax.random.key(0))
        >>> scores, state = sm.init(jax.random.key(1), (5,)), sm.init_state((5,))
        >>> params, masks = sparsity.subnetwork(scores, state)
        >>> {k: round(float(v), 2) for k, v in prune.density(masks).items()}  # round(0.3 * 50), round(0.3 * 20)
        {'dense_0/w': 0.3, 'dense_2/w': 0.3, 'total': 0.3}
        >>> x = jnp.ones((2, 5))
        >>> bool(jnp.allclose(net.apply(params, x), sm.apply_with_state(scores, state, x)[0]))
        True
    """
    _check_state(state)
    _check(method, "signed_constant", 0.5, eval_mask)
    weights = state["weights"]
    float_masks = jax.lax.stop_gradient(_masks(scores, state["density"], method, key, eval_mask))
    table = _by_name(float_masks)
    masks = jax.tree_util.tree_map_with_path(
        lambda p, w: table[n] > 0 if (n := prune.path_name(p)) in table else jnp.ones(jnp.shape(w), bool), weights
    )
    return _merge(weights, float_masks), masks
