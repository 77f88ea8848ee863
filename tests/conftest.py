import http.server
import os
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

# XLA's persistent compilation cache, fresh for each test run: many tests compile the same programs
# (a small study's round program, a ResNet step), which are then loaded instead. Set before jax is
# imported; pytest-xdist's workers and the subprocesses tests start inherit it through the environment.
# Every program is cached, however quick to compile: most compiles are small ones repeated in every
# test and process (a conv net's init compiles one jax.random.normal per kernel shape, ~0.1-0.4 s
# each; measured, a ResNet-8's init in a second process: 10.9 s CPU -> 0.7 s with min 0, 2.7 s with
# min 0.3), and writing them costs nothing measurable. The process that made the folder removes it.
os.environ.setdefault("FUNCNN_TEST_XLA_CACHE_OWNER", str(os.getpid()))
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.environ.get("JAX_COMPILATION_CACHE_DIR") or tempfile.mkdtemp(prefix="funcnn-test-xla-cache-"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

# XLA's flags (fast-compile, or XLA's defaults for the `optimized` tests) are set by the root conftest.py,
# which pytest loads first, for the docstring examples too.

import gc

import jax  # after the cache settings above
import numpy as np
import pytest

# Tracing and lowering make many short-lived Python objects: with the default thresholds the collector
# ran 2,357 times in tests/test_lottery_strategies.py (3.5 s of its 46 s), with these 21 times (1.7 s).
gc.set_threshold(50_000, 20, 100)

# Catch accidental broadcasting between mismatched ranks (equinox's habit).
jax.config.update("jax_numpy_rank_promotion", "raise")

IN_CI = os.environ.get("CI", "").lower() == "true"

# Generated data sets (MNIST-1D) are cached on disk; keep the tests' cache out of the user's home.
os.environ.setdefault("FUNCNN_CACHE", os.environ.get("FUNCNN_CACHE") or tempfile.mkdtemp(prefix="funcnn-test-cache-"))


def pytest_sessionfinish(session, exitstatus):
    # Only the process that made the cache folders removes them (the xdist controller, which finishes
    # after its workers, or a plain pytest run; never a folder given in the environment): /tmp does
    # not fill up run after run.
    if os.environ["FUNCNN_TEST_XLA_CACHE_OWNER"] != str(os.getpid()):
        return
    made = (("JAX_COMPILATION_CACHE_DIR", "funcnn-test-xla-cache-"), ("FUNCNN_CACHE", "funcnn-test-cache-"))
    for name, prefix in made:
        folder = Path(os.environ[name])
        if folder.name.startswith(prefix):
            shutil.rmtree(folder, ignore_errors=True)


# Module-scoped fixtures that train or compile for many seconds. pytest-xdist builds a module fixture
# once in every worker that runs one of its tests; `make test` runs with `--dist loadgroup`, and the
# tests using one of these go to one worker as a group, so it is built once.
SHARED_FIXTURES = {
    "single",
    "split",
    "uninterrupted",
    "resnet20_params",
    "lenet",
    "help_texts",
    "runs",
    "population",
    "cli_errors",
}


def pytest_ignore_collect(collection_path, config):
    # `-m optimized` (make test's second invocation) selects 10 tests in 6 files: a test file that never
    # says "optimized" cannot hold one, and is not imported (each xdist worker collected every file, ~7 s,
    # some of them making data at import).
    if config.option.markexpr != "optimized" or collection_path.suffix != ".py":
        return None
    if collection_path.name.startswith("test_") and "optimized" not in collection_path.read_text():
        return True
    return None


# tryfirst: xdist's worker reads the xdist_group marks in its own modifyitems hook, which otherwise runs
# before this one (this conftest is registered first, and hooks run last-registered first): no group formed.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    for item in items:
        # `make test-fast` (-m "not slow") runs in one invocation, with the fast-compile flags only
        if item.get_closest_marker("optimized") and not item.get_closest_marker("slow"):
            raise pytest.UsageError(f"{item.nodeid}: a test marked optimized must be marked slow too")
        # `-m optimized` collects only files whose text says "optimized" (pytest_ignore_collect): a mark put
        # on from elsewhere would leave its test in neither invocation of `make test`.
        if item.get_closest_marker("optimized") and "optimized" not in item.path.read_text():
            raise pytest.UsageError(f"{item.nodeid}: marked optimized from outside its file; mark it in the file")
        shared = sorted(SHARED_FIXTURES & set(getattr(item, "fixturenames", ())))
        if shared:
            item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}:{shared[0]}"))
    # The slow tests first (a stable sort: file order within each kind): a long test that starts last
    # leaves the other worker idle at the end; started first, the short ones fill in beside it.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def getkey():
    """Fresh PRNG keys, deterministic per test."""
    state = {"key": jax.random.key(0)}

    def _getkey():
        state["key"], sub = jax.random.split(state["key"])
        return sub

    return _getkey


# A 3-class problem from a linear teacher, 96 training points (6 batches of 16) and 64 test points, and
# nets for it: shared by tests/test_stability.py and tests/test_interpolation.py.
TEACHER_N, TEACHER_BATCH = 96, 16


@pytest.fixture(scope="module")
def teacher_data():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(10, 3))
    x = rng.normal(size=(TEACHER_N + 64, 10)).astype(np.float32)
    y = np.argmax(x @ teacher + 0.5 * rng.normal(size=(TEACHER_N + 64, 3)), axis=1).astype(np.int32)
    return (x[:TEACHER_N], y[:TEACHER_N]), (x[TEACHER_N:], y[TEACHER_N:])


@pytest.fixture(scope="module")
def teacher_mlp():
    """A 10-16-3 ReLU MLP and its params."""
    from funcnn import models

    net = models.mlp((16,), n_classes=3)
    return net, net.init(jax.random.key(1), (10,))


def bn_mlp():
    """10-8-6-3 with a BatchNorm (momentum 0.3, then the default) after each hidden Dense layer."""
    from funcnn import nn

    return nn.serial(
        nn.Dense(8), nn.BatchNorm(momentum=0.3), nn.Relu(), nn.Dense(6), nn.BatchNorm(), nn.Relu(), nn.Dense(3)
    )


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
