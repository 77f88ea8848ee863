"""The IDX format (MNIST, Fashion-MNIST): the reader, the four files of a set and their pinned SHA-256s."""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from funcnn.data.checksums import verify
from funcnn.data.dataset import DataError, Dataset

__all__ = ["FASHION_MNIST_DIR", "read_idx"]

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
    # Images as (n, 28, 28, 1) in [0, 1]: channels-last, ready for Conv2D or Flatten. One float32 array, no
    # temporary: touching fresh memory is slow on some machines (2.5 s a load with the temporary, measured).
    img = lambda a: np.divide(a, np.float32(255.0), dtype=np.float32)[..., None]
    return Dataset(
        img(arrays["train_images"]),
        arrays["train_labels"].astype(np.int32),
        img(arrays["test_images"]),
        arrays["test_labels"].astype(np.int32),
        10,
    )
