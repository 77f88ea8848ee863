import gzip
import http.server
import shutil
import struct
import threading
from functools import partial
from pathlib import Path

import jax
import numpy as np
import pytest

from funcnn import data
from tests.conftest import RangeHandler, require_fashion_mnist


@pytest.fixture(autouse=True)
def mnist1d_cache(tmp_path, monkeypatch):
    """A fresh, empty mnist1d cache (in memory and on disk) for each test; never the user's home."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("FUNCNN_CACHE", str(folder))
    monkeypatch.setattr(data.mnist1d_cache, "_MNIST1D_MEMO", {})
    return folder / "mnist1d"


def write_idx(path: Path, arr: np.ndarray, magic_type=0x08, compress=True):
    header = bytes([0, 0, magic_type, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + arr.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def test_idx_reader_roundtrip_and_rejections(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a.gz"), arr)
    write_idx(tmp_path / "a.idx", arr, compress=False)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a.idx"), arr)
    write_idx(tmp_path / "bad_magic.idx", arr, magic_type=0x0D, compress=False)
    with pytest.raises(data.DataError, match="magic number"):
        data.read_idx(tmp_path / "bad_magic.idx")
    raw = (tmp_path / "a.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(raw[:-5])
    with pytest.raises(data.DataError, match="truncated"):
        data.read_idx(tmp_path / "short.idx")


def test_sha256_check_fails_loudly(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"hello")
    good = data.sha256(f)
    data.verify(f, good)
    f.write_bytes(b"hellO")
    with pytest.raises(data.DataError, match="corrupted or truncated"):
        data.verify(f, good, "apt-get install foo")
    f.write_bytes(b"hell")
    with pytest.raises(data.DataError, match="apt-get install foo"):
        data.verify(f, good, "apt-get install foo")
    with pytest.raises(data.DataError, match="missing"):
        data.verify(tmp_path / "nope", good)


def test_corrupted_fashion_copy_is_rejected(tmp_path):
    require_fashion_mnist()
    for name in data.IDX_FILES.values():
        shutil.copy(data.FASHION_MNIST_DIR / name, tmp_path / name)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-10])
    with pytest.raises(data.DataError, match=r"t10k-labels.*corrupted or truncated"):
        data.load("fashion-mnist", data_dir=tmp_path)


def test_fashion_mnist_loads_verified():
    require_fashion_mnist()
    d = data.load("fashion-mnist")
    assert d.x_train.shape == (60000, 28, 28, 1) and d.x_test.shape == (10000, 28, 28, 1)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert np.bincount(d.y_train).tolist() == [6000] * 10


def test_mnist1d_is_deterministic():
    a, b = data.load("mnist1d"), data.load("mnist1d")
    assert a.x_train.shape == (4000, 40) and a.x_test.shape == (1000, 40)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert set(np.unique(a.y_train)) == set(range(10))


def test_split_and_synthetic_sets():
    d = data.load("xor", n=100)
    (xt, _), (xv, _) = data.train_val_split(d.x_train, d.y_train, 20, jax.random.key(0))
    assert len(xt) == 80 and len(xv) == 20
    together = np.concatenate([xt, xv])
    assert sorted(map(tuple, together.tolist())) == sorted(map(tuple, d.x_train.tolist()))
    with pytest.raises(ValueError, match="n_val"):
        data.train_val_split(d.x_train, d.y_train, 100, jax.random.key(0))
    # xor labels are the XOR of the rounded coordinates
    assert np.mean((np.round(d.x_train[:, 0]) != np.round(d.x_train[:, 1])) == d.y_train) > 0.95


def test_unknown_dataset_and_missing_mnist(monkeypatch):
    with pytest.raises(ValueError, match="name='cifar'"):
        data.load("cifar")
    monkeypatch.delenv("FUNCNN_DATA", raising=False)
    with pytest.raises(data.DataError, match="FUNCNN_DATA"):
        data.load("mnist")


def test_download_from_local_server_resumes_and_verifies(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    digests = {}
    rng = np.random.default_rng(0)
    for name in data.IDX_FILES.values():
        arr = rng.integers(0, 255, size=(10, 4, 4) if "images" in name else (10,))
        write_idx(served / name, arr)
        digests[name] = {data.sha256(served / name)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        out = tmp_path / "out"
        out.mkdir()
        # A half-downloaded file is resumed with a Range request.
        first = "train-images-idx3-ubyte.gz"
        (out / (first + ".part")).write_bytes((served / first).read_bytes()[:50])
        RangeHandler.ranges.clear()
        data.download(out, mirrors=["http://127.0.0.1:1/", url], digests=digests, timeout=5)
        assert RangeHandler.ranges == [50]
        for name in data.IDX_FILES.values():
            assert (out / name).read_bytes() == (served / name).read_bytes()
        assert data.read_idx(out / first).shape == (10, 4, 4)
        # A mirror serving wrong bytes is refused.
        bad = {k: {"0" * 64} for k in digests}
        with pytest.raises(data.DataError, match="could not download"):
            data.download(tmp_path / "out2", mirrors=[url], digests=bad, timeout=5)
    finally:
        server.shutdown()


SMALL = dict(num_samples=300)  # 240 train / 60 test examples: generated in a few ms


@pytest.fixture
def generations(monkeypatch):
    """Counts calls of mnist1d's generator."""
    import mnist1d.data

    calls = []
    make = mnist1d.data.make_dataset

    def counting(*args, **kw):
        calls.append(1)
        return make(*args, **kw)

    monkeypatch.setattr(mnist1d.data, "make_dataset", counting)
    return calls


def assert_bit_identical(a: data.Dataset, b: data.Dataset):
    for x, y in zip(a, b, strict=True):
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
        else:
            assert x == y


@pytest.mark.slow
def test_cached_mnist1d_is_bit_identical_to_a_fresh_generation(mnist1d_cache, monkeypatch):
    fresh = data.mnist1d(cache=False)
    first = data.load("mnist1d")
    assert sorted(p.suffix for p in mnist1d_cache.iterdir()) == [".npz", ".sha256"]
    again = data.load("mnist1d")  # from memory
    monkeypatch.setattr(data.mnist1d_cache, "_MNIST1D_MEMO", {})
    import mnist1d.data

    monkeypatch.setattr(mnist1d.data, "make_dataset", lambda *a, **k: pytest.fail("generated again"))
    from_disk = data.load("mnist1d")
    for d in (first, again, from_disk):
        assert_bit_identical(d, fresh)
    assert from_disk.x_train.shape == (4000, 40) and from_disk.x_test.shape == (1000, 40)


def test_second_load_does_not_generate(mnist1d_cache, monkeypatch, generations):
    a = data.mnist1d(**SMALL)
    b = data.mnist1d(**SMALL)
    assert len(generations) == 1
    monkeypatch.setattr(data.mnist1d_cache, "_MNIST1D_MEMO", {})  # a new process: the disk cache serves it
    c = data.mnist1d(**SMALL)
    assert len(generations) == 1
    assert_bit_identical(a, b)
    assert_bit_identical(a, c)


def test_callers_get_copies_that_cannot_poison_the_cache(generations):
    a = data.mnist1d(**SMALL)
    a.x_train[:] = 0
    a.y_test[0] = 99
    b = data.mnist1d(**SMALL)
    assert len(generations) == 1
    assert b.x_train.any() and b.y_test[0] != 99 and b.x_train.flags.writeable


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_digest", "bad_digest"])
def test_damaged_cache_is_detected_and_regenerated(mnist1d_cache, monkeypatch, generations, damage):
    a = data.mnist1d(**SMALL)
    (npz,) = mnist1d_cache.glob("*.npz")
    digest_file = npz.with_suffix(".sha256")
    payload = npz.read_bytes()
    if damage == "truncate":
        npz.write_bytes(payload[: len(payload) // 2])
    elif damage == "flip":  # same size, one byte changed inside an array
        npz.write_bytes(payload[:200] + bytes([payload[200] ^ 0xFF]) + payload[201:])
    elif damage == "no_digest":
        digest_file.unlink()
    else:
        digest_file.write_text("0" * 64 + "\n")
    monkeypatch.setattr(data.mnist1d_cache, "_MNIST1D_MEMO", {})
    b = data.mnist1d(**SMALL)
    assert len(generations) == 2
    assert_bit_identical(a, b)
    # ... and the cache is whole again.
    monkeypatch.setattr(data.mnist1d_cache, "_MNIST1D_MEMO", {})
    assert_bit_identical(a, data.mnist1d(**SMALL))
    assert len(generations) == 2


def test_different_args_do_not_collide(mnist1d_cache, monkeypatch, generations):
    a = data.mnist1d(**SMALL)
    b = data.mnist1d(**SMALL, seed=1)
    c = data.mnist1d(num_samples=400)
    assert len(generations) == 3 and len(list(mnist1d_cache.glob("*.npz"))) == 3
    assert not np.array_equal(a.x_train, b.x_train) and len(c.x_train) == 320
    monkeypatch.setattr(data.mnist1d_cache, "_MNIST1D_MEMO", {})
    assert_bit_identical(data.mnist1d(**SMALL, seed=1), b)
    assert_bit_identical(data.mnist1d(**SMALL), a)
    assert len(generations) == 3
    with pytest.raises(ValueError, match=r"unknown args \['samples'\]"):
        data.mnist1d(samples=10)


def test_unwritable_cache_warns_and_still_returns_the_data(tmp_path, monkeypatch, generations):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("FUNCNN_CACHE", str(blocker))
    with pytest.warns(UserWarning, match="could not cache mnist1d"):
        d = data.mnist1d(**SMALL)
    assert_bit_identical(d, data.mnist1d(**SMALL, cache=False))
