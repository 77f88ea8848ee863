"""The course's classic 3x3 image kernels, and `apply_kernel` for grayscale or color images."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from funcnn import conv, windows

__all__ = ["KERNELS", "apply_kernel", "edge_detection", "gaussian_blur", "identity", "sharpen"]

identity = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32)
"""Leaves the image as it is."""
gaussian_blur = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 16
"""A weighted 3x3 average (weights sum to 1): smooths, keeps flat regions."""
sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
"""The pixel plus its difference from its 4 neighbours (weights sum to 1): boosts edges, keeps flat regions."""
edge_detection = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float32)
"""A discrete Laplacian (weights sum to 0): 0 on flat regions and linear ramps, large at edges."""

KERNELS = {"identity": identity, "gaussian_blur": gaussian_blur, "sharpen": sharpen, "edge_detection": edge_detection}
"""The four kernels by name."""


def apply_kernel(image: ArrayLike, kernel: ArrayLike, padding: windows.Padding = "SAME") -> jax.Array:
    """Convolve (cross-correlate) a (kh, kw) kernel with an image, each channel on its own.

    image: (H, W) grayscale or (H, W, C) color -> the same rank; "SAME" keeps H and W (zero padding).

    Example:
        >>> import jax.numpy as jnp
        >>> from funcnn import kernels
        >>> flat = jnp.ones((4, 4, 3))  # a 4x4 white RGB image
        >>> blurred = kernels.apply_kernel(flat, kernels.gaussian_blur)  # "SAME": zeros around the image
        >>> blurred.shape
        (4, 4, 3)
        >>> blurred[..., 0].tolist()  # a flat image stays flat; the zero padding darkens its border
        [[0.5625, 0.75, 0.75, 0.5625],
         [0.75, 1.0, 1.0, 0.75],
         [0.75, 1.0, 1.0, 0.75],
         [0.5625, 0.75, 0.75, 0.5625]]
    """
    x = jnp.asarray(image, jnp.float32)
    k = jnp.asarray(kernel, jnp.float32)
    if k.ndim != 2:
        raise ValueError(f"kernel must be 2-D (kh, kw), got shape {tuple(k.shape)}")
    if x.ndim == 2:
        return conv.conv2d(x[..., None], k[:, :, None, None], padding=padding)[..., 0]
    if x.ndim == 3:
        per_channel = jnp.moveaxis(x, -1, 0)[..., None]  # (C, H, W, 1): channels as a batch
        out = conv.conv2d(per_channel, k[:, :, None, None], padding=padding)[..., 0]
        return jnp.moveaxis(out, 0, -1)
    raise ValueError(f"image must be (H, W) or (H, W, C), got shape {tuple(x.shape)}")
