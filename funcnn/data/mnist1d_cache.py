"""MNIST-1D, generated offline by the mnist1d package, and cached in memory and on disk (verified)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from funcnn import io as funcnn_io
from funcnn.data.dataset import DataError, Dataset

__all__ = ["cache_dir", "mnist1d"]

MNIST1D_FIELDS = ("x_train", "y_train", "x_test", "y_test")
_MNIST1D_MEMO: dict[str, Dataset] = {}  # cache name -> read-only arrays; callers get copies


def cache_dir() -> Path:
    """Where generated data sets are cached: $FUNCNN_CACHE, else ~/.cache/funcnn.

    Example:
        >>> import os
        >>> from unittest import mock
        >>> from funcnn import data
        >>> with mock.patch.dict(os.environ, {"FUNCNN_CACHE": "/scratch/me/funcnn-cache"}):
        ...     print(data.cache_dir())
        /scratch/me/funcnn-cache
    """
    env = os.environ.get("FUNCNN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "funcnn"


def mnist1d(*, cache: bool = True, **args: Any) -> Dataset:
    """MNIST-1D generated offline: x (4000, 40) / (1000, 40) float32, y int32, with the default args.

    `args` override mnist1d's `get_dataset_args()` (num_samples=5000, train_split=0.8, seed=42, ...).
    Generating takes a few seconds, so the result is cached in memory and on disk, in
    `cache_dir()/mnist1d/<hash of the args and the mnist1d version>.npz` with its SHA-256 in a `.sha256`
    file beside it; a cache file that fails the check is regenerated. Every call returns fresh copies,
    bit-identical to an uncached generation, so a caller may change them without touching the cache.
    `cache=False` generates without reading or writing any cache.

    Example:
        >>> from funcnn import data
        >>> d = data.mnist1d(cache=False, num_samples=50)  # a small set; the default has 5000
        >>> d.x_train.shape, d.x_test.shape, d.n_classes  # train_split=0.8 of 50
        ((40, 40), (10, 40), 10)
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise DataError("dataset 'mnist1d' needs the mnist1d package: pip install mnist1d") from None
    full = get_dataset_args(as_dict=True)
    known = sorted(k for k in full if k != "url")  # the url is for downloading, which we never do
    unknown = sorted(k for k in args if k not in known)
    if unknown:
        raise ValueError(f"mnist1d got unknown args {unknown}; expected any of {known}")
    full.update(args)

    def generate() -> Dataset:
        # make_dataset generates offline; get_dataset would try to download a pickle first.
        mnist1d_args = get_dataset_args()
        for k, v in args.items():
            setattr(mnist1d_args, k, v)
        d = make_dataset(mnist1d_args)
        return Dataset(
            np.asarray(d["x"], np.float32),
            np.asarray(d["y"], np.int32),
            np.asarray(d["x_test"], np.float32),
            np.asarray(d["y_test"], np.int32),
            10,
        )

    if not cache:
        return generate()
    ident = {"args": {k: v for k, v in full.items() if k != "url"}, "mnist1d": _version("mnist1d"), "format": 1}
    name = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:20]
    cached = _MNIST1D_MEMO.get(name)
    if cached is None:
        path = cache_dir() / "mnist1d" / f"{name}.npz"
        cached = _read_cached(path)
        if cached is None:
            cached = generate()
            _write_cached(path, cached, ident)
        for a in cached[:4]:
            a.flags.writeable = False
        _MNIST1D_MEMO[name] = cached
    return Dataset(
        cached.x_train.copy(), cached.y_train.copy(), cached.x_test.copy(), cached.y_test.copy(), cached.n_classes
    )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _read_cached(path: Path) -> Dataset | None:
    """The data set cached at `path`, or None when it is missing or fails its SHA-256 or format check."""
    try:
        payload = path.read_bytes()
        digest = path.with_suffix(".sha256").read_text().split()[0]
    except (OSError, IndexError):
        return None
    if hashlib.sha256(payload).hexdigest() != digest:
        return None
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            arrays = {k: z[k] for k in MNIST1D_FIELDS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    want = {"x_train": np.float32, "y_train": np.int32, "x_test": np.float32, "y_test": np.int32}
    if any(arrays[k].dtype != want[k] for k in MNIST1D_FIELDS):
        return None
    return Dataset(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], 10)


def _write_cached(path: Path, d: Dataset, ident: dict) -> None:
    """Write the data set, then its SHA-256, each atomically; a cache that cannot be written is skipped."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: getattr(d, k) for k in MNIST1D_FIELDS})
    payload = buffer.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        funcnn_io.atomic_write_bytes(path, payload)
        funcnn_io.atomic_write_bytes(
            path.with_suffix(".sha256"),
            f"{hashlib.sha256(payload).hexdigest()}  {json.dumps(ident, sort_keys=True, default=str)}\n".encode(),
        )
    except OSError as e:
        warnings.warn(
            f"could not cache mnist1d in {path.parent} ({e}); it will be generated again next time", stacklevel=3
        )
