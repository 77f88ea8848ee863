"""Compaction: turn a pruned network into a smaller dense one that computes the same function.

Masks alone never make a network faster: dense hardware multiplies the zeros too. A unit (a Dense
layer's hidden unit, a convolution's output channel) can leave the network when nothing it computes
reaches the output:

- *dead out*: every weight that reads it downstream is pruned, or
- *dead in*: all its incoming weights are pruned, so it outputs a constant (act(b), through any
  BatchNorm or pooling), which is folded into the next layer's bias where that is exact (a Dense
  layer, or a convolution whose padding does not make the constant's contribution vary over space);
  a constant 0 (ReLU of a pruned unit whose bias is masked too, see `mask_dead_biases`) needs no fold.

Units joined by a sum (a `Residual` block, `FanInSum`) form one channel and go only together; the
network's outputs, its inputs and anything a `LayerNorm`, `Reshape` or foreign layer reads stay.
Compaction runs in inference mode (BatchNorm on its running statistics, Dropout off).

    trace.py      the probe pass: which channels are joined, fixed, dead out or dead in
    shrink.py     compact (cut params and state, rebuild the layers), mask_dead_biases
    batchnorm.py  fold_batchnorm, mask_batchnorms
    streams.py    stream_convs (the layers that write a residual stream)

Its old name prune.compact still reaches `compact` for one release, with a `DeprecationWarning`.
"""

from funcnn.compaction.batchnorm import fold_batchnorm, mask_batchnorms
from funcnn.compaction.shrink import compact, mask_dead_biases
from funcnn.compaction.streams import stream_convs
from funcnn.compaction.trace import CHANNELWISE as CHANNELWISE
from funcnn.compaction.trace import PRODUCERS as PRODUCERS

__all__ = ["compact", "fold_batchnorm", "mask_batchnorms", "mask_dead_biases", "stream_convs"]
