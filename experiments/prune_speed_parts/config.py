"""The networks prune_speed prunes, their training budgets, and the conv implementations it times."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from funcnn import compaction, models, nn

Params = Any
INPUT_SHAPE = (28, 28, 1)


class Model(NamedTuple):
    """A network to prune: its builder (taking the conv implementation), the output layer's name, its
    convolutions' names (pruned at half the unstructured rate) and its title."""

    build: Callable[[str], nn.Layer]
    output: str
    convs: tuple[str, ...]
    title: str


MODELS = {
    "lenet": Model(lambda impl: models.lenet_300_100(), "dense_5", (), "LeNet-300-100"),
    "conv2": Model(lambda impl: models.conv2(impl=impl), "dense_10", ("conv2d_0", "conv2d_2"), "Conv-2"),
    # OpenLTH's CIFAR ResNets (BatchNorm, no conv biases); every conv at the full IMP rate
    "resnet8": Model(lambda impl: models.resnet(8, 16, impl=impl), "dense_10", (), "ResNet-8 (width 16)"),
    "resnet20": Model(lambda impl: models.resnet20(impl=impl), "dense_22", (), "ResNet-20"),
}


def state_like(net: nn.Layer) -> Params | None:
    """The net's (BatchNorm) state at init, or None for a stateless net."""
    state = net.init_state(INPUT_SHAPE)
    return state if jax.tree.leaves(state) else None


class Budget(NamedTuple):
    """Training budget of one model. epochs: dense training; finetune_epochs: each unstructured arm's
    fine-tuning (below 1: one pass over that fraction of the training images, drawn at random), of the
    masked full-size net; structured_epochs: each structured arm's, of the compacted net (cheaper);
    imp_rate / imp_rounds: unstructured pruning; keep: the structured arms' fractions of units kept;
    structured_whole: layers the structured arms leave whole (besides the output layer); dense_polish:
    epochs the dense net trains on from finetune_lr after its first `epochs` (a warm restart)."""

    train_images: int
    epochs: int
    lr: float
    finetune_epochs: float
    finetune_lr: float
    imp_rate: float
    imp_rounds: int
    keep: tuple[float, ...]
    structured_epochs: float
    batch_size: int = 60
    test_images: int = 10_000
    structured_whole: tuple[str, ...] = ()
    dense_polish: float = 0


# Conv-2 trains at 250-500 images/s on 2 shared cores: 2 epochs dense (4-8 min), half-epoch fine-tunings
# of the masked net, one epoch of each compacted structured net (2.5-6x cheaper per image).
BUDGETS = {
    # structured: only the first hidden layer, which holds 88% of LeNet's multiply-adds (784 x 300), to
    # widths that are multiples of 16 (224, 160, 128, 112, 96, 80): whole SIMD registers (AVX-512: 16 floats)
    "lenet": Budget(
        60_000,
        20,
        1.2e-3,
        4,
        3e-4,
        0.36,
        9,
        tuple(w / 300 for w in (224, 160, 128, 112, 96, 80)),
        4,
        structured_whole=("dense_3",),
    ),
    # Conv-2: 2 epochs, then 4 more from the fine-tuning rate (2 epochs alone left it 0.6 pt short)
    "conv2": Budget(60_000, 2, 2e-3, 0.5, 5e-4, 0.6, 2, (0.625, 0.5, 0.375, 0.25), 1, dense_polish=4),
    # ResNets (opt-in: --models resnet8 / resnet20). Structured: the inner convs only (`stream_convs`
    # whole), to 8 / 4 of 16 (x2, x4 deeper); every arm fine-tunes the masked full-size net.
    "resnet8": Budget(
        5000,
        3,
        2e-3,
        0.5,
        5e-4,
        0.5,
        2,
        (0.5, 0.25),
        0.5,
        test_images=2000,
        structured_whole=compaction.stream_convs(models.resnet(8, 16)),
    ),
    "resnet20": Budget(
        60_000, 10, 2e-3, 1, 5e-4, 0.5, 3, (0.5, 0.25), 2, structured_whole=compaction.stream_convs(models.resnet20())
    ),
}
QUICK = {
    "lenet": Budget(2000, 1, 1.2e-3, 1, 3e-4, 0.5, 1, (0.5,), 1, test_images=1000),
    "conv2": Budget(300, 1, 1e-3, 1, 3e-4, 0.5, 1, (0.5,), 1, batch_size=30, test_images=1000),
    **{
        name: Budget(
            300,
            1,
            2e-3,
            1,
            5e-4,
            0.5,
            1,
            (0.5,),
            1,
            batch_size=30,
            test_images=1000,
            structured_whole=compaction.stream_convs(build()),
        )
        for name, build in (("resnet8", lambda: models.resnet(8, 16)), ("resnet20", models.resnet20))
    },
}
DENSE_FIELDS = ("train_images", "epochs", "lr", "batch_size", "test_images", "dense_polish")
ARM_FIELDS = {
    "dense": DENSE_FIELDS,
    "dense-longer": (*DENSE_FIELDS, "structured_epochs", "finetune_lr", "keep"),
    "unstructured": (*DENSE_FIELDS, "finetune_epochs", "finetune_lr", "imp_rate"),
    "structured": (*DENSE_FIELDS, "structured_epochs", "finetune_lr", "structured_whole"),
}
"""The budget fields an arm depends on: a rerun retrains an arm only when one of them changed."""
IMPLS = {"lenet": ("auto",), "conv2": ("im2col", "xla"), "resnet8": ("im2col", "xla"), "resnet20": ("im2col", "xla")}
EVAL_IMPL = "xla"  # XLA's convolution: the faster one at batch 1,000 (for the test-set evaluations)
