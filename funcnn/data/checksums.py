"""SHA-256 checks: a data file is read only after its digest matches a pinned one."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from funcnn.data.dataset import DataError
from funcnn.io import sha256_file as sha256

__all__ = ["sha256", "verify"]


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
        funcnn.data.dataset.DataError: data file .../labels.bin has SHA-256 ba7816bf..., expected 000...: the file is
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
