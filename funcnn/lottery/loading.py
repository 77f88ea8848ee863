"""A committed round's arrays read back: `load_round` gives an arm's masks, trained weights and trained
model state (BatchNorm's statistics) as trees, every leaf with a leading seed axis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from funcnn import io

__all__ = ["RoundArrays", "load_round"]


class RoundArrays(NamedTuple):
    """An arm's arrays of a committed round, every leaf (S, ...) for its S members (seeds x settings).

    masks: bool, like params; params: the trained weights (the ones the next round is scored on, with
    `Spec.score_step` those at that step); model_state: the trained running statistics (None for a net
    without); seeds: each member's seed (S,).

    Example:
        >>> import numpy as np
        >>> from funcnn.lottery.loading import RoundArrays
        >>> arrays = RoundArrays({"w": np.ones((2, 3), bool)}, {"w": np.zeros((2, 3))}, None, np.array([0, 1]))
        >>> arrays.params["w"].shape, arrays.seeds.tolist()
        ((2, 3), [0, 1])
    """

    masks: Any
    params: Any
    model_state: Any
    seeds: np.ndarray


def _file(kind: str, arm_index: int, arm: str) -> str:
    return f"{kind}.npz" if arm_index == 0 else f"{kind}_{arm}.npz"


def _nested(path: Path) -> dict:
    """The arrays of an .npz written by `io.save_tree` as nested dicts, by their '/'-joined names."""
    out: dict = {}
    with np.load(path, allow_pickle=False) as z:
        for name in sorted(set(z.files) - {"__funcnn_io__.json"}):
            node = out
            *parents, last = name.split("/")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = z[name]
    return out


def _stacked(like: Any, n: int, dtype: Any = None) -> Any:
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct((n, *np.shape(a)), np.dtype(dtype or np.asarray(a).dtype)), like)


def load_round(
    folder: str | Path, round: int, arm: str | None = None, *, like: Any = None, state_like: Any = None
) -> RoundArrays:
    """The masks, trained params and trained model state of `arm` (default: the round's first arm, the
    ticket) in round `round` of run folder `folder`, checked against the round's COMMIT.

    like: one member's params in the net's own form (`net.init(key, input_shape)`, or
    `jax.eval_shape` of it: an nnx pure dict, an equinox model's arrays): the trees come back in that form,
    with a leading member axis; without it, as nested dicts by the leaves' names ('dense_0/w' ->
    {'dense_0': {'w': ...}}). state_like: the same for the model state (`net.init_state(input_shape)`).

    Example:
        >>> import tempfile
        >>> import jax
        >>> import optax
        >>> from funcnn import nn
        >>> from funcnn.lottery import Spec, load_round, run
        >>> x = jax.random.normal(jax.random.key(0), (64, 4))
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))  # a 4-8-2 MLP
        >>> spec = Spec(net, optax.adam(1e-2), train=(x, y), n_val=16, iterations=20, batch_size=8, eval_every=10,
        ...             rounds=1, rate=0.5, seeds=2, arms=("ticket", "random"))
        >>> with tempfile.TemporaryDirectory() as out:
        ...     _ = run(spec, out=out, progress=False, log=lambda line: None)
        ...     ticket = load_round(out, 1, like=net.init(jax.random.key(0), (4,)))
        ...     random = load_round(out, 1, "random")
        >>> ticket.params["dense_0"]["w"].shape, float(ticket.masks["dense_0"]["w"].mean()), ticket.seeds.tolist()
        ((2, 4, 8), 0.5, [0, 1])
        >>> sorted(random.masks)  # by the leaves' names
        ['dense_0', 'dense_2']
    """
    path = Path(folder) / f"round_{int(round):02d}"
    if not io.verify_commit(path):
        raise ValueError(f"load_round: {path} is not a committed round (missing, or its files fail their checksums)")
    rec = json.loads((path / "metrics.json").read_text())
    arms = list(dict.fromkeys(rec["arms"]))
    arm = arms[0] if arm is None else arm
    if arm not in arms:
        raise ValueError(f"load_round: round {round} has no arm {arm!r}; its arms: {arms}")
    i = arms.index(arm)
    seeds = np.asarray(rec["seeds"])[np.asarray(rec["arms"]) == arm]
    names = {kind: path / _file(kind, i, arm) for kind in ("masks", "trained", "trained_state")}
    if like is None:
        masks, params = _nested(names["masks"]), _nested(names["trained"])
    else:
        masks = io.load_tree(names["masks"], _stacked(like, len(seeds), np.bool_))
        params = io.load_tree(names["trained"], _stacked(like, len(seeds)))
    state = None
    if names["trained_state"].exists():
        state = (
            _nested(names["trained_state"])
            if state_like is None
            else io.load_tree(names["trained_state"], _stacked(state_like, len(seeds)))
        )
    return RoundArrays(masks, params, state, seeds)
