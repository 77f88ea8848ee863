"""What every loader returns: `Dataset` (train and test arrays), and `DataError` for a bad data file."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["DataError", "Dataset"]


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
