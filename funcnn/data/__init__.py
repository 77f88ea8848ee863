"""Data sets, offline and verified: MNIST-1D (generated), Fashion-MNIST (Debian), MNIST and CIFAR-10 (a
folder), and two-class toys.

Nothing downloads implicitly: `download` (and `cifar10.download`) are the only functions that touch the
network, and only when called. Every data file is checked against a pinned SHA-256 before it is read.

    registry.py       DATASETS, load(name): every data set by name
    dataset.py        Dataset (what every loader returns), DataError
    checksums.py      verify, sha256: pinned SHA-256 checks
    idx.py            read_idx, the MNIST / Fashion-MNIST files and digests
    fetch.py          download (MNIST, online only), resumed and verified
    mnist1d_cache.py  mnist1d (generated offline), cache_dir
    toys.py           xor, two_spirals
    splits.py         train_val_split
    cifar10.py        CIFAR-10 from its binary release, and its augmentation
"""

# `X as X`: the old single-file funcnn.data's other module-level names, which scripts and tests reach.
from funcnn.data.checksums import sha256 as sha256
from funcnn.data.checksums import verify
from funcnn.data.dataset import DataError, Dataset
from funcnn.data.fetch import MNIST_MIRRORS as MNIST_MIRRORS
from funcnn.data.fetch import _fetch_resumable as _fetch_resumable
from funcnn.data.fetch import download
from funcnn.data.idx import FASHION_MNIST_DIR, read_idx
from funcnn.data.idx import FASHION_MNIST_INSTALL as FASHION_MNIST_INSTALL
from funcnn.data.idx import IDX_FILES as IDX_FILES
from funcnn.data.idx import SHA256 as SHA256
from funcnn.data.idx import _load_idx_set as _load_idx_set
from funcnn.data.mnist1d_cache import _MNIST1D_MEMO as _MNIST1D_MEMO
from funcnn.data.mnist1d_cache import MNIST1D_FIELDS as MNIST1D_FIELDS
from funcnn.data.mnist1d_cache import _read_cached as _read_cached
from funcnn.data.mnist1d_cache import _version as _version
from funcnn.data.mnist1d_cache import _write_cached as _write_cached
from funcnn.data.mnist1d_cache import cache_dir, mnist1d
from funcnn.data.registry import DATASETS, load
from funcnn.data.splits import train_val_split
from funcnn.data.toys import _synthetic as _synthetic
from funcnn.data.toys import two_spirals, xor

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
