"""The trained arms cached in --out/arms/<model>/: <arm>.json (the record), .params.npz, .masks.npz and,
for a net with BatchNorm, .state.npz; index.json lists a model's arms in training order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from experiments.prune_speed_parts.config import ARM_FIELDS, MODELS, state_like
from funcnn import io

Params = Any


def _paths(out: Path, model: str, arm: str) -> tuple[Path, Path, Path]:
    folder = out / "arms" / model
    return folder / f"{arm}.json", folder / f"{arm}.params.npz", folder / f"{arm}.masks.npz"


def _same_budget(stored: dict, config: dict, kind: str, step: int) -> bool:
    """Whether an arm trained under config `stored` is the one `config` asks for: the same seed and
    the same values of the budget fields it depends on (a structured arm: the same first keep steps)."""
    old, new = stored.get("budget", {}), config["budget"]
    same = stored.get("seed") == config["seed"] and all(
        old.get(f) == json.loads(json.dumps(new[f])) for f in ARM_FIELDS[kind]
    )
    if kind == "structured":
        same = same and list(old.get("keep", []))[: step + 1] == list(new["keep"])[: step + 1]
    return same


def _state_path(out: Path, model: str, arm: str) -> Path:
    return out / "arms" / model / f"{arm}.state.npz"


def load_arm(
    out: Path,
    model: str,
    arm: str,
    like: Params,
    config: dict | None = None,
    kind: str = "dense",
    step: int = 0,
    state: Params | None = None,
) -> tuple[dict, Params, Params, Params | None] | None:
    """The cached arm (record, params, masks, state), or None when missing or trained under another
    config (config None: any). state: the net's init state, for a stateful net (its statistics are
    read from <arm>.state.npz); None for a stateless net, whose arm's state is None."""
    meta, p_path, m_path = _paths(out, model, arm)
    s_path = _state_path(out, model, arm)
    if not (meta.is_file() and p_path.is_file() and m_path.is_file() and (state is None or s_path.is_file())):
        return None
    record = json.loads(meta.read_text())
    if config is not None and not _same_budget(record.get("config", {}), config, kind, step):
        return None
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.float32), like)
    masks_like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.bool_), like)
    try:
        loaded = None
        if state is not None:
            state_shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.float32), state)
            loaded = io.load_tree(s_path, state_shapes)
        return record, io.load_tree(p_path, shapes), io.load_tree(m_path, masks_like), loaded
    except io.CheckpointError:
        return None


def save_arm(out: Path, model: str, record: dict, params: Params, masks: Params, state: Params | None) -> None:
    meta, p_path, m_path = _paths(out, model, record["arm"])
    meta.parent.mkdir(parents=True, exist_ok=True)
    io.save_tree(p_path, params)
    io.save_tree(m_path, masks)
    if state is not None:
        io.save_tree(_state_path(out, model, record["arm"]), state)
    io.atomic_write_json(meta, record)


def arm_index(out: Path, name: str) -> list[dict]:
    """The arm records of a model's last training run, in training order (dense, imp-.., structured-..)."""
    folder = out / "arms" / name
    index = folder / "index.json"
    arms = json.loads(index.read_text()) if index.is_file() else []
    stateful = state_like(MODELS[name].build("auto")) is not None
    missing = [
        a
        for a in arms
        if not all(p.is_file() for p in (*_paths(out, name, a), *[_state_path(out, name, a)] * stateful))
    ]
    if not arms or missing:
        raise SystemExit(
            f"error: no trained arms of {name} in {folder}{f' (missing {missing})' if missing else ''}; "
            "run without --time-only first"
        )
    return [json.loads(_paths(out, name, a)[0].read_text()) for a in arms]
