"""CIFAR-10 from its binary release, for users who have it, plus the standard crop-and-flip augmentation.

Reads `cifar-10-binary.tar.gz` (members read in memory, never extracted) or its extracted
`cifar-10-batches-bin` folder; never the Python release, and nothing is ever unpickled. Every file is
checked against a pinned SHA-256 before it is read. Nothing downloads implicitly: `download` is the
only function that touches the network, and only when called.

Binary format: each batch file holds records of 3073 bytes, 1 label byte (0-9) then 3072 pixel bytes,
the 1024 red, then 1024 green, then 1024 blue values of a 32x32 image, each plane row-major.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.data.checksums import sha256, verify
from funcnn.data.dataset import DataError, Dataset
from funcnn.data.fetch import _fetch_resumable

__all__ = [
    "ARCHIVE",
    "FOLDER",
    "RECORD_BYTES",
    "SHA256",
    "TEST_FILES",
    "TRAIN_FILES",
    "augment",
    "download",
    "load",
    "read",
]

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
RECORD_BYTES = 1 + 3 * 32 * 32

# The archive: size 170052171 bytes, SHA-256 from tensorflow/datasets,
# tensorflow_datasets/url_checksums/cifar10.txt (the same digest is pinned by ankane/torchvision-ruby,
# lib/torchvision/datasets/cifar10.rb); the authors publish MD5 c32a1d4ab5d03f1284b67883e8d87530.
# The extracted files: SHA-256 from ankane/torchvision-ruby, lib/torchvision/datasets/cifar10.rb.
SHA256: dict[str, frozenset[str]] = {
    ARCHIVE: frozenset({"c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"}),
    "data_batch_1.bin": frozenset({"cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5"}),
    "data_batch_2.bin": frozenset({"a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed"}),
    "data_batch_3.bin": frozenset({"bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67"}),
    "data_batch_4.bin": frozenset({"014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48"}),
    "data_batch_5.bin": frozenset({"755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add"}),
    "test_batch.bin": frozenset({"8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b"}),
}


def _how_to_get(folder: str | os.PathLike = "DIR") -> str:
    return (
        f"python -c \"import funcnn.data.cifar10 as c; c.download('{folder}')\" (online), "
        f"then pass data_dir= or set FUNCNN_DATA to that folder"
    )


def _decode(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Records of one batch file -> uint8 images (n, 32, 32, 3) NHWC and uint8 labels (n,)."""
    if len(raw) == 0 or len(raw) % RECORD_BYTES:
        raise DataError(
            f"CIFAR-10 file {name} holds {len(raw)} bytes, expected a positive multiple of "
            f"{RECORD_BYTES} (1 label byte + 3072 pixel bytes per record): truncated?"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DataError(
            f"CIFAR-10 file {name} has label {labels[bad[0]]} in record {bad[0]}, expected labels in 0..9: corrupted?"
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planes (c, i, j) -> (i, j, c)
    return images, labels


def _read_archive(path: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """The bytes of `cifar-10-batches-bin/<name>` for each name, read from the tar.gz without extracting."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if PurePosixPath(member.name).is_absolute() or ".." in parts:
                    raise DataError(
                        f"archive {path} holds member {member.name!r}, an absolute path or one "
                        f"with '..': refusing to read it"
                    )
                if len(parts) != 2 or parts[0] != FOLDER or parts[1] not in names:
                    continue
                f = tar.extractfile(member) if member.isfile() else None
                if f is None:
                    raise DataError(f"archive {path}: member {member.name!r} is not a regular file")
                found[parts[1]] = f.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read archive {path}: {e}; corrupted or truncated?") from None
    missing = [f"{FOLDER}/{n}" for n in names if n not in found]
    if missing:
        raise DataError(f"archive {path} lacks {missing}: expected the CIFAR-10 binary release")
    return found


def read(path: str | os.PathLike, *, digests: Mapping[str, set[str] | frozenset[str]] = SHA256) -> Dataset:
    """Read CIFAR-10 from `cifar-10-binary.tar.gz` or from an extracted `cifar-10-batches-bin` folder.

    `path` is the .tar.gz file, the `cifar-10-batches-bin` folder, or a folder holding that folder.
    Each file is checked against `digests` (file name -> accepted SHA-256s; default: the official
    release) before it is read. Returns x_train (50000, 32, 32, 3) and x_test (10000, 32, 32, 3) float32
    in [0, 1] (NHWC), y_train (50000,) and y_test (10000,) int32 in 0..9, n_classes 10.

    Example:
        >>> import hashlib
        >>> import pathlib
        >>> import tempfile
        >>> from funcnn.data import cifar10
        >>> # a stand-in release, 2 records per file: label 3, then the red, green, blue planes
        >>> record = bytes([3]) + bytes([10]) * 1024 + bytes([20]) * 1024 + bytes([30]) * 1024
        >>> with tempfile.TemporaryDirectory() as d:
        ...     folder = pathlib.Path(d) / cifar10.FOLDER
        ...     folder.mkdir()
        ...     digests = {}
        ...     for name in cifar10.TRAIN_FILES + cifar10.TEST_FILES:
        ...         _ = (folder / name).write_bytes(record * 2)
        ...         digests[name] = {hashlib.sha256(record * 2).hexdigest()}
        ...     ds = cifar10.read(d, digests=digests)
        >>> ds.x_train.shape, ds.x_test.shape, ds.y_train.tolist()[:3]
        ((10, 32, 32, 3), (2, 32, 32, 3), [3, 3, 3])
        >>> (ds.x_train[0, 0, 0] * 255).round().tolist()  # one pixel: the planes become channels
        [10.0, 20.0, 30.0]
    """
    path = Path(path)
    names = TRAIN_FILES + TEST_FILES
    if path.is_dir():
        folder = path / FOLDER if (path / FOLDER).is_dir() else path
        raw = {}
        for name in names:
            verify(folder / name, digests[name], _how_to_get(path))
            raw[name] = (folder / name).read_bytes()
    else:
        verify(path, digests[ARCHIVE], _how_to_get(path.parent))
        raw = _read_archive(path, names)
    decoded = {name: _decode(raw.pop(name), name) for name in names}

    def split(files: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([decoded[f][0] for f in files]).astype(np.float32)
        x /= 255.0
        return x, np.concatenate([decoded[f][1] for f in files]).astype(np.int32)

    x_train, y_train = split(TRAIN_FILES)
    x_test, y_test = split(TEST_FILES)
    return Dataset(x_train, y_train, x_test, y_test, 10)


def load(
    data_dir: str | os.PathLike | None = None, *, digests: Mapping[str, set[str] | frozenset[str]] = SHA256
) -> Dataset:
    """CIFAR-10 from `data_dir`, else $FUNCNN_DATA: its `cifar-10-binary.tar.gz` or `cifar-10-batches-bin`.

    Shapes and dtypes as in `read`. Raises `DataError`, saying how to get the data, when neither is there.

    Example:
        >>> import hashlib
        >>> import pathlib
        >>> import tempfile
        >>> from funcnn.data import cifar10
        >>> from funcnn.data import DataError
        >>> # a stand-in release, 2 records per file: label 3, then the red, green, blue planes
        >>> record = bytes([3]) + bytes([10]) * 1024 + bytes([20]) * 1024 + bytes([30]) * 1024
        >>> with tempfile.TemporaryDirectory() as d:
        ...     folder = pathlib.Path(d) / cifar10.FOLDER
        ...     folder.mkdir()
        ...     digests = {}
        ...     for name in cifar10.TRAIN_FILES + cifar10.TEST_FILES:
        ...         _ = (folder / name).write_bytes(record * 2)
        ...         digests[name] = {hashlib.sha256(record * 2).hexdigest()}
        ...     ds = cifar10.load(d, digests=digests)  # finds cifar-10-batches-bin in d
        ...     try:
        ...         cifar10.load(pathlib.Path(d) / "nothing-here")
        ...     except DataError as e:
        ...         print(str(e).split(". ")[0])  # then: how to get the data
        dataset 'cifar10': no cifar-10-binary.tar.gz or cifar-10-batches-bin in data_dir='.../nothing-here'
        >>> ds.x_train.shape, ds.y_test.tolist()
        ((10, 32, 32, 3), [3, 3])
    """
    folder = data_dir if data_dir is not None else os.environ.get("FUNCNN_DATA")
    if folder is None:
        raise DataError(
            f"dataset 'cifar10' needs {ARCHIVE} (or its extracted {FOLDER}) in a folder: "
            f"set FUNCNN_DATA or pass data_dir=. To get it: {_how_to_get()}"
        )
    folder = Path(folder)
    for candidate in (folder / ARCHIVE, folder / FOLDER):
        if candidate.exists():
            return read(candidate, digests=digests)
    if folder.name == FOLDER and folder.is_dir():
        return read(folder, digests=digests)
    raise DataError(
        f"dataset 'cifar10': no {ARCHIVE} or {FOLDER} in data_dir={str(folder)!r}. To get it: {_how_to_get(folder)}"
    )


def download(
    folder: str | os.PathLike,
    *,
    url: str = URL,
    digests: Mapping[str, set[str] | frozenset[str]] = SHA256,
    timeout: float = 60.0,
) -> Path:
    """Fetch `cifar-10-binary.tar.gz` (about 170 MB) into `folder` (online use only); returns the folder.

    A partial `.part` file is resumed with an HTTP Range request; the result must match the pinned
    SHA-256 (`digests[ARCHIVE]`) or it is deleted and `DataError` is raised. An archive already present
    with the right digest is kept.

    Example (offline: an archive already there with the right digest is kept and nothing is fetched):
        >>> import hashlib
        >>> import pathlib
        >>> import tempfile
        >>> from funcnn.data import cifar10
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = (pathlib.Path(d) / cifar10.ARCHIVE).write_bytes(b"a stand-in archive")
        ...     digests = {cifar10.ARCHIVE: {hashlib.sha256(b"a stand-in archive").hexdigest()}}
        ...     folder = cifar10.download(d, url="https://example.invalid/never-fetched", digests=digests)
        ...     sorted(p.name for p in folder.iterdir())
        ['cifar-10-binary.tar.gz']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / ARCHIVE
    expected = digests[ARCHIVE]
    if target.is_file() and sha256(target) in expected:
        return folder
    part = target.with_name(target.name + ".part")
    if not (part.is_file() and sha256(part) in expected):  # a complete .part needs no request
        try:
            _fetch_resumable(url, part, timeout)
        except OSError as e:  # urllib.error.URLError is an OSError
            raise DataError(f"could not download {url}: {e}; run again to resume") from None
        digest = sha256(part)
        if digest not in expected:
            part.unlink()
            raise DataError(
                f"download of {url} has SHA-256 {digest}, expected "
                f"{' or '.join(sorted(expected))}: deleted it; run again"
            )
    os.replace(part, target)
    return folder


def augment(key: jax.Array, x: jax.Array, *, pad: int = 4, flip: bool = True) -> jax.Array:
    """Random crop after zero padding, then random horizontal flip, for a batch x (B, H, W, C).

    Each image gets its own offset, uniform over the (2*pad+1)^2 crops of the image padded with `pad`
    zeros on each side, and is mirrored left-right (along W) with probability 1/2. Returns an array of
    x's shape and dtype. Pure and keyed: usable under `jax.jit`, `jax.vmap` and `jax.lax.scan`.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.data import cifar10
        >>> x = jnp.tile(jnp.arange(1.0, 4.0).reshape(1, 1, 3, 1), (4, 1, 1, 1))  # 4 images, one row 1 2 3
        >>> y = cifar10.augment(jax.random.key(0), x, pad=0)  # flips only
        >>> y.shape, y[:, 0, :, 0].tolist()  # each row kept or mirrored
        ((4, 1, 3, 1), [[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
        >>> img = jnp.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # one 3x3 image, 1 ... 9
        >>> cifar10.augment(jax.random.key(1), img, pad=1, flip=False)[0, :, :, 0].tolist()  # shifted down-left
        [[0.0, 0.0, 0.0], [2.0, 3.0, 0.0], [5.0, 6.0, 0.0]]
    """
    x = jnp.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"augment expects x of shape (B, H, W, C), got shape {x.shape}")
    if not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad must be a non-negative int, got pad={pad!r}")
    b, h, w, c = x.shape
    k_crop, k_flip = jax.random.split(key)
    if pad:
        offsets = jax.random.randint(k_crop, (b, 2), 0, 2 * pad + 1)
        padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c))
        x = jax.vmap(crop)(padded, offsets)
    if flip:
        mirrored = jax.random.bernoulli(k_flip, 0.5, (b,))
        x = jnp.where(mirrored[:, None, None, None], x[:, :, ::-1], x)
    return x
