"""A study's identity (v2): what its compiled programs are, θ0's and the data's digests, and its fields;
and the check that refuses to resume a run folder holding a different study (`identity.json`).

Every program of the study is lowered (not compiled) and its StableHLO text, without source locations
and with its symbols renamed in order (`programs.canonical_text`), hashed: the start (θ0, the reinit
draw, batch orders), the members' states, the round (net, loss, optimizer and its schedule over every
step, training and evaluation), a round's masks (every arm and pruner, for every round it runs), and
on their own the net in training and in evaluation mode, the loss, the metric, the optimizer's update
and the augmentation, so a mismatch can name the part that changed. Anything that changes what is
computed changes the identity; a comment or a function's name does not.

What a digest can miss: a program's text holds what the study computes for arrays of its shapes;
host-side Python that runs outside the programs (a pruner that cannot be lowered) is probed instead,
on a fixed context for every round it will run, and a probe sees only that context.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jax
import numpy as np

from funcnn import checks, io, prune, train
from funcnn.lottery import members as members_lib
from funcnn.lottery import programs as programs_lib
from funcnn.lottery.segments import segment_size
from funcnn.lottery.spec import KEY_DTYPE
from funcnn.lottery.study import Study

__all__ = ["VERSION", "check_identity", "identity", "program_digests"]

VERSION = 2
"""identity.json's version: 2 identifies a study by its programs' lowered text (1: by probes)."""

_LOWERING_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerBoolConversionError,
    jax.errors.TracerIntegerConversionError,
)


def _sha256_tree(tree: Any) -> str:
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        a = np.asarray(jax.random.key_data(leaf) if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) else leaf)
        h.update(f"{prune.path_name(path)}:{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _abstract(tree: Any) -> Any:
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype), tree)


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def program_digests(runtime: Study) -> dict[str, Any]:
    """{part: SHA-256 of its lowered program} for every program of a study (see the module docstring);
    'masks' and each 'arm <name>' are one digest when the round is an array in the masks program, else
    one per round, and 'host masks' where an arm cannot be lowered: probes of it for every round instead.

    Example:
        >>> import dataclasses
        >>> import jax
        >>> import optax
        >>> from funcnn import nn
        >>> from funcnn.lottery import Spec, Study
        >>> from funcnn.lottery.identity import program_digests
        >>> x = jax.random.normal(jax.random.key(0), (64, 4))
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> spec = Spec(nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2)), optax.adam(1e-2), train=(x, y), n_val=16,
        ...             iterations=20, batch_size=8, eval_every=10, seeds=2, arms=("ticket",))
        >>> tanh = dataclasses.replace(spec, net=nn.serial(nn.Dense(8), nn.Tanh(), nn.Dense(2)))
        >>> a, b = (program_digests(Study(s, progress=False)) for s in (spec, tanh))
        >>> sorted(k for k in a if a[k] != b[k])  # the net and the round (magnitude pruning never runs the net)
        ['net (evaluation mode)', 'net (training mode)', 'round']
    """
    spec = runtime.spec
    R = runtime.n_replicates
    member0 = jax.tree.map(lambda a: a[0], runtime.theta0_host)
    p1 = _abstract(member0)
    state1 = None if runtime.state0 is None else _abstract(jax.tree.map(lambda a: np.asarray(a)[0], runtime.state0))
    xb, yb = (jax.ShapeDtypeStruct((spec.batch_size, *a.shape[1:]), a.dtype) for a in runtime.host_data[:2])
    key = jax.ShapeDtypeStruct((), KEY_DTYPE)
    forward = train.as_forward(runtime.net)
    out: dict[str, Any] = {}

    def part(name: str, fn: Any, *args: Any) -> None:
        out[name] = programs_lib.digest(jax.jit(fn).lower(*args))

    part("net (training mode)", lambda p, s, xb, k: forward(p, s, xb, key=k, train=True), p1, state1, xb, key)
    part("net (evaluation mode)", lambda p, s, xb: forward(p, s, xb, train=False), p1, state1, xb)
    logits = jax.eval_shape(lambda p, s, xb: forward(p, s, xb, train=False)[0], p1, state1, xb)
    part("loss", spec.loss, logits, yb)
    part("metric", spec.metric, logits, yb)
    opt = jax.eval_shape(runtime.tx.init, p1)
    part("optimizer", lambda g, o, p: runtime.tx.update(g, o, p), p1, opt, p1)
    if spec.augment is not None:
        part("augment", spec.augment, key, xb)
    out["start"] = programs_lib.digest(runtime.start_program.lower(np.int32(spec.seed)))
    i32 = jax.ShapeDtypeStruct((R,), np.int32)
    params = _abstract(runtime.theta0_host)
    masks = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, np.bool_), params)
    states = None if runtime.state0 is None else _abstract(runtime.state0)
    args = (params, masks, i32, np.int32(0), states, i32, i32, i32, None, i32)
    out["states"] = programs_lib.digest(runtime.carry_program.lower(*args))
    carry = jax.eval_shape(runtime.carry_program, *args)
    G = runtime.group if runtime.mesh is None else R
    group = jax.tree.map(lambda a: jax.ShapeDtypeStruct((G, *a.shape[1:]), a.dtype), carry)
    n_chunks = spec.iterations // spec.eval_every
    seg = segment_size(n_chunks, spec.checkpoints_per_round)
    idx = jax.ShapeDtypeStruct((G, seg, spec.eval_every, spec.batch_size), np.int32)
    data = _abstract(runtime.host_data)
    if runtime.mesh is None:  # placed as `call_program` places a group, so that the run reuses this lowering
        group, idx, data = programs_lib.placed((group, idx, data), runtime.devices[0])
    out["round"] = programs_lib.digest(jax.jit(runtime.round_fn).lower(group, idx, data))
    with checks.deferred():  # as rounds.build traces the masks program
        return out | _masks_digests(runtime, params)


def _masks_digests(runtime: Study, params: Any) -> dict[str, Any]:
    spec = runtime.spec
    B = spec.batch_size
    x, y = runtime.host_data[0], runtime.host_data[1]
    batch = (
        jax.ShapeDtypeStruct((runtime.n_replicates, B, *x.shape[1:]), x.dtype),
        jax.ShapeDtypeStruct((runtime.n_replicates, B, *y.shape[1:]), y.dtype),
    )
    masks = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, np.bool_), params)
    rewound = {k: params for k in sorted({p.rewind_step for p in runtime.plans})}
    lineages = {p.name: (params, masks) for p in runtime.plans if p.lineage}
    program = runtime.members_program
    traced = members_lib.traced_round(runtime.plans, spec)
    rounds = [np.int32(1)] if traced else list(range(1, spec.rounds + 1))
    R = runtime.n_replicates
    keys = jax.ShapeDtypeStruct((R,), KEY_DTYPE)
    out: dict[str, Any] = {}
    try:
        lowered = [program.lower(r, params, rewound, params, lineages, params, batch) for r in rounds]
        whole = [programs_lib.digest(w) for w in lowered]
        out["masks"] = whole[0] if traced else whole
        for plan in runtime.plans:  # each arm on its own, so that a mismatch names the arm
            fn = jax.jit(members_lib.arm_fn(runtime, plan), static_argnums=() if traced else (0,))
            parent = masks if plan.parent is not None else None
            args = (keys, params, params, params, params, masks, parent, params, *batch)
            each = [programs_lib.digest(fn.lower(r, *args)) for r in rounds]
            out[f"arm {plan.name}"] = each[0] if traced else each
    except _LOWERING_ERRORS:
        runtime.host_masks = True
        return {"host masks": _host_probes(runtime)}
    return out


def _host_probes(runtime: Study) -> list[str]:
    """For arms that cannot be lowered: the SHA-256 of every arm's masks and weights, made on the
    host for each round 1..rounds from a fixed context (θ0 for every weight, the first batches)."""
    from funcnn.lottery import rounds as rounds_lib

    theta0 = runtime.theta0_host
    ones = jax.tree.map(lambda a: np.ones(np.shape(a), bool), theta0)
    rewinds = {k: {"params": theta0} for k in {p.rewind_step for p in runtime.plans}}
    lineages = {p.name: (theta0, ones) for p in runtime.plans if p.lineage}
    out = []
    for r in range(1, runtime.spec.rounds + 1):
        params, masks = rounds_lib.host_members(runtime, r, lineages, rewinds, theta0)
        out.append(_sha256_tree((params, masks)))
    return out


def identity(runtime: Study, describe: dict) -> dict:
    """What a study is, as JSON: its version (2), the jax/jaxlib/funcnn versions that lowered it, its
    fields, the param tree (names, shapes, dtypes), the prunable leaves, the arms resolved, SHA-256
    digests of θ0 (and the reinit draw) and of the data, and `program_digests`.

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
        >>> ident["version"], ident["params"]
        (2, ['dense_0/b: float32[8]', 'dense_0/w: float32[4, 8]', 'dense_2/b: float32[2]', 'dense_2/w: float32[8, 2]'])
        >>> sorted(ident["programs"])  # a digest of each program, each arm's on its own too
        ['arm random', 'arm reinit', 'arm ticket', 'loss', 'masks', 'metric', 'net (evaluation mode)',
         'net (training mode)', 'optimizer', 'round', 'start', 'states']
    """
    member0 = jax.tree.map(lambda a: a[0], runtime.theta0_host)
    return {
        "version": VERSION,
        "versions": {"jax": jax.__version__, "jaxlib": _version("jaxlib"), "funcnn": _version("funcnn")},
        "study": {k: v for k, v in describe.items() if k not in _BY_PROGRAM},
        "params": [
            f"{prune.path_name(p)}: {np.asarray(leaf).dtype}{list(np.shape(leaf))}"
            for p, leaf in jax.tree_util.tree_leaves_with_path(member0)
        ],
        "prunable": [prune.path_name(p) for p, s in jax.tree_util.tree_leaves_with_path(runtime.spec_prunable) if s],
        "arms": [
            {f: getattr(p, f) for f in ("name", "lineage", "parent", "rewind_step", "weights", "schedule", "builtin")}
            for p in runtime.plans
        ],
        "dense_run": runtime.dense_run,
        "theta0": _sha256_tree((runtime.theta0_host, jax.tree.map(np.asarray, runtime.theta0_reinit))),
        "data": _sha256_tree(runtime.host_data),
        "label": runtime.spec.label,
        "programs": program_digests(runtime),
    }


# Fields identified by their programs, not their names (a renamed loss computes the same).
_BY_PROGRAM = ("loss", "metric", "augment")

_EXPLAIN = {
    "study": "the study's fields",
    "params": "the param tree (names, shapes or dtypes)",
    "prunable": "which leaves are prunable",
    "arms": "the arms",
    "dense_run": "whether the study trains a dense run",
    "theta0": "θ0 (the initial weights)",
    "data": "the data",
    "label": "the label",
}
_PROGRAMS = {
    "net (training mode)": "the net in training mode",
    "net (evaluation mode)": "the net in evaluation mode",
    "loss": "the loss",
    "metric": "the metric",
    "optimizer": "the optimizer (its update, and its schedule at every step)",
    "augment": "the augmentation",
    "start": "the start program (θ0's initializer, the reinit draw, the batch orders or the validation split)",
    "states": "the members' starting states (the optimizer's state, model state)",
    "round": "the round program (training and evaluation)",
    "masks": "the masks program (what an arm or a pruner does)",
    "host masks": "what an arm or a pruner does (probed on the host)",
}
# A study may grow: more rounds resume the committed ones.
_GROWS = ("rounds",)


def _study_fields_differ(old: dict, new: dict) -> list[str]:
    """The fields that differ, but `rounds` (a study may grow or stop earlier) and a `sparsities`
    list that extends the stored one."""
    out = []
    for f in sorted(set(old) | set(new)):
        a, b = old.get(f), new.get(f)
        if a == b or f in _GROWS:
            continue
        if f == "sparsities" and isinstance(a, list) and isinstance(b, list) and (b[: len(a)] == a or a[: len(b)] == b):
            continue
        out.append(f)
    return out


def _per_round_same(old: Any, new: Any) -> bool:
    """Per-round digests (lists) match on the rounds both know; single digests must be equal."""
    if isinstance(old, list) and isinstance(new, list):
        n = min(len(old), len(new))
        return old[:n] == new[:n]
    return old == new


def _program_diffs(old: dict, new: dict) -> list[str]:
    out = []
    arms = [k for k in dict.fromkeys([*old, *new]) if k.startswith("arm ")]
    for name in [*_PROGRAMS, *arms]:
        a, b = old.get(name), new.get(name)
        if a is None and b is None:
            continue
        what = _PROGRAMS.get(name) or f"arm '{name[4:]}' (what it does: its mask and weights)"
        if a is None or b is None:
            out.append(f"{what} is {'new' if a is None else 'gone'}")
        elif not _per_round_same(a, b):
            if isinstance(a, list) and isinstance(b, list):
                first = next(i for i, (u, v) in enumerate(zip(a, b, strict=False)) if u != v)
                out.append(f"{what} differs from round {first + 1} on")
            else:
                out.append(f"{what} differs")
    # The parts explain the whole: the round program differs whenever the net does, and the masks
    # program whenever an arm does, so the whole is named only when no part explains it.
    wholes = ("the round program", "the start program", "the members'", "the masks program")
    smaller = [d for d in out if not d.startswith(wholes)]
    return smaller or out


def check_identity(out: Path, ident: dict, *, allow_version_change: bool = False) -> int:
    """Write `ident` (an `identity`) as `out/identity.json`, or, if the folder has one, check that it
    is the same study: a ValueError names each part that differs, so a run folder is never resumed
    with another study. Returns the number of rounds the stored study has (0 for a new folder).

    A folder written under identity v1 is refused (its study cannot be compared). Where only program
    digests differ and the stored ones were lowered by another jax or jaxlib version, the error says
    so; `allow_version_change=True` then accepts the folder and records the new digests and versions.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from funcnn.lottery.identity import check_identity
        >>> ident = {"version": 2, "study": {"rate": 0.2, "rounds": 3}, "label": ""}
        >>> with tempfile.TemporaryDirectory() as d:
        ...     new = check_identity(Path(d), ident)  # writes identity.json: a new folder, 0 rounds stored
        ...     same = check_identity(Path(d), ident)  # the same study: fine, 3 rounds stored
        ...     check_identity(Path(d), {**ident, "study": {"rate": 0.5, "rounds": 3}})
        Traceback (most recent call last):
        ...
        ValueError: run folder ... holds a different study, ...: rate (stored 0.2, now 0.5). ...
    """
    path = out / "identity.json"
    if not path.exists():
        io.atomic_write_json(path, ident)
        return 0
    try:
        stored = json.loads(path.read_text())
    except ValueError:
        raise ValueError(
            f"run folder {out}: identity.json is unreadable; delete the folder or choose another out"
        ) from None
    if stored.get("version") != VERSION:
        raise ValueError(
            f"run folder {out} holds a study identified by identity v{stored.get('version', 1)} (an earlier "
            f"funcnn, before studies were identified by their compiled programs); this funcnn identifies studies "
            f"by identity v{VERSION} and never resumes an older folder by guess. Its results stay readable "
            "(lottery.load_report); choose another out folder, or delete this one to start over."
        )
    ident = json.loads(json.dumps(ident))  # the same JSON round trip as the stored copy
    diffs: list[str] = []
    params_differ = stored.get("params") != ident.get("params")
    for k, v in ident.items():
        if k in ("version", "versions", "programs"):
            continue
        old = stored.get(k)
        if params_differ and k in ("theta0",):
            continue  # follows from the param tree's shapes: reported once, as the params
        same = _study_fields_differ(old, v) == [] if k == "study" and isinstance(old, dict) else old == v
        if not same:
            detail = ""
            if k == "study" and isinstance(old, dict):
                detail = ": " + ", ".join(
                    f"{f} (stored {old.get(f)!r}, now {v.get(f)!r})" for f in _study_fields_differ(old, v)
                )
            elif k == "params" and isinstance(old, list):
                gone, new = sorted(set(old) - set(v)), sorted(set(v) - set(old))
                detail = f": stored {', '.join(gone)[:300]}; now {', '.join(new)[:300]}"
            diffs.append(f"{_EXPLAIN.get(k, k)} differ{detail}")
    program_diffs = [] if params_differ else _program_diffs(stored.get("programs", {}), ident.get("programs", {}))
    versions_now, versions_then = ident.get("versions", {}), stored.get("versions", {})
    other_lowering = {k: (versions_then.get(k), versions_now.get(k)) for k in ("jax", "jaxlib")}
    moved = {k: v for k, v in other_lowering.items() if v[0] != v[1]}
    if program_diffs and moved and not diffs and allow_version_change:
        io.atomic_write_json(path, {**stored, "programs": ident["programs"], "versions": versions_now})
        program_diffs = []
    if program_diffs:
        note = ""
        if moved:
            was = ", ".join(f"{k} {a}" for k, (a, _) in moved.items())
            now = ", ".join(f"{k} {b}" for k, (_, b) in moved.items())
            note = (
                f" (these programs were lowered by {was} and now by {now}: another version may lower the same "
                "study differently; if you know the study is the same, pass allow_version_change=True)"
            )
        diffs += [d + note if i == len(program_diffs) - 1 else d for i, d in enumerate(program_diffs)]
    if diffs:
        raise ValueError(
            f"run folder {out} holds a different study, so it will not be resumed: "
            + "; ".join(diffs)
            + ". Choose another out folder, or delete this one to start over."
        )
    stored_study = stored.get("study", {}) if isinstance(stored.get("study"), dict) else {}
    grown = any(ident.get("study", {}).get(f, 0) > stored_study.get(f, 0) for f in _GROWS)
    longer = {
        k: v
        for k, v in ident.get("programs", {}).items()
        if isinstance(v, list) and len(v) > len(stored.get("programs", {}).get(k, []))
    }
    if grown or longer:  # more rounds: the study grew
        study = {**stored_study, **{f: max(ident["study"].get(f, 0), stored_study.get(f, 0)) for f in _GROWS}}
        programs = {**stored.get("programs", {}), **longer}
        sparsities = ident.get("study", {}).get("sparsities")
        if isinstance(sparsities, list) and len(sparsities) > len(stored_study.get("sparsities") or []):
            study["sparsities"] = sparsities
        io.atomic_write_json(path, {**stored, "study": study, "programs": programs})
    return int(stored_study.get("rounds", 0))
