"""The MNIST-1D lottery notebook's protocol as a `Spec` (greydanus/mnist1d, notebooks/lottery-tickets.ipynb).

    spec = lottery.mnist1d_notebook()            # 2 trials, 100 levels, the step-1000 scores
    report = lottery.run(spec, out="runs/mnist1d-notebook")

What is reproduced: the network (`models.resmlp`: 40-500-500-10, the residual second layer,
PyTorch's default init), Adam at 2e-2, batch 100 taken in order (`bix = (step * 100) % 4000`,
`batch_order="sequential"`), all 4,000 training sequences (no held-out split: the test set is
the validation set, as the notebook evaluates only on it), evaluation every 100 steps; levels at
absolute sparsities `linspace(0, 1, levels)` (level 0 dense, the last, 100%, left out); at each
level every layer's weights *and biases* pooled and pruned to that fraction (`int(p * n)` lowest
|w| dropped: `scope="layer_joint"`, `rounding="floor"`, every leaf prunable, the output layer
too) on the previous level's weights at step 1000 (`score_step=1000`; or the final weights),
the survivors rewound to θ0 with a fresh Adam; the random control draws a fresh random mask at
every level with each layer's count (not nested); all trials and both arms of a level in one program.

What differs: 1,500 steps a level, where the notebook's loop runs steps 0..1500 (1,501 updates; its
"step 1000" checkpoint is after 1,001 of them): funcnn's rounds are whole numbers of
`eval_every`-step chunks. And the bits: the notebook seeds numpy and `random` but not torch, so
its own runs differ from each other; the protocol is what can be reproduced.
"""

from __future__ import annotations

import numpy as np
import optax

from funcnn import data, models
from funcnn.lottery.spec import Spec

__all__ = ["mnist1d_notebook"]


def mnist1d_notebook(trials: int = 2, levels: int = 100, score: str = "step1000") -> Spec:
    """The notebook's study: `trials` seeds, `levels` sparsity levels (rounds = levels - 2), the
    next level's mask scored on the weights at step 1000 (`score="step1000"`, the notebook's) or at
    the end of the level (`score="final"`).

    Loads MNIST-1D (`data.load("mnist1d")`); `lottery.run(spec, out=...)` trains the study.

    Example:
        >>> from funcnn.lottery import mnist1d_notebook
        >>> spec = mnist1d_notebook(trials=1, levels=5)  # levels at 0%, 25%, 50%, 75% (and 100%) sparsity
        >>> spec.rounds, spec.sparsities, spec.score_step, spec.arms
        (3, (0.25, 0.5, 0.75), 1000, ('ticket', 'random'))
        >>> spec.train[0].shape, spec.iterations, spec.batch_order
        ((4000, 40), 1500, 'sequential')
    """
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise ValueError(f"mnist1d_notebook: trials must be a positive int, got trials={trials!r}")
    if not isinstance(levels, int) or isinstance(levels, bool) or levels < 2:
        raise ValueError(
            f"mnist1d_notebook: levels must be an int >= 2 (dense and one pruned level), got levels={levels!r}"
        )
    if score not in ("step1000", "final"):
        raise ValueError(f"mnist1d_notebook: score must be 'step1000' or 'final', got score={score!r}")
    d = data.load("mnist1d")
    sparsities = tuple(float(p) for p in np.linspace(0, 1, levels)[1:-1])
    return Spec(
        net=models.resmlp(),
        optimizer=optax.adam(2e-2),
        train=(d.x_train, d.y_train),
        val=(d.x_test, d.y_test),
        test=(d.x_test, d.y_test),
        iterations=1500,
        batch_size=100,
        eval_every=100,
        batch_order="sequential",
        rounds=len(sparsities),
        sparsities=sparsities,
        scope="layer_joint",
        rounding="floor",
        prunable=lambda name, leaf: True,
        score_step=1000 if score == "step1000" else None,
        arms=("ticket", "random"),
        seeds=trials,
        checkpoints_per_round=3,
        label="mnist1d-notebook",
    )
