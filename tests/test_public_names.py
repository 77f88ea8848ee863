"""Every funcnn name that README.md, CONTRIBUTING.md, CHANGELOG.md and the documentation pages (`DOCS`)
mention resolves, and the old import paths of modules that became packages (or moved) still reach the same
objects. One name for each thing (issue #43): the new names resolve without a warning; every deprecated
one warns `DeprecationWarning` naming its replacement and still reaches the same object (or does the same
thing), for one release."""

import ast
import importlib
import re
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest

import funcnn

ROOT = Path(__file__).resolve().parent.parent
DOCS = (
    "README.md",
    "docs/guide.md",
    "CHANGELOG.md",
    "CONTRIBUTING.md",
    "docs/course/README.md",
    "docs/lottery-from-primitives.md",
    "docs/lottery-studies.md",
    "docs/bring-your-own-model.md",
    "docs/data.md",
    "docs/scale-out.md",
    "docs/benchmarks.md",
    "docs/lottery-mnist1d/README.md",
    "docs/lenet-fashion/README.md",
    "docs/mnist1d-notebook/README.md",
    "docs/pruning-at-init/README.md",
    "docs/rewinding/README.md",
    "docs/stability-lenet/README.md",
    "docs/late-rewinding-resnet8/README.md",
    "docs/stability-resnet8/README.md",
    "docs/resnet20-fashion/README.md",
    "docs/prune-speed/README.md",
    "docs/sparse-training/README.md",
    "docs/one-shot/README.md",
    "docs/supermask/README.md",
)

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
    "funcnn.conv.Padding": "funcnn.windows.Padding",  # the types of conv2d's arguments, not aliases
    "funcnn.conv.Pair": "funcnn.windows.Pair",
    **{f"funcnn.nn.layer.{n}": f"funcnn.nn.errors.{n}" for n in ("LayerError", "ShapeError", "StateError", "named")},
    "funcnn.nn.LayerError": "funcnn.nn.errors.LayerError",
    "funcnn.nn.ShapeError": "funcnn.nn.errors.ShapeError",
    "funcnn.nn.StateError": "funcnn.nn.errors.StateError",
}


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()), ids=sorted(MOVED))
def test_old_import_paths_reach_the_moved_objects(old, new):
    assert resolve(old) is resolve(new)


def test_old_from_imports_still_work():
    from funcnn.data import DataError, _fetch_resumable, sha256
    from funcnn.nn.layer import ShapeError, serial, summary

    assert callable(_fetch_resumable) and issubclass(DataError, RuntimeError) and issubclass(ShapeError, ValueError)
    assert callable(sha256) and callable(serial) and callable(summary)
    with pytest.warns(DeprecationWarning, match=r"use funcnn\.pool\.max_pool"):
        from funcnn.conv import max_pool
    with pytest.warns(DeprecationWarning, match=r"use funcnn\.windows\.pair"):
        from funcnn.conv import pair
    with pytest.warns(DeprecationWarning, match=r"use funcnn\.compaction\.compact"):
        from funcnn.prune import compact
    assert callable(max_pool) and callable(pair) and callable(compact)


# ---- One name for each thing (issue #43) -------------------------------------------------------------

# The names to use: each resolves without any DeprecationWarning.
NEW_NAMES = [
    "funcnn.lottery.weight_rewinding",
    "funcnn.lottery.reinitialized",
    "funcnn.lottery.shuffled",
    "funcnn.lottery.Context",
    "funcnn.lottery.reinit_same_sign",
    "funcnn.lottery.arms.weight_rewinding",
    "funcnn.compaction.compact",
    "funcnn.conv.conv2d",
    "funcnn.conv.conv1d",
    "funcnn.pool.max_pool",
    "funcnn.pool.avg_pool",
    *(f"funcnn.windows.{n}" for n in ("output_size", "output_hw", "output_len", "pair", "resolve_padding")),
    *(f"funcnn.nn.conv_layers.{n}" for n in ("Conv2D", "Conv1D", "MaxPool", "AvgPool", "GlobalAvgPool")),
    "funcnn.nn.Conv2D",
    "funcnn.data.cifar10.augment",
    "funcnn.data.cifar10.load",
    "funcnn.io.save_tree",
    "funcnn.io.load_tree",
    "funcnn.checks.prng_key",
]

# Deprecated names reached as attributes: old -> new (the very same object), and the message names new.
DEPRECATED = {
    "funcnn.prune.compact": "funcnn.compaction.compact",
    "funcnn.conv.max_pool": "funcnn.pool.max_pool",
    "funcnn.conv.avg_pool": "funcnn.pool.avg_pool",
    **{
        f"funcnn.conv.{n}": f"funcnn.windows.{n}"
        for n in (
            *("output_size", "output_hw", "output_len", "pair", "positive_int", "resolve_padding"),
            *("resolve_padding_1d", "Pads", "_as_nhwc"),
        )
    },
}

# Deprecated modules: importing one warns naming the new module, and every name it had is the same object as
# in its new home: old -> (the name the message gives, the module now holding the names, the names).
DEPRECATED_MODULES = {
    "funcnn.cifar10": (
        "funcnn.data.cifar10",
        "funcnn.data.cifar10",
        (
            *("ARCHIVE", "FOLDER", "RECORD_BYTES", "SHA256", "TEST_FILES", "TRAIN_FILES", "URL"),
            *("augment", "download", "load", "read", "_decode", "_how_to_get", "_read_archive"),
        ),
    ),
    "funcnn.nn.conv": (
        "funcnn.nn.conv_layers",
        "funcnn.nn.conv_layers",
        ("AvgPool", "Conv1D", "Conv2D", "GlobalAvgPool", "MaxPool"),
    ),
    "funcnn.io_leaves": (  # private parts of funcnn.io, which is what to use
        "funcnn.io (save_tree, load_tree)",
        "funcnn._io_leaves",
        ("_EXTENDED", "_META", "_SCALARS", "_describe", "_flat", "_is_key", "_key_impl", "_names", "_native"),
    ),
}

# Deprecated functions: calling one warns naming its replacement (old -> the words the message must hold).
DEPRECATED_CALLS = {
    "funcnn.lottery.ticket": "lottery.weight_rewinding()",
    "funcnn.lottery.reinit": "lottery.reinitialized()",
    "funcnn.lottery.random_pruning": "lottery.shuffled(",
    "funcnn.lottery.arms.ticket": "lottery.weight_rewinding()",
    "funcnn.lottery.arms.reinit": "lottery.reinitialized()",
    "funcnn.lottery.arms.random_pruning": "lottery.shuffled(",
}


@pytest.mark.parametrize("name", NEW_NAMES)
def test_the_new_names_resolve_without_a_warning(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        resolve(name)


@pytest.mark.parametrize(("old", "new"), sorted(DEPRECATED.items()), ids=sorted(DEPRECATED))
def test_a_deprecated_name_warns_naming_the_new_one_and_is_the_same_object(old, new):
    with pytest.warns(DeprecationWarning, match=re.escape(f"use {new}")) as caught:
        obj = resolve(old)
    assert obj is resolve(new)
    assert len([w for w in caught if w.category is DeprecationWarning]) == 1  # once per use
    with pytest.warns(DeprecationWarning):
        resolve(old)  # and again at the next use


@pytest.mark.parametrize(("old", "spec"), sorted(DEPRECATED_MODULES.items()), ids=sorted(DEPRECATED_MODULES))
def test_a_deprecated_module_warns_on_import_naming_the_new_one(old, spec, monkeypatch):
    new, home, names = spec
    parent, _, leaf = old.rpartition(".")
    monkeypatch.delitem(sys.modules, old, raising=False)  # a fresh import, as a script's first one
    if leaf in vars(importlib.import_module(parent)):  # (hasattr would import it: funcnn.__getattr__)
        monkeypatch.delattr(importlib.import_module(parent), leaf)
    with pytest.warns(DeprecationWarning, match=re.escape(f"use {new}")):
        module = importlib.import_module(old)
    target = importlib.import_module(home)
    for name in names:
        assert getattr(module, name) is getattr(target, name), name
    assert module.__doc__ and hasattr(module, "__all__")  # tools/api_docs.py's rules for a public module


@pytest.mark.parametrize(("old", "needle"), sorted(DEPRECATED_CALLS.items()), ids=sorted(DEPRECATED_CALLS))
def test_a_deprecated_arm_function_warns_when_called_naming_the_builder(old, needle):
    import jax.numpy as jnp

    fn = resolve(old)
    rewind, fresh = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([-3.0, 0.5])}
    mask = {"w": jnp.array([True, False])}
    with pytest.warns(DeprecationWarning, match=re.escape(needle)):
        out = fn({"w": True}) if old.endswith("random_pruning") else fn(rewind, fresh, mask, None)
    if old.endswith("random_pruning"):  # yesterday's arm fn: the ticket's count in each leaf, anywhere
        out = out(rewind, fresh, mask, __import__("jax").random.key(0))
        assert int(out[1]["w"].sum()) == 1 and out[0] is rewind
    else:  # the same thing as before: (theta_rewind or theta_reinit, mask)
        assert out == ((rewind if old.endswith("ticket") else fresh), mask)


def test_a_four_argument_arm_warns_at_resolve_naming_fn_ctx_and_the_built_ins_do_not():
    from funcnn import lottery
    from funcnn.lottery import plans

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        built_in = plans.resolve(("ticket", "reinit", "random", lottery.shuffled("sh"), *plans.NAMED))
        ctx_arm = plans.resolve(("ticket", lottery.Arm("mine", lambda ctx: (ctx.theta_rewind, ctx.parent_masks))))
    assert [p.name for p in built_in[:3]] == ["ticket", "reinit", "random"] and ctx_arm[1].fn is not None
    with pytest.warns(DeprecationWarning, match=r"Arm 'old'.*use fn\(ctx\)"):
        (_, old) = plans.resolve(("ticket", lottery.Arm("old", lambda r, f, m, k: (r, m))))
    assert old.legacy is not None  # it still runs, as yesterday's arm


def test_nothing_binds_names_onto_another_module():
    # `prune.compact = compaction.compact` in funcnn/__init__.py was one: a module's names are its own.
    found = []
    for path in (ROOT / "funcnn").rglob("*.py"):
        tree = ast.parse(path.read_text())
        modules = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
        modules |= {(a.asname or a.name).split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            for t in targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in modules:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found


def test_funcnn_no_longer_lists_cifar10_and_reaches_it_with_a_warning():
    assert "cifar10" not in funcnn.__all__
    import funcnn.data.cifar10 as new

    assert resolve("funcnn.cifar10.augment") is new.augment  # (warned when first imported)


@pytest.mark.slow
def test_importing_every_public_module_warns_nothing():
    code = (
        "import importlib, pkgutil, funcnn\n"
        "shims = {'funcnn.cifar10', 'funcnn.nn.conv', 'funcnn.io_leaves'}\n"
        "names = [m.name for m in pkgutil.walk_packages(funcnn.__path__, 'funcnn.') if m.name not in shims]\n"
        "[importlib.import_module(n) for n in names if 'interop' not in n]\n"
        "print(len(names))\n"
    )
    r = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout) > 50
