"""Pruning foreign trees (flax.nnx, flax.linen, equinox) gives the answer the same plain dict gets,
or asks: names, Param nodes, RNG leaves, unit axes and the output layer are never guessed (#29)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

eqx = pytest.importorskip("equinox")
fnn = pytest.importorskip("flax.linen")
nnx = pytest.importorskip("flax.nnx")

from funcnn import prune  # noqa: E402
from funcnn.lottery import spec as lottery_spec  # noqa: E402


class NnxMLP(nnx.Module):
    """4-8-6-3 with dropout: its state holds Params, and the dropout's RNG key and count."""

    def __init__(self, rngs):
        self.l1 = nnx.Linear(4, 8, rngs=rngs)
        self.l2 = nnx.Linear(8, 6, rngs=rngs)
        self.head = nnx.Linear(6, 3, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)

    def __call__(self, x):
        return self.head(self.drop(jax.nn.relu(self.l2(jax.nn.relu(self.l1(x))))))


class LinenMLP(fnn.Module):
    @fnn.compact
    def __call__(self, x):
        x = fnn.relu(fnn.Dense(8)(x))
        return fnn.Dense(3, name="head")(x)


class LinenConvNet(fnn.Module):
    @fnn.compact
    def __call__(self, x):
        x = fnn.relu(fnn.Conv(4, (3, 3))(x))
        x = fnn.relu(fnn.Conv(4, (3, 3))(x))
        return fnn.Dense(3)(x.reshape((x.shape[0], -1)))


def nnx_model(seed=0):
    return NnxMLP(nnx.Rngs(seed))


def eqx_params(seed=0, width=16):
    model = eqx.nn.MLP(10, 3, width, 2, key=jax.random.key(seed))  # weights (out, in)
    return eqx.partition(model, eqx.is_array)


def names(tree):
    return [prune.path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]


def is_param(x):
    return isinstance(x, nnx.Variable)


# ---- names -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_path_names_and_layers_of_real_nnx_linen_and_equinox_models():
    model = nnx_model()
    params = nnx.state(model, nnx.Param)
    expect = ["head/bias", "head/kernel", "l1/bias", "l1/kernel", "l2/bias", "l2/kernel"]
    assert names(params) == expect  # nnx's paths end in .value: dropped
    assert names(nnx.as_pure(params)) == expect and names(nnx.to_pure_dict(params)) == expect
    assert names(nnx.state(model)) == ["drop/rngs/count", "drop/rngs/key", *expect]
    checkpoint = {"l1": {"kernel": {"value": np.zeros((4, 8))}}}  # an nnx checkpoint restored as dicts
    assert names(checkpoint) == ["l1/kernel"]
    assert [prune.layer_of(n) for n in expect] == ["head", "head", "l1", "l1", "l2", "l2"]
    assert prune.layer_of("l1/kernel/value") == "l1"  # a name joined elsewhere, nnx's Variable part kept

    variables = LinenMLP().init(jax.random.key(0), jnp.ones((1, 4)))
    linen = ["params/Dense_0/bias", "params/Dense_0/kernel", "params/head/bias", "params/head/kernel"]
    assert names(variables) == linen
    assert names(variables["params"]) == [n.removeprefix("params/") for n in linen]
    assert {prune.layer_of(n) for n in linen} == {"params/Dense_0", "params/head"}

    params, _ = eqx_params()
    assert names(params) == [f"layers/{i}/{leaf}" for i in range(3) for leaf in ("weight", "bias")]
    assert {prune.layer_of(n) for n in names(params)} == {"layers/0", "layers/1", "layers/2"}

    class Scale(eqx.Module):
        value: jax.Array  # an equinox attribute named value is the leaf's own name: kept

    assert names([Scale(jnp.ones(2))]) == ["0/value"]


@pytest.mark.slow
def test_layer_joint_pools_an_nnx_layers_kernel_and_bias_as_the_plain_dict_does():
    # Defect 3: with nnx's '/value' each leaf was its own "layer", so each leaf was pruned to 0.5.
    state = nnx.state(nnx_model(1), nnx.Param)
    plain = nnx.to_pure_dict(state)
    everything = lambda name, leaf: True  # kernels and biases
    got = prune.magnitude(state, prune.ones(state), 0.5, scope="layer_joint", spec=prune.prunable(state, everything))
    want = prune.magnitude(plain, prune.ones(plain), 0.5, scope="layer_joint", spec=prune.prunable(plain, everything))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)
    assert names(got) == names(want)
    density = {n: float(d) for n, d in prune.density(got, prune.prunable(state, everything)).items()}
    for layer, (k_in, k_out) in {"l1": (4, 8), "l2": (8, 6), "head": (6, 3)}.items():
        n = k_in * k_out + k_out
        kept = density[f"{layer}/kernel"] * k_in * k_out + density[f"{layer}/bias"] * k_out
        assert round(kept) == n - round(0.5 * n)  # pooled: one count per layer
    assert any(abs(d - 0.5) > 1e-6 for n, d in density.items() if n != "total")  # not 0.5 per leaf


# ---- nnx: RNG leaves and Param nodes -------------------------------------------------------------


@pytest.mark.slow
def test_magnitude_and_random_on_a_full_nnx_state_with_rngs():
    # Defect 7: |key| raised "abs does not accept dtype key<fry>" naming no leaf.
    model = nnx_model(2)
    full = nnx.state(model)
    masks = prune.magnitude(full, prune.ones(full), 0.5)
    assert sorted(prune.density(masks)) == ["head/kernel", "l1/kernel", "l2/kernel", "total"]
    assert bool(masks["drop"]["rngs"]["key"][...]) and bool(masks["drop"]["rngs"]["count"][...])
    only = nnx.state(model, nnx.Param)
    expect = prune.magnitude(only, prune.ones(only), 0.5)
    for layer in ("l1", "l2", "head"):
        np.testing.assert_array_equal(masks[layer]["kernel"][...], expect[layer]["kernel"][...])
        assert bool(masks[layer]["bias"][...].all())
    r = prune.random(jax.random.key(0), full, prune.ones(full), 0.5)
    assert float(prune.density(r)["total"]) == pytest.approx(0.5, abs=0.02)
    units = prune.units_prunable(prune.prunable(full), full, prune.UnitLayout(output_layer="head"))
    s = prune.structured(full, prune.ones(full), 0.5, spec=units, unit_axis=-1)  # RNG leaves in the tree
    assert {n: int(v) for n, v in prune.units_alive(s, units, unit_axis=-1).items()} == {"l1/kernel": 4, "l2/kernel": 3}
    assert bool(s["drop"]["rngs"]["key"][...]) and bool(s["head"]["kernel"][...].all())
    pruned = prune.apply(full, masks)  # keys pass through; kernels masked
    assert jax.random.key_data(pruned["drop"]["rngs"]["key"][...]).tolist() == (
        jax.random.key_data(full["drop"]["rngs"]["key"][...]).tolist()
    )
    nnx.update(model, pruned)
    assert float(jnp.sum(model.l1.kernel[...] == 0)) == 16  # half of 4 x 8
    assert model(jnp.ones((2, 4))).shape == (2, 3)


def test_a_non_floating_leaf_marked_prunable_is_an_error_naming_it():
    full = nnx.state(nnx_model())
    with pytest.raises(ValueError, match=r"prunable: predicate marks leaf 'drop/rngs/count'.*uint32"):
        prune.prunable(full, lambda name, leaf: True)
    spec = jax.tree_util.tree_map_with_path(lambda p, leaf: prune.path_name(p) == "drop/rngs/key", full)
    for fn in ("magnitude", "structured"):
        with pytest.raises(ValueError, match=rf"{fn}: spec marks leaf 'drop/rngs/key' prunable.*key<fry>"):
            getattr(prune, fn)(full, prune.ones(full), 0.5, spec=spec)
    plain = {"w": jnp.ones((3, 3)), "steps": jnp.ones((3, 3), jnp.int32)}
    assert prune.prunable(plain) == {"steps": False, "w": True}  # integers are never prunable by default
    with pytest.raises(ValueError, match=r"leaf 'steps'.*int32"):
        prune.magnitude(plain, prune.ones(plain), 0.5, spec={"steps": True, "w": True})


def test_masks_of_an_nnx_param_state_hold_params_and_plain_masks_fit_it():
    # The masks of nnx.state(model, nnx.Param) hold Param nodes; inside nnx.Optimizer the params are
    # pure arrays (nnx.as_pure), and prune.apply refused the Param-node masks there.
    state = nnx.state(nnx_model(3), nnx.Param)
    masks = prune.magnitude(state, prune.ones(state), 0.6)
    assert all(is_param(x) for x in jax.tree.leaves(masks, is_leaf=is_param))  # masks like params
    pure, pure_masks = nnx.as_pure(state), nnx.as_pure(masks)
    out = prune.apply(pure, masks)  # refused before: "masks must have the params' tree structure"
    assert jax.tree.structure(out) == jax.tree.structure(pure)  # the params' structure
    back = prune.apply(state, pure_masks)
    assert jax.tree.structure(back) == jax.tree.structure(state)
    for a, b, p, m in zip(*map(jax.tree.leaves, (out, back, pure, pure_masks)), strict=True):
        np.testing.assert_array_equal(a, np.where(m, p, 0.0))
        np.testing.assert_array_equal(a, b)
    prune.check_masks(pure, masks)
    prune.check_masks(state, pure_masks)
    theta0 = jax.tree.map(lambda x: x + 1.0, state)
    np.testing.assert_array_equal(
        prune.rewind(theta0, masks)["l1"]["kernel"][...],
        np.where(masks["l1"]["kernel"][...], state["l1"]["kernel"][...] + 1.0, 0.0),
    )
    assert {n: round(float(d), 3) for n, d in prune.density(masks).items()} == {
        n: round(float(d), 3) for n, d in prune.density(pure_masks).items()
    }
    with pytest.raises(ValueError, match="masks must have the params' tree structure"):
        prune.apply(pure, nnx.to_pure_dict(masks))  # a State is not a dict: still checked


# ---- equinox -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_equinox_arrays_prune_like_any_tree():
    params, static = eqx_params(4)
    masks = prune.magnitude(params, prune.ones(params), 0.5)
    assert sorted(prune.density(masks)) == ["layers/0/weight", "layers/1/weight", "layers/2/weight", "total"]
    r = prune.random(jax.random.key(1), params, prune.ones(params), 0.5)
    assert float(prune.density(r)["total"]) == pytest.approx(0.5, abs=0.01)
    model = eqx.combine(prune.apply(params, masks), static)
    assert int(jnp.sum(model.layers[0].weight == 0)) == 80  # half of 16 x 10
    prune.check_masks(params, masks)


# ---- structured: unit axes ---------------------------------------------------------------------------


@pytest.mark.slow
def test_structured_on_equinox_weights_prunes_hidden_units_not_inputs():
    # Defect 2: units were read on the last axis, the inputs of an (out, in) weight: half the inputs
    # went and every hidden unit stayed.
    params, _ = eqx_params(5, width=16)
    spec = jax.tree_util.tree_map_with_path(
        lambda p, f: f and prune.layer_of(prune.path_name(p)) != "layers/2", prune.prunable(params)
    )
    with pytest.raises(
        ValueError, match=r"structured: prunable leaf 'layers/0/weight' \(shape \(16, 10\)\).*unit_axis="
    ):
        prune.structured(params, prune.ones(params), 0.5, spec=spec)
    masks = prune.structured(params, prune.ones(params), 0.5, spec=spec, unit_axis=0)
    assert jax.tree.leaves(spec) == jax.tree.leaves(
        prune.units_prunable(prune.prunable(params), params, prune.UnitLayout(output_layer="layers/2"))
    )
    for i in (0, 1):
        w = np.asarray(masks.layers[i].weight)
        rows = w.any(axis=1)  # hidden unit j: row j of the (out, in) weight
        assert rows.sum() == 8 and np.all(w.all(axis=1) | ~rows)  # 8 of 16 whole units
        assert w.any(axis=0).all()  # every input (column) keeps weights: all 10 inputs of layer 0
    assert bool(masks.layers[2].weight.all())  # the output layer's units are the classes
    # The same as funcnn's (in, out) view of the transposed weights, pruned on their last axis.
    as_funcnn = {f"dense_{i}": {"w": params.layers[i].weight.T} for i in (0, 1)}
    ref = prune.structured(as_funcnn, prune.ones(as_funcnn), 0.5)
    for i in (0, 1):
        np.testing.assert_array_equal(masks.layers[i].weight, ref[f"dense_{i}"]["w"].T)
    layout = prune.UnitLayout("layers/2", {f"layers/{i}/weight": 0 for i in range(3)})
    for axis in (layout, {"layers": 0}, {"layers/0": 0, "layers/1/weight": 0}):
        again = prune.structured(params, prune.ones(params), 0.5, spec=spec, unit_axis=axis)
        for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(masks), strict=True):
            np.testing.assert_array_equal(a, b)
    alive = prune.units_alive(masks, spec, unit_axis=0)
    assert {n: int(v) for n, v in alive.items()} == {"layers/0/weight": 8, "layers/1/weight": 8}
    shuffled = prune.structured_random_like(jax.random.key(0), masks, spec, unit_axis=0)
    w = np.asarray(shuffled.layers[0].weight)
    assert w.any(axis=1).sum() == 8 and np.all(w.all(axis=1) | ~w.any(axis=1))  # whole rows
    scores = prune.unit_scores(params, prune.ones(params), unit_axis=0)
    np.testing.assert_allclose(scores.layers[0].weight, np.abs(np.asarray(params.layers[0].weight)).sum(1), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_a_unit_axis_anywhere_is_the_last_axis_moved(axis):
    # Property: structured on a kernel whose units sit on `axis` is structured on the kernel with
    # that axis moved last, moved back; for conv kernels (4-D) and under jit and vmap.
    k = jax.random.normal(jax.random.key(axis % 5), (3, 5, 4, 6))
    m0 = jax.random.bernoulli(jax.random.key(7), 0.8, k.shape)
    last = {"c_0": {"w": jnp.moveaxis(k, axis, -1)}}
    ref = prune.structured(last, {"c_0": {"w": jnp.moveaxis(m0, axis, -1)}}, 0.4, norm="l2")["c_0"]["w"]
    tree, masks = {"conv": {"kernel": k}}, {"conv": {"kernel": m0}}
    run = jax.jit(lambda p, m: prune.structured(p, m, 0.4, norm="l2", unit_axis=axis))
    np.testing.assert_array_equal(run(tree, masks)["conv"]["kernel"], jnp.moveaxis(ref, -1, axis))
    pop = jax.tree.map(lambda a: jnp.stack([a, a]), (tree, masks))
    twice = jax.vmap(lambda p, m: prune.structured(p, m, 0.4, norm="l2", unit_axis=axis))(*pop)
    np.testing.assert_array_equal(twice["conv"]["kernel"][1], jnp.moveaxis(ref, -1, axis))


def test_structured_on_nnx_and_linen_kernels_with_their_axis():
    state = nnx.state(nnx_model(6), nnx.Param)
    spec = prune.units_prunable(prune.prunable(state), state, prune.UnitLayout(output_layer="head"))
    with pytest.raises(ValueError, match=r"prunable leaf 'l1/kernel'.*unit_axis=-1 for flax"):
        prune.structured(state, prune.ones(state), 0.5, spec=spec)
    masks = prune.structured(state, prune.ones(state), 0.5, spec=spec, unit_axis=-1)
    plain = {"dense_0": {"w": state["l1"]["kernel"][...]}, "dense_1": {"w": state["l2"]["kernel"][...]}}
    ref = prune.structured(plain, prune.ones(plain), 0.5)
    np.testing.assert_array_equal(masks["l1"]["kernel"][...], ref["dense_0"]["w"])
    np.testing.assert_array_equal(masks["l2"]["kernel"][...], ref["dense_1"]["w"])
    assert bool(masks["head"]["kernel"][...].all())
    variables = LinenMLP().init(jax.random.key(0), jnp.ones((1, 4)))
    lm = prune.structured(variables, prune.ones(variables), 0.5, unit_axis={"params/Dense_0": -1, "params/head": -1})
    assert int(np.asarray(lm["params"]["Dense_0"]["kernel"]).any(axis=0).sum()) == 4


@pytest.mark.parametrize(
    "unit_axis,match",
    [
        (True, r"unit_axis must be None, an int"),
        ("last", r"unit_axis must be None, an int"),
        (2, r"unit_axis=2 is out of range for leaf 'layers/0/weight' of shape \(16, 10\)"),
        ({"layers/9": 0}, r"unit_axis names 'layers/9', which is no leaf or layer"),
        ({"layers": 0.5}, r"unit_axis must map leaf or layer names to ints"),
        ({"layers": 0, "layers/0/bias": 1}, r"unit_axis=1 is out of range for leaf 'layers/0/bias'"),
        (prune.UnitLayout(unit_axes={"layers/0/weight": 0}), r"prunable leaf 'layers/1/weight'.*no declared"),
        (prune.UnitLayout(unit_axes=[("layers", 0)]), r"UnitLayout.unit_axes must be \{leaf name: axis\}"),
    ],
)
def test_bad_unit_axis_names_the_argument(unit_axis, match):
    params, _ = eqx_params()
    for call in (
        lambda: prune.structured(params, prune.ones(params), 0.5, unit_axis=unit_axis),
        lambda: prune.units_alive(prune.ones(params), unit_axis=unit_axis),
        lambda: prune.structured_random_like(jax.random.key(0), prune.ones(params), unit_axis=unit_axis),
        lambda: prune.unit_scores(params, prune.ones(params), unit_axis=unit_axis),
    ):
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.slow
def test_funcnn_trees_are_the_same_with_or_without_their_declared_axis():
    ks = jax.random.split(jax.random.key(0), 3)
    p = {
        "conv2d_0": {"w": jax.random.normal(ks[0], (3, 3, 2, 6)), "b": jnp.zeros(6)},
        "dense_1": {"w": jax.random.normal(ks[1], (24, 7)), "b": jnp.zeros(7)},
        "prelu_2": {"alpha": jnp.float32(0.1)},
        "dense_3": {"w": jax.random.normal(ks[2], (7, 3))},
    }
    m = prune.magnitude(p, prune.ones(p), 0.3)
    base = prune.structured(p, m, 0.5, layer_rates={"dense_3": 0.0})
    for axis in (-1, {"conv2d_0": 3, "dense_1/w": 1}, prune.UnitLayout("dense_3", {"dense_1/w": -1})):
        other = prune.structured(p, m, 0.5, layer_rates={"dense_3": 0.0}, unit_axis=axis)
        for a, b in zip(jax.tree.leaves(base), jax.tree.leaves(other), strict=True):
            np.testing.assert_array_equal(a, b)
    assert prune.unit_scores(p, m)["prelu_2"]["alpha"].shape == (1,)  # a 0-d leaf: one unit
    np.testing.assert_array_equal(prune.unit_scores(p, m)["dense_1"]["b"], np.zeros(7))  # a 1-D leaf: its entries


# ---- the output layer ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_output_layer_is_declared_or_asked_for_never_guessed():
    # Defect 1: unless every name ended in _<n>, the output layer was the alphabetically last layer.
    w = np.zeros((4, 4))
    params = {"fc1": {"kernel": w}, "fc2": {"kernel": w}, "classifier": {"kernel": w}}
    with pytest.raises(ValueError, match=r"output_layer="):
        lottery_spec.output_layer(params)  # was 'fc2'
    with pytest.raises(
        ValueError, match=r"candidates \(layers with prunable leaves\): \['classifier', 'fc1', 'fc2'\].*output_layer="
    ):
        prune.output_layer(params)
    assert prune.output_layer(params, prune.UnitLayout(output_layer="classifier")) == "classifier"
    with pytest.raises(ValueError, match=r"layout.output_layer='head' is no layer with prunable leaves"):
        prune.output_layer(params, prune.UnitLayout(output_layer="head"))
    with pytest.raises(ValueError, match=r"layout must be None or a prune.UnitLayout"):
        prune.output_layer(params, "classifier")
    # linen names each kind's layers from 0: 'Conv_1' has the highest index, 'Dense_0' is the output.
    variables = LinenConvNet().init(jax.random.key(0), jnp.ones((1, 6, 6, 1)))["params"]
    with pytest.raises(ValueError, match=r"\['Conv_0', 'Conv_1', 'Dense_0'\]"):
        prune.output_layer(variables)
    state = nnx.state(nnx_model(), nnx.Param)
    with pytest.raises(ValueError, match=r"\['head', 'l1', 'l2'\]"):
        prune.output_layer(state)
    with pytest.raises(ValueError, match=r"\['head', 'l1', 'l2'\]"):
        lottery_spec.units_prunable(prune.prunable(state), state)  # the lottery's path: asks too
    spec = lottery_spec.units_prunable(prune.prunable(state), state, prune.UnitLayout(output_layer="head"))
    assert {n: bool(f) for n, f in zip(names(spec), jax.tree.leaves(spec), strict=True) if f} == {
        "l1/kernel": True,
        "l2/kernel": True,
    }
    # A funcnn net wrapping a foreign one: 'flax_1' holds linen's Dense_0 and Dense_1, no funcnn layer.
    with pytest.raises(ValueError, match=r"\['dense_0', 'flax_1/Dense_0', 'flax_1/Dense_1'\]"):
        prune.output_layer({"dense_0": {"w": w}, "flax_1": {"Dense_0": {"kernel": w}, "Dense_1": {"kernel": w}}})


def test_funcnn_names_still_give_the_output_layer():
    from funcnn import models, nn

    w, b = np.zeros((2, 2)), np.zeros(2)
    tree = {"dense_0": {"w": w, "b": b}, "dense_10": {"w": w}, "dense_2": {"w": w}, "prelu_11": {"alpha": b}}
    assert prune.output_layer(tree) == lottery_spec.output_layer(tree) == "dense_10"
    lenet = models.lenet_300_100().init(jax.random.key(0), (28, 28, 1))
    assert prune.output_layer(lenet) == "dense_5"
    res = nn.serial(nn.Dense(4), nn.Residual(nn.serial(nn.Dense(4), nn.Relu())), nn.Dense(2))
    assert prune.output_layer(res.init(jax.random.key(0), (3,))) == "dense_2"
    with pytest.raises(ValueError, match="candidates"):  # the highest index holds no funcnn 'w' leaf
        prune.output_layer({"dense_3": {"w": w}, "dense_5": {"kernel": w}})
    with pytest.raises(ValueError, match="candidates"):  # an index twice: not one serial's names
        prune.output_layer({"dense_1": {"w": w}, "conv_1": {"w": w}})
    assert prune.output_layer(tree, prune.UnitLayout()) == "dense_10"  # a layout that names none: funcnn's rule
