"""Every data set by name: `DATASETS` and `load(name)`, which dispatches to the module that makes each."""

from __future__ import annotations

import os
from pathlib import Path

import jax

from funcnn.data import cifar10
from funcnn.data.dataset import DataError, Dataset
from funcnn.data.idx import FASHION_MNIST_DIR, FASHION_MNIST_INSTALL, SHA256, _load_idx_set
from funcnn.data.mnist1d_cache import mnist1d
from funcnn.data.toys import _synthetic

__all__ = ["DATASETS", "load"]

DATASETS = ("mnist1d", "fashion-mnist", "mnist", "cifar10", "xor", "spirals")


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
    (10000, 32, 32, 3), from its binary release: `funcnn.data.cifar10`) are read from `data_dir` or
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
        return cifar10.load(data_dir)
    if name in ("xor", "spirals"):
        return _synthetic(name, jax.random.key(0) if key is None else key, n)
    raise ValueError(f"unknown dataset name={name!r}; expected one of {DATASETS}")
