import os
import tempfile

import jax
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
