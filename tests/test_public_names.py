"""Every funcnn name the README, docs/guide.md and CHANGELOG.md mention resolves, and the old import paths
of modules that became packages (or moved) still reach the same objects."""

import importlib
import re
import types
from pathlib import Path

import pytest

import funcnn

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "docs/guide.md", "CHANGELOG.md")

# A dotted funcnn name at the start of a backticked span: `funcnn.data.load`, `funcnn.cifar10.augment(key, x)`.
BACKTICKED = re.compile(r"`(funcnn(?:\.[A-Za-z_]\w*)+)")
# `from funcnn.x import a, b as c` (also `from funcnn import x`) and `import funcnn.x as y`.
FROM_IMPORT = re.compile(r"\bfrom\s+(funcnn(?:\.\w+)*)\s+import\s+([\w\s,()]+)")
IMPORT = re.compile(r"\bimport\s+(funcnn(?:\.\w+)*)")
# `prune.compact`, `nn.Dense(10)`: a name under one of funcnn's top-level modules, by its short name (as
# the documents write them after `from funcnn import prune, nn`); file names such as `train.py` are not.
TOP_MODULES = sorted(n for n in funcnn.__all__ if isinstance(getattr(funcnn, n), types.ModuleType))
SHORT = re.compile(r"`((?:" + "|".join(TOP_MODULES) + r")(?:\.[A-Za-z_]\w*)+)")
FILE_SUFFIXES = {"py", "md", "json", "csv", "npz", "png", "txt", "gz", "bin"}


def resolve(dotted: str) -> object:
    """The object `dotted` names: the longest importable module prefix, then attributes; raises if absent."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)  # AttributeError: the name does not exist
        return obj
    raise ModuleNotFoundError(dotted)


def mentioned() -> list[tuple[str, str]]:
    """(document, dotted name) for every funcnn name the documents mention, without repeats."""
    found: dict[tuple[str, str], None] = {}
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for m in BACKTICKED.finditer(text):
            found[(doc, m.group(1))] = None
        for m in FROM_IMPORT.finditer(text):
            for item in m.group(2).replace("(", " ").replace(")", " ").split(","):
                words = item.split()
                if words:  # `a as b`: the name imported is a
                    found[(doc, f"{m.group(1)}.{words[0]}")] = None
        for m in IMPORT.finditer(text):
            found[(doc, m.group(1))] = None
        for m in SHORT.finditer(text):
            if m.group(1).rsplit(".", 1)[-1] not in FILE_SUFFIXES:
                found[(doc, "funcnn." + m.group(1))] = None
    return list(found)


NAMES = mentioned()


def test_the_documents_mention_names_and_the_parser_finds_them():
    names = {name for _, name in NAMES}
    assert len(names) > 40, sorted(names)  # the guide alone names dozens
    # one of each form: a backticked call, a backticked name, a `from funcnn import` line, a short name
    assert {"funcnn.cifar10.augment", "funcnn.compaction.compact", "funcnn.data"} <= names
    assert "funcnn.prune.compact" in names  # a short name: CHANGELOG's `prune.compact`
    assert not any(n.endswith((".py", ".md")) for n in names)


def test_resolve_rejects_names_that_do_not_exist():
    with pytest.raises(AttributeError):
        resolve("funcnn.data.no_such_loader")
    with pytest.raises(ModuleNotFoundError):
        resolve("funcnn_not_a_package.x")


@pytest.mark.parametrize(("doc", "name"), NAMES, ids=[f"{d}:{n}" for d, n in NAMES])
def test_every_mentioned_name_resolves(doc, name):
    resolve(name)


# Old path -> new home, for the modules split into packages or moved (issue #30). Each old path must be
# the very object at the new one, so code written against either sees the same function, class or dict.
MOVED = {
    "funcnn.data.DataError": "funcnn.data.dataset.DataError",
    "funcnn.data.Dataset": "funcnn.data.dataset.Dataset",
    "funcnn.data.verify": "funcnn.data.checksums.verify",
    "funcnn.data.sha256": "funcnn.io.sha256_file",
    "funcnn.data.read_idx": "funcnn.data.idx.read_idx",
    "funcnn.data.IDX_FILES": "funcnn.data.idx.IDX_FILES",
    "funcnn.data.SHA256": "funcnn.data.idx.SHA256",
    "funcnn.data.FASHION_MNIST_DIR": "funcnn.data.idx.FASHION_MNIST_DIR",
    "funcnn.data.FASHION_MNIST_INSTALL": "funcnn.data.idx.FASHION_MNIST_INSTALL",
    "funcnn.data._load_idx_set": "funcnn.data.idx._load_idx_set",
    "funcnn.data.download": "funcnn.data.fetch.download",
    "funcnn.data.MNIST_MIRRORS": "funcnn.data.fetch.MNIST_MIRRORS",
    "funcnn.data._fetch_resumable": "funcnn.data.fetch._fetch_resumable",
    "funcnn.data.mnist1d": "funcnn.data.mnist1d_cache.mnist1d",
    "funcnn.data.cache_dir": "funcnn.data.mnist1d_cache.cache_dir",
    "funcnn.data.MNIST1D_FIELDS": "funcnn.data.mnist1d_cache.MNIST1D_FIELDS",
    "funcnn.data._MNIST1D_MEMO": "funcnn.data.mnist1d_cache._MNIST1D_MEMO",
    "funcnn.data._read_cached": "funcnn.data.mnist1d_cache._read_cached",
    "funcnn.data._write_cached": "funcnn.data.mnist1d_cache._write_cached",
    "funcnn.data._version": "funcnn.data.mnist1d_cache._version",
    "funcnn.data.xor": "funcnn.data.toys.xor",
    "funcnn.data.two_spirals": "funcnn.data.toys.two_spirals",
    "funcnn.data._synthetic": "funcnn.data.toys._synthetic",
    "funcnn.data.train_val_split": "funcnn.data.splits.train_val_split",
    "funcnn.data.load": "funcnn.data.registry.load",
    "funcnn.data.DATASETS": "funcnn.data.registry.DATASETS",
    **{
        f"funcnn.cifar10.{n}": f"funcnn.data.cifar10.{n}"
        for n in (
            *("ARCHIVE", "FOLDER", "RECORD_BYTES", "SHA256", "TEST_FILES", "TRAIN_FILES", "URL"),
            *("augment", "download", "load", "read", "_decode", "_how_to_get", "_read_archive"),
        )
    },
    "funcnn.models.mlp": "funcnn.models.mlps.mlp",
    "funcnn.models.lenet_300_100": "funcnn.models.mlps.lenet_300_100",
    "funcnn.models.lenet5": "funcnn.models.convnets.lenet5",
    "funcnn.models.cnn": "funcnn.models.convnets.cnn",
    "funcnn.models.conv2": "funcnn.models.convnets.conv2",
    "funcnn.models.conv4": "funcnn.models.convnets.conv4",
    "funcnn.models.conv6": "funcnn.models.convnets.conv6",
    "funcnn.models.resnet": "funcnn.models.openlth.resnet",
    "funcnn.models.resnet20": "funcnn.models.openlth.resnet20",
    "funcnn.models.vgg": "funcnn.models.openlth.vgg",
    "funcnn.models.vgg11": "funcnn.models.openlth.vgg11",
    "funcnn.models.vgg16": "funcnn.models.openlth.vgg16",
    "funcnn.models.VGG11_PLAN": "funcnn.models.openlth.VGG11_PLAN",
    "funcnn.models.VGG16_PLAN": "funcnn.models.openlth.VGG16_PLAN",
    "funcnn.models.resmlp": "funcnn.models.mnist1d_nets.resmlp",
    "funcnn.models.mnist1d_cnn": "funcnn.models.mnist1d_nets.mnist1d_cnn",
    "funcnn.models.MODELS": "funcnn.models.registry.MODELS",
    "funcnn.models.build": "funcnn.models.registry.build",
    "funcnn.models.KAIMING_NORMAL": "funcnn.models.inits.KAIMING_NORMAL",
    "funcnn.models.BN_SCALE_INIT": "funcnn.models.inits.BN_SCALE_INIT",
    "funcnn.models.TORCH_W_INIT": "funcnn.models.inits.TORCH_W_INIT",
    "funcnn.models.torch_bias_init": "funcnn.models.inits.torch_bias_init",
    "funcnn.compaction.compact": "funcnn.compaction.shrink.compact",
    "funcnn.compaction.mask_dead_biases": "funcnn.compaction.shrink.mask_dead_biases",
    "funcnn.compaction.fold_batchnorm": "funcnn.compaction.batchnorm.fold_batchnorm",
    "funcnn.compaction.mask_batchnorms": "funcnn.compaction.batchnorm.mask_batchnorms",
    "funcnn.compaction.stream_convs": "funcnn.compaction.streams.stream_convs",
    "funcnn.compaction.PRODUCERS": "funcnn.compaction.trace.PRODUCERS",
    "funcnn.compaction.CHANNELWISE": "funcnn.compaction.trace.CHANNELWISE",
    "funcnn.prune.compact": "funcnn.compaction.compact",
    "funcnn.conv.max_pool": "funcnn.pool.max_pool",
    "funcnn.conv.avg_pool": "funcnn.pool.avg_pool",
    **{
        f"funcnn.conv.{n}": f"funcnn.windows.{n}"
        for n in (
            *("output_size", "output_hw", "output_len", "pair", "positive_int", "resolve_padding"),
            *("resolve_padding_1d", "Padding", "Pads", "Pair", "_as_nhwc"),
        )
    },
    **{f"funcnn.nn.layer.{n}": f"funcnn.nn.errors.{n}" for n in ("LayerError", "ShapeError", "StateError", "named")},
    "funcnn.nn.LayerError": "funcnn.nn.errors.LayerError",
    "funcnn.nn.ShapeError": "funcnn.nn.errors.ShapeError",
    "funcnn.nn.StateError": "funcnn.nn.errors.StateError",
}


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()), ids=sorted(MOVED))
def test_old_import_paths_reach_the_moved_objects(old, new):
    assert resolve(old) is resolve(new)


def test_old_from_imports_still_work():
    from funcnn.cifar10 import augment
    from funcnn.conv import max_pool, pair
    from funcnn.data import DataError, _fetch_resumable, sha256
    from funcnn.nn.layer import ShapeError, serial, summary
    from funcnn.prune import compact

    assert callable(augment) and callable(max_pool) and callable(pair) and callable(_fetch_resumable)
    assert issubclass(DataError, RuntimeError) and issubclass(ShapeError, ValueError)
    assert callable(sha256) and callable(serial) and callable(summary) and callable(compact)
