"""Deprecated: CIFAR-10 is `funcnn.data.cifar10` (importing this module warns; it goes in funcnn 0.4).

Kept at this path, where it was first, for the scripts that import `funcnn.cifar10`; the code (and its
documentation) lives in `funcnn.data.cifar10`, beside the other data sets, and every name here is the
same object as there.
"""

from funcnn import _deprecation
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

_deprecation.warn("funcnn.cifar10", "funcnn.data.cifar10")
