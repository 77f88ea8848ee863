"""CIFAR-10 from its binary release, and the standard crop-and-flip augmentation: `funcnn.data.cifar10`.

Kept at this path, where it was first, for the scripts that import `funcnn.cifar10`; the code (and its
documentation) lives in `funcnn.data.cifar10`, beside the other data sets.
"""

from funcnn.data.cifar10 import (
    ARCHIVE,
    FOLDER,
    RECORD_BYTES,
    SHA256,
    TEST_FILES,
    TRAIN_FILES,
    augment,
    download,
    load,
    read,
)
from funcnn.data.cifar10 import URL as URL
from funcnn.data.cifar10 import _decode as _decode
from funcnn.data.cifar10 import _how_to_get as _how_to_get
from funcnn.data.cifar10 import _read_archive as _read_archive

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
