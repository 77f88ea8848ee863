"""Convolution kernels and pooling, shown: the course's four 3x3 kernels applied to Fashion-MNIST
images and to a colour photograph (Grace Hopper, shipped inside matplotlib's wheel) as PNG grids; the
course's 4x4 example through 2x2 max and average pooling and through a 3x3 window-sum kernel with
"VALID" and "SAME" padding at strides 1 and 2, every output with its size (windows.png); and a table of
output shapes for paddings VALID / SAME / explicit and strides 1 / 2 / 3.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments import common
from funcnn import conv, data, kernels, pool, windows

COURSE = np.array([[7, 3, 5, 2], [8, 7, 1, 6], [4, 9, 3, 9], [0, 8, 4, 5]], np.float32)
NAMES = ["identity", "gaussian_blur", "sharpen", "edge_detection"]


def photograph_grid(path: Path) -> Path:
    """The four kernels on a colour photograph, each channel filtered on its own."""
    import matplotlib
    from matplotlib import image

    img = image.imread(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").astype(np.float32) / 255
    plt = common.plt
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.6))
    for ax, name in zip(axes, NAMES, strict=True):
        out = np.asarray(kernels.apply_kernel(img, kernels.KERNELS[name]))
        if name == "edge_detection":
            out = np.abs(out).mean(axis=-1)  # edge strength, summed over channels
            ax.imshow(np.clip(out / max(np.percentile(out, 99), 1e-6), 0, 1), cmap="gray")
        else:
            ax.imshow(np.clip(out, 0, 1))
        ax.set_title(name.replace("_", " ")), ax.set_axis_off()
    return common.save_figure(fig, path)


def _matrix(ax, values, title, *, pad=((0, 0), (0, 0)), colors=None):
    """A matrix drawn as a grid of numbers; `pad` rows and columns (zeros) greyed, `colors` a cell ->
    colour map (the pooling windows)."""
    values = np.asarray(values)
    h, w = values.shape
    for i in range(h):
        for j in range(w):
            padded = not (pad[0][0] <= i < h - pad[0][1] and pad[1][0] <= j < w - pad[1][1])
            face = "0.88" if padded else (colors or {}).get((i, j), "white")
            ax.add_patch(common.plt.Rectangle((j, i), 1, 1, facecolor=face, edgecolor="0.3"))
            ax.text(j + 0.5, i + 0.5, f"{values[i, j]:g}", ha="center", va="center", color="0.5" if padded else "k")
    ax.set_xlim(0, 6), ax.set_ylim(6, 0), ax.set_aspect("equal"), ax.set_axis_off()  # one cell size in all
    ax.set_title(title, fontsize=9)


def windows_figure(path: Path) -> tuple[Path, list[dict]]:
    """The course's 4x4 example through 2x2 pooling (stride 2) and a 3x3 window-sum kernel (VALID /
    SAME padding, strides 1 and 2), each output with its size out = floor((n + pad_total - k) / s) + 1."""
    plt = common.plt
    x = COURSE[None, :, :, None]
    fig, axes = plt.subplots(2, 4, figsize=(12, 6.2), layout="constrained")
    shades = {0: "#cfe2f3", 1: "#fce5cd", 2: "#d9ead3", 3: "#ead1dc"}
    colors = {(i, j): shades[2 * (i // 2) + j // 2] for i in range(4) for j in range(4)}
    _matrix(axes[0, 0], COURSE, "input 4x4 (2x2 windows shaded)", colors=colors)
    out_colors = {(i, j): shades[2 * i + j] for i in range(2) for j in range(2)}
    for ax, (name, fn) in zip(axes[0, 1:3], (("max", pool.max_pool), ("average", pool.avg_pool)), strict=True):
        y = np.asarray(fn(x, 2))[0, :, :, 0]
        _matrix(
            ax, y, f"{name} pool 2x2, stride 2 -> {y.shape[0]}x{y.shape[1]}\n(4 - 2) / 2 + 1 = 2", colors=out_colors
        )
    same = windows.resolve_padding("SAME", (4, 4), (3, 3), (1, 1))
    title = f"SAME padding, 3x3 kernel, stride 1:\nzeros {same[0]} above/below, {same[1]} left/right"
    _matrix(axes[0, 3], np.pad(COURSE, same), title, pad=same)
    sizes = []
    for ax, (padding, stride) in zip(axes[1], [("VALID", 1), ("SAME", 1), ("VALID", 2), ("SAME", 2)], strict=True):
        y = np.asarray(conv.conv2d(x, np.ones((3, 3, 1, 1), np.float32), stride=stride, padding=padding))[0, :, :, 0]
        total = sum(windows.resolve_padding(padding, (4, 4), (3, 3), (stride, stride))[0])
        n = windows.output_size(4, 3, stride, total)
        sizes.append({"padding": padding, "stride": stride, "pad_total": total, "size": n, "output": y.tolist()})
        formula = f"floor((4 + {total} - 3) / {stride}) + 1 = {n}"
        _matrix(ax, y, f"3x3 window sums, {padding}, stride {stride}\n-> {n}x{n}: {formula}")
    fig.suptitle("the course's 4x4 example: pooling, padding and stride (output sizes in the titles)")
    return common.save_figure(fig, path), sizes


def main(argv: list[str] | None = None) -> dict:
    p = common.parser("cnn_kernels", __doc__)
    p.add_argument("--images", type=common.positive_int, default=4, help="Fashion-MNIST images to show (default 4)")
    args = p.parse_args(argv)
    out = common.out_folder(args.out)
    d = data.load("fashion-mnist")
    # One image per class, in class order, so the grid shows different shapes.
    picks = [int(np.flatnonzero(d.y_test == c)[0]) for c in range(args.images % 10 or 10)][: args.images]
    images = d.x_test[picks, :, :, 0]
    filtered = {n: np.stack([np.asarray(kernels.apply_kernel(im, kernels.KERNELS[n])) for im in images]) for n in NAMES}
    plt = common.plt
    fig, axes = plt.subplots(len(images), 4, figsize=(8, 2 * len(images)), squeeze=False)
    titles = ["original", "Gaussian blur", "sharpen", "edge detection"]
    for i in range(len(images)):
        for j, (name, title) in enumerate(zip(NAMES, titles, strict=True)):
            axes[i, j].imshow(filtered[name][i], cmap="gray")
            axes[i, j].set_axis_off()
            if i == 0:
                axes[i, j].set_title(title)
    grid = common.save_figure(fig, out / "kernels.png")
    photo = photograph_grid(out / "kernels_photo.png")

    x = COURSE[None, :, :, None]
    max_p = np.asarray(pool.max_pool(x, 2))[0, :, :, 0]
    avg_p = np.asarray(pool.avg_pool(x, 2))[0, :, :, 0]
    print("course example 4x4:\n", COURSE.astype(int))
    print("max pool 2x2 ->\n", max_p)
    print("average pool 2x2 ->\n", avg_p)
    pictured, window_sizes = windows_figure(out / "windows.png")

    rows, shapes = [], []
    for padding in ["VALID", "SAME", 1, ((0, 2), (1, 0))]:
        for stride in (1, 2, 3):
            y = conv.conv2d(
                np.zeros((1, 28, 28, 1), np.float32), np.zeros((3, 3, 1, 1), np.float32), stride=stride, padding=padding
            )
            pads = windows.resolve_padding(padding, (28, 28), (3, 3), (stride, stride))
            formula = tuple(windows.output_size(28, 3, stride, sum(pp)) for pp in pads)
            rows.append([str(padding), stride, str(tuple(y.shape[1:3])), str(formula)])
            shapes.append(
                {"padding": str(padding), "stride": stride, "shape": list(y.shape[1:3]), "formula": list(formula)}
            )
    print("\n3x3 kernel on a 28x28 image: out = floor((n + pad_total - k) / s) + 1")
    print(common.table(["padding", "stride", "conv2d output", "formula"], rows))
    # How each kernel treats a flat region, measured on a constant image's interior.
    flat = np.full((8, 8), 0.5, np.float32)
    flat_response = {
        n: float(np.asarray(kernels.apply_kernel(flat, kernels.KERNELS[n], "VALID")).mean()) for n in NAMES
    }
    results = {
        "pooling": {"input": COURSE.tolist(), "max": max_p.tolist(), "average": avg_p.tolist()},
        "window_sums": window_sizes,
        "output_shapes": shapes,
        "flat_region_response": flat_response,
        "image_indices": picks,
        "figures": [str(grid), str(photo), str(pictured)],
    }
    common.save_results(out, results)
    print(f"\nresults: {out / 'results.json'}  figure: {grid}")
    return results


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point (`funcnn-cnn-kernels`): run `main(argv)`, return exit status 0."""
    common.use_compile_cache()
    main(argv)
    return 0


if __name__ == "__main__":
    cli()
