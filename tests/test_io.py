import json

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from funcnn import io


def tree():
    return {"dense_0": {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.zeros(3)}, "step": jnp.array(3, jnp.int32)}


def test_roundtrip_and_template_checks(tmp_path):
    digest = io.save_tree(tmp_path / "t.npz", tree())
    assert digest == io.sha256_file(tmp_path / "t.npz")
    back = io.load_tree(tmp_path / "t.npz", tree())
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(tree()), strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    wrong_shape = dict(tree(), step=jnp.zeros((2,), jnp.int32))
    with pytest.raises(io.CheckpointError, match=r"t.npz: array 'step' is int32\[\], expected int32\[2\]"):
        io.load_tree(tmp_path / "t.npz", wrong_shape)
    with pytest.raises(io.CheckpointError, match="holds arrays"):
        io.load_tree(tmp_path / "t.npz", {"other": jnp.zeros(1)})


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_file_is_a_clear_error_or_caught_by_commit(tmp_path, damage):
    io.save_tree(tmp_path / "t.npz", tree())
    io.commit(tmp_path, ["t.npz"])
    raw = (tmp_path / "t.npz").read_bytes()
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":
        i = len(raw) // 2
        raw = raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1 :]
    else:
        raw = b""
    (tmp_path / "t.npz").write_bytes(raw)
    assert not io.verify_commit(tmp_path)  # the checksum always notices
    try:
        io.load_tree(tmp_path / "t.npz", tree())
    except io.CheckpointError as e:
        assert "t.npz" in str(e)
    else:
        assert damage == "flip"  # a flipped byte inside array data can load; only the COMMIT digest catches it


def test_no_pickle_and_atomic_write(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    import zipfile

    with zipfile.ZipFile(tmp_path / "evil.npz", "w") as z:
        z.write(tmp_path / "obj.npy", "x.npy")
    with pytest.raises(io.CheckpointError, match=r"evil\.npz"):
        io.load_tree(tmp_path / "evil.npz", {"x": jnp.zeros(1)})
    io.atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_commit_marker(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    assert not io.verify_commit(tmp_path)
    io.commit(tmp_path, ["a.txt"])
    assert io.verify_commit(tmp_path)
    (tmp_path / "a.txt").write_text("hellO")
    assert not io.verify_commit(tmp_path)
    (tmp_path / "COMMIT").write_text("{not json")
    assert not io.verify_commit(tmp_path)


# ---- the contract: arrays only, names unique, nothing written on refusal (issue #29) ---------------


def _intact(path, before):
    """`path` still holds `before` and no temporary file was left next to it."""
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    "leaf, kind",
    [
        (jax.nn.relu, r"custom_jvp \(relu\)"),  # pickled (PicklingError) before: now refused by name
        ("relu", r"str \('relu'\)"),
        (object(), "object"),
        (np.array(["a", "b"]), "dtype <U1"),
        (2**70, "int"),  # beyond int64: numpy would make an object array
        (jax.ShapeDtypeStruct((2,), jnp.float32), "ShapeDtypeStruct"),  # a template, not data
    ],
)
def test_a_non_array_leaf_is_refused_at_save_naming_its_path(tmp_path, leaf, kind):
    path = tmp_path / "t.npz"
    io.save_tree(path, tree())
    before = path.read_bytes()
    bad = {"dense_0": {"w": jnp.ones(2), "act": leaf}}
    with pytest.raises(ValueError, match=r"\['dense_0'\]\['act'\] is a .*" + kind) as e:
        io.save_tree(path, bad)
    assert "params, static = eqx.partition(model, eqx.is_array)" in str(e.value)
    _intact(path, before)


def test_python_scalars_are_0d_arrays_of_numpys_default_dtypes(tmp_path):
    hyper = {"lr": 0.1, "epochs": 3, "nesterov": True, "phase": 1j}
    io.save_tree(tmp_path / "h.npz", hyper)
    back = io.load_tree(tmp_path / "h.npz", hyper)
    assert {k: (v.dtype.name, v.shape, v.item()) for k, v in back.items()} == {
        "lr": ("float64", (), 0.1),
        "epochs": ("int64", (), 3),
        "nesterov": ("bool", (), True),
        "phase": ("complex128", (), 1j),
    }


def test_colliding_names_are_refused_naming_both_paths(tmp_path):
    path = tmp_path / "t.npz"
    io.save_tree(path, tree())
    before = path.read_bytes()
    x, y = jnp.zeros(2), jnp.ones(2)
    with pytest.raises(ValueError, match=r"\['a'\]\['b'\] and \['a/b'\] both get the name 'a/b'"):
        io.save_tree(path, {"a/b": x, "a": {"b": y}})  # loaded back x for both before
    _intact(path, before)
    with pytest.raises(ValueError, match=r"\['a'\]\['b'\] and \['a/b'\]"):
        io.load_tree(path, {"a/b": x, "a": {"b": y}})
    with pytest.raises(ValueError, match=r"__funcnn_io__\.json"):
        io.save_tree(path, {"__funcnn_io__.json": x})  # the metadata's member name is taken
    _intact(path, before)


def test_a_template_leaf_that_is_not_an_array_is_a_clear_error(tmp_path):
    io.save_tree(tmp_path / "t.npz", {"f": jnp.zeros(2)})
    with pytest.raises(ValueError, match=r"template leaf \['f'\] is a str .*ShapeDtypeStruct"):
        io.load_tree(tmp_path / "t.npz", {"f": "zeros"})


# ---- every dtype JAX uses, bit for bit -------------------------------------------------------------

STANDARD = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
STANDARD += ["float16", "float32", "float64", "complex64", "complex128"]
# the ml_dtypes ones this jax.numpy exports (names vary between versions)
EXTENDED = [n for n in dir(jnp) if n.startswith(("bfloat16", "float8_", "float6_", "float4_", "int", "uint"))]
EXTENDED = sorted(
    n for n in EXTENDED if isinstance(getattr(jnp, n), type) and n not in [*STANDARD, "int_", "uint", "integer"]
)


def _bits(dtype, n=64, seed=0):
    """n values of `dtype` from random bits: every bit pattern the type's storage holds (NaN payloads,
    -0, subnormals), limited to its defined bits for bool and the sub-byte types."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=n * dtype.itemsize, dtype=np.uint8)
    if dtype == np.bool_:
        raw %= 2
    elif dtype.itemsize == 1 and dtype.kind == "V":
        bits = (ml_dtypes.finfo(dtype) if "float" in dtype.name else ml_dtypes.iinfo(dtype)).bits
        raw &= np.uint8(2 ** min(bits, 8) - 1)  # a sub-byte type defines the low `bits` bits only
    return raw.view(dtype)


def _raw(a):
    return np.asarray(a).reshape(-1).view(np.uint8)  # the stored bytes (reshape: a 0-d array has no view)


def test_the_dtype_lists_cover_what_the_issue_names():
    for name in ["bfloat16", "float8_e4m3fn", "float8_e5m2", "int4", "uint4"]:
        assert name in EXTENDED


@pytest.mark.parametrize("name", STANDARD + EXTENDED)
def test_every_dtype_round_trips_bit_exactly(tmp_path, name):
    x = _bits(getattr(jnp, name) if name != "bool" else np.bool_).reshape(4, 16)
    t = {"np": x, "scalar": x[1, 3]}
    if np.dtype(x.dtype).itemsize < 8 and not name.startswith(("float6", "int1", "uint1")):  # no XLA CPU type
        t["jax"] = jnp.asarray(x)  # a JAX array leaf, as checkpoints hold them
    io.save_tree(tmp_path / "t.npz", t)
    for like in (t, jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), t)):
        back = io.load_tree(tmp_path / "t.npz", like)
        for k in t:
            assert back[k].dtype == np.asarray(t[k]).dtype and back[k].shape == np.shape(t[k]), k
            np.testing.assert_array_equal(_raw(back[k]), _raw(t[k]))


def test_an_extended_dtype_against_another_templates_dtype_names_both(tmp_path):
    io.save_tree(tmp_path / "t.npz", {"w": jnp.ones(2, jnp.bfloat16)})
    with pytest.raises(io.CheckpointError, match=r"array 'w' is bfloat16\[2\], expected float16\[2\]"):
        io.load_tree(tmp_path / "t.npz", {"w": jnp.ones(2, jnp.float16)})
    with pytest.raises(io.CheckpointError, match=r"array 'w' is bfloat16\[2\], expected bfloat16\[3\]"):
        io.load_tree(tmp_path / "t.npz", {"w": jax.ShapeDtypeStruct((3,), jnp.bfloat16)})


# ---- typed PRNG keys --------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg", "unsafe_rbg"])
def test_typed_keys_round_trip_with_their_impl_into_concrete_and_abstract_templates(tmp_path, impl):
    key = jax.random.key(7, impl=impl)
    t = {"key": key, "keys": jax.random.split(key, (2, 3)), "legacy": jax.random.PRNGKey(3), "w": jnp.ones(2)}
    io.save_tree(tmp_path / "k.npz", t)
    abstract = jax.eval_shape(lambda: t)  # ShapeDtypeStructs of dtype key<...>: failed before
    assert abstract["key"].dtype == key.dtype
    for like in (t, abstract):
        back = io.load_tree(tmp_path / "k.npz", like)
        for k in ("key", "keys"):
            assert back[k].dtype == key.dtype and back[k].shape == t[k].shape
            assert str(jax.random.key_impl(back[k])) == impl
            np.testing.assert_array_equal(jax.random.key_data(back[k]), jax.random.key_data(t[k]))
        assert back["legacy"].dtype == np.uint32  # a legacy key is a plain uint32 array, and stays one
        np.testing.assert_array_equal(back["legacy"], t["legacy"])
    # the restored key draws what the saved one draws
    np.testing.assert_array_equal(jax.random.normal(back["key"], (3,)), jax.random.normal(key, (3,)))


def test_a_key_of_another_impl_or_a_non_key_template_is_a_clear_error(tmp_path):
    io.save_tree(tmp_path / "k.npz", {"k": jax.random.key(0, impl="rbg")})
    with pytest.raises(io.CheckpointError, match=r"key 'k' is uint32\[4\] key data \(rbg\), expected uint32\[2\]"):
        io.load_tree(tmp_path / "k.npz", {"k": jax.random.key(0)})
    io.save_tree(tmp_path / "u.npz", {"k": jax.random.key(0, impl="unsafe_rbg")})  # rbg's data shape
    with pytest.raises(io.CheckpointError, match=r"key 'k' is a key<urbg> key, expected key<rbg>"):
        io.load_tree(tmp_path / "u.npz", {"k": jax.eval_shape(lambda: jax.random.key(0, impl="rbg"))})
    with pytest.raises(io.CheckpointError, match=r"array 'k' is a typed key \(rbg\), data uint32\[4\]"):
        io.load_tree(tmp_path / "k.npz", {"k": np.zeros(4, np.uint32)})


# ---- flax.nnx: abstract state from nnx.eval_shape as the template ------------------------------------


def test_nnx_state_round_trips_into_eval_shapes_abstract_state(tmp_path):
    nnx = pytest.importorskip("flax.nnx")

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.lin = nnx.Linear(3, 4, rngs=rngs)
            self.head = nnx.Linear(4, 2, rngs=rngs, param_dtype=jnp.bfloat16)
            self.bn = nnx.BatchNorm(4, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)  # holds an RngStream: a typed key and a count

        def __call__(self, x):
            return self.head(self.drop(self.bn(self.lin(x))))

    model = Model(nnx.Rngs(0))
    x = jnp.arange(6.0).reshape(2, 3)
    model(x)  # one training call: batch stats and the dropout stream's count move off their init
    state = nnx.state(model)
    io.save_tree(tmp_path / "m.npz", state)
    graphdef, abs_state = nnx.split(nnx.eval_shape(lambda: Model(nnx.Rngs(1))))
    for like in (abs_state, state):
        back = io.load_tree(tmp_path / "m.npz", like)
        assert isinstance(back, nnx.State)
        for (p, a), b in zip(jax.tree_util.tree_leaves_with_path(back), jax.tree.leaves(state), strict=True):
            if jax.dtypes.issubdtype(b.dtype, jax.dtypes.prng_key):
                a, b = jax.random.key_data(a), jax.random.key_data(b)
            assert a.dtype == b.dtype, p
            np.testing.assert_array_equal(_raw(a), _raw(b))
    restored = nnx.merge(graphdef, io.load_tree(tmp_path / "m.npz", abs_state))
    # training mode again: equal outputs need the same params, batch stats and dropout key and count
    np.testing.assert_array_equal(np.asarray(restored(x)), np.asarray(model(x)))


# ---- files of earlier versions (plain npz) still load -------------------------------------------------


def test_files_in_the_earlier_format_still_load(tmp_path):
    # the earlier writer: np.savez of the arrays by path name; typed keys as their raw key data
    key = jax.random.key(4)
    np.savez(
        tmp_path / "old.npz",
        **{"dense_0/w": np.arange(6.0, dtype=np.float32).reshape(2, 3), "key": np.asarray(jax.random.key_data(key))},
        half=np.arange(3, dtype=ml_dtypes.bfloat16),  # np.savez stored it as void bits ('|V2')
    )
    like = {"dense_0": {"w": jnp.zeros((2, 3))}, "key": key, "half": jnp.zeros(3, jnp.bfloat16)}
    for t in (like, jax.eval_shape(lambda: like)):
        back = io.load_tree(tmp_path / "old.npz", t)
        np.testing.assert_array_equal(back["dense_0"]["w"], np.arange(6.0).reshape(2, 3))
        np.testing.assert_array_equal(jax.random.key_data(back["key"]), jax.random.key_data(key))
        assert back["half"].dtype == jnp.bfloat16 and back["half"].tolist() == [0, 1, 2]


def test_plain_trees_are_written_as_plain_npz_deterministically(tmp_path):
    io.save_tree(tmp_path / "a.npz", tree())
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:  # no metadata member: older readers read it
        assert sorted(z.files) == ["dense_0/b", "dense_0/w", "step"]
        np.testing.assert_array_equal(z["dense_0/w"], tree()["dense_0"]["w"])
    assert io.save_tree(tmp_path / "b.npz", tree()) == io.sha256_file(tmp_path / "a.npz")
    io.save_tree(tmp_path / "c.npz", {"k": jax.random.key(0)})  # a key needs its impl recorded
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["__funcnn_io__.json", "k"]


def test_unreadable_metadata_is_a_checkpoint_error(tmp_path):
    import zipfile

    io.save_tree(tmp_path / "t.npz", {"w": jnp.ones(2, jnp.bfloat16)})
    with zipfile.ZipFile(tmp_path / "t.npz") as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(tmp_path / "t.npz", "w") as z:
        for n, raw in members.items():
            z.writestr(n, b"{not json" if n == "__funcnn_io__.json" else raw)
    with pytest.raises(io.CheckpointError, match=r"t\.npz: its __funcnn_io__\.json is not funcnn's format 2"):
        io.load_tree(tmp_path / "t.npz", {"w": jnp.ones(2, jnp.bfloat16)})


def test_a_name_ending_in_npy_is_refused_not_read_as_another_leaf(tmp_path):
    """Issue #39 (6): numpy's npz reader matches 'w.npy' to the member of 'w', so {'w.npy', 'w'} loaded w's
    values into 'w.npy'. Such a name is refused at save, naming the key."""
    tree = {"w": np.zeros(3, np.float32), "w.npy": np.ones(3, np.float32)}
    with pytest.raises(ValueError, match=r"leaf \['w.npy'\] is named 'w.npy'; names ending in '.npy' are ambiguous"):
        io.save_tree(tmp_path / "t.npz", tree)
    with pytest.raises(ValueError, match=r"names ending in '\.npy'"):
        io.load_tree(tmp_path / "t.npz", tree)
    assert not (tmp_path / "t.npz").exists()
