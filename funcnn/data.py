"""Data sets, offline and verified: MNIST-1D (generated), Fashion-MNIST (Debian), MNIST (a folder).

Nothing downloads implicitly: `download` is the only function that touches the network, and only when
called. Every IDX file is checked against a pinned SHA-256 before it is read.
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple, Sequence

import jax
import numpy as np

from funcnn.io import sha256_file as sha256

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

DATASETS = ("mnist1d", "fashion-mnist", "mnist", "xor", "spirals")


class DataError(RuntimeError):
    """A data file is missing, corrupted or malformed."""


class Dataset(NamedTuple):
    """Train and test arrays: float32 features (n, *feature_shape), int32 labels (n,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


def verify(path: str | os.PathLike, expected: str | Sequence[str], how_to_get: str = "") -> None:
    """Raise `DataError` unless the file exists and its SHA-256 is one of `expected`."""
    path = Path(path)
    expected = {expected} if isinstance(expected, str) else set(expected)
    hint = f" To get it: {how_to_get}" if how_to_get else ""
    if not path.is_file():
        raise DataError(f"data file {path} is missing.{hint}")
    digest = sha256(path)
    if digest not in expected:
        raise DataError(
            f"data file {path} has SHA-256 {digest}, expected {' or '.join(sorted(expected))}: "
            f"the file is corrupted or truncated; delete it and get it again.{hint}"
        )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a uint8 array, checking the magic number and size."""
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
        raise DataError(
            f"IDX file {path} holds {len(data)} bytes, expected {expected} for shape {shape}: truncated?"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_idx_set(folder: Path, digests: dict, how_to_get: str) -> Dataset:
    arrays = {}
    for key, name in IDX_FILES.items():
        path = folder / name
        verify(path, digests[name], how_to_get)
        arrays[key] = read_idx(path)
    # Images as (n, 28, 28, 1) in [0, 1]: channels-last, ready for Conv2D or Flatten.
    img = lambda a: (a.astype(np.float32) / 255.0)[..., None]
    return Dataset(
        img(arrays["train_images"]), arrays["train_labels"].astype(np.int32),
        img(arrays["test_images"]), arrays["test_labels"].astype(np.int32), 10,
    )


def _mnist1d() -> Dataset:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise DataError("dataset 'mnist1d' needs the mnist1d package: pip install mnist1d") from None
    # make_dataset generates offline; get_dataset would try to download a pickle first.
    d = make_dataset(get_dataset_args())
    return Dataset(
        np.asarray(d["x"], np.float32), np.asarray(d["y"], np.int32),
        np.asarray(d["x_test"], np.float32), np.asarray(d["y_test"], np.int32), 10,
    )


def xor(key: jax.Array, n: int = 200, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """XOR: points near the corners of [0,1]^2, label = x0 XOR x1; x (n, 2) float32, y (n,) int32."""
    k1, k2 = jax.random.split(key)
    corners = jax.random.bernoulli(k1, 0.5, (n, 2)).astype(np.float32)
    x = corners + noise * jax.random.normal(k2, (n, 2))
    y = (corners[:, 0] != corners[:, 1]).astype(np.int32)
    return np.asarray(x, np.float32), np.asarray(y, np.int32)


def two_spirals(key: jax.Array, n: int = 400, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals, n points in all; x (n, 2) float32, y (n,) int32 in {0, 1}."""
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
    """Load a data set by name: 'mnist1d' (default), 'fashion-mnist', 'mnist', 'xor' or 'spirals'.

    MNIST-1D: x (4000, 40) / (1000, 40). (Fashion-)MNIST: x (60000, 28, 28, 1) / (10000, 28, 28, 1)
    in [0, 1]. 'mnist' is read from `data_dir` or $FUNCNN_DATA. The synthetic sets draw n points
    for each split from `key` (default key 0).
    """
    if name == "mnist1d":
        return _mnist1d()
    if name == "fashion-mnist":
        folder = Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR
        return _load_idx_set(folder, SHA256["fashion-mnist"], FASHION_MNIST_INSTALL)
    if name == "mnist":
        folder = data_dir if data_dir is not None else os.environ.get("FUNCNN_DATA")
        if folder is None:
            raise DataError(
                "dataset 'mnist' needs its IDX files in a folder: set FUNCNN_DATA or pass data_dir=; "
                "to fetch them (online): python -c \"import funcnn.data as d; d.download('DIR')\""
            )
        how = f"python -c \"import funcnn.data as d; d.download('{folder}')\""
        return _load_idx_set(Path(folder), SHA256["mnist"], how)
    if name in ("xor", "spirals"):
        return _synthetic(name, jax.random.key(0) if key is None else key, n)
    raise ValueError(f"unknown dataset name={name!r}; expected one of {DATASETS}")


def train_val_split(
    x: np.ndarray, y: np.ndarray, n_val: int, key: jax.Array
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Hold out `n_val` examples drawn by `key`: returns ((x_train, y_train), (x_val, y_val))."""
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
    digests: dict | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch the four MNIST IDX files into `folder` (online use only), verifying each by SHA-256.

    Tries each mirror in turn; a partial `.part` file is resumed with an HTTP Range request. A file
    already present with the right digest is kept. Returns the folder.
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
