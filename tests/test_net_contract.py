"""One net contract (`train.as_net`): whatever keywords a user's apply takes, every training function
trains it exactly as a hand-written `jax.grad` + optax loop does, and a bad net is named."""

import types

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import losses, nn, train

N_IN, N_HIDDEN, N_OUT = 3, 5, 2


def init(key, input_shape):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (input_shape[-1], N_HIDDEN)) / np.sqrt(input_shape[-1]),
        "b1": jnp.zeros(N_HIDDEN),
        "w2": jax.random.normal(k2, (N_HIDDEN, N_OUT)) / np.sqrt(N_HIDDEN),
        "b2": jnp.zeros(N_OUT),
    }


def reference(p, x, key, train_mode):
    """The model every variant below computes: train mode scales the hidden layer by 0.8, and a key
    adds noise 0.1 N(0, 1) to the output, so a key or a train flag that went missing changes the numbers."""
    h = x @ p["w1"]
    h = jnp.tanh(h + jnp.broadcast_to(p["b1"], h.shape)) * (0.8 if train_mode else 1.0)
    y = h @ p["w2"]
    y = y + jnp.broadcast_to(p["b2"], y.shape)
    return y if key is None else y + 0.1 * jax.random.normal(key, y.shape)


def apply_plain(p, x):
    return reference(p, x, None, False)


def apply_train(p, x, *, train=False):
    return reference(p, x, None, train)


def apply_key(p, x, *, key=None):
    return reference(p, x, key, False)


def apply_both(p, x, *, key=None, train=False):
    return reference(p, x, key, train)


def apply_kwargs(p, x, **kwargs):
    return reference(p, x, kwargs["key"], kwargs["train"])


# name -> (apply, what the model computes given (params, x, key, train)): only what apply takes reaches it
VARIANTS = {
    "plain": (apply_plain, lambda p, x, k, t: reference(p, x, None, False)),
    "train only": (apply_train, lambda p, x, k, t: reference(p, x, None, t)),
    "key only": (apply_key, lambda p, x, k, t: reference(p, x, k, False)),
    "both": (apply_both, reference),
    "**kwargs": (apply_kwargs, reference),
}
FORMS = {
    "(init, apply)": lambda apply: (init, apply),
    "object": lambda apply: types.SimpleNamespace(init=init, apply=apply),
}
CASES = [(f, v) for f in FORMS for v in VARIANTS] + [("Layer", "both")]


def make_net(form, variant):
    apply = VARIANTS[variant][0]
    if form == "Layer":
        return nn.Layer("mine", init, apply, lambda shape: shape[:-1] + (N_OUT,))
    return FORMS[form](apply)


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_IN)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    return x, y


def hand_loop(model, tx, params, batches, keys):
    """Plain jax.grad + optax: the reference every training function must match."""
    opt_state, out = tx.init(params), []

    @jax.jit
    def update(params, opt_state, xb, yb, key):
        value, grads = jax.value_and_grad(lambda p: losses.softmax_cross_entropy(model(p, xb, key, True), yb))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    for (xb, yb), key in zip(batches, keys, strict=True):
        params, opt_state, value = update(params, opt_state, xb, yb, key)
        out.append(float(value))
    return params, out


@pytest.mark.slow
@pytest.mark.parametrize("form,variant", CASES)
def test_make_train_step_trains_every_form_as_the_hand_written_loop(form, variant):
    net, model = make_net(form, variant), VARIANTS[variant][1]
    x, y = _data()
    params, tx, base = init(jax.random.key(0), (N_IN,)), optax.adam(1e-2), jax.random.key(5)
    batches = [(x[i : i + 8], y[i : i + 8]) for i in (0, 8, 0)]
    step = jax.jit(train.make_train_step(net, losses.softmax_cross_entropy, tx))
    state, got = train.init_state(params, tx, key=base), []
    for batch in batches:
        state, metrics = step(state, batch)
        got.append(float(metrics["loss"]))
    want_params, want = hand_loop(model, tx, params, batches, [jax.random.fold_in(base, t) for t in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    chex.assert_trees_all_close(state.params, want_params, rtol=1e-6, atol=1e-7)
    assert got[0] != got[2]  # it trained: the same batch later has another loss


@pytest.mark.slow
@pytest.mark.parametrize("form,variant", [(f, "both") for f in FORMS] + [("(init, apply)", v) for v in VARIANTS])
def test_fit_trains_every_form_as_the_hand_written_loop(form, variant):
    net, model = make_net(form, variant), VARIANTS[variant][1]
    x, y = _data()
    xv, yv = _data(8, seed=1)
    params, tx, key = init(jax.random.key(0), (N_IN,)), optax.adam(1e-2), jax.random.key(3)
    state, history = train.fit(
        net, params, (x, y), (xv, yv), optimizer=tx, epochs=2, batch_size=8, key=key, progress=False
    )
    # fit's documented keys: epoch e's order from fold_in(key, e), step t's key fold_in(fold_in(key, FOLD), t)
    idx = [np.asarray(train.batch_indices(jax.random.fold_in(key, e), 16, 8)) for e in range(2)]
    batches = [(x[i], y[i]) for epoch in idx for i in epoch]
    step_base = jax.random.fold_in(key, train._STEP_KEY_FOLD)
    want_params, want = hand_loop(model, tx, params, batches, [jax.random.fold_in(step_base, t) for t in range(4)])
    np.testing.assert_allclose(history.train_loss, [np.mean(want[:2]), np.mean(want[2:])], rtol=1e-5)
    chex.assert_trees_all_close(state.params, want_params, rtol=1e-5, atol=1e-6)
    # validation: eval mode (train=False, no key), on the final params
    val_loss = losses.softmax_cross_entropy(model(want_params, xv, None, False), yv)
    np.testing.assert_allclose(history.val_loss[-1], float(val_loss), rtol=1e-5)


@pytest.mark.slow
def test_evaluate_and_lr_sweep_take_every_form():
    x, y = _data()
    params = init(jax.random.key(0), (N_IN,))
    want = float(losses.softmax_cross_entropy(reference(params, x, None, False), y))
    for form in FORMS:
        net = make_net(form, "both")
        got = train.make_evaluate(net, losses.softmax_cross_entropy, chunk=5)(params, x, y)
        np.testing.assert_allclose(float(got["loss"]), want, rtol=1e-6)
        sweep = train.lr_sweep(net, params, (x, y), rates=[0.1, 1.0], epochs=1, batch_size=8, key=jax.random.key(1))
        assert sweep["loss"].shape == (2, 1) and sweep["initial_loss"] == pytest.approx(want, rel=1e-6)


def test_as_net_keeps_a_layer_and_wraps_the_rest_into_layers():
    layer = nn.serial(nn.Dense(4), nn.Relu(), nn.Dense(2))
    assert train.as_net(layer) is layer
    for form in FORMS:
        net = train.as_net(make_net(form, "plain"))
        assert isinstance(net, nn.Layer) and net.kind == "net" and net.unit_layout is None
        assert net.output_shape((7, N_IN)) == (7, N_OUT)  # by eval_shape: the output's trailing axes
        params = net.init(jax.random.key(0), (N_IN,))
        x = jnp.ones((4, N_IN))
        y = net.apply(params, x, key=jax.random.key(1), train=True)  # both dropped: apply takes neither
        np.testing.assert_array_equal(y, reference(params, x, None, False))
        y_ws, state = net.apply_with_state(params, {}, x, train=True)
        np.testing.assert_array_equal(y_ws, y)
        assert state == {} and net.init_state((N_IN,)) == {}


@pytest.mark.slow
def test_as_net_uses_an_objects_own_state_functions_and_layout():
    calls = []

    def apply_with_state(p, s, x, *, train=False):
        calls.append(train)
        return reference(p, x, None, train), {"n": s["n"] + 1}

    obj = types.SimpleNamespace(
        init=init,
        apply=apply_plain,
        init_state=lambda shape: {"n": jnp.zeros((), jnp.int32)},
        apply_with_state=apply_with_state,
        output_shape=lambda shape: ("declared",),
        unit_layout="a layout",
        kind="custom",
    )
    net = train.as_net(obj)
    assert (net.kind, net.unit_layout, net.output_shape((N_IN,))) == ("custom", "a layout", ("declared",))
    params, x = init(jax.random.key(0), (N_IN,)), jnp.ones((2, N_IN))
    y, state = net.apply_with_state(params, net.init_state((N_IN,)), x, key=jax.random.key(0), train=True)
    assert calls == [True] and int(state["n"]) == 1  # train reached it; key, which it does not take, did not
    np.testing.assert_array_equal(y, reference(params, x, None, True))
    # through a train step the state is threaded and the optimizer never sees it
    tx = optax.sgd(0.1)
    s = train.init_state(params, tx, model_state=net.init_state((N_IN,)))
    s, _ = train.make_train_step(obj, losses.softmax_cross_entropy, tx)(s, (x, jnp.zeros(2, jnp.int32)))
    assert int(s.model_state["n"]) == 1


def test_an_apply_whose_signature_cannot_be_read_gets_no_keywords():
    class Opaque:
        __signature__ = "unreadable"  # inspect.signature raises TypeError, as for some builtins

        def __call__(self, p, x, **kwargs):
            assert not kwargs, kwargs
            return reference(p, x, None, False)

    assert train.accepts(Opaque()) == (False, False)
    assert train.accepts(apply_key) == (True, False) and train.accepts(apply_kwargs) == (True, True)
    net = train.as_net((init, Opaque()))
    params = net.init(jax.random.key(0), (N_IN,))
    y = net.apply(params, jnp.ones((2, N_IN)), key=jax.random.key(0), train=True)
    np.testing.assert_array_equal(y, reference(params, jnp.ones((2, N_IN)), None, False))


@pytest.mark.slow
def test_a_bare_apply_function_trains_with_given_params_but_is_no_net_to_init():
    x, y = _data()
    params, tx = init(jax.random.key(0), (N_IN,)), optax.sgd(0.1)
    state, _ = train.make_train_step(apply_both, losses.softmax_cross_entropy, tx)(train.init_state(params, tx), (x, y))
    assert int(state.step) == 1
    with pytest.raises(TypeError, match=r"net must be .*pass \(init, apply\)"):
        train.as_net(apply_both)
    with pytest.raises(TypeError, match="apply function alone"):
        train.as_net(apply_both, needs_init=False).init(jax.random.key(0), (N_IN,))


@pytest.mark.parametrize(
    "bad,match",
    [
        ("mlp", r"net must be a funcnn Layer, an object with init\(key, input_shape\) and apply\(params, x\)"),
        (3, r"or a pair \(init, apply\)"),
        ((init,), r"net as a tuple must be a pair \(init, apply\) of functions, got \(function\)"),
        ((init, apply_plain, apply_plain), r"pair \(init, apply\).*got \(function, function, function\)"),
        ((init, "apply"), r"pair \(init, apply\).*got \(function, str\)"),
        (types.SimpleNamespace(init=init), "net must be"),
        (types.SimpleNamespace(init=init, apply=apply_plain, init_state=3), "net.init_state must be a function"),
    ],
)
def test_bad_nets_are_named_with_the_accepted_forms(bad, match):
    with pytest.raises(TypeError, match=match):
        train.as_net(bad)
    with pytest.raises(TypeError, match=match):  # every training function refuses it the same way
        train.make_train_step(bad, losses.mse, optax.sgd(0.1))
    with pytest.raises(TypeError, match=match):
        train.make_evaluate(bad, losses.mse)
    x, y = _data()
    with pytest.raises(TypeError, match=match):
        train.fit(bad, {}, (x, y), (x, y), key=jax.random.key(0), progress=False)
    with pytest.raises(TypeError, match=match):
        train.lr_sweep(bad, {}, (x, y), rates=[0.1], epochs=1, batch_size=8, key=jax.random.key(0))


def test_a_flax_module_is_pointed_to_its_adapter():
    flax_nn = pytest.importorskip("flax.linen")
    with pytest.raises(TypeError, match=r"flax Module \(Dense\).*funcnn.interop.from_flax\(net\)"):
        train.as_net(flax_nn.Dense(3))
    with pytest.raises(TypeError, match=r"model is a flax Module"):
        train.as_net(flax_nn.Dense(3), name="model")
