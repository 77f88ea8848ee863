"""Bad input everywhere users touch: the exception type, and a message naming the argument."""
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnn as F
from funcnn import activations, conv, data, losses, lottery, nn, prune, schedules, train

ROOT = Path(__file__).resolve().parent.parent
XOR = data.load("xor", n=64)
NET = nn.serial(nn.Dense(4), nn.Relu(), nn.Dense(2))
P = NET.init(jax.random.key(0), (2,))
M = prune.ones(P)


def fit(**kw):
    args = dict(epochs=1, batch_size=8, key=jax.random.key(0), progress=False, n_classes=2)
    train_xy = kw.pop("train", (XOR.x_train, XOR.y_train))
    return F.fit(NET, P, train_xy, (XOR.x_test, XOR.y_test), **(args | kw))


def no_mnist1d(monkeypatch):
    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    data.load("mnist1d")


CASES = [
    ("Dense features", lambda: nn.Dense(0), ValueError, "features"),
    ("Dense input width", lambda: NET.apply(P, jnp.ones((3, 5))), nn.ShapeError, "dense_0"),
    ("Dense on images", lambda: NET.init(jax.random.key(0), (28, 28)), nn.ShapeError, "Flatten"),
    ("Conv2D rank", lambda: nn.Conv2D(3, 3).init(jax.random.key(0), (28, 28)), nn.ShapeError, "(H, W, C)"),
    ("conv channels", lambda: conv.conv2d(jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 1, 1))), ValueError, "C_in"),
    ("conv stride", lambda: conv.conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1)), stride=-1), ValueError, "stride"),
    ("conv padding name", lambda: conv.conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1)), padding="FULL"), ValueError, "padding"),
    ("kernel too large", lambda: conv.conv2d(jnp.ones((1, 2, 2, 1)), jnp.ones((3, 3, 1, 1))), ValueError, "kernel"),
    ("pool window", lambda: nn.MaxPool(window=0), ValueError, "window"),
    ("labels out of range", lambda: fit(train=(XOR.x_train, XOR.y_train + 2)), ValueError, "labels"),
    ("integer features", lambda: fit(train=(XOR.x_train.astype(np.int64), XOR.y_train)), ValueError, "features"),
    ("batch size zero", lambda: fit(batch_size=0), ValueError, "batch_size"),
    ("batch size > data", lambda: fit(batch_size=10_000), ValueError, "batch_size"),
    ("learning rate <= 0", lambda: fit(learning_rate=0.0), ValueError, "learning_rate"),
    ("epochs", lambda: fit(epochs=-1), ValueError, "epochs"),
    ("prune rate 1", lambda: prune.magnitude(P, M, 1.0), ValueError, "rate"),
    ("prune rate < 0", lambda: prune.random(jax.random.key(0), P, M, -0.5), ValueError, "rate"),
    ("mask structure", lambda: prune.apply(P, {"dense_0": M["dense_0"]}), ValueError, "masks"),
    ("mask shape", lambda: prune.apply(P, jax.tree.map(lambda m: m[..., :1], M)), ValueError, "shape"),
    ("mask dtype", lambda: prune.apply(P, jax.tree.map(lambda m: m.astype(jnp.float32), M)), ValueError, "boolean"),
    ("layer_rates name", lambda: prune.magnitude(P, M, 0.2, layer_rates={"dense_7": 0.1}), ValueError, "layer_rates"),
    ("population axes", lambda: train.population_size({"a": jnp.ones((4, 2)), "b": jnp.ones((3,))}, "params"), ValueError, "params"),
    ("dataset name", lambda: data.load("cifar10"), ValueError, "name"),
    ("model name", lambda: lottery.Config(model="resnet50").validate(), ValueError, "model"),
    ("config rate", lambda: lottery.Config(rate=1.5).validate(), ValueError, "rate"),
    ("rewind step", lambda: lottery.Config(rewind_step=33).validate(), ValueError, "rewind_step"),
    ("step decay factor", lambda: schedules.step_decay(0.1, 2.0, 5, 10), ValueError, "factor"),
    ("plateau min_lr", lambda: schedules.Plateau(0.1, min_lr=1.0).init(), ValueError, "min_lr"),
    ("plateau patience", lambda: schedules.Plateau(0.1, patience=-2).init(), ValueError, "patience"),
    ("loss shapes", lambda: losses.mse(jnp.ones((3, 1)), jnp.ones((3,))), ValueError, "shape"),
    ("activation name", lambda: activations.derivative("gelu"), ValueError, "name"),
    ("validation split", lambda: data.train_val_split(XOR.x_train, XOR.y_train, 0, jax.random.key(0)), ValueError, "n_val"),
    ("sweep rates", lambda: train.lr_sweep(NET, P, (XOR.x_train, XOR.y_train), rates=[0.1, -1.0], epochs=1, batch_size=8,
                                           key=jax.random.key(0)), ValueError, "rates"),
]


@pytest.mark.parametrize("name,call,exc,needle", CASES, ids=[c[0] for c in CASES])
def test_library_bad_input(name, call, exc, needle):
    with pytest.raises(exc) as info:
        call()
    assert needle in str(info.value), str(info.value)


def test_missing_optional_data_package_names_install_command(monkeypatch):
    with pytest.raises(data.DataError, match="pip install mnist1d"):
        no_mnist1d(monkeypatch)


def test_missing_fashion_files_name_apt_command(tmp_path):
    with pytest.raises(data.DataError, match="apt-get install dataset-fashion-mnist"):
        data.load("fashion-mnist", data_dir=tmp_path)


def test_conflicting_run_folder(tmp_path):
    lottery._prepare_folder(tmp_path, lottery.Config())
    with pytest.raises(ValueError, match="different config"):
        lottery._prepare_folder(tmp_path, lottery.Config(seeds=9))


CLI = [
    ("lottery_ticket.py", ["--preset", "cifar"], "--preset"),
    ("lottery_ticket.py", ["--seeds", "0"], "--seeds"),
    ("lottery_ticket.py", ["--rewind-step", "7"], "rewind_step"),
    ("lottery_ticket.py", ["--learning-rate", "-1"], "--learning-rate"),
    ("cnn_mnist.py", ["--model", "vgg16"], "--model"),
    ("cnn_mnist.py", ["--batch-size", "x"], "--batch-size"),
    ("symmetry_breaking.py", ["--population", "-4"], "--population"),
    ("backprop.py", ["--threshold", "0"], "--threshold"),
    ("activations.py", ["--points", "1.5"], "--points"),
    ("forward_pass.py", ["--second-input", "1"], "--second-input"),
]


@pytest.mark.parametrize("script,args,needle", CLI, ids=[f"{s}:{a[0]}" for s, a, _ in CLI])
def test_command_line_bad_values(script, args, needle, tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / script), "--out", str(tmp_path), *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "error:" in r.stderr
