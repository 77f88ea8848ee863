"""Atomic, verified save/load of pytrees of arrays (`.npz`, never pickle).

A file is written to a temporary name in the same folder, flushed, fsynced and renamed into place,
so a reader sees either the old file or the whole new one. `load_tree` checks the stored names,
shapes and dtypes against a template tree, and `commit`/`verify_commit` record and check SHA-256
digests of a folder's files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from funcnn.prune import path_name

COMMIT = "COMMIT"


class CheckpointError(RuntimeError):
    """A saved file is missing, truncated, corrupted or does not match what was expected."""


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write `payload` to `path` atomically (temp file, fsync, rename, fsync of the folder)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from e  # name the file that could not be written
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _is_key(leaf) -> bool:
    return jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key)


def _flat(tree) -> dict[str, np.ndarray]:
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        # A typed PRNG key is stored as its raw key data (uint32) and wrapped again on load.
        out[path_name(path) or "_"] = np.asarray(jax.random.key_data(leaf) if _is_key(leaf) else leaf)
    return out


def save_tree(path: str | os.PathLike, tree: Any) -> str:
    """Save a pytree's leaves to an `.npz` named by key path; returns the file's SHA-256."""
    buffer = io.BytesIO()
    np.savez(buffer, **_flat(tree))
    payload = buffer.getvalue()
    atomic_write_bytes(path, payload)
    return hashlib.sha256(payload).hexdigest()


def load_tree(path: str | os.PathLike, like: Any) -> Any:
    """Load an `.npz` written by `save_tree` into the structure of `like`, checking names, shapes, dtypes."""
    path = Path(path)
    names = [path_name(p) or "_" for p, _ in jax.tree_util.tree_leaves_with_path(like)]
    templates = jax.tree.leaves(like)
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = set(z.files)
            if stored != set(names):
                raise CheckpointError(f"{path}: holds arrays {sorted(stored)}, expected {sorted(names)}")
            leaves = []
            for name, t in zip(names, templates):
                a = z[name]
                if _is_key(t):
                    data = jax.random.key_data(t)
                    if a.shape != data.shape or a.dtype != data.dtype:
                        raise CheckpointError(
                            f"{path}: key '{name}' is {a.dtype}{list(a.shape)}, expected {data.dtype}{list(data.shape)}"
                        )
                    leaves.append(jax.random.wrap_key_data(a, impl=jax.random.key_impl(t)))
                    continue
                want = np.dtype(getattr(t, "dtype", None) or np.result_type(t))
                if a.shape != np.shape(t) or a.dtype != want:
                    raise CheckpointError(
                        f"{path}: array '{name}' is {a.dtype}{list(a.shape)}, expected {want}{list(np.shape(t))}"
                    )
                leaves.append(a)
    except CheckpointError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise CheckpointError(f"{path}: cannot be read ({type(e).__name__}: {e}); truncated or corrupted?") from None
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def commit(folder: str | os.PathLike, files: list[str]) -> None:
    """Mark `folder` complete: write COMMIT (last) holding the SHA-256 of each named file."""
    folder = Path(folder)
    digests = {name: sha256_file(folder / name) for name in files}
    atomic_write_json(folder / COMMIT, digests)


def verify_commit(folder: str | os.PathLike) -> bool:
    """True when `folder` has a COMMIT marker and every file it names has the recorded digest."""
    folder = Path(folder)
    try:
        digests = json.loads((folder / COMMIT).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(digests, dict):
        return False
    for name, digest in digests.items():
        f = folder / name
        if not f.is_file() or sha256_file(f) != digest:
            return False
    return True
