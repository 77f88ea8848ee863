"""Adapters: a flax.nnx, flax.linen or equinox network as a funcnn net (a `Layer`).

    net = from_nnx(lambda rngs: CNN(rngs=rngs), input_shape=(28, 28, 1))  # a factory make(rngs)
    net = from_flax(MLP(), input_shape=(40,))                               # a flax.linen Module
    net = from_equinox(lambda key: eqx.nn.MLP(40, 10, 32, 2, key=key))      # a factory make(key)
    params = net.init(key, (40,))        # a pytree of arrays only: prune, train, lottery.run take it
    state = net.init_state((40,))        # BatchNorm's statistics ({} for a stateless module)
    y, state = net.apply_with_state(params, state, x, key=key, train=True)

Each returns a `Layer` (kind 'nnx', 'flax' or 'equinox') that works wherever a funcnn net does
(`train.fit`, `lottery.run`, `stability.stability`, `io.save_tree`), `serial` included: train=True
is the library's training mode (BatchNorm on batch statistics, updating its running averages, which
come back as the new state; Dropout on, its masks drawn from `key`), train=False its eval mode.
Given `input_shape`, each declares in `unit_layout` (`funcnn.prune.layout.UnitLayout`) where its
weights' units lie and which layer is the output layer (found by probing), for structured pruning.
None of the libraries is a dependency of funcnn: each is imported when its adapter is called.

    nnx.py         from_nnx: nnx.Param state as params, the other variables as state
    flax_linen.py  from_flax: 'params' and 'batch_stats'; train_arg says how the module takes train
    equinox.py     from_equinox: the model's arrays, its eqx.nn.State; inference_mode for eval
"""

from funcnn.interop.equinox import from_equinox
from funcnn.interop.flax_linen import from_flax
from funcnn.interop.nnx import from_nnx

__all__ = ["from_equinox", "from_flax", "from_nnx"]
