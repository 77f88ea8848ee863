import http.server
import io
import json
import re
import tarfile
import threading
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcnn import data
from funcnn.data import cifar10
from tests.conftest import RangeHandler

N = 3  # records per synthetic batch file
NAMES = cifar10.TRAIN_FILES + cifar10.TEST_FILES


def make_records(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    recs = rng.integers(0, 256, size=(N, cifar10.RECORD_BYTES), dtype=np.uint8)
    recs[:, 0] = (np.arange(N) + seed) % 10
    return recs.tobytes()


def brute_force(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (i, j, c) of record r is byte 1 + c*1024 + i*32 + j of that record."""
    n = len(raw) // cifar10.RECORD_BYTES
    x = np.zeros((n, 32, 32, 3), np.float32)
    y = np.zeros(n, np.int32)
    for r in range(n):
        rec = raw[r * cifar10.RECORD_BYTES : (r + 1) * cifar10.RECORD_BYTES]
        y[r] = rec[0]
        for c in range(3):
            for i in range(32):
                for j in range(32):
                    x[r, i, j, c] = np.float32(rec[1 + c * 1024 + i * 32 + j]) / np.float32(255)
    return x, y


@pytest.fixture
def files() -> dict[str, bytes]:
    return {name: make_records(k) for k, name in enumerate(NAMES)}


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    folder = root / cifar10.FOLDER
    folder.mkdir(parents=True)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    (folder / "batches.meta.txt").write_text("airplane\nautomobile\n")
    return folder


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def archive_members(files: dict[str, bytes]) -> dict[str, bytes]:
    members = {f"{cifar10.FOLDER}/{name}": raw for name, raw in files.items()}
    members[f"{cifar10.FOLDER}/readme.html"] = b"<html></html>"
    return members


def digests_of(folder: Path | None = None, archive: Path | None = None) -> dict[str, set[str]]:
    d = {name: {data.sha256(folder / name)} for name in NAMES if folder is not None}
    if archive is not None:
        d[cifar10.ARCHIVE] = {data.sha256(archive)}
    return d


def check_dataset(d: data.Dataset, files: dict[str, bytes]) -> None:
    x_train, y_train = brute_force(b"".join(files[n] for n in cifar10.TRAIN_FILES))
    x_test, y_test = brute_force(files["test_batch.bin"])
    assert d.x_train.shape == (5 * N, 32, 32, 3) and d.x_test.shape == (N, 32, 32, 3)
    assert d.x_train.dtype == d.x_test.dtype == np.float32
    assert d.y_train.dtype == d.y_test.dtype == np.int32
    assert d.n_classes == 10
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    np.testing.assert_array_equal(d.x_train, x_train)
    np.testing.assert_array_equal(d.y_train, y_train)
    np.testing.assert_array_equal(d.x_test, x_test)
    np.testing.assert_array_equal(d.y_test, y_test)


def test_reads_extracted_folder_exactly(tmp_path, files):
    folder = write_folder(tmp_path, files)
    digests = digests_of(folder)
    check_dataset(cifar10.read(folder, digests=digests), files)
    check_dataset(cifar10.read(tmp_path, digests=digests), files)  # the folder above it
    check_dataset(cifar10.load(tmp_path, digests=digests), files)
    check_dataset(cifar10.load(folder, digests=digests), files)


def test_reads_tar_gz_exactly(tmp_path, files, monkeypatch):
    archive = write_tar(tmp_path / cifar10.ARCHIVE, archive_members(files))
    digests = digests_of(archive=archive)
    check_dataset(cifar10.read(archive, digests=digests), files)
    monkeypatch.setenv("FUNCNN_DATA", str(tmp_path))
    check_dataset(cifar10.load(digests=digests), files)
    # "./" prefixes are harmless.
    dotted = write_tar(tmp_path / "dotted.tar.gz", {f"./{k}": v for k, v in archive_members(files).items()})
    check_dataset(cifar10.read(dotted, digests=digests_of(archive=dotted)), files)


@pytest.mark.parametrize("source", ["folder", "tar"])
@pytest.mark.parametrize("damage", ["size", "label"])
def test_corrupted_file_names_the_file(tmp_path, files, source, damage):
    raw = bytearray(files["data_batch_3.bin"])
    if damage == "size":
        raw = raw[:-1]
        match = r"data_batch_3\.bin holds 9218 bytes, expected a positive multiple of 3073"
    else:
        raw[2 * cifar10.RECORD_BYTES] = 10
        match = r"data_batch_3\.bin has label 10 in record 2, expected labels in 0\.\.9"
    files = {**files, "data_batch_3.bin": bytes(raw)}
    if source == "folder":
        path = write_folder(tmp_path, files)
        digests = digests_of(path)
    else:
        path = write_tar(tmp_path / cifar10.ARCHIVE, archive_members(files))
        digests = digests_of(archive=path)
    with pytest.raises(data.DataError, match=match):
        cifar10.read(path, digests=digests)


@pytest.mark.parametrize("bad", [f"{cifar10.FOLDER}/../evil.bin", "/abs/data_batch_1.bin", "../x"])
def test_unsafe_tar_member_is_refused(tmp_path, files, bad):
    members = {bad: b"x", **archive_members(files)}
    archive = write_tar(tmp_path / cifar10.ARCHIVE, members)
    with pytest.raises(data.DataError, match=re.escape("absolute path or one with '..'")):
        cifar10.read(archive, digests=digests_of(archive=archive))


def test_missing_data_says_how_to_get_it(tmp_path, files, monkeypatch):
    monkeypatch.delenv("FUNCNN_DATA", raising=False)
    for load in (cifar10.load, lambda: data.load("cifar10")):
        with pytest.raises(data.DataError, match=r"FUNCNN_DATA.*c\.download\('DIR'\)"):
            load()
    with pytest.raises(
        data.DataError,
        match=r"no cifar-10-binary\.tar\.gz or cifar-10-batches-bin in "
        r"data_dir=.*c\.download\(",
    ):
        cifar10.load(tmp_path)
    # A missing batch file in a folder, or member in an archive.
    folder = write_folder(tmp_path / "f", files)
    digests = digests_of(folder)
    (folder / "data_batch_5.bin").unlink()
    with pytest.raises(data.DataError, match=r"data_batch_5\.bin is missing\. To get it: .*download"):
        cifar10.read(folder, digests=digests)
    archive = write_tar(
        tmp_path / "a.tar.gz", {k: v for k, v in archive_members(files).items() if not k.endswith("test_batch.bin")}
    )
    with pytest.raises(data.DataError, match=r"lacks \['cifar-10-batches-bin/test_batch\.bin'\]"):
        cifar10.read(archive, digests=digests_of(archive=archive))


def test_digest_mismatch_is_refused(tmp_path, files):
    archive = write_tar(tmp_path / cifar10.ARCHIVE, archive_members(files))
    pinned = sorted(cifar10.SHA256[cifar10.ARCHIVE])[0]
    with pytest.raises(data.DataError, match=f"has SHA-256 .*expected {pinned}"):
        cifar10.read(archive)  # default: the official digest
    with pytest.raises(data.DataError, match="expected c4a38c50"):  # via data.load, pinned digest
        data.load("cifar10", data_dir=tmp_path)
    folder = write_folder(tmp_path / "f", files)
    with pytest.raises(data.DataError, match=r"data_batch_1\.bin has SHA-256"):
        cifar10.read(folder)
    # A truncated archive is caught by its digest before anything is parsed.
    short = tmp_path / "short.tar.gz"
    short.write_bytes(archive.read_bytes()[:100])
    with pytest.raises(data.DataError, match="corrupted or truncated"):
        cifar10.read(short, digests=digests_of(archive=archive))


def test_download_resumes_and_verifies(tmp_path, files):
    served = tmp_path / "served"
    served.mkdir()
    archive = write_tar(served / cifar10.ARCHIVE, archive_members(files))
    digests = digests_of(archive=archive)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{cifar10.ARCHIVE}"
        out = tmp_path / "out"
        out.mkdir()
        (out / (cifar10.ARCHIVE + ".part")).write_bytes(archive.read_bytes()[:100])
        RangeHandler.ranges.clear()
        assert cifar10.download(out, url=url, digests=digests, timeout=5) == out
        assert RangeHandler.ranges == [100]
        assert (out / cifar10.ARCHIVE).read_bytes() == archive.read_bytes()
        assert not (out / (cifar10.ARCHIVE + ".part")).exists()
        check_dataset(cifar10.load(out, digests=digests), files)
        cifar10.download(out, url="http://127.0.0.1:1/nothing", digests=digests, timeout=5)  # kept
        with pytest.raises(data.DataError, match=r"has SHA-256 .* deleted it"):
            cifar10.download(tmp_path / "out2", url=url, timeout=5)  # the official digest
        assert not (tmp_path / "out2" / (cifar10.ARCHIVE + ".part")).exists()
        with pytest.raises(data.DataError, match="could not download"):
            cifar10.download(tmp_path / "out3", url="http://127.0.0.1:1/x", digests=digests, timeout=5)
    finally:
        server.shutdown()


# --- augmentation ---------------------------------------------------------------------------------


def images(b=8, h=6, w=5, c=2, seed=0) -> np.ndarray:
    """Distinct positive values, so every crop and flip is told apart from every other."""
    values = np.random.default_rng(seed).permutation(b * h * w * c) + 1
    return values.reshape(b, h, w, c).astype(np.float32)


def which_crop(out: np.ndarray, x: np.ndarray, pad: int) -> list[tuple[int, int, bool]]:
    """For each output image, the (dy, dx, flipped) of the unique crop of the padded input it equals."""
    _, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    found = []
    for o, p in zip(out, padded, strict=True):
        shifts = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
        matches = [
            (dy, dx, f)
            for dy, dx in shifts
            for f in (False, True)
            if np.array_equal(o, (lambda a: a[:, ::-1] if f else a)(p[dy : dy + h, dx : dx + w]))
        ]
        assert len(matches) == 1, f"output is not a (unique) crop of the padded input: {matches}"
        found.append(matches[0])
    return found


def test_augment_shape_dtype_and_identity():
    x = images()
    for dtype in (np.float32, np.uint8):
        out = cifar10.augment(jax.random.key(0), x.astype(dtype))
        assert out.shape == x.shape and out.dtype == dtype
    np.testing.assert_array_equal(cifar10.augment(jax.random.key(1), x, pad=0, flip=False), x)
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        cifar10.augment(jax.random.key(0), x[0])
    with pytest.raises(ValueError, match="pad=-1"):
        cifar10.augment(jax.random.key(0), x, pad=-1)


@pytest.mark.parametrize("pad,flip", [(2, True), (2, False), (0, True), (1, True)])
def test_every_output_is_a_crop_of_the_padded_input(pad, flip):
    x = images()
    out = np.asarray(cifar10.augment(jax.random.key(3), x, pad=pad, flip=flip))
    crops = which_crop(out, x, pad)
    if not flip:
        assert not any(f for _, _, f in crops)


@pytest.mark.slow
def test_keys_determinism_jit_and_vmap():
    x = images()
    k1, k2 = jax.random.key(1), jax.random.key(2)
    a = cifar10.augment(k1, x)
    np.testing.assert_array_equal(a, cifar10.augment(k1, x))
    assert not np.array_equal(a, cifar10.augment(k2, x))
    jitted = jax.jit(partial(cifar10.augment, pad=4, flip=True))
    np.testing.assert_array_equal(jitted(k1, x), a)
    keys = jax.random.split(jax.random.key(5), 3)
    batched = jax.vmap(lambda k: cifar10.augment(k, x))(keys)
    assert batched.shape == (3, *x.shape)
    singles = [jitted(k, x) for k in keys]
    for out, single in zip(batched, singles, strict=True):
        np.testing.assert_array_equal(out, single)

    # Inside a scanned program, as a training loop would use it.
    def step(carry, k):
        return carry + jnp.sum(cifar10.augment(k, x)), None

    total, _ = jax.lax.scan(step, jnp.float32(0), keys)
    np.testing.assert_allclose(total, sum(float(jnp.sum(s)) for s in singles), rtol=1e-6)


def test_offsets_and_flips_are_spread():
    pad, draws = 1, 400
    x = np.repeat(images(b=1), draws, axis=0)
    crops = which_crop(np.asarray(cifar10.augment(jax.random.key(7), x, pad=pad)), x, pad)
    flips = np.mean([f for _, _, f in crops])
    assert 0.35 < flips < 0.65  # about 6 standard deviations either side of 1/2
    counts = {}
    for dy, dx, _ in crops:
        counts[dy, dx] = counts.get((dy, dx), 0) + 1
    assert len(counts) == (2 * pad + 1) ** 2  # all 9 offsets (each expected ~44 times)
    assert min(counts.values()) > 15


# ---- the -cifar10 lottery presets ------------------------------------------------------------------


def test_cifar10_presets_are_the_papers_protocols_and_their_nets_take_32x32x3():
    from funcnn import models
    from funcnn.lottery import PRESETS

    names = sorted(n for n in PRESETS if "cifar10" in n)
    assert names == [
        "conv2-cifar10",
        "conv4-cifar10",
        "conv6-cifar10",
        "resnet20-cifar10",
        "resnet8-cifar10",
        "vgg16-cifar10",
        "vgg16-cifar10-cpu",
    ]
    for name in names:
        cfg = PRESETS[name].validate()
        assert cfg.dataset == "cifar10"
        # OpenLTH's ResNet/VGG recipe augments (crop with padding 4, flip); Frankle & Carbin's Conv-k did not
        assert cfg.augment == (None if name.startswith("conv") else "crop-flip"), name
        assert models.build(cfg.model).output_shape((32, 32, 3)) == (10,)
    assert PRESETS["resnet20-cifar10"].iterations == 62_500 and PRESETS["vgg16-cifar10"].output_rate == 0.0
    assert [PRESETS[f"conv{k}-cifar10"].iterations for k in (2, 4, 6)] == [20_000, 25_000, 30_000]
    assert [PRESETS[f"conv{k}-cifar10"].conv_rate for k in (2, 4, 6)] == [0.1, 0.1, 0.15]
    # the Fashion-MNIST presets are unchanged by the new field: their run folders keep their names
    assert "augment" not in PRESETS["resnet20-fashion"].to_json()


@pytest.mark.slow
def test_cifar10_preset_trains_with_augmentation_from_funcnn_data(tmp_path, files, monkeypatch):
    import dataclasses

    from funcnn import lottery

    folder = write_folder(tmp_path, files)
    for name in NAMES:  # the stand-in files are the "release" this test pins
        monkeypatch.setitem(cifar10.SHA256, name, frozenset({data.sha256(folder / name)}))
    monkeypatch.setenv("FUNCNN_DATA", str(tmp_path))
    cfg = dataclasses.replace(
        lottery.PRESETS["resnet8-cifar10"],
        n_val=3,
        batch_size=4,
        iterations=20,
        eval_every=10,
        rounds=0,
        seeds=1,
        arms=("ticket",),
        lr_drops=(),
    )
    spec = cfg.to_spec()
    assert spec.augment is cifar10.augment and spec.input_shape == (32, 32, 3)
    report = lottery.run(cfg, out=tmp_path / "run", progress=False, figures=False, log=lambda s: None)
    assert report["complete"] and np.isfinite(report["rounds"][0]["final_test_accuracy"]).all()
    assert "augment" in json.loads((tmp_path / "run" / "identity.json").read_text())["programs"]
