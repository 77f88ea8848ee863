"""Pruning at initialization: SNIP, GraSP and SynFlow scores, SynFlow's iterative pruning, ERK densities.

A pruning criterion is a score per weight (higher = keep) plus a selection, `prune.by_scores`:

    masks = prune.by_scores(prune.snip_scores(forward, params, masks, x, y, loss), masks, 0.9, scope="global")

Every score function returns a pytree like params of scores (float32; SynFlow's float64 under
jax x64), exactly 0 where `masks` is False, and is pure, jittable and vmappable (a population's
scores under `jax.vmap`). `forward(params, x) -> logits` is a pure apply; for a funcnn net,
`eval_forward(net, input_shape)` gives it in eval mode with the net's initial model state.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import checks
from funcnn.nn import StateError
from funcnn.nn.layer import as_shape
from funcnn.prune.masks import check_arrays, check_masks, path_name, prunable
from funcnn.prune.selection import SCOPES, _as_written, _drop_lowest, _groups

__all__ = ["erk_densities", "eval_forward", "grasp_scores", "snip_scores", "synflow", "synflow_scores"]

Array = jax.Array
Params = Any
Masks = Any
Forward = Callable[[Params, Array], Array]
Loss = Callable[[Array, Array], Array]


def eval_forward(net: Any, input_shape: Sequence[int] | None = None, model_state: Params | None = None) -> Forward:
    """`forward(params, x) -> logits` of a funcnn net in eval mode (train=False), for the scores here.

    net: a funcnn `Layer` (an object with `apply`; a stateful one also has `init_state` and
    `apply_with_state`). Models with BatchNorm or Dropout are scored in eval mode: no dropout, and
    BatchNorm normalizes with the running statistics of `model_state`, by default the net's INITIAL
    state `net.init_state(input_shape)` (mean 0, variance 1), not batch statistics.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn import nn, prune
        >>> net = nn.serial(nn.Dense(4), nn.BatchNorm(), nn.Relu(), nn.Dropout(0.5), nn.Dense(2))
        >>> params = net.init(jax.random.key(0), (3,))
        >>> forward = prune.eval_forward(net, (3,))
        >>> x = jnp.ones((5, 3))
        >>> y, _ = net.apply_with_state(params, net.init_state((3,)), x, train=False)
        >>> forward(params, x).shape, bool(jnp.all(forward(params, x) == y))
        ((5, 2), True)
    """
    apply = getattr(net, "apply", None)
    if not callable(apply):
        raise TypeError(
            f"eval_forward: net must be a funcnn Layer (an object with apply), got {net!r}; "
            "a plain forward(params, x) function can be passed to the score functions as it is"
        )
    if model_state is None and input_shape is not None and hasattr(net, "init_state"):
        model_state = net.init_state(as_shape(input_shape))
    if model_state is not None and jax.tree.leaves(model_state):
        apply_with_state = getattr(net, "apply_with_state", None)
        if not callable(apply_with_state):
            raise TypeError("eval_forward: model_state given, but net has no apply_with_state to take it")

        def forward_with_state(params: Params, x: Array) -> Array:
            return apply_with_state(params, model_state, x, train=False)[0]

        return forward_with_state

    def forward(params: Params, x: Array) -> Array:
        try:
            return apply(params, x, train=False)
        except StateError as e:
            raise StateError(
                f"{e}\neval_forward: pass input_shape= (the net's initial state is used) or model_state="
            ) from None

    return forward


def _check_floating(params: Params, fn: str) -> None:
    """TypeError naming the first leaf that is no float array: the scores differentiate every leaf."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = jnp.result_type(leaf)
        if jax.dtypes.issubdtype(dtype, jax.dtypes.extended) or not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{fn}: leaf '{path_name(path)}' of the params has dtype {dtype}; the scores differentiate "
                "every leaf, so pass the float part only (a flax nnx model's nnx.state(model, nnx.Param), "
                "an equinox model's eqx.filter(model, eqx.is_inexact_array))"
            )


def _masked(params: Params, masks: Masks) -> Params:
    return jax.tree.map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), params, masks)


def snip_scores(forward: Forward, params: Params, masks: Masks, x: Array, y: Array, loss: Loss) -> Params:
    """SNIP (Lee et al. 2019): s = |g ⊙ w|, g = dL/dw of the masked net on one batch.

    L = loss(forward(params ⊙ masks, x), y), g taken at params ⊙ masks (at masks of ones, the
    gradient of L with respect to the mask, the paper's connection sensitivity). Returns float32
    scores like params, 0 where masks is False; keep the highest (`prune.by_scores`). Models with
    BatchNorm or Dropout: pass `eval_forward(net, input_shape)`; scores are then taken in eval mode
    with the net's initial state.

    Example: a linear net, L = sum(x w ⊙ y), so g = xᵀ y = [[1, -1], [1, -1]].

        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"w": jnp.array([[1.0, -2.0], [3.0, 0.5]])}
        >>> forward, loss = (lambda p, x: x @ p["w"]), (lambda out, y: jnp.sum(out * y))
        >>> x, y = jnp.array([[1.0, 1.0]]), jnp.array([[1.0, -1.0]])
        >>> scores = prune.snip_scores(forward, params, prune.ones(params), x, y, loss)
        >>> scores["w"].tolist()
        [[1.0, 2.0], [3.0, 0.5]]
        >>> prune.by_scores(scores, prune.ones(params), 0.5)["w"].tolist()  # the two highest stay
        [[False, True], [True, False]]
    """
    check_masks(params, masks)
    _check_floating(params, "snip_scores")
    effective = _masked(params, masks)
    g = jax.grad(lambda p: loss(forward(p, x), y))(effective)
    scores = jax.tree.map(lambda w, gw, m: jnp.where(m, jnp.abs(gw * w), 0.0).astype(jnp.float32), effective, g, masks)
    # A NaN gradient (a loss that overflows at θ0) would be ranked as if it were a score: refuse it.
    checks.finite(scores, name="scores (|g ⊙ w|: a NaN or infinite gradient at these weights)", who="snip_scores")
    return scores


def grasp_scores(
    forward: Forward,
    params: Params,
    masks: Masks,
    x: Array,
    y: Array,
    loss: Loss,
    temperature: float | Array = 200.0,
) -> Params:
    """GraSP (Wang et al. 2020): s = w ⊙ (H g), higher = keep; g and H of the masked net on one batch.

    L = loss(forward(params ⊙ masks, x) / temperature, y) (the logits divided by the temperature, 200
    in the authors' code); g = dL/dw and Hg = d²L/dw² g, a Hessian-vector product (`jax.jvp` of
    `jax.grad`), both of the masked net (entries of g and Hg where masks is False are 0). The paper
    removes the highest S(-w) = -w ⊙ Hg, which is keeping the highest w ⊙ Hg: these scores. They
    may be negative; `prune.by_scores` takes any real scores (pruned entries never count). Returns
    float32 scores like params, 0 where masks is False. Models with BatchNorm or Dropout: pass
    `eval_forward(net, input_shape)`; scores are then taken in eval mode with the net's initial state.

    Example: a linear net with L = sum((x w)²) / 2, so g = xᵀx w and H g = (xᵀx)² w = diag(1, 16) w.

        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"w": jnp.array([[1.0, -1.0], [0.5, 2.0]])}
        >>> forward, loss = (lambda p, x: x @ p["w"]), (lambda out, y: 0.5 * jnp.sum(out**2))
        >>> x = jnp.array([[1.0, 0.0], [0.0, 2.0]])
        >>> scores = prune.grasp_scores(forward, params, prune.ones(params), x, None, loss, temperature=1.0)
        >>> scores["w"].tolist()  # w ⊙ Hg = [[1, -1], [0.5, 2]] ⊙ [[1, -1], [8, 32]]
        [[1.0, 1.0], [4.0, 64.0]]
    """
    check_masks(params, masks)
    _check_floating(params, "grasp_scores")
    if isinstance(temperature, numbers.Real) and not temperature > 0:
        raise ValueError(f"grasp_scores: temperature must be > 0, got temperature={temperature!r}")

    def objective(p: Params) -> Array:
        return loss(forward(_masked(p, masks), x) / temperature, y)

    grad = jax.grad(objective)
    g = grad(params)
    _, hg = jax.jvp(grad, (params,), (g,))
    return jax.tree.map(lambda w, h, m: jnp.where(m, w * h, 0.0).astype(jnp.float32), params, hg, masks)


def synflow_scores(forward: Forward, params: Params, masks: Masks, input_shape: Sequence[int]) -> Params:
    """SynFlow (Tanaka et al. 2020), data-free: s = |w ⊙ dR/dw| at |w| ⊙ masks.

    R = sum(forward(|params| ⊙ masks, 1)) on one all-ones input of shape (1, *input_shape), every
    param (biases and BatchNorm's too) replaced by its absolute value. Returns scores like params, 0
    where masks is False, in float64 when jax x64 is enabled (`jax.enable_x64(True)`) and float32
    otherwise. R is a product of one factor per layer, so a deep net's R and scores can overflow
    float32 (inf, and then ties); the paper's code computes in double, as x64 does here. Models with
    BatchNorm or Dropout: pass `eval_forward(net, input_shape)`; scores are then taken in eval mode
    with the net's initial state (BatchNorm as the identity times |scale| plus |offset|).

    Example: a bias-free linear net x W1 W2, where every layer's scores sum to R (Theorem 2).

        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"l1": jnp.array([[1.0, -2.0], [3.0, 0.0]]), "l2": jnp.array([[1.0], [-1.0]])}
        >>> forward = lambda p, x: x @ p["l1"] @ p["l2"]
        >>> scores = prune.synflow_scores(forward, params, prune.ones(params), (2,))
        >>> scores["l1"].tolist(), scores["l2"].tolist()  # |W1_ij| |W2_j|, |W2_j| sum_i |W1_ij|
        ([[1.0, 2.0], [3.0, 0.0]], [[4.0], [2.0]])
    """
    check_masks(params, masks)
    _check_floating(params, "synflow_scores")
    shape = as_shape(input_shape)
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)  # float32 unless x64 is on
    linear = jax.tree.map(lambda p, m: jnp.where(m, jnp.abs(p), 0).astype(dtype), params, masks)
    g = jax.grad(lambda q: jnp.sum(forward(q, jnp.ones((1, *shape), dtype))))(linear)
    return jax.tree.map(lambda q, gq, m: jnp.where(m, jnp.abs(q * gq), 0).astype(dtype), linear, g, masks)


def _keep_counts(density: float | Array, sizes: np.ndarray, iterations: int) -> Array:
    """(groups, iterations) int32: round(density^(j / iterations) * size) at steps j = 1..iterations,
    in float64 (the last is exactly round(density * size)); an array density is read on the host."""

    def host(d: np.ndarray) -> np.ndarray:
        d = _as_written(np.asarray(d))[..., None, None]
        exponents = np.arange(1, iterations + 1, dtype=np.float64) / iterations
        keep = np.round(d**exponents * sizes[:, None].astype(np.float64))
        keep[..., -1] = np.round(d[..., 0, 0, None] * sizes)  # d ** 1.0 is d; said explicitly
        return keep.astype(np.int32)

    if not isinstance(density, jax.Array):  # a Python or numpy number
        return jnp.asarray(host(np.asarray(density)))
    density = jnp.asarray(density)
    density = density if density.dtype == jnp.float64 else density.astype(jnp.float32)
    out = jax.ShapeDtypeStruct((len(sizes), iterations), jnp.int32)
    return jax.pure_callback(host, out, density, vmap_method="broadcast_all")


def synflow(
    forward: Forward,
    params: Params,
    masks: Masks,
    density: float | Array,
    input_shape: Sequence[int],
    iterations: int = 100,
    *,
    scope: str = "global",
    spec: Params | None = None,
) -> Masks:
    """SynFlow's iterative pruning (Tanaka et al. 2020): rescore and prune, `iterations` times.

    At step j = 1..iterations the survivors with the lowest `synflow_scores` (taken at the current
    masks) go, down to round(density^(j / iterations) * n) survivors, n the number of prunable
    weights (scope='global', the paper's: over all prunable leaves at once; 'layer': n per leaf;
    'layer_joint': per layer's pooled leaves). The last step leaves exactly round(density * n) (or
    fewer, where `masks` already had fewer); each step's survivors are a subset of the previous
    one's. `density` in (0, 1] may be an array (traced under `jit` or `vmap`); the steps run in one
    `lax.fori_loop`, compiled once. Models with BatchNorm or Dropout: pass
    `eval_forward(net, input_shape)`; scores are then taken in eval mode with the net's initial state.

    Example:
        >>> import jax
        >>> from funcnn import nn, prune
        >>> net = nn.serial(nn.Dense(5), nn.Relu(), nn.Dense(3))
        >>> params = net.init(jax.random.key(0), (4,))  # 4 * 5 + 5 * 3 = 35 prunable weights
        >>> masks = prune.synflow(net.apply, params, prune.ones(params), 0.2, (4,), iterations=10)
        >>> int(masks["dense_0"]["w"].sum() + masks["dense_2"]["w"].sum())  # round(0.2 * 35)
        7
    """
    check_masks(params, masks)
    if scope not in SCOPES:
        raise ValueError(f"synflow: scope must be one of {SCOPES}, got scope={scope!r}")
    if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
        raise ValueError(f"synflow: iterations must be a positive int, got iterations={iterations!r}")
    # Eagerly for numbers and concrete arrays; a traced density gets a runtime check in the program.
    checks.in_range(density, 0, 1, name="density", who="synflow", low_open=True)
    spec = prunable(masks) if spec is None else spec
    m_leaves, treedef = jax.tree.flatten(masks)
    groups = _groups(masks, spec, scope)
    sizes = np.array([sum(m_leaves[i].size for i in group) for group in groups], np.int64)
    keep = _keep_counts(density, sizes, iterations)

    def step(j: Array, leaves: list[Array]) -> list[Array]:
        scores = jax.tree.leaves(synflow_scores(forward, params, jax.tree.unflatten(treedef, leaves), input_shape))
        new = list(leaves)
        for g, group in enumerate(groups):
            flat_s = jnp.concatenate([scores[i].reshape(-1) for i in group])
            flat_m = jnp.concatenate([leaves[i].reshape(-1) for i in group])
            flat_new = _drop_lowest(flat_s, flat_m, jnp.maximum(jnp.sum(flat_m) - keep[g, j], 0))
            start = 0
            for i in group:
                new[i] = flat_new[start : start + leaves[i].size].reshape(leaves[i].shape)
                start += leaves[i].size
        return new

    return jax.tree.unflatten(treedef, jax.lax.fori_loop(0, iterations, step, list(m_leaves)))


def erk_densities(params: Params, density: float, spec: Params | None = None) -> dict[str, float]:
    """Erdős–Rényi-Kernel layer densities (Evci et al. 2020, RigL): {prunable leaf name: density}.

    Each prunable leaf's density is ε (sum of its dims) / (product of its dims), ε chosen so that
    sum(density_l * size_l) = density * (total prunable size); a leaf whose density would exceed 1 is
    kept dense (1.0) and ε recomputed for the rest, until none exceeds 1 (RigL's algorithm; it caps
    the largest first, which ends at the same set). Python floats, from the shapes only. As targets
    from dense masks: `prune.by_scores(scores, prune.ones(params), 0.0, layer_rates={k: 1 - d for
    k, d in erk.items()})` keeps n - round((1 - d) n) entries of each leaf, within 1/2 entry of d n.

    Example: 'a' (2, 2) would get 2.17 and is capped; 'b' (10, 10) gets the rest, 48 of its 100.

        >>> import jax.numpy as jnp
        >>> from funcnn import prune
        >>> params = {"a": jnp.zeros((2, 2)), "b": jnp.zeros((10, 10))}
        >>> {k: round(d, 6) for k, d in prune.erk_densities(params, 0.5).items()}
        {'a': 1.0, 'b': 0.48}
    """
    check_arrays(params, "erk_densities")
    if not isinstance(density, numbers.Real) or isinstance(density, bool) or not 0 < density <= 1:
        raise ValueError(f"erk_densities: density must be a float in (0, 1], got density={density!r}")
    spec = prunable(params) if spec is None else spec
    shapes = {
        path_name(path): tuple(np.shape(leaf))
        for (path, leaf), s in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(spec), strict=True)
        if s
    }
    if not shapes:
        raise ValueError("erk_densities: params have no prunable leaf (spec is all False)")
    size = {k: int(np.prod(s, dtype=np.int64)) for k, s in shapes.items()}
    raw = {k: (sum(s) or 1) / size[k] for k, s in shapes.items()}  # a 0-d leaf counts as (1,)
    if density == 1:
        return dict.fromkeys(shapes, 1.0)
    budget = float(density) * sum(size.values())
    dense: set[str] = set()
    while True:
        rest = [k for k in shapes if k not in dense]
        if not rest:
            break
        eps = (budget - sum(size[k] for k in dense)) / sum(raw[k] * size[k] for k in rest)
        over = {k for k in rest if eps * raw[k] > 1}
        if not over:
            break
        dense |= over  # ε only grows as leaves are capped, so every leaf over 1 now stays over
    return {k: 1.0 if k in dense else eps * raw[k] for k in shapes}
