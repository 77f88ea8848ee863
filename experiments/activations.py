"""Activation functions and their derivatives: the course's table (sigmoid, tanh, arctan, binary
step, ReLU, PReLU, ELU, SoftPlus) plotted with analytic and `jax.grad` derivatives overlaid, and the
largest difference between the two per function, away from kinks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from funcnn import activations as act

ORDER = ["sigmoid", "tanh", "arctan", "binary_step", "relu", "prelu", "elu", "softplus"]


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("activations", __doc__)
    p.add_argument("--points", type=common.positive_int, default=801, help="grid points on [-5, 5]")
    args = p.parse_args(argv)
    out = common.out_folder(args.out)
    x = jnp.linspace(-5.0, 5.0, args.points)
    plt = common.plt
    fig, axes = plt.subplots(2, 4, figsize=(14, 6))
    rows, diffs = [], {}
    for ax, name in zip(axes.flat, ORDER, strict=True):
        f, df = act.get(name), act.derivative(name)
        auto = jax.vmap(jax.grad(f))(x)
        away = np.ones(x.shape, bool)
        for k in act.KINKS.get(name, ()):
            away &= np.abs(np.asarray(x) - k) > 1e-6
        diff = float(np.max(np.abs(np.asarray(df(x)) - np.asarray(auto))[away]))
        diffs[name] = diff
        rows.append([name, diff, ", ".join(map(str, act.KINKS.get(name, ()))) or "-"])
        ax.plot(x, f(x), label="f(x)", lw=2)
        ax.plot(x, df(x), label="f'(x) analytic", lw=2)
        ax.plot(x[::25], auto[::25], "k.", label="jax.grad")
        ax.set_title(name), ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    path = common.save_figure(fig, out / "activations.png")
    print(common.table(["activation", "max |analytic - jax.grad|", "kinks excluded"], rows))
    results = {"max_abs_difference": diffs, "grid": [-5.0, 5.0, args.points], "figures": [str(path)]}
    common.save_results(out, results)
    print(f"results: {out / 'results.json'}  figure: {path}")
    return results


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-activations`): run `main(argv)`, return exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
