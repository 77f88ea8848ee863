"""A study's identity: everything that changes its results, as JSON, and the check that refuses to
resume a run folder holding a different study (`identity.json`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import io, prune
from funcnn.lottery.context import Context
from funcnn.lottery.schedule import advance_schedule
from funcnn.lottery.study import Study

__all__ = ["check_identity", "identity"]


def _take(tree: Any, i: Any) -> Any:
    return jax.tree.map(lambda a: a[i], tree)


def _sha256_tree(tree: Any) -> str:
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        a = np.asarray(jax.random.key_data(leaf) if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) else leaf)
        h.update(f"{prune.path_name(path)}:{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _optimizer_probe(runtime: Study) -> list[float]:
    """What the optimizer does, as numbers: the first update from a fresh state with its schedule at
    a few steps, on member 0's θ0 with fixed pseudo-gradients (any hyperparameter change shows)."""
    params = _take(runtime.theta0, 0)
    grads = jax.tree.map(
        lambda p: jnp.cos(jnp.arange(p.size, dtype=jnp.float32)).reshape(p.shape).astype(p.dtype), params
    )
    out = []
    T = runtime.spec.iterations
    for count in sorted({0, 1, runtime.spec.rewind_step, T // 4, T // 2, T - 1}):
        state = advance_schedule(runtime.tx.init(params), count)
        updates, _ = runtime.tx.update(grads, state, params)
        leaves = [np.asarray(u, np.float64) for u in jax.tree.leaves(updates)]
        out += [float(sum(np.abs(u).sum() for u in leaves)), float(sum(u.sum() for u in leaves))]
    return out


def _net_probe(runtime: Study) -> list[float]:
    """The net's outputs (eval mode) for member 0's θ0 on the first 4 training examples."""
    from funcnn import train

    params = _take(runtime.theta0, 0)
    state = None if runtime.state0 is None else _take(runtime.state0, 0)
    y = train.as_forward(runtime.net)(params, state, runtime.data[0][:4], train=False)[0]
    return np.asarray(y, np.float64).ravel()[:64].tolist()


def _augment_probe(runtime: Study) -> str:
    """What the augmentation does: the SHA-256 of its output on the first 4 training examples, key 0."""
    augment = runtime.spec.augment
    assert augment is not None  # identity() asks only when there is one
    return _sha256_tree(augment(jax.random.key(0), runtime.data[0][:4]))


def _pattern(tree: Any, phase: float) -> Any:
    """A fixed tree like `tree`: cos(i + phase) x 0.3 in each float leaf (its other leaves as they are),
    so a probe depends on the tree's shapes only, not on θ0 or the seed."""
    return jax.tree.map(
        lambda p: (
            (0.3 * jnp.cos(jnp.arange(p.size, dtype=jnp.float32) + phase)).reshape(p.shape).astype(p.dtype)
            if jnp.issubdtype(p.dtype, jnp.floating)
            else p
        ),
        tree,
    )


def _probe_context(runtime: Study) -> Context:
    """A fixed round-1 context of member 0's shapes: weights of a fixed pattern (θ0 cos, trained
    cos shifted, reinit sin), all-True masks, a parent mask of the larger half of the trained ones,
    the first 8 training examples, a fixed key."""
    like = _take(runtime.theta0, 0)
    theta0, trained, reinit = _pattern(like, 0.0), _pattern(like, 1.0), _pattern(like, 2.0)
    ones = prune.ones(like)
    parent = prune.magnitude(trained, ones, 0.5, spec=runtime.spec_prunable)
    x, y = runtime.data[0][:8], runtime.data[1][:8]
    return Context(
        1, jnp.int32(0), jax.random.key(7), theta0, theta0, reinit, trained, ones, parent,
        trained, (x, y), runtime.eval_forward, runtime.spec.loss, runtime.spec_prunable, runtime.input_shape,
    )  # fmt: skip


def _arms_probe(runtime: Study) -> list[dict]:
    """What each arm does: its choices, and the mask (SHA-256) and weights (sums) it makes on a fixed
    context, so that an arm whose function changed under the same name is a different study."""
    ctx = _probe_context(runtime)
    out = []
    for plan in runtime.plans:
        pctx = ctx._replace(parent_masks=None) if plan.lineage else ctx
        if plan.legacy is not None:
            params, mask = plan.legacy(ctx.theta_rewind, ctx.theta_reinit, ctx.parent_masks, jax.random.key(7))
        elif plan.fn is not None:
            params, mask = plan.fn(pctx)
        else:
            mask = ctx.parent_masks if plan.mask_fn is None else plan.mask_fn(pctx)
            params = {"rewind": ctx.theta_rewind, "trained": ctx.trained, "init": ctx.theta0}.get(
                plan.weights, ctx.theta_reinit
            )
        params = prune.rewind(params, mask)
        leaves = [np.asarray(a, np.float64) for a in jax.tree.leaves(params) if jnp.issubdtype(a.dtype, jnp.floating)]
        out.append(
            {
                "name": plan.name,
                "lineage": plan.lineage,
                "parent": plan.parent,
                "rewind_step": plan.rewind_step,
                "weights": plan.weights,
                "schedule": plan.schedule,
                "mask": _sha256_tree(mask),
                "params": [float(sum(a.sum() for a in leaves)), float(sum(np.abs(a).sum() for a in leaves))],
            }
        )
    return out


def _loss_probe(runtime: Study) -> list[float]:
    """What the loss and the metric compute: their values (and the loss's gradient's sums) on fixed
    logits of the net's output shape for the first 8 training labels, and on those logits x 3."""
    y = runtime.data[1][:8]
    shape = jax.eval_shape(runtime.eval_forward, _take(runtime.theta0, 0), runtime.data[0][:8]).shape
    logits = (jnp.cos(jnp.arange(int(np.prod(shape)), dtype=jnp.float32)) * 2.0).reshape(shape)
    out = []
    for z in (logits, 3.0 * logits):
        value, g = jax.value_and_grad(lambda z: runtime.spec.loss(z, y))(z)
        out += [float(value), float(jnp.sum(g)), float(jnp.sum(jnp.abs(g))), float(runtime.spec.metric(z, y))]
    return out


def identity(runtime: Study, describe: dict) -> dict:
    """Everything that changes a study's results, as JSON: its fields, the param tree (names, shapes,
    dtypes), the prunable leaves, fingerprints of θ0 (and the reinit draw) and of the data, and what
    the net and the optimizer compute on fixed probes (and the augmentation, where the spec has one).

    runtime: the study made ready (`Study(spec)`); describe: its fields as JSON (`Spec.describe()`,
    or a Config's `to_json()`). `run` stores it as a run folder's identity.json (`check_identity`).

    Example:
        >>> import jax
        >>> import optax
        >>> from funcnn import nn
        >>> from funcnn.lottery import Spec, Study
        >>> from funcnn.lottery.identity import identity
        >>> x = jax.random.normal(jax.random.key(0), (64, 4))
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))  # a 4-8-2 MLP
        >>> spec = Spec(net, optax.adam(1e-2), train=(x, y), n_val=16, iterations=20, batch_size=8, eval_every=10,
        ...             seeds=2)
        >>> ident = identity(Study(spec, progress=False), spec.describe())
        >>> sorted(ident)
        ['arms', 'data', 'label', 'loss', 'net', 'optimizer', 'params', 'prunable', 'study', 'theta0']
        >>> ident["params"]
        ['dense_0/b: float32[8]', 'dense_0/w: float32[4, 8]', 'dense_2/b: float32[2]', 'dense_2/w: float32[8, 2]']
        >>> ident["prunable"], ident["study"]["rate"], len(ident["theta0"])  # θ0 by its SHA-256
        (['dense_0/w', 'dense_2/w'], 0.2, 64)
    """
    member0 = _take(runtime.theta0, 0)
    augment = {} if runtime.spec.augment is None else {"augment": _augment_probe(runtime)}
    return {
        "study": describe,
        "params": [
            f"{prune.path_name(p)}: {leaf.dtype}{list(leaf.shape)}"
            for p, leaf in jax.tree_util.tree_leaves_with_path(member0)
        ],
        "prunable": [prune.path_name(p) for p, s in jax.tree_util.tree_leaves_with_path(runtime.spec_prunable) if s],
        "theta0": _sha256_tree((runtime.theta0, runtime.theta0_reinit)),
        "data": _sha256_tree(runtime.data),
        "net": _net_probe(runtime),
        "optimizer": _optimizer_probe(runtime),
        "label": runtime.spec.label,
        **augment,  # only where there is one: older run folders stay resumable
        "arms": _arms_probe(runtime),
        "loss": _loss_probe(runtime),
    }


_EXPLAIN = {
    "study": "the study's fields",
    "params": "the param tree (names, shapes or dtypes)",
    "prunable": "which leaves are prunable",
    "theta0": "θ0 (the initial weights)",
    "data": "the data",
    "net": "the network (its outputs on a probe batch)",
    "optimizer": "the optimizer (its updates on a probe)",
    "label": "the label",
    "augment": "the augmentation (its output on a probe batch)",
    "arms": "the arms (what each does on a probe: its mask and weights)",
    "loss": "the loss or the metric (their values on a probe batch)",
}
# Keys added after run folders were first written: checked only where the stored identity has them.
_NEWER = ("arms", "loss")
# Rounds may grow: a finished study given more rounds resumes its committed rounds.
_GROWS = ("rounds",)


def _study_fields_differ(old: dict, new: dict) -> list[str]:
    """The fields that differ, but `rounds` (a study may grow) and a `sparsities` list that extends
    the stored one."""
    out = []
    for f in sorted(set(old) | set(new)):
        a, b = old.get(f), new.get(f)
        if a == b or f in _GROWS:
            continue
        if f == "sparsities" and isinstance(a, list) and isinstance(b, list) and b[: len(a)] == a:
            continue
        out.append(f)
    return out


def _same_arms(old: Any, new: list) -> bool:
    if not isinstance(old, list) or len(old) != len(new):
        return False
    return not _arm_diffs(old, new)


def _arm_diffs(old: list, new: list) -> list[str]:
    out = []
    olds = {a.get("name"): a for a in old}
    for a in new:
        b = olds.get(a["name"])
        if b is None:
            out.append(f"arm {a['name']!r} is new")
            continue
        for f, v in a.items():
            w = b.get(f)
            same = np.allclose(w, v, rtol=1e-4, atol=1e-7) if f == "params" and w is not None else w == v
            if not same:
                out.append(f"arm {a['name']!r}: {f} (stored {w!r}, now {v!r})")
    out += [f"arm {n!r} is gone" for n in olds if n not in {a["name"] for a in new}]
    return out


def check_identity(out: Path, ident: dict) -> None:
    """Write `ident` (an `identity`) as `out/identity.json`, or, if the folder has one, check that it
    is the same study: a ValueError names what differs (the fields one by one), so a run folder is
    never resumed with another study. The net's and the optimizer's probes match to rtol 1e-4.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from funcnn.lottery.identity import check_identity
        >>> with tempfile.TemporaryDirectory() as d:
        ...     check_identity(Path(d), {"study": {"rate": 0.2}, "label": ""})  # writes identity.json
        ...     check_identity(Path(d), {"study": {"rate": 0.2}, "label": ""})  # the same study: fine
        ...     check_identity(Path(d), {"study": {"rate": 0.5}, "label": ""})
        Traceback (most recent call last):
        ...
        ValueError: run folder ... holds a different study, ...: rate (stored 0.2, now 0.5). ...
    """
    path = out / "identity.json"
    if not path.exists():
        io.atomic_write_json(path, ident)
        return
    try:
        stored = json.loads(path.read_text())
    except ValueError:
        raise ValueError(
            f"run folder {out}: identity.json is unreadable; delete the folder or choose another out"
        ) from None
    ident = json.loads(json.dumps(ident))  # the same JSON round trip as the stored copy
    diffs = []
    params_differ = stored.get("params") != ident.get("params")
    for k, v in ident.items():
        old = stored.get(k)
        if k in _NEWER and k not in stored:
            continue  # a run folder written before this key existed
        if params_differ and k in ("net", "optimizer", "theta0", "arms", "loss"):
            continue  # these follow from the param tree's shapes: reported once, as the params
        if k in ("net", "optimizer", "loss"):
            same = old is not None and len(old) == len(v) and np.allclose(old, v, rtol=1e-4, atol=1e-7)
        elif k == "arms":
            same = _same_arms(old, v)
        elif k == "study" and isinstance(old, dict):
            same = _study_fields_differ(old, v) == []
        else:
            same = old == v
        if not same:
            detail = ""
            if k == "study" and isinstance(old, dict):
                detail = ": " + ", ".join(
                    f"{f} (stored {old.get(f)!r}, now {v.get(f)!r})" for f in _study_fields_differ(old, v)
                )
            elif k == "params" and isinstance(old, list):
                gone, new = sorted(set(old) - set(v)), sorted(set(v) - set(old))
                detail = f": stored {', '.join(gone)[:300]}; now {', '.join(new)[:300]}"
            elif k == "arms" and isinstance(old, list):
                detail = ": " + ", ".join(_arm_diffs(old, v))
            diffs.append(f"{_EXPLAIN[k]} differ{detail}")
    if (
        not diffs
        and isinstance(stored.get("study"), dict)
        and any(ident["study"].get(f, 0) > stored["study"].get(f, 0) for f in _GROWS if f in ident["study"])
    ):
        io.atomic_write_json(path, {**stored, "study": ident["study"]})  # more rounds: the study grew
    if diffs:
        raise ValueError(
            f"run folder {out} holds a different study, so it will not be resumed: "
            + "; ".join(diffs)
            + ". Choose another out folder, or delete this one to start over."
        )
