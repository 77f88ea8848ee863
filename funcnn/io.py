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

__all__ = [
    "COMMIT",
    "CheckpointError",
    "atomic_write_bytes",
    "atomic_write_json",
    "commit",
    "load_tree",
    "save_tree",
    "sha256_file",
    "verify_commit",
]

COMMIT = "COMMIT"  # the name of the marker file `commit` writes


class CheckpointError(RuntimeError):
    """A saved file is missing, truncated, corrupted or does not match what was expected.

    Example:
        >>> import pathlib
        >>> import tempfile
        >>> import numpy as np
        >>> from funcnn import io
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = pathlib.Path(d) / "params.npz"
        ...     _ = io.save_tree(path, {"w": np.zeros((2, 3), np.float32)})
        ...     io.load_tree(path, {"w": np.zeros((3, 2), np.float32)})  # a template of another shape
        Traceback (most recent call last):
        ...
        funcnn.io.CheckpointError: .../params.npz: array 'w' is float32[2, 3], expected float32[3, 2]
    """


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write `payload` to `path` atomically (temp file, fsync, rename, fsync of the folder).

    A reader (or a crash) sees the old file or the whole new one, never a part.

    Example:
        >>> import pathlib
        >>> import tempfile
        >>> from funcnn import io
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = pathlib.Path(d) / "note.txt"
        ...     io.atomic_write_bytes(path, b"first")
        ...     io.atomic_write_bytes(path, b"second")  # replaces the file in one step
        ...     print(path.read_bytes(), sorted(p.name for p in pathlib.Path(d).iterdir()))
        b'second' ['note.txt']
    """
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
    """Write `obj` as JSON (indent 2, sorted keys, a final newline) to `path` with `atomic_write_bytes`.

    Example:
        >>> import pathlib
        >>> import tempfile
        >>> from funcnn import io
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = pathlib.Path(d) / "metrics.json"
        ...     io.atomic_write_json(path, {"loss": 0.5, "epoch": 3})
        ...     print(path.read_text(), end="")
        {
          "epoch": 3,
          "loss": 0.5
        }
    """
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _is_key(leaf: Any) -> bool:
    return jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key)


def _flat(tree: Any) -> dict[str, np.ndarray]:
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        # A typed PRNG key is stored as its raw key data (uint32) and wrapped again on load.
        out[path_name(path) or "_"] = np.asarray(jax.random.key_data(leaf) if _is_key(leaf) else leaf)
    return out


def save_tree(path: str | os.PathLike, tree: Any) -> str:
    """Save a pytree's leaves to an `.npz` named by key path; returns the file's SHA-256.

    Each array is stored under its `funcnn.prune.path_name` ('dense_0/w'); typed PRNG keys as their
    raw key data. Written atomically (`atomic_write_bytes`); nothing is pickled.

    Example:
        >>> import pathlib
        >>> import tempfile
        >>> import numpy as np
        >>> from funcnn import io
        >>> params = {"dense_0": {"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)}}
        >>> with tempfile.TemporaryDirectory() as d:
        ...     digest = io.save_tree(pathlib.Path(d) / "params.npz", params)
        ...     with np.load(pathlib.Path(d) / "params.npz") as z:
        ...         print(sorted(z.files), len(digest))
        ['dense_0/b', 'dense_0/w'] 64
    """
    buffer = io.BytesIO()
    # typed as Any: numpy's stub for savez would check each array against its bool `allow_pickle`
    arrays: dict[str, Any] = _flat(tree)
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    atomic_write_bytes(path, payload)
    return hashlib.sha256(payload).hexdigest()


def load_tree(path: str | os.PathLike, like: Any) -> Any:
    """Load an `.npz` written by `save_tree` into the structure of `like`, checking names, shapes, dtypes.

    `like`: a template tree (arrays or `jax.ShapeDtypeStruct`s) of the saved structure. Raises
    `CheckpointError` when the file is unreadable or does not match it. Leaves come back as numpy arrays
    (typed PRNG keys as keys).

    Example:
        >>> import pathlib
        >>> import tempfile
        >>> import jax
        >>> import numpy as np
        >>> from funcnn import io
        >>> params = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.int32(7)}
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = io.save_tree(pathlib.Path(d) / "params.npz", params)
        ...     like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), params)
        ...     loaded = io.load_tree(pathlib.Path(d) / "params.npz", like)
        >>> loaded["w"].tolist(), int(loaded["step"])
        ([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], 7)
    """
    path = Path(path)
    names = [path_name(p) or "_" for p, _ in jax.tree_util.tree_leaves_with_path(like)]
    templates = jax.tree.leaves(like)
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = set(z.files)
            if stored != set(names):
                raise CheckpointError(f"{path}: holds arrays {sorted(stored)}, expected {sorted(names)}")
            leaves = []
            for name, t in zip(names, templates, strict=True):
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
    """The SHA-256 of a file's bytes as 64 hex digits, read in 1 MiB chunks.

    Example:
        >>> import pathlib
        >>> import tempfile
        >>> from funcnn import io
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = (pathlib.Path(d) / "abc.txt").write_bytes(b"abc")
        ...     io.sha256_file(pathlib.Path(d) / "abc.txt")
        'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def commit(folder: str | os.PathLike, files: list[str]) -> None:
    """Mark `folder` complete: write COMMIT (last) holding the SHA-256 of each named file.

    Write the files first, then `commit`: a folder without a valid COMMIT (see `verify_commit`) is
    unfinished, e.g. a run that crashed halfway.

    Example:
        >>> import json
        >>> import pathlib
        >>> import tempfile
        >>> from funcnn import io
        >>> with tempfile.TemporaryDirectory() as d:
        ...     io.atomic_write_json(pathlib.Path(d) / "metrics.json", {"acc": 0.9})
        ...     io.commit(d, ["metrics.json"])
        ...     recorded = json.loads((pathlib.Path(d) / io.COMMIT).read_text())
        >>> list(recorded), len(recorded["metrics.json"])  # file name -> its SHA-256
        (['metrics.json'], 64)
    """
    folder = Path(folder)
    digests = {name: sha256_file(folder / name) for name in files}
    atomic_write_json(folder / COMMIT, digests)


def verify_commit(folder: str | os.PathLike) -> bool:
    """True when `folder` has a COMMIT marker and every file it names has the recorded digest.

    Example:
        >>> import pathlib
        >>> import tempfile
        >>> from funcnn import io
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = pathlib.Path(d) / "curves.bin"
        ...     _ = path.write_bytes(b"1234")
        ...     before = io.verify_commit(d)  # no COMMIT yet: unfinished
        ...     io.commit(d, ["curves.bin"])
        ...     committed = io.verify_commit(d)
        ...     _ = path.write_bytes(b"12")  # changed after the commit
        ...     print(before, committed, io.verify_commit(d))
        False True False
    """
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
