"""prune.masked(tx, masks): pruned weights stay exactly 0 under Adam with stale moments, in a plain
optax loop, inside nnx.Optimizer and in an equinox loop; plain Adam revives them (the control)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcnn import losses, nn, prune

DENSE_STEPS, PRUNED_STEPS, RATE = 50, 200, 0.7


def _data(n_in=6, n=32):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, n_in)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32)


def _max_pruned(params, masks):
    """max |w| over the pruned entries of every leaf."""
    return max(
        float(np.max(np.abs(np.asarray(p)[~np.asarray(m)]), initial=0.0))
        for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(masks), strict=True)
    )


def _plain_run(wrap):
    """50 dense Adam steps, prune, 200 more steps from the same (stale) Adam state."""
    net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(3))
    params = net.init(jax.random.key(0), (6,))
    x, y = _data()
    grad = jax.grad(lambda p: losses.softmax_cross_entropy(net.apply(p, x), y))

    def run(tx, params, state, steps):
        @jax.jit
        def step(carry, _):
            params, state = carry
            updates, state = tx.update(grad(params), state, params)
            return (optax.apply_updates(params, updates), state), None

        (params, state), _ = jax.lax.scan(step, (params, state), None, length=steps)
        return params, state

    adam = optax.adam(1e-2)
    params, state = run(adam, params, adam.init(params), DENSE_STEPS)
    masks = prune.magnitude(params, prune.ones(params), RATE)
    start = prune.apply(params, masks)
    tx = prune.masked(adam, masks) if wrap else adam
    end, _ = run(tx, start, state, PRUNED_STEPS)
    return start, end, masks


@pytest.mark.slow
def test_masked_adam_keeps_pruned_weights_exactly_zero_in_a_plain_loop():
    start, end, masks = _plain_run(wrap=True)
    assert _max_pruned(end, masks) == 0.0
    w0, w1, m = (np.asarray(t["dense_0"]["w"]) for t in (start, end, masks))
    assert np.abs(w1[m] - w0[m]).max() > 1e-3  # the survivors trained


def test_plain_adam_revives_pruned_weights():
    # The control: masking the params once is not enough; stale moments and new gradients move them.
    _, end, masks = _plain_run(wrap=False)
    assert _max_pruned(end, masks) > 1e-3


def test_gradients_are_masked_before_the_inner_transformation():
    # From a fresh state, Adam's moments at pruned entries stay exactly 0: zeroing only the updates
    # would leave mu = (1 - b1) g there.
    masks = {"w": jnp.array([[True, False, True], [False, True, True]])}
    params = prune.apply({"w": jnp.arange(1.0, 7.0).reshape(2, 3)}, masks)  # masked once, as documented
    tx = prune.masked(optax.adam(0.1), masks)
    state = tx.init(params)
    for _ in range(3):
        updates, state = tx.update({"w": jnp.ones((2, 3))}, state, params)
    mu, nu = state[0].mu["w"], state[0].nu["w"]
    assert float(jnp.abs(mu[~masks["w"]]).max()) == 0.0 and float(jnp.abs(nu[~masks["w"]]).max()) == 0.0
    assert bool(jnp.all(mu[masks["w"]] > 0))
    assert float(jnp.abs(updates["w"][~masks["w"]]).max()) == 0.0


def test_masked_bad_input_names_the_argument():
    params = {"w": jnp.ones((2, 2))}
    with pytest.raises(ValueError, match=r"tx must be an optax.GradientTransformation.*not optax.adam"):
        prune.masked(optax.adam, prune.ones(params))
    with pytest.raises(ValueError, match=r"masks must have bool leaves; mask 'w' has dtype float32"):
        prune.masked(optax.sgd(0.1), params)
    tx = prune.masked(optax.sgd(0.1), prune.ones(params))
    with pytest.raises(ValueError, match=r"updates have a leaf 'v' that masks lack"):
        tx.update({"v": jnp.ones((2, 2))}, tx.init({"v": jnp.ones((2, 2))}))
    with pytest.raises(ValueError, match=r"mask 'w' has shape \(2, 2\), updates \(3,\)"):
        tx.update({"w": jnp.ones(3)}, tx.init({"w": jnp.ones(3)}))


@pytest.mark.slow  # 250 eager-loop steps, twice
def test_masked_adam_in_nnx_optimizer():
    nnx = pytest.importorskip("flax.nnx")

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(6, 8, rngs=rngs)
            self.head = nnx.Linear(8, 3, rngs=rngs)
            self.drop = nnx.Dropout(0.0, rngs=rngs)  # RNG state in the model: never in the masks' way

        def __call__(self, x):
            return self.head(self.drop(jax.nn.relu(self.l1(x))))

    x, y = _data()

    @nnx.jit
    def step(model, opt):
        grads = nnx.grad(lambda m: losses.softmax_cross_entropy(m(x), y))(model)
        opt.update(model, grads)

    ends = {}
    for wrap in (True, False):
        model = MLP(nnx.Rngs(0))
        dense_opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
        for _ in range(DENSE_STEPS):
            step(model, dense_opt)
        params = nnx.state(model, nnx.Param)
        masks = prune.magnitude(params, prune.ones(params), RATE)  # Param nodes holding bools
        nnx.update(model, prune.apply(params, masks))
        start = jax.tree.map(np.array, nnx.as_pure(nnx.state(model, nnx.Param)))  # a copy: state is live
        tx = prune.masked(optax.adam(1e-2), masks) if wrap else optax.adam(1e-2)
        opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
        opt.opt_state = dense_opt.opt_state  # the stale moments of the dense run
        for _ in range(PRUNED_STEPS):
            step(model, opt)
        ends[wrap] = (nnx.as_pure(nnx.state(model, nnx.Param)), nnx.as_pure(masks), start)
    end, masks, start = ends[True]
    assert _max_pruned(end, masks) == 0.0
    assert np.abs(np.asarray(end["l1"]["kernel"]) - np.asarray(start["l1"]["kernel"])).max() > 1e-3
    assert _max_pruned(*ends[False][:2]) > 1e-3  # the control: plain Adam revives them


def _eqx_step(tx, x, y):
    eqx = pytest.importorskip("equinox")

    def loss(model):
        return losses.softmax_cross_entropy(jax.vmap(model)(x), y)

    @eqx.filter_jit
    def step(model, state):
        grads = eqx.filter_grad(loss)(model)  # None where the model has no float array
        updates, state = tx.update(grads, state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), state

    return step


@pytest.mark.slow  # 250 eager-loop steps, twice
def test_masked_adam_in_an_equinox_loop():
    eqx = pytest.importorskip("equinox")
    x, y = _data()
    ends = {}
    for wrap in (True, False):
        model = eqx.nn.MLP(6, 3, 8, 1, key=jax.random.key(0))
        adam = optax.adam(1e-2)
        state = adam.init(eqx.filter(model, eqx.is_array))
        dense_step = _eqx_step(adam, x, y)
        for _ in range(DENSE_STEPS):
            model, state = dense_step(model, state)
        params, static = eqx.partition(model, eqx.is_array)
        masks = prune.magnitude(params, prune.ones(params), RATE)  # None where params are None
        model = eqx.combine(prune.apply(params, masks), static)
        start = eqx.filter(model, eqx.is_array)
        step = _eqx_step(prune.masked(adam, masks) if wrap else adam, x, y)
        for _ in range(PRUNED_STEPS):
            model, state = step(model, state)
        ends[wrap] = (eqx.filter(model, eqx.is_array), masks, start)
    end, masks, start = ends[True]
    assert _max_pruned(end, masks) == 0.0
    assert np.abs(np.asarray(end.layers[0].weight) - np.asarray(start.layers[0].weight)).max() > 1e-3
    assert _max_pruned(*ends[False][:2]) > 1e-3  # the control: plain Adam revives them
