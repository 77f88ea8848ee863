import http.server
import os
import tempfile
from pathlib import Path
from typing import ClassVar

# XLA's persistent compilation cache, fresh for each test run: many tests compile the same programs
# (a small study's round program, a ResNet step), which are then loaded instead. Set before jax is
# imported; pytest-xdist's workers and the subprocesses tests start inherit it through the environment.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="funcnn-test-xla-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")

import jax  # after the cache settings above
import pytest

# Catch accidental broadcasting between mismatched ranks (equinox's habit).
jax.config.update("jax_numpy_rank_promotion", "raise")

IN_CI = os.environ.get("CI", "").lower() == "true"

# Generated data sets (MNIST-1D) are cached on disk; keep the tests' cache out of the user's home.
os.environ.setdefault("FUNCNN_CACHE", tempfile.mkdtemp(prefix="funcnn-test-cache-"))


@pytest.fixture
def getkey():
    """Fresh PRNG keys, deterministic per test."""
    state = {"key": jax.random.key(0)}

    def _getkey():
        state["key"], sub = jax.random.split(state["key"])
        return sub

    return _getkey


def require_fashion_mnist():
    """Skip (outside CI) with the install command when Fashion-MNIST is not installed."""
    from funcnn import data

    if not data.FASHION_MNIST_DIR.is_dir():
        if IN_CI:
            pytest.fail(f"Fashion-MNIST must be installed under CI: {data.FASHION_MNIST_INSTALL}")
        pytest.skip(f"Fashion-MNIST not installed: {data.FASHION_MNIST_INSTALL}")


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A local HTTP server's handler with Range support (for the resumable downloads); records the
    start of every range request in `ranges`."""

    ranges: ClassVar[list[int]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            RangeHandler.ranges.append(start)
            self.send_response(206)
            body = body[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
