import json

import jax
import jax.numpy as jnp
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
