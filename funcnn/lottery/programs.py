"""A study's compiled programs, and what identifies them: the lowered text, source locations left out.

A study is a handful of programs, each compiled once (JAX's persistent cache keeps them between runs):
`start` (the validation split, θ0 and the reinit draw of every replicate, every seed's batch order),
`states` (members' TrainStates), the round program (`program.make_round_program`, called on groups of
a fixed number of members so the dense and the pruning rounds share one executable per device) and a
round's masks (`rounds`). `digest` hashes a lowered program, so a study's identity is what it computes.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from funcnn import prune, train

__all__ = ["canonical_text", "digest", "group_size", "make_start", "placed", "run_groups"]

Params = Any

# Symbols (`@main`, `@relu`, `@jit_my_function`) are renamed in order of appearance: what a function is
# called is not what it computes, so renaming one (or a lambda's name) keeps the identity.
_SYMBOL = re.compile(r"@[A-Za-z_][\w.$-]*")
# Arguments placed on one device lower with an empty mesh's sharding on each (`{sdy.sharding =
# #sdy.sharding<@empty_mesh, [{}, {}]>}`): where a program runs is not what it computes, so they are dropped
# and its text is the unplaced one (the identity lowers the round placed as the run calls it, to share that lowering).
_EMPTY_MESH = re.compile(r"^ *sdy\.mesh @empty_mesh = <\[\]> \{stablehlo\.mesh = \{axes = \[\]\}\}\n", re.M)
_EMPTY_MESH_SHARDING = re.compile(r" \{sdy\.sharding = #sdy\.sharding<@empty_mesh, \[(?:\{\}(?:, \{\})*)?\]>\}")


def canonical_text(lowered: Any) -> str:
    """A lowered program's StableHLO text without source locations, without the empty mesh of arguments
    placed on one device, and with its symbols renamed `@f0, @f1, ...` in order of appearance (what a
    function is named, or which device runs it, is not what it computes).

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery.programs import canonical_text
        >>> def double(x):
        ...     return 2 * x
        >>> def twice(x):
        ...     return 2 * x
        >>> x = jnp.ones(3)
        >>> canonical_text(jax.jit(double).lower(x)) == canonical_text(jax.jit(twice).lower(x))
        True
        >>> "loc(" in canonical_text(jax.jit(double).lower(x))
        False
    """
    text = _EMPTY_MESH_SHARDING.sub("", _EMPTY_MESH.sub("", lowered.as_text(debug_info=False)))
    names: dict[str, str] = {}
    return _SYMBOL.sub(lambda m: names.setdefault(m.group(0), f"@f{len(names)}"), text)


def placed(tree: Any, device: jax.Device) -> Any:
    """Abstract arrays (`jax.ShapeDtypeStruct`s) placed on `device` as `jax.device_put` places arrays: a
    program lowered for them is the one a call with such arrays lowers (JAX's lowering cache keys on it).

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn.lottery.programs import canonical_text, placed
        >>> x = jax.ShapeDtypeStruct((3,), np.float32)
        >>> at = placed(x, jax.devices()[0])
        >>> at.sharding.device_set == {jax.devices()[0]}, at.shape
        (True, (3,))
        >>> canonical_text(jax.jit(jax.nn.relu).lower(at)) == canonical_text(jax.jit(jax.nn.relu).lower(x))
        True
    """
    place = jax.sharding.SingleDeviceSharding(device)
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=place, weak_type=a.weak_type), tree)


def digest(lowered: Any) -> str:
    """SHA-256 of `canonical_text(lowered)`: a program's identity.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> from funcnn.lottery.programs import digest
        >>> x = jnp.ones(3)
        >>> digest(jax.jit(jax.nn.relu).lower(x)) == digest(jax.jit(jax.nn.relu6).lower(x))
        False
    """
    return hashlib.sha256(canonical_text(lowered).encode()).hexdigest()


def make_start(
    init: Callable[[jax.Array, tuple], Params],
    input_shape: tuple,
    *,
    n: int,
    n_val: int | None,
    seeds: np.ndarray,
    iterations: int,
    batch_size: int,
    sequential: bool,
) -> Callable[[jax.Array], tuple[Any, Params, Params, jax.Array]]:
    """`start(key) -> (perm, theta0, theta0_reinit, idx)`: everything a study draws from its key, as one
    program. key splits into (data, init, reinit, order, random); perm: the shuffle of the n training
    examples whose first n_val are held out (None without n_val); theta0 / theta0_reinit: every
    replicate's init from fold_in(k_init / k_reinit, seed); idx (seeds, iterations, batch_size): each
    seed's batch order (epoch e: `train.batch_indices(fold_in(fold_in(k_order, s), e), ...)`), or with
    `sequential` step t's examples t*B mod n ... + B - 1 for every seed.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn import nn
        >>> from funcnn.lottery.programs import make_start
        >>> net = nn.serial(nn.Dense(3))
        >>> start = make_start(net.init, (4,), n=10, n_val=2, seeds=np.arange(2), iterations=5, batch_size=4,
        ...                    sequential=False)
        >>> perm, theta0, reinit, idx = jax.jit(start)(jax.random.key(0))
        >>> perm.shape, theta0["dense_0"]["w"].shape, idx.shape  # 8 training examples: 2 batches an epoch
        ((10,), (2, 4, 3), (2, 5, 4))
    """
    n_train = n - (n_val or 0)
    seeds_arr = np.asarray(seeds)

    def start(key: jax.Array) -> tuple[Any, Params, Params, jax.Array]:
        k_data, k_init, k_reinit, k_order, _ = jax.random.split(key, 5)
        perm = jax.random.permutation(k_data, n) if n_val else None
        s = jnp.asarray(seeds_arr)
        # θ0 and the reinit draw in one vmapped init (one copy of the initializers' code: they are most of
        # this program's compile time), each member's bits as drawn alone
        keys = jnp.concatenate([jax.vmap(lambda v, k=k: jax.random.fold_in(k, v))(s) for k in (k_init, k_reinit)])
        both = jax.vmap(lambda k: init(k, input_shape))(keys)
        r = len(seeds_arr)
        theta0 = jax.tree.map(lambda a: a[:r], both)
        reinit = jax.tree.map(lambda a: a[r:], both)
        n_seeds = int(seeds_arr.max()) + 1 if seeds_arr.size else 0
        if sequential:
            t = (jnp.arange(iterations) * batch_size) % n_train
            one = t[:, None] + jnp.arange(batch_size)[None]
            idx = jnp.broadcast_to(one, (n_seeds, *one.shape))
        else:
            epochs = math.ceil(iterations / (n_train // batch_size))

            def order(v: jax.Array) -> jax.Array:
                k = jax.random.fold_in(k_order, v)
                e = jax.vmap(lambda i: train.batch_indices(jax.random.fold_in(k, i), n_train, batch_size))(
                    jnp.arange(epochs)
                )
                return e.reshape(-1, batch_size)[:iterations]

            idx = jax.vmap(order)(jnp.arange(n_seeds))
        return perm, theta0, reinit, idx

    return start


def group_size(n_members: int, chunk: int | None, n_devices: int) -> int:
    """Members per call of the round program: `chunk` (members vmapped together), but no more than a
    device's share of `n_members` (so every device has work), and all members where chunk is None.

    Example:
        >>> from funcnn.lottery.programs import group_size
        >>> group_size(12, 4, 1), group_size(4, 4, 2), group_size(12, None, 1)
        (4, 2, 12)
    """
    if chunk is None:
        return n_members
    return max(1, min(chunk, math.ceil(n_members / n_devices)))


def _host(tree: Any) -> Any:
    """Device arrays to numpy (typed PRNG keys stay keys, gathered to the host)."""

    def one(a: Any) -> Any:
        if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            return a
        return np.asarray(a)

    return jax.tree.map(one, tree)


def _concat(*parts: Any) -> Any:
    if isinstance(parts[0], jax.Array) and jax.dtypes.issubdtype(parts[0].dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(parts[0])
        bits = np.concatenate([np.asarray(jax.random.key_data(p)) for p in parts])
        return jax.random.wrap_key_data(jnp.asarray(bits), impl=impl)
    return np.concatenate(parts)


def slice_members(tree: Any, lo: int, hi: int, n: int) -> Any:
    """Members lo..hi-1 of a population, padded with copies of its member 0 up to hi - lo where hi > n."""

    def one(a: Any) -> Any:
        part = a[lo : min(hi, n)]
        if hi <= n:
            return part
        pad = a[:1]
        if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            return jnp.concatenate([part] + [pad] * (hi - n))
        return np.concatenate([part] + [pad] * (hi - n))

    return jax.tree.map(one, tree)


def run_groups(
    program: Callable[..., Any],
    carry: Any,
    idx: np.ndarray,
    data: Sequence[Any],
    devices: Sequence[jax.Device],
    group: int,
) -> Any:
    """`program(carry, idx, data)` on consecutive groups of `group` members (the last one padded), the
    groups spread over `devices` in contiguous blocks (`data[d]`: a copy on device d), all dispatched
    before any is read; the results, back on the host in member order.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> from funcnn.lottery.programs import run_groups
        >>> program = jax.jit(lambda c, i, d: (c * d, i + 1))
        >>> devices = jax.devices()[:1]
        >>> out = run_groups(program, np.arange(5.0), np.arange(5), [np.float32(10.0)], devices, group=2)
        >>> out[0].tolist(), out[1].tolist()  # three calls of 2 members, the last one padded
        ([0.0, 10.0, 20.0, 30.0, 40.0], [1, 2, 3, 4, 5])
    """
    n = int(idx.shape[0])
    n_groups = math.ceil(n / group)
    outs = []
    for g in range(n_groups):
        d = (g * len(devices)) // n_groups
        lo, hi = g * group, (g + 1) * group
        share = jax.device_put(slice_members((carry, idx), lo, hi, n), devices[d])
        outs.append((lo, hi, program(*share, data[d])))
    parts = []
    for lo, hi, out in outs:
        keep = min(hi, n) - lo
        parts.append(jax.tree.map(lambda a, k=keep: a[:k], _host(out)))
    return jax.tree.map(_concat, *parts) if len(parts) > 1 else parts[0]


def keys_and(
    start: Callable[[jax.Array], Any], seed: jax.Array, init_state: Callable[[tuple], Any] | None, input_shape: tuple
) -> tuple[Any, dict[str, jax.Array], Params | None]:
    """The start program's outputs, the study's other keys (as key data): 'random' (the arms' draws
    of each round), 'reinit' (fresh draws every round) and 'step' (the members' Dropout bases), and the
    net's initial model state (None for a net without one)."""
    key = jax.random.key(seed)
    _, _, k_reinit, _, k_random = jax.random.split(key, 5)
    keys = {"random": k_random, "reinit": k_reinit, "step": jax.random.fold_in(key, 5)}
    state0 = None if init_state is None else init_state(input_shape)
    return start(key), {k: jax.random.key_data(v) for k, v in keys.items()}, state0


def non_arrays(tree: Any) -> list[str]:
    return [
        prune.path_name(p)
        for p, leaf in jax.tree_util.tree_leaves_with_path(tree)
        if not isinstance(leaf, (jax.Array, np.ndarray))
    ]


def make_carry(
    tx: Any, holds: bool, sweep: dict[str, np.ndarray], step_key: np.ndarray, start_carry: Callable[..., Any]
) -> Callable[..., Any]:
    """`carry(params, masks, seed_of_member, start, model_state, setting, sched, held, opt_state, wait)`:
    members' TrainStates in their round's carry (`start_carry(states, wait)`), every argument with a leading
    member axis but `start`: a fresh optimizer state with its schedule advanced to `sched` (held there for
    good where `held` >= 0, with `holds`), each member's sweep setting in its hyperparameters, a Dropout
    base key per seed (fold_in(step_key, seed), as raw key data so the carry holds plain arrays: the step
    wraps it again, with the same bits), step = start; or `opt_state` where given. Pure; jit it.

    Example:
        >>> import jax
        >>> import numpy as np
        >>> import optax
        >>> from funcnn.lottery.program import start_carry
        >>> from funcnn.lottery.programs import make_carry
        >>> carry = jax.jit(make_carry(optax.adam(1e-3), False, {}, np.zeros(2, np.uint32), start_carry))
        >>> params, masks = {"w": np.ones((3, 2))}, {"w": np.ones((3, 2), bool)}
        >>> i32 = np.zeros(3, np.int32)
        >>> c = carry(params, masks, np.arange(3, dtype=np.int32), np.int32(5), None, i32, i32 + 5, i32 - 1, None, i32)
        >>> c.state.step.tolist(), c.state.key.shape  # 3 members at step 5, each a raw key
        ([5, 5, 5], (3, 2))
    """
    from funcnn.lottery.schedule import advance_schedule

    def carry(
        params: Params,
        masks: Params,
        seed_of_member: jax.Array,
        start: jax.Array,
        model_state: Params | None,
        setting: jax.Array,
        sched: jax.Array,
        held: jax.Array,
        opt_state: Any,
        wait: jax.Array,
    ) -> Any:
        k_step = jax.random.wrap_key_data(jnp.asarray(step_key))
        keys = jax.vmap(lambda s: jax.random.key_data(jax.random.fold_in(k_step, s)))(seed_of_member)

        def one(p: Params, m: Params, ms: Any, k: jax.Array, v: jax.Array, sc: jax.Array, h: jax.Array) -> Any:
            s = train.init_state(p, tx, m, model_state=ms, key=k)
            o = advance_schedule(s.opt_state, sc)
            if holds:
                o = o._replace(hold=h)
            for name, values in sweep.items():
                old = optax.tree_utils.tree_get(o, name)
                o = optax.tree_utils.tree_set(o, **{name: jnp.asarray(values, old.dtype)[v]})
            return s._replace(opt_state=o, step=jnp.asarray(start, jnp.int32))

        states = jax.vmap(one)(params, masks, model_state, keys, setting, sched, held)
        if opt_state is not None:
            states = states._replace(opt_state=opt_state)
        return start_carry(states, wait)

    return carry
