"""Fetching MNIST (online use only, and only when called): mirrors, resumed downloads, verified files."""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from funcnn.data.checksums import sha256
from funcnn.data.dataset import DataError
from funcnn.data.idx import IDX_FILES, SHA256

__all__ = ["download"]

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


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
