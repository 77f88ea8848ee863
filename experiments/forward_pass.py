"""Forward pass: the course's 2-2-2-2 sigmoid network with its textbook weights. Prints every
layer's activations for [1, -1] (-> [0.98, 0.12], [0.86, 0.11], [0.62, 0.83]) and for a second
input, and draws the network with the activations written on its units.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from funcnn import nn

# Rows are output units, as the course writes them: layer output = sigmoid(W @ x + b).
TEXTBOOK = [
    ([[1, -2], [-1, 1]], [1, 0]),
    ([[2, -1], [-2, -1]], [0, 0]),
    ([[3, -1], [-1, 4]], [-2, 2]),
]


def toy_network():
    """The 2-2-2-2 serial net and its params (our `w` is the transpose of the course's W)."""
    net = nn.serial(nn.Dense(2), nn.Sigmoid(), nn.Dense(2), nn.Sigmoid(), nn.Dense(2), nn.Sigmoid())
    params = net.init(jax.random.key(0), (2,))
    for i, (w, b) in enumerate(TEXTBOOK):
        params[f"dense_{2 * i}"] = {"w": jnp.asarray(np.array(w, np.float32).T), "b": jnp.asarray(b, jnp.float32)}
    return net, params


def layer_activations(net, params, x) -> list[np.ndarray]:
    """The input and the output of every Dense+Sigmoid pair, running the layers one by one."""
    outs, h = [np.asarray(x)], jnp.asarray(x)
    for name, layer in zip(nn.layer_names(net.layers), net.layers, strict=True):
        h = layer.apply(params[name], h)
        if layer.kind == "sigmoid":
            outs.append(np.asarray(h))
    return outs


def draw(acts: list[np.ndarray], path: Path):
    plt = common.plt
    fig, ax = plt.subplots(figsize=(7, 3.2))
    pos = {(layer, u): (layer * 2.0, 1.0 - u * 1.2) for layer in range(4) for u in range(2)}
    for layer in range(3):
        w, _ = TEXTBOOK[layer]
        for u in range(2):
            for v in range(2):
                (x0, y0), (x1, y1) = pos[(layer, v)], pos[(layer + 1, u)]
                ax.plot([x0, x1], [y0, y1], color="0.7", zorder=1)
                ax.text(x0 + 0.3 * (x1 - x0), y0 + 0.3 * (y1 - y0), f"{w[u][v]:+d}", fontsize=7, color="0.4")
    for (layer, u), (px, py) in pos.items():
        ax.add_patch(common.plt.Circle((px, py), 0.32, color="tab:blue" if layer else "tab:gray", zorder=2))
        ax.text(px, py, f"{acts[layer][u]:.2f}", ha="center", va="center", color="white", fontsize=9, zorder=3)
    for layer, label in enumerate(["input", "hidden 1", "hidden 2", "output"]):
        ax.text(layer * 2.0, 1.6, label, ha="center")
    ax.set_xlim(-0.6, 6.6), ax.set_ylim(-0.8, 1.9), ax.set_aspect("equal"), ax.set_axis_off()
    return common.save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("forward_pass", __doc__)
    p.add_argument("--second-input", type=float, nargs=2, default=[0.5, 2.0], metavar=("X1", "X2"))
    args = p.parse_args(argv)
    out = common.out_folder(args.out)
    net, params = toy_network()
    results, rows = {"inputs": {}}, []
    for x in ([1.0, -1.0], list(args.second_input)):
        acts = layer_activations(net, params, jnp.asarray(x, jnp.float32))
        key = f"[{x[0]:g}, {x[1]:g}]"
        results["inputs"][key] = {
            "hidden_1": acts[1].tolist(),
            "hidden_2": acts[2].tolist(),
            "output": acts[3].tolist(),
        }
        np.testing.assert_allclose(acts[3], net.apply(params, jnp.asarray(x)), rtol=1e-6)  # one pass == layer by layer
        rows.append([key] + [f"[{a[0]:.2f}, {a[1]:.2f}]" for a in acts[1:]])
    print(common.table(["input", "hidden 1", "hidden 2", "output"], rows))
    fig = draw(layer_activations(net, params, jnp.array([1.0, -1.0])), out / "network.png")
    results["figures"] = [str(fig)]
    common.save_results(out, results)
    print(f"results: {out / 'results.json'}  figure: {fig}")
    return results


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-forward-pass`): run `main(argv)`, return exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
