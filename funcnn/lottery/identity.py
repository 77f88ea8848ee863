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
from funcnn.lottery.study import Study, advance_schedule

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
        ['data', 'label', 'net', 'optimizer', 'params', 'prunable', 'study', 'theta0']
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
}


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
        ValueError: run folder ... holds a different study, ...: the study's fields differ: rate 0.2 -> 0.5. ...
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
    for k, v in ident.items():
        old = stored.get(k)
        if k in ("net", "optimizer"):
            same = old is not None and len(old) == len(v) and np.allclose(old, v, rtol=1e-4, atol=1e-7)
        else:
            same = old == v
        if not same:
            detail = ""
            if k == "study" and isinstance(old, dict):
                changed = sorted(f for f in set(v) | set(old) if v.get(f) != old.get(f))
                detail = ": " + ", ".join(f"{f} {old.get(f)!r} -> {v.get(f)!r}" for f in changed)
            elif k == "params" and isinstance(old, list):
                detail = ": " + ", ".join(sorted(set(old) ^ set(v)))[:300]
            diffs.append(f"{_EXPLAIN[k]} differ{detail}")
    if diffs:
        raise ValueError(
            f"run folder {out} holds a different study, so it will not be resumed: "
            + "; ".join(diffs)
            + ". Choose another out folder, or delete this one to start over."
        )
