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


# The lottery engine's objects (Spec, Arm, run) and the layers it trains.
import optax  # noqa: E402

SPEC = dict(
    net=NET,
    optimizer=optax.adam(1e-3),
    train=(XOR.x_train, XOR.y_train),
    test=(XOR.x_test, XOR.y_test),
    n_val=16,
    iterations=100,
    eval_every=100,
    batch_size=8,
    rounds=2,
    seeds=1,
)
RES = nn.serial(nn.Dense(8), nn.Relu(), nn.Residual(nn.serial(nn.Dense(8), nn.Relu())), nn.Dense(2))
BN = nn.serial(nn.Dense(4), nn.BatchNorm())


def spec(**kw):
    return lottery.Spec(**(SPEC | kw)).validate()


def study(**kw):
    return lottery.Study(lottery.Spec(**(SPEC | kw)), progress=False)


class _NoApply:
    def init(self, key, input_shape):
        return {}


class _StringLeaf:
    def init(self, key, input_shape):
        return {"w": jnp.ones((2, 2)), "activation": "relu"}

    def apply(self, params, x, **kw):
        return x @ params["w"]


CASES = [
    ("spec optimizer factory", lambda: spec(optimizer=optax.adam), ValueError, "optimizer"),
    ("spec net without apply", lambda: spec(net=_NoApply()), ValueError, "net"),
    ("spec net is a class", lambda: spec(net=nn.Dense), ValueError, "net"),
    ("spec train not a pair", lambda: spec(train=XOR.x_train), ValueError, "train"),
    ("spec val not a pair", lambda: spec(val=(XOR.x_test,)), ValueError, "val"),
    ("spec integer features", lambda: spec(train=(XOR.x_train.astype(np.int32), XOR.y_train)), ValueError, "train"),
    ("spec x/y lengths", lambda: spec(test=(XOR.x_test, XOR.y_test[:5])), ValueError, "test"),
    ("spec rate 1", lambda: spec(rate=1.0), ValueError, "rate"),
    ("spec layer_rates 1.2", lambda: spec(layer_rates={"dense_0": 1.2}), ValueError, "layer_rates"),
    ("spec layer_rates global", lambda: spec(layer_rates={"dense_0": 0.1}, scope="global"), ValueError, "layer_rates"),
    ("spec scope", lambda: spec(scope="net"), ValueError, "scope"),
    ("spec pruning", lambda: spec(pruning="magnitude"), ValueError, "pruning"),
    ("spec sparsities length", lambda: spec(sparsities=(0.5,)), ValueError, "sparsities"),
    ("spec sparsities 1.0", lambda: spec(sparsities=(0.5, 1.0)), ValueError, "sparsities"),
    ("spec rewind_step", lambda: spec(iterations=200, rewind_step=50), ValueError, "rewind_step"),
    ("spec rewind_step = iterations", lambda: spec(rewind_step=100), ValueError, "rewind_step"),
    ("spec iterations", lambda: spec(iterations=150), ValueError, "iterations"),
    ("spec rounds", lambda: spec(rounds=-1), ValueError, "rounds"),
    ("spec seeds 0", lambda: spec(seeds=0), ValueError, "seeds"),
    ("spec seed float", lambda: spec(seed=0.5), ValueError, "seed"),
    ("spec rewind_optimizer", lambda: spec(rewind_optimizer="yes"), ValueError, "rewind_optimizer"),
    ("spec population_chunk", lambda: spec(population_chunk=0), ValueError, "population_chunk"),
    ("spec loss", lambda: spec(loss="mse"), ValueError, "loss"),
    ("spec arms ticket first", lambda: spec(arms=("reinit", "ticket")), ValueError, "arms"),
    ("spec arms duplicate", lambda: spec(arms=("ticket", "random", "random")), ValueError, "arms"),
    ("spec arms unknown", lambda: spec(arms=("ticket", "shuffle")), ValueError, "arms"),
    ("spec arms empty", lambda: spec(arms=()), ValueError, "arms"),
    ("spec Arm fn", lambda: spec(arms=("ticket", lottery.Arm("mine", None))), ValueError, "arms"),
    ("spec prunable", lambda: spec(prunable="weights"), ValueError, "prunable"),
    ("study prunable selects nothing", lambda: study(prunable=lambda name, leaf: False), ValueError, "prunable"),
    ("study batch_size > train", lambda: study(batch_size=1000), ValueError, "batch_size"),
    ("study n_val >= train", lambda: study(n_val=64), ValueError, "n_val"),
    (
        "study layer_rates deep typo",
        lambda: study(net=RES, layer_rates={"residual_2/main/dense_9": 0.1}),
        ValueError,
        "layer_rates",
    ),
    ("study net init non-array leaf", lambda: study(net=_StringLeaf()), ValueError, "activation"),
    ("study not a Spec", lambda: lottery.Study(SPEC), TypeError, "study"),
    ("run not a Spec", lambda: lottery.run(SPEC, out="/nonexistent/never-created"), TypeError, "study"),
    ("Dropout rate 1", lambda: nn.Dropout(1.0), ValueError, "rate"),
    ("BatchNorm rank 0", lambda: nn.BatchNorm().init(jax.random.key(0), ()), nn.ShapeError, "features axis"),
    ("Residual branches", lambda: nn.Residual(nn.Dense(3)).init(jax.random.key(0), (2,)), nn.ShapeError, "shortcut"),
    (
        "stateful net, plain apply",
        lambda: BN.apply(BN.init(jax.random.key(0), (2,)), jnp.ones((3, 2))),
        nn.StateError,
        "apply_with_state",
    ),
    (
        "fit optimizer and learning_rate",
        lambda: fit(optimizer=optax.adam(1e-3), learning_rate=0.1),
        ValueError,
        "learning_rate",
    ),
    ("FanOut 0", lambda: nn.FanOut(0), ValueError, "n="),
    ("Parallel empty", lambda: nn.Parallel(), ValueError, "Parallel"),
    ("Conv1D features", lambda: nn.Conv1D(0, 3), ValueError, "features"),
    ("Reshape size", lambda: nn.Reshape((3, 3)).init(jax.random.key(0), (10,)), nn.ShapeError, "(3, 3)"),
    ("Dense features", lambda: nn.Dense(0), ValueError, "features"),
    ("Dense input width", lambda: NET.apply(P, jnp.ones((3, 5))), nn.ShapeError, "dense_0"),
    ("Dense on images", lambda: NET.init(jax.random.key(0), (28, 28)), nn.ShapeError, "Flatten"),
    ("Conv2D rank", lambda: nn.Conv2D(3, 3).init(jax.random.key(0), (28, 28)), nn.ShapeError, "(H, W, C)"),
    ("conv channels", lambda: conv.conv2d(jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 1, 1))), ValueError, "C_in"),
    (
        "conv stride",
        lambda: conv.conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1)), stride=-1),
        ValueError,
        "stride",
    ),
    (
        "conv padding name",
        lambda: conv.conv2d(jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1)), padding="FULL"),
        ValueError,
        "padding",
    ),
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
    (
        "population axes",
        lambda: train.population_size({"a": jnp.ones((4, 2)), "b": jnp.ones((3,))}, "params"),
        ValueError,
        "params",
    ),
    ("dataset name", lambda: data.load("imagenet"), ValueError, "name"),
    ("model name", lambda: lottery.Config(model="resnet50").validate(), ValueError, "model"),
    ("config rate", lambda: lottery.Config(rate=1.5).validate(), ValueError, "rate"),
    ("rewind step", lambda: lottery.Config(rewind_step=33).validate(), ValueError, "rewind_step"),
    ("step decay factor", lambda: schedules.step_decay(0.1, 2.0, 5, 10), ValueError, "factor"),
    ("plateau min_lr", lambda: schedules.Plateau(0.1, min_lr=1.0).init(), ValueError, "min_lr"),
    ("plateau patience", lambda: schedules.Plateau(0.1, patience=-2).init(), ValueError, "patience"),
    ("loss shapes", lambda: losses.mse(jnp.ones((3, 1)), jnp.ones((3,))), ValueError, "shape"),
    ("activation name", lambda: activations.derivative("gelu"), ValueError, "name"),
    (
        "validation split",
        lambda: data.train_val_split(XOR.x_train, XOR.y_train, 0, jax.random.key(0)),
        ValueError,
        "n_val",
    ),
    (
        "sweep rates",
        lambda: train.lr_sweep(
            NET, P, (XOR.x_train, XOR.y_train), rates=[0.1, -1.0], epochs=1, batch_size=8, key=jax.random.key(0)
        ),
        ValueError,
        "rates",
    ),
]


@pytest.mark.slow
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


# Every case runs each script as `python experiments/<script>` runs it (`runpy`, as `__main__`), all in one
# process: a Python and JAX start for the ten, not one each (2.5 s a case).
CLI_RUNNER = """
import contextlib, io, json, runpy, sys, traceback
results = []
for script, args in json.loads(sys.argv[1]):
    sys.argv = [script, *args]
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except Exception:  # as the interpreter would: status 1 and the traceback, for this case alone
            code = 1
            traceback.print_exc()
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def cli_errors(tmp_path_factory):
    """[(exit status, stderr)] of every CLI case, run in one subprocess."""
    import json

    out = tmp_path_factory.mktemp("cli")
    cases = [(str(ROOT / "experiments" / s), ["--out", str(out / str(i)), *a]) for i, (s, a, _) in enumerate(CLI)]
    r = subprocess.run(
        [sys.executable, "-c", CLI_RUNNER, json.dumps(cases)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(CLI)), ids=[f"{s}:{a[0]}" for s, a, _ in CLI])
def test_command_line_bad_values(case, cli_errors):
    code, stderr = cli_errors[case]
    assert code == 2, stderr
    assert CLI[case][2] in stderr and "error:" in stderr


# Errors that name the cause (issue #43): one image without its batch axis fails at Flatten, not at the
# Dense after it; an int (or any non-key array) where a PRNG key belongs is funcnn's TypeError naming the
# argument and how to make a key, not JAX's own.
CNN = nn.serial(nn.Conv2D(4, (3, 3)), nn.Flatten(), nn.Dense(10))
CNN_P = CNN.init(jax.random.key(0), (6, 6, 1))


def test_one_image_without_its_batch_axis_fails_at_flatten_naming_the_fix():
    assert CNN.apply(CNN_P, jnp.ones((6, 6, 1))[None]).shape == (1, 10)  # the fix works
    with pytest.raises(nn.ShapeError) as info:
        CNN.apply(CNN_P, jnp.ones((6, 6, 1)))  # was: "dense_2: expected input of shape (*batch, 64), got (4, 16)"
    msg = str(info.value)
    assert msg.startswith("layer 'flatten_1': input of shape (4, 4, 4) has no batch axis"), msg
    assert "x[None]" in msg and "Flatten(ndim=3)" in msg and "dense_2" in msg
    bn = nn.serial(nn.Conv2D(2, 3), nn.BatchNorm(), nn.Flatten(), nn.Dropout(0.5), nn.Dense(3))  # the state path
    p, s = bn.init(jax.random.key(0), (5, 5, 1)), bn.init_state((5, 5, 1))
    with pytest.raises(nn.ShapeError, match=r"layer 'flatten_2': input of shape \(3, 3, 2\) has no batch axis"):
        bn.apply_with_state(p, s, jnp.ones((5, 5, 1)), key=jax.random.key(1), train=True)
    with pytest.raises(nn.ShapeError, match="layer 'dense_2': Dense: expected input"):  # a real width mismatch
        CNN.apply(CNN_P, jnp.ones((2, 7, 7, 1)))


KEY_CASES = [
    ("net.init", lambda: NET.init(0, (2,)), "serial.init(key, input_shape): key"),
    ("layer init", lambda: nn.Dense(3).init(np.zeros(2, np.float32), (2,)), "dense.init(key, input_shape): key"),
    ("fit key", lambda: fit(key=0), "fit: key"),
    (
        "lr_sweep key",
        lambda: train.lr_sweep(NET, P, (XOR.x_train, XOR.y_train), rates=[0.1], epochs=1, batch_size=8, key=3),
        "lr_sweep: key",
    ),
    ("init_state key", lambda: train.init_state(P, optax.sgd(0.1), key=7), "init_state: key"),
    ("Dropout key", lambda: nn.Dropout(0.5).apply({}, jnp.ones(4), key=1, train=True), "Dropout(rate=0.5).apply"),
    ("serial apply key", lambda: NET.apply(P, jnp.ones((1, 2)), key=5, train=True), "key=key): key"),
    ("a batch of keys", lambda: NET.init(jax.random.split(jax.random.key(0), 3), (2,)), "a batch of keys"),
]


@pytest.mark.parametrize("name,call,needle", KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_a_non_key_where_a_key_belongs_names_the_argument_and_how_to_make_one(name, call, needle):
    with pytest.raises(TypeError) as info:
        call()
    msg = str(info.value)
    assert needle in msg and "must be a JAX PRNG key" in msg, msg
    assert "jax.random.key(0)" in msg or "keys[i]" in msg, msg


def test_keys_of_every_kind_still_work():
    for key in (jax.random.key(0), jax.random.PRNGKey(0)):  # typed and raw (uint32[2]) keys
        assert jax.tree.map(jnp.shape, NET.init(key, (2,))) == jax.tree.map(jnp.shape, P)
    inits = jax.vmap(NET.init, in_axes=(0, None))(jax.random.split(jax.random.key(0), 3), (2,))  # traced keys
    assert inits["dense_0"]["w"].shape == (3, 2, 4)
