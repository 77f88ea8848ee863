"""Atomic, verified save/load of pytrees of arrays (`.npz`, never pickle).

The contract: a saved tree holds arrays only. Each leaf is a numpy or JAX array (or a numpy scalar)
of a numeric dtype, or a Python `bool`/`int`/`float`/`complex`, stored as a 0-d numpy array of numpy's
default dtype (bool, int64, float64, complex128) and loaded back as that array. Anything else (a
function, a string, a module) is a ValueError at save naming its path; so are two leaves whose
names in the file collide (`{"a/b": x}` and `{"a": {"b": y}}`). Nothing is pickled, on save or load.

Dtypes, each bit-exact: numpy's bool, ints, floats and complex as `.npy` arrays of their own dtype;
the ml_dtypes JAX uses (bfloat16, float8_*, float6_*, float4_e2m1fn, int4/uint4, int2/uint2, ...)
as their raw bits (an unsigned int of the same itemsize); typed PRNG keys (`jax.random.key`, arrays
of them) as their key data. Their dtype names and key impls (threefry2x32, rbg, ...) go into a
JSON member `__funcnn_io__.json`, written only when needed: a tree of plain numeric arrays is the
plain `.npz` that `np.load` reads and that earlier versions wrote (such files still load). Legacy
uint32 keys (`jax.random.PRNGKey`) are plain uint32 arrays.

`load_tree` checks the stored names, shapes and dtypes against a template tree: concrete arrays or
`jax.ShapeDtypeStruct`s, including typed-key ones (`jax.eval_shape`, `flax.nnx.eval_shape`).

A file is written to a temporary name in the same folder, flushed, fsynced and renamed into place,
so a reader sees either the old file or the whole new one; `commit`/`verify_commit` record and check
SHA-256 digests of a folder's files.
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

from funcnn._io_leaves import _EXTENDED, _META, _SCALARS, _describe, _flat, _is_key, _key_impl, _names, _native

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


def save_tree(path: str | os.PathLike, tree: Any) -> str:
    """Save a pytree of arrays to an `.npz` named by key path; returns the file's SHA-256.

    Each array is stored under its `funcnn.prune.path_name` ('dense_0/w'); extended dtypes as their
    bits and typed PRNG keys as their key data, with the dtype or key impl in the file's metadata (see
    the module docstring). Raises ValueError, writing nothing, for a leaf that is not an array and for
    colliding names. Written atomically (`atomic_write_bytes`); nothing is pickled, and the same tree
    gives the same bytes.

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
    arrays, meta = _flat(tree)
    buffer = io.BytesIO()
    # the layout np.savez writes (stored, zip64 members), with a fixed time stamp so equal trees give
    # equal files; written here because savez's own keywords (`file`, `allow_pickle`) would clash with names
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, a in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o600 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, a, allow_pickle=False)
        if meta:
            info = zipfile.ZipInfo(_META, date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, json.dumps({"format": 2, "leaves": meta}, sort_keys=True))
    payload = buffer.getvalue()
    atomic_write_bytes(path, payload)
    return hashlib.sha256(payload).hexdigest()


def _restore(a: np.ndarray, info: dict[str, str], t: Any, label: str) -> Any:
    """The leaf stored as `a` (with metadata `info`) as template `t` asks; CheckpointError if it differs."""
    if "dtype" in info:
        if info["dtype"] not in _EXTENDED or a.dtype != np.dtype(f"u{_EXTENDED[info['dtype']].itemsize}"):
            raise CheckpointError(f"{label} holds {a.dtype} bits recorded as dtype {info['dtype']!r}")
        a = a.view(_EXTENDED[info["dtype"]])
    if _is_key(t):
        data = jax.eval_shape(jax.random.key_data, t)
        if a.shape != data.shape or a.dtype != data.dtype:
            impl = f" key data ({info['key']})" if "key" in info else ""
            raise CheckpointError(
                f"{label} is {a.dtype}{list(a.shape)}{impl}, expected {data.dtype}{list(data.shape)} of {t.dtype}"
            )
        # files written before key impls were recorded hold key data only: wrap it as the template's
        key = jax.random.wrap_key_data(jax.numpy.asarray(a), impl=info.get("key") or _key_impl(t))
        if key.dtype != t.dtype:
            raise CheckpointError(f"{label} is a {key.dtype} key, expected {t.dtype}")
        return key
    want = np.dtype(t.dtype) if hasattr(t, "dtype") else np.result_type(t)
    if "key" in info:
        raise CheckpointError(
            f"{label} is a typed key ({info['key']}), data {a.dtype}{list(a.shape)}; expected {want}{list(np.shape(t))}"
        )
    if not info and a.dtype.kind == "V" and not _native(want) and a.dtype.itemsize == want.itemsize:
        a = a.view(want)  # an extended dtype in a file from before format 2: its bits in a void array
    if a.shape != np.shape(t) or a.dtype != want:
        raise CheckpointError(f"{label} is {a.dtype}{list(a.shape)}, expected {want}{list(np.shape(t))}")
    return a


def _read_meta(z: Any, path: Path) -> dict[str, dict[str, str]]:
    if _META not in z.files:
        return {}  # plain arrays, or a file from before format 2
    try:
        meta = json.loads(z[_META])
        leaves = meta["leaves"]
        ok = meta["format"] == 2 and all(isinstance(v, dict) for v in leaves.values())
    except (ValueError, TypeError, KeyError, AttributeError):
        ok = False
    if not ok:
        raise CheckpointError(f"{path}: its {_META} is not funcnn's format 2; truncated, or a newer funcnn's?")
    return leaves


def load_tree(path: str | os.PathLike, like: Any) -> Any:
    """Load an `.npz` written by `save_tree` into the structure of `like`, checking names, shapes, dtypes.

    `like`: a template tree of the saved structure whose leaves are arrays, `jax.ShapeDtypeStruct`s
    (typed-key dtypes included, as `jax.eval_shape` and `flax.nnx.eval_shape` give) or Python scalars;
    any other leaf is a ValueError naming it. Raises `CheckpointError` when the file is unreadable or
    does not match the template. Leaves come back as numpy arrays of the stored dtype (typed PRNG keys
    as JAX keys of the stored impl).

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
    entries = _names(like, "load_tree")
    for _, where, t in entries:
        if not (isinstance(t, _SCALARS) or (hasattr(t, "shape") and hasattr(t, "dtype"))):
            raise ValueError(
                f"load_tree: template leaf {where} is {_describe(t)}; expected an array or a "
                "jax.ShapeDtypeStruct (templates hold what save_tree stores: arrays only)"
            )
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = _read_meta(z, path)
            stored = set(z.files) - {_META}
            names = [name for name, _, _ in entries]
            if stored != set(names):
                raise CheckpointError(f"{path}: holds arrays {sorted(stored)}, expected {sorted(names)}")
            leaves = [
                _restore(z[name], meta.get(name, {}), t, f"{path}: {'key' if _is_key(t) else 'array'} '{name}'")
                for name, _, t in entries
            ]
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
