"""The course's classic 3x3 image kernels, and `apply_kernel` for grayscale or color images."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from funcnn import conv

identity = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], np.float32)
gaussian_blur = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 16
sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)
edge_detection = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float32)

KERNELS = {"identity": identity, "gaussian_blur": gaussian_blur, "sharpen": sharpen, "edge_detection": edge_detection}


def apply_kernel(image: jax.Array, kernel: jax.Array, padding: conv.Padding = "SAME") -> jax.Array:
    """Convolve (cross-correlate) a (kh, kw) kernel with an image, each channel on its own.

    image: (H, W) grayscale or (H, W, C) color -> the same rank; "SAME" keeps H and W (zero padding).
    """
    image = jnp.asarray(image, jnp.float32)
    kernel = jnp.asarray(kernel, jnp.float32)
    if kernel.ndim != 2:
        raise ValueError(f"kernel must be 2-D (kh, kw), got shape {tuple(kernel.shape)}")
    if image.ndim == 2:
        return conv.conv2d(image[..., None], kernel[:, :, None, None], padding=padding)[..., 0]
    if image.ndim == 3:
        per_channel = jnp.moveaxis(image, -1, 0)[..., None]  # (C, H, W, 1): channels as a batch
        out = conv.conv2d(per_channel, kernel[:, :, None, None], padding=padding)[..., 0]
        return jnp.moveaxis(out, 0, -1)
    raise ValueError(f"image must be (H, W) or (H, W, C), got shape {tuple(image.shape)}")
