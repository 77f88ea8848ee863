"""Data sets, offline and verified: MNIST-1D (generated), Fashion-MNIST (Debian), MNIST (a folder).

Nothing downloads implicitly: `download` is the only function that touches the network, and only when
called. Every IDX file is checked against a pinned SHA-256 before it is read.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import struct
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnn import io as funcnn_io
from funcnn.io import sha256_file as sha256

__all__ = [
    "DATASETS",
    "FASHION_MNIST_DIR",
    "DataError",
    "Dataset",
    "cache_dir",
    "download",
    "load",
    "mnist1d",
    "read_idx",
    "train_val_split",
    "two_spirals",
    "verify",
    "xor",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_INSTALL = "apt-get install dataset-fashion-mnist"

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# Debian's dataset-fashion-mnist re-compresses Zalando's files, so its .gz digests differ from the
# upstream ones; both are accepted (the decompressed contents are the same).
SHA256 = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": {
            "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",  # Debian
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",  # Zalando
        },
        "train-labels-idx1-ubyte.gz": {
            "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        },
        "t10k-images-idx3-ubyte.gz": {
            "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        },
        "t10k-labels-idx1-ubyte.gz": {
            "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": {"440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"},
        "train-labels-idx1-ubyte.gz": {"3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"},
        "t10k-images-idx3-ubyte.gz": {"8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"},
        "t10k-labels-idx1-ubyte.gz": {"f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"},
    },
}

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

DATASETS = ("mnist1d", "fashion-mnist", "mnist", "cifar10", "xor", "spirals")


class DataError(RuntimeError):
    """A data file is missing, corrupted or malformed.

    Example:
        >>> import pathlib
        >>> import tempfile
        >>> from funcnn import data
        >>> with tempfile.TemporaryDirectory() as d:
        ...     try:
        ...         data.read_idx(pathlib.Path(d) / "absent-idx1-ubyte")
        ...     except data.DataError as e:
        ...         print(type(e).__name__, "/ a RuntimeError:", isinstance(e, RuntimeError))
        DataError / a RuntimeError: True
    """


class Dataset(NamedTuple):
    """Train and test arrays: float32 features (n, *feature_shape), int32 labels (n,).

    Example:
        >>> from funcnn import data
        >>> d = data.load("xor", n=8)  # a synthetic set: no files needed
        >>> d.x_train.shape, d.x_train.dtype, d.y_test.shape, d.y_test.dtype, d.n_classes
        ((8, 2), dtype('float32'), (8,), dtype('int32'), 2)
        >>> x_train, y_train, x_test, y_test, n_classes = d  # a NamedTuple unpacks too
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


def verify(path: str | os.PathLike, expected: str | Iterable[str], how_to_get: str = "") -> None:
    """Raise `DataError` unless the file exists and its SHA-256 is one of `expected`.

    `expected`: one hex digest or several accepted ones; `how_to_get` is appended to the message.

    Example:
        >>> import hashlib
        >>> import pathlib
        >>> import tempfile
        >>> from funcnn import data
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = pathlib.Path(d) / "labels.bin"
        ...     _ = path.write_bytes(b"abc")
        ...     data.verify(path, hashlib.sha256(b"abc").hexdigest())  # passes: returns None
        ...     data.verify(path, "0" * 64, how_to_get="ask a colleague")
        Traceback (most recent call last):
        ...
        funcnn.data.DataError: data file .../labels.bin has SHA-256 ba7816bf..., expected 000...: the file is
        corrupted or truncated; delete it and get it again. To get it: ask a colleague
    """
    path = Path(path)
    accepted = {expected} if isinstance(expected, str) else set(expected)
    hint = f" To get it: {how_to_get}" if how_to_get else ""
    if not path.is_file():
        raise DataError(f"data file {path} is missing.{hint}")
    digest = sha256(path)
    if digest not in accepted:
        raise DataError(
            f"data file {path} has SHA-256 {digest}, expected {' or '.join(sorted(accepted))}: "
            f"the file is corrupted or truncated; delete it and get it again.{hint}"
        )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a uint8 array, checking the magic number and size.

    IDX: bytes 0, 0, 0x08 (uint8 data), ndim; then each dimension as a big-endian uint32; then the data.

    Example:
        >>> import gzip
        >>> import pathlib
        >>> import struct
        >>> import tempfile
        >>> from funcnn import data
        >>> header = bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 2, 3)  # a 2x3 uint8 array
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = pathlib.Path(d) / "tiny-idx2-ubyte.gz"
        ...     _ = path.write_bytes(gzip.compress(header + bytes(range(6))))
        ...     a = data.read_idx(path)
        >>> a.dtype, a.tolist()
        (dtype('uint8'), [[0, 1, 2], [3, 4, 5]])
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(
            f"IDX file {path} has a wrong magic number {data[:4].hex()!r}: expected 0x0000080N (uint8 data)"
        )
    ndim = data[3]
    if ndim < 1 or len(data) < 4 + 4 * ndim:
        raise DataError(f"IDX file {path} has a bad header (ndim={ndim}, {len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    expected = 4 + 4 * ndim + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(f"IDX file {path} holds {len(data)} bytes, expected {expected} for shape {shape}: truncated?")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_idx_set(folder: Path, digests: Mapping[str, Iterable[str]], how_to_get: str) -> Dataset:
    arrays = {}
    for key, name in IDX_FILES.items():
        path = folder / name
        verify(path, digests[name], how_to_get)
        arrays[key] = read_idx(path)
    # Images as (n, 28, 28, 1) in [0, 1]: channels-last, ready for Conv2D or Flatten.
    img = lambda a: (a.astype(np.float32) / 255.0)[..., None]
    return Dataset(
        img(arrays["train_images"]),
        arrays["train_labels"].astype(np.int32),
        img(arrays["test_images"]),
        arrays["test_labels"].astype(np.int32),
        10,
    )


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


def xor(key: jax.Array, n: int = 200, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """XOR: points near the corners of [0,1]^2, label = x0 XOR x1; x (n, 2) float32, y (n,) int32.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn import data
        >>> x, y = data.xor(jax.random.key(0), n=8, noise=0.0)  # noise 0: exactly the corners
        >>> x.shape, sorted(np.unique(x).tolist())
        ((8, 2), [0.0, 1.0])
        >>> bool(np.all(y == (x[:, 0] != x[:, 1])))  # the label is x0 XOR x1
        True
    """
    k1, k2 = jax.random.split(key)
    corners = jax.random.bernoulli(k1, 0.5, (n, 2)).astype(np.float32)
    x = corners + noise * jax.random.normal(k2, (n, 2))
    y = (corners[:, 0] != corners[:, 1]).astype(np.int32)
    return np.asarray(x, np.float32), np.asarray(y, np.int32)


def two_spirals(key: jax.Array, n: int = 400, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals, n points in all; x (n, 2) float32, y (n,) int32 in {0, 1}.

    Labels alternate (0, 1, 0, ...), so the two spirals get n/2 points each; the second is the first
    rotated by 180 degrees.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn import data
        >>> x, y = data.two_spirals(jax.random.key(0), n=10)
        >>> x.shape, x.dtype, np.bincount(y).tolist()
        ((10, 2), dtype('float32'), [5, 5])
    """
    k1, k2 = jax.random.split(key)
    t = np.asarray(jax.random.uniform(k1, (n,)), np.float32) * 2 * np.pi + 0.5
    y = np.arange(n) % 2
    sign = np.where(y == 0, 1.0, -1.0)
    x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], axis=1) / (2 * np.pi)
    x = x + noise * np.asarray(jax.random.normal(k2, (n, 2)))
    return x.astype(np.float32), y.astype(np.int32)


def _synthetic(name: str, key: jax.Array, n: int) -> Dataset:
    make = xor if name == "xor" else two_spirals
    k_train, k_test = jax.random.split(key)
    x, y = make(k_train, n)
    xt, yt = make(k_test, n)
    return Dataset(x, y, xt, yt, 2)


def load(
    name: str = "mnist1d",
    *,
    data_dir: str | os.PathLike | None = None,
    key: jax.Array | None = None,
    n: int = 400,
) -> Dataset:
    """Load a data set by name: 'mnist1d' (default), 'fashion-mnist', 'mnist', 'cifar10', 'xor' or 'spirals'.

    MNIST-1D: x (4000, 40) / (1000, 40), generated once and cached (see `mnist1d`). (Fashion-)MNIST:
    x (60000, 28, 28, 1) / (10000, 28, 28, 1) in [0, 1]. 'mnist' and 'cifar10' (x (50000, 32, 32, 3) /
    (10000, 32, 32, 3), from its binary release: `funcnn.cifar10`) are read from `data_dir` or
    $FUNCNN_DATA. The synthetic sets draw n points for each split from `key` (default key 0).

    Example:
        >>> import jax
        >>> from funcnn import data
        >>> d = data.load("spirals", key=jax.random.key(0), n=20)
        >>> d.x_train.shape, d.x_test.shape, d.n_classes
        ((20, 2), (20, 2), 2)
    """
    if name == "mnist1d":
        return mnist1d()
    if name == "fashion-mnist":
        folder = Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR
        return _load_idx_set(folder, SHA256["fashion-mnist"], FASHION_MNIST_INSTALL)
    if name == "mnist":
        mnist_dir = data_dir if data_dir is not None else os.environ.get("FUNCNN_DATA")
        if mnist_dir is None:
            raise DataError(
                "dataset 'mnist' needs its IDX files in a folder: set FUNCNN_DATA or pass data_dir=; "
                "to fetch them (online): python -c \"import funcnn.data as d; d.download('DIR')\""
            )
        how = f"python -c \"import funcnn.data as d; d.download('{mnist_dir}')\""
        return _load_idx_set(Path(mnist_dir), SHA256["mnist"], how)
    if name == "cifar10":
        from funcnn import cifar10

        return cifar10.load(data_dir)
    if name in ("xor", "spirals"):
        return _synthetic(name, jax.random.key(0) if key is None else key, n)
    raise ValueError(f"unknown dataset name={name!r}; expected one of {DATASETS}")


def train_val_split(
    x: np.ndarray, y: np.ndarray, n_val: int, key: jax.Array
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Hold out `n_val` examples drawn by `key`: returns ((x_train, y_train), (x_val, y_val)).

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn import data
        >>> x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
        >>> (x_tr, y_tr), (x_val, y_val) = data.train_val_split(x, y, 3, jax.random.key(0))
        >>> x_tr.shape, x_val.shape
        ((7, 2), (3, 2))
        >>> sorted(y_tr.tolist() + y_val.tolist()) == list(range(10))  # a partition of the examples
        True
        >>> bool(np.all(x_val[:, 0] == 2 * y_val))  # rows stay paired with their labels
        True
    """
    n = len(x)
    if len(y) != n:
        raise ValueError(f"x and y must have the same length, got {n} and {len(y)}")
    if not 0 < n_val < n:
        raise ValueError(f"n_val must be in (0, {n}), got n_val={n_val!r}")
    perm = np.asarray(jax.random.permutation(key, n))
    val, train = perm[:n_val], perm[n_val:]
    return (x[train], y[train]), (x[val], y[val])


def download(
    folder: str | os.PathLike,
    *,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    digests: Mapping[str, Iterable[str]] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch the four MNIST IDX files into `folder` (online use only), verifying each by SHA-256.

    Tries each mirror in turn; a partial `.part` file is resumed with an HTTP Range request. A file
    already present with the right digest is kept. Returns the folder. `digests`: file name ->
    accepted SHA-256s (default: the pinned MNIST digests).

    Example (offline: the files are already there, so nothing is fetched; stand-ins for MNIST here):
        >>> import hashlib
        >>> import pathlib
        >>> import tempfile
        >>> from funcnn import data
        >>> with tempfile.TemporaryDirectory() as d:
        ...     digests = {}
        ...     for name in data.IDX_FILES.values():
        ...         _ = (pathlib.Path(d) / name).write_bytes(name.encode())
        ...         digests[name] = {hashlib.sha256(name.encode()).hexdigest()}
        ...     folder = data.download(d, mirrors=["https://example.invalid/"], digests=digests)
        ...     sorted(p.name for p in folder.iterdir())
        ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz',
         'train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digests = SHA256["mnist"] if digests is None else digests
    for name in IDX_FILES.values():
        target = folder / name
        if target.is_file() and sha256(target) in digests[name]:
            continue
        errors = []
        for mirror in mirrors:
            part = target.with_name(target.name + ".part")
            try:
                _fetch_resumable(mirror.rstrip("/") + "/" + name, part, timeout)
                digest = sha256(part)
                if digest not in digests[name]:
                    part.unlink()
                    raise DataError(f"SHA-256 {digest} does not match the pinned digest")
                os.replace(part, target)
                break
            except (OSError, urllib.error.URLError, DataError) as e:
                errors.append(f"{mirror}: {e}")
        else:
            raise DataError(f"could not download {name} from any mirror:\n  " + "\n  ".join(errors))
    return folder


def _fetch_resumable(url: str, part: Path, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        # 206: the server resumed; 200: it sent the whole file, so start over.
        mode = "ab" if have and response.status == 206 else "wb"
        with open(part, mode) as f:
            shutil.copyfileobj(response, f)
